#include "registry/route.hpp"

#include <charconv>
#include <limits>
#include <vector>

#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>

namespace pullgate::registry {
namespace {

namespace urls = boost::urls;

RouteError not_found() { return {404, ErrorCode::name_unknown, "not found"}; }

RouteError bad_target(std::string message) { return {400, ErrorCode::name_invalid, std::move(message)}; }

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

bool has_control(std::string_view text) {
  for (unsigned char c : text) {
    if (is_control(c)) return true;
  }
  return false;
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

std::string describe_bad_tag(std::string_view tag) {
  if (tag.empty()) return "invalid tag: empty";
  if (tag.size() > 128) return "invalid tag: longer than 128 characters";
  const char first = tag.front();
  if (first == '.' || first == '-') return "invalid tag: must start with a letter, digit or '_'";
  return "invalid tag: only letters, digits, '_', '.' and '-' are allowed";
}

std::string join(const std::vector<std::string>& segments, std::size_t from, std::size_t to) {
  std::string out;
  for (std::size_t i = from; i < to; ++i) {
    if (i > from) out.push_back('/');
    out += segments[i];
  }
  return out;
}

struct QueryValues {
  std::optional<std::string> ns, n, last, artifact_type;
};

// Known parameters are checked; unknown ones are ignored, whatever they hold. A known
// parameter given twice is refused: one request, one meaning.
std::optional<RouteError> read_query(std::string_view query, QueryValues& out) {
  auto params = parse_query(query);
  if (!params) return bad_target("malformed percent-encoding in query");
  for (auto& [name, value] : *params) {
    std::optional<std::string>* slot = nullptr;
    if (name == "ns") slot = &out.ns;
    else if (name == "n") slot = &out.n;
    else if (name == "last") slot = &out.last;
    else if (name == "artifactType") slot = &out.artifact_type;
    if (slot == nullptr) continue;
    if (!value) return bad_target("malformed percent-encoding in query parameter " + name);
    if (has_control(*value)) return bad_target("control character in query parameter " + name);
    if (slot->has_value()) return RouteError{400, ErrorCode::unsupported, "duplicate query parameter " + name};
    *slot = std::move(*value);
  }
  return std::nullopt;
}

// The path of the request target (without its query), checked against RFC 3986's
// origin form ("/v2/...") or absolute form ("http://host/v2/...": the authority
// selects nothing here, ns and alias do) by Boost.URL. Empty: not a target this
// server has anything under.
std::variant<std::string_view, RouteError> path_of(std::string_view head) {
  if (head.starts_with('/')) {
    auto origin = urls::parse_origin_form(head);
    if (!origin) return bad_target("malformed path (" + origin.error().message() + ")");
    return origin->encoded_path();
  }
  if (!iequals_prefix(head, "http://") && !iequals_prefix(head, "https://")) return std::string_view{};
  auto absolute = urls::parse_absolute_uri(head);
  if (!absolute) return bad_target("malformed request target (" + absolute.error().message() + ")");
  return absolute->encoded_path();
}

std::optional<std::size_t> parse_count(std::string_view text) {
  if (text.empty()) return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text) {
  auto escaped = urls::make_pct_string_view(text);
  if (!escaped) return std::nullopt;
  return escaped->decode();  // '+' stays '+'
}

std::optional<std::vector<QueryParam>> parse_query(std::string_view query) {
  std::vector<QueryParam> params;
  std::size_t pos = 0;
  while (pos <= query.size()) {
    const auto amp = query.find('&', pos);
    const auto pair = query.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    pos = amp == std::string_view::npos ? query.size() + 1 : amp + 1;
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto name = percent_decode(pair.substr(0, eq));
    if (!name) return std::nullopt;
    params.push_back({std::move(*name), percent_decode(eq == std::string_view::npos ? std::string_view{}
                                                                                    : pair.substr(eq + 1))});
  }
  return params;
}

std::variant<Route, RouteError> parse_route(std::string_view target, const AliasPredicate& is_alias) {
  // Raw target: ASCII printable only (RFC 9112 request-target); no fragments.
  for (unsigned char c : target) {
    if (is_control(c) || c == ' ' || c >= 0x80) return bad_target("invalid character in request target");
    if (c == '#') return bad_target("fragment in request target");
  }

  // The query is split off first: what is wrong in a parameter nobody reads does not
  // make the target unusable.
  const auto question = target.find('?');
  const auto query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
  auto checked = path_of(target.substr(0, question));
  if (auto* error = std::get_if<RouteError>(&checked)) return std::move(*error);
  const auto path = std::get<std::string_view>(checked);
  if (path.empty()) return not_found();

  // Each segment decoded on its own, so an encoded '/' can never create structure.
  // (Split here rather than by Boost.URL's segments view, which hides a leading "."
  // segment: "/./v2/..." must be refused like any dot segment.)
  std::vector<std::string> segments;
  std::size_t start = 1;
  while (true) {
    const auto slash = path.find('/', start);
    const auto raw = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    auto decoded = percent_decode(raw);
    if (!decoded) return bad_target("malformed percent-encoding in path");
    if (decoded->find('/') != std::string::npos) return bad_target("encoded '/' in path segment");
    if (has_control(*decoded)) return bad_target("control character in path");
    if (*decoded == "." || *decoded == "..") return bad_target("dot segment in path");
    segments.push_back(std::move(*decoded));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  // Only the last segment may be empty (a trailing slash); "//" is refused.
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    if (segments[i].empty()) return bad_target("empty path segment");
  }

  QueryValues query_values;
  if (auto error = read_query(query, query_values)) return *error;

  Route route;
  route.ns = std::move(query_values.ns);
  route.last = std::move(query_values.last);
  route.artifact_type = std::move(query_values.artifact_type);
  if (query_values.n) {
    route.n = parse_count(*query_values.n);
    if (!route.n) return RouteError{400, ErrorCode::unsupported, "invalid n"};
  }

  const std::size_t count = segments.size();
  if (count == 1 && segments[0] == "healthz") {
    route.kind = RouteKind::health;
    return route;
  }
  if (count == 1 && segments[0] == "readyz") {
    route.kind = RouteKind::ready;
    return route;
  }
  if (segments[0] != "v2") return not_found();
  if (count == 1 || (count == 2 && segments[1].empty())) {
    route.kind = RouteKind::base;
    return route;
  }

  // rest = segments[1..count). Match the structure at the right end: repository
  // names may contain "manifests", "blobs" and the like, and the last structural
  // match wins, as in Distribution.
  auto at = [&](std::size_t from_end) -> const std::string& { return segments[count - 1 - from_end]; };
  const std::size_t rest = count - 1;
  std::size_t name_end = 0;  // one past the last repository segment, in `segments`
  std::string_view last_segment = segments.back();
  if (last_segment.empty()) {
    if (rest >= 4 && at(1) == "uploads" && at(2) == "blobs") {
      route.kind = RouteKind::blob_upload;
      name_end = count - 3;
    } else {
      return not_found();
    }
  } else if (rest >= 3 && at(1) == "tags" && at(0) == "list") {
    route.kind = RouteKind::tags_list;
    name_end = count - 2;
  } else if (rest >= 3 && at(1) == "manifests") {
    route.kind = RouteKind::manifest;
    name_end = count - 2;
  } else if (rest >= 3 && at(1) == "referrers") {
    route.kind = RouteKind::referrers;
    name_end = count - 2;
  } else if (rest >= 3 && at(1) == "blobs" && at(0) == "uploads") {
    route.kind = RouteKind::blob_upload;
    name_end = count - 2;
  } else if (rest >= 4 && at(2) == "blobs" && at(1) == "uploads") {
    route.kind = RouteKind::blob_upload;
    name_end = count - 3;
  } else if (rest >= 3 && at(1) == "blobs") {
    route.kind = RouteKind::blob;
    name_end = count - 2;
  } else {
    return not_found();
  }

  // segments[1..name_end) name the repository, optionally led by an alias.
  std::size_t name_begin = 1;
  if (name_end - name_begin >= 2 && is_alias && is_alias(segments[1])) {
    route.alias = segments[1];
    name_begin = 2;
  }
  auto repository = Repository::parse(join(segments, name_begin, name_end));
  if (!repository) return bad_target("invalid repository name");
  route.repository = std::move(repository);

  switch (route.kind) {
    case RouteKind::manifest: {
      const auto& text = segments.back();
      if (text.find(':') != std::string::npos) {
        auto digest = Digest::parse(text);
        if (!digest) return RouteError{400, ErrorCode::digest_invalid, "invalid digest"};
        route.reference.emplace(std::move(*digest));
      } else {
        auto tag = Tag::parse(text);
        // A tag that cannot exist names no manifest: 404, as the distribution spec's
        // pull tests expect.
        if (!tag) return RouteError{404, ErrorCode::manifest_unknown, describe_bad_tag(text)};
        route.reference.emplace(std::move(*tag));
      }
      break;
    }
    case RouteKind::blob:
    case RouteKind::referrers: {
      auto digest = Digest::parse(segments.back());
      if (!digest) return RouteError{400, ErrorCode::digest_invalid, "invalid digest"};
      route.digest = std::move(digest);
      break;
    }
    default:
      break;
  }
  return route;
}

}  // namespace pullgate::registry
