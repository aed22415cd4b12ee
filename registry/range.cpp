#include "registry/range.hpp"

#include <charconv>
#include <optional>

namespace pullgate::registry {
namespace {

using Kind = RangeRequest::Kind;

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && is_ows(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_ows(text.back())) text.remove_suffix(1);
  return text;
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

// 1*DIGIT into uint64; nullopt on anything else, including overflow.
std::optional<std::uint64_t> parse_digits(std::string_view text) {
  if (text.empty()) return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

RangeRequest make(Kind kind, std::uint64_t first = 0, std::uint64_t last = 0) {
  RangeRequest request;
  request.kind = kind;
  request.range = {first, last};
  return request;
}

RangeRequest parse_spec(std::string_view spec, std::uint64_t size) {
  const auto dash = spec.find('-');
  if (dash == std::string_view::npos) return make(Kind::invalid);

  if (dash == 0) {  // suffix-range: the last S bytes
    const auto suffix = parse_digits(spec.substr(1));
    if (!suffix) return make(Kind::invalid);
    if (*suffix == 0) return make(Kind::unsatisfiable);
    // A zero-length blob has no byte to name; serving it whole (200, empty) is
    // what RFC 9110 allows and all a client can use.
    if (size == 0) return make(Kind::none);
    const std::uint64_t first = *suffix >= size ? 0 : size - *suffix;
    return make(Kind::satisfiable, first, size - 1);
  }

  const auto first = parse_digits(spec.substr(0, dash));
  if (!first) return make(Kind::invalid);
  const auto last_text = spec.substr(dash + 1);
  std::optional<std::uint64_t> last;
  if (!last_text.empty()) {
    last = parse_digits(last_text);
    if (!last || *last < *first) return make(Kind::invalid);
  }
  if (*first >= size) return make(Kind::unsatisfiable);
  const std::uint64_t clipped = (!last || *last >= size) ? size - 1 : *last;
  return make(Kind::satisfiable, *first, clipped);
}

}  // namespace

RangeRequest parse_range(std::string_view header, std::uint64_t size) {
  header = trim_ows(header);
  if (header.empty()) return make(Kind::none);

  const auto eq = header.find('=');
  if (eq == std::string_view::npos) return make(Kind::invalid);
  const auto unit = trim_ows(header.substr(0, eq));
  if (unit.empty()) return make(Kind::invalid);
  for (char c : unit) {
    if (!is_tchar(c)) return make(Kind::invalid);
  }
  // Other units are legal HTTP that we do not implement: ignore the header.
  if (!iequals(unit, "bytes")) return make(Kind::none);

  // range-set = 1#range-spec: OWS around commas, empty list elements tolerated.
  const auto set = header.substr(eq + 1);
  std::string_view only_spec;
  std::size_t specs = 0;
  std::size_t pos = 0;
  while (pos <= set.size()) {
    const auto comma = set.find(',', pos);
    const auto element =
        trim_ows(set.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    pos = comma == std::string_view::npos ? set.size() + 1 : comma + 1;
    if (element.empty()) continue;
    ++specs;
    only_spec = element;
  }
  if (specs == 0) return make(Kind::invalid);
  // Multiple ranges would need multipart/byteranges; RFC 9110 lets us ignore them.
  if (specs > 1) return make(Kind::none);
  return parse_spec(only_spec, size);
}

std::string content_range(const ByteRange& range, std::uint64_t size) {
  return "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" +
         std::to_string(size);
}

}  // namespace pullgate::registry
