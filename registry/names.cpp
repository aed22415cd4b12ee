#include "registry/names.hpp"

#include <algorithm>

namespace pullgate::registry {
namespace {

// Hand-written scanners instead of std::regex: linear time, no backtracking on
// hostile input.
constexpr std::size_t max_repository_length = 255;
constexpr std::size_t max_tag_length = 128;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool is_tag_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool is_path_component(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto alnum_run = [&] {
    const std::size_t start = i;
    while (i < n && is_lower_alnum(text[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < n) {
    // separator: "." | "_" | "__" | "-"+
    if (text[i] == '.') {
      ++i;
    } else if (text[i] == '_') {
      ++i;
      if (i < n && text[i] == '_') ++i;
    } else if (text[i] == '-') {
      while (i < n && text[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

}  // namespace

std::optional<Repository> Repository::parse(std::string_view text) {
  if (text.empty() || text.size() > max_repository_length) return std::nullopt;
  std::size_t start = 0;
  while (true) {
    const auto slash = text.find('/', start);
    const auto component = text.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!is_path_component(component)) return std::nullopt;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Repository(std::string(text));
}

std::size_t Repository::components() const {
  return static_cast<std::size_t>(std::count(value_.begin(), value_.end(), '/')) + 1;
}

std::optional<Tag> Tag::parse(std::string_view text) {
  if (text.empty() || text.size() > max_tag_length) return std::nullopt;
  if (text.front() == '.' || text.front() == '-') return std::nullopt;
  if (!std::all_of(text.begin(), text.end(), is_tag_char)) return std::nullopt;
  return Tag(std::string(text));
}

std::optional<Reference> Reference::parse(std::string_view text) {
  if (text.find(':') != std::string_view::npos) {
    if (auto digest = Digest::parse(text)) return Reference(std::move(*digest));
    return std::nullopt;
  }
  if (auto tag = Tag::parse(text)) return Reference(std::move(*tag));
  return std::nullopt;
}

const std::string& Reference::str() const {
  if (const auto* d = digest()) return d->str();
  return std::get<Tag>(value_).str();
}

}  // namespace pullgate::registry
