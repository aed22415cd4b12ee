#include "cache/pins.hpp"

#include "registry/names.hpp"

namespace pullgate::cache {

std::optional<ImagePin> parse_image_pin(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  ImagePin pin{std::string(text.substr(0, slash)), {}, {}, std::nullopt};
  auto rest = text.substr(slash + 1);
  std::string_view name;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    pin.digest = registry::Digest::parse(rest.substr(at + 1));
    if (!pin.digest) return std::nullopt;
    name = rest.substr(0, at);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || rest.find('/', colon) != std::string_view::npos) return std::nullopt;
    auto tag = registry::Tag::parse(rest.substr(colon + 1));
    if (!tag) return std::nullopt;
    pin.tag = tag->str();
    name = rest.substr(0, colon);
  }
  auto repository = registry::Repository::parse(name);
  if (!repository) return std::nullopt;
  pin.repository = repository->str();
  return pin;
}

}  // namespace pullgate::cache
