#include "cache/pins.hpp"

#include <algorithm>

#include "registry/glob.hpp"
#include "registry/names.hpp"

namespace pullgate::cache {
namespace {

bool has_wildcard(std::string_view text) { return text.find_first_of("*?") != std::string_view::npos; }

// A repository or a tag: a valid name, or a glob of the characters its names allow.
std::optional<std::string> name_problem(std::string_view text, registry::GlobKind kind) {
  const bool repository = kind == registry::GlobKind::repository;
  if (has_wildcard(text)) {
    if (auto problem = registry::glob_problem(text, kind))
      return std::string(repository ? "the repository pattern " : "the tag pattern ") + *problem;
    return std::nullopt;
  }
  const bool valid = repository ? registry::Repository::parse(text).has_value() : registry::Tag::parse(text).has_value();
  if (valid) return std::nullopt;
  return repository ? "the repository is not a valid repository name" : "the tag is not a valid tag";
}

}  // namespace

bool ImagePin::is_pattern() const { return !digest && (has_wildcard(repository) || has_wildcard(tag)); }

std::optional<ImagePin> parse_image_pin(std::string_view text, std::string* problem) {
  auto refuse = [&](std::string why) -> std::optional<ImagePin> {
    if (problem) *problem = std::move(why);
    return std::nullopt;
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return refuse("names no UPSTREAM/ before the repository");
  ImagePin pin{std::string(text.substr(0, slash)), {}, {}, std::nullopt};
  if (has_wildcard(pin.upstream)) return refuse("the upstream is a name, not a pattern");
  for (unsigned char c : pin.upstream)
    if (c <= ' ' || c >= 0x7f) return refuse("the upstream has a character no upstream name has");
  auto rest = text.substr(slash + 1);
  std::string_view name;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    pin.digest = registry::Digest::parse(rest.substr(at + 1));
    if (!pin.digest) return refuse("the digest is not ALGORITHM:HEX");
    name = rest.substr(0, at);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || rest.find('/', colon) != std::string_view::npos)
      return refuse("names neither :TAG nor @DIGEST");
    auto tag = rest.substr(colon + 1);
    if (auto why = name_problem(tag, registry::GlobKind::tag)) return refuse(*why);
    pin.tag = std::string(tag);
    name = rest.substr(0, colon);
  }
  if (auto why = name_problem(name, registry::GlobKind::repository)) return refuse(*why);
  pin.repository = std::string(name);
  return pin;
}

std::string format_image_pin(const ImagePin& pin) {
  std::string out = pin.upstream + "/" + pin.repository;
  if (pin.digest) return out + "@" + pin.digest->str();
  return out + ":" + pin.tag;
}

std::vector<ImagePin> pins_in_force(MetaStore& meta, const std::vector<std::string>& config_pins) {
  std::vector<ImagePin> out;
  for (const auto& text : config_pins)
    if (auto pin = parse_image_pin(text)) out.push_back(std::move(*pin));
  for (const auto& record : meta.list_pins())
    if (auto pin = parse_image_pin(record.pin)) out.push_back(std::move(*pin));
  return out;
}

std::vector<ListedPin> list_pins_in_force(MetaStore& meta, const std::vector<std::string>& config_pins) {
  std::vector<ListedPin> out;
  auto list = [&](const ImagePin& pin, std::optional<PinRecord> record) {
    ListedPin listed{format_image_pin(pin), !record, std::move(record), {}};
    for (auto& digest : resolve_pins(meta, {pin}))
      if (std::find(listed.keeps.begin(), listed.keeps.end(), digest) == listed.keeps.end() &&
          meta.get_manifest(digest))
        listed.keeps.push_back(std::move(digest));
    out.push_back(std::move(listed));
  };
  for (const auto& text : config_pins)
    if (auto pin = parse_image_pin(text)) list(*pin, std::nullopt);
  for (auto& record : meta.list_pins())
    if (auto pin = parse_image_pin(record.pin)) list(*pin, std::move(record));
  return out;
}

std::vector<registry::Digest> resolve_pins(MetaStore& meta, const std::vector<ImagePin>& pins) {
  std::vector<registry::Digest> out;
  std::optional<std::vector<MetaStore::StoredTag>> tags;
  for (const auto& pin : pins) {
    if (pin.digest) {
      out.push_back(*pin.digest);
    } else if (!pin.is_pattern()) {
      if (auto tag = meta.get_tag(pin.upstream, pin.repository, pin.tag)) out.push_back(tag->digest);
    } else {
      if (!tags) tags = meta.list_tags();
      for (const auto& t : *tags)
        if (t.upstream == pin.upstream && registry::glob_match(pin.repository, t.repository) &&
            registry::glob_match(pin.tag, t.tag))
          out.push_back(t.record.digest);
    }
  }
  return out;
}

}  // namespace pullgate::cache
