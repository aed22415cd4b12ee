#pragma once
// The request target, parsed once. Everything after routing works on a Route value;
// a target that does not parse is refused, never forwarded as it came.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "registry/errors.hpp"
#include "registry/names.hpp"

namespace pullgate::registry {

enum class RouteKind {
  base,        // /v2/
  manifest,    // /v2/<name>/manifests/<reference>
  blob,        // /v2/<name>/blobs/<digest>
  blob_upload, // /v2/<name>/blobs/uploads/[...]  (push: the mirror refuses it)
  tags_list,   // /v2/<name>/tags/list
  referrers,   // /v2/<name>/referrers/<digest>
  health,      // /healthz
  ready,       // /readyz
};

struct Route {
  RouteKind kind = RouteKind::base;
  // Upstream selection as the client expressed it. `ns` is containerd's query
  // parameter (percent-decoded); `alias` is a path prefix (/v2/<alias>/<name>/...)
  // that the is_alias predicate recognised. Both may be empty.
  std::optional<std::string> ns;
  std::optional<std::string> alias;
  std::optional<Repository> repository;  // all kinds but base/health/ready
  std::optional<Reference> reference;    // manifest
  std::optional<Digest> digest;          // blob, referrers
  // tags/list pagination and referrers filter, percent-decoded.
  std::optional<std::size_t> n;
  std::optional<std::string> last;
  std::optional<std::string> artifact_type;
};

struct RouteError {
  unsigned status;  // 400 or 404
  ErrorCode code;   // NAME_INVALID, DIGEST_INVALID, MANIFEST_INVALID (bad tag), UNSUPPORTED, NAME_UNKNOWN
  std::string message;
};

// target: the HTTP request-target as received (origin-form "/v2/..?q" or absolute-form
// "http://host/v2/..."). Percent-decoding is applied to path segments and query
// values; "." and ".." segments, empty segments, encoded '/', NUL, and control
// characters are refused. Unknown query parameters are ignored. Paths outside /v2/,
// /healthz, /readyz give 404 with code NAME_UNKNOWN... (a plain "not found").
// is_alias(first_segment) says whether the first path segment after /v2/ names an
// upstream; it is consulted only when the remaining path still names a repository.
using AliasPredicate = std::function<bool(std::string_view)>;
std::variant<Route, RouteError> parse_route(std::string_view target, const AliasPredicate& is_alias);

// Percent-decoding of one component (Boost.URL's); nullopt on a malformed escape.
// '+' stays '+': in a registry's query it is not a space.
std::optional<std::string> percent_decode(std::string_view text);

// A query string ("a=1&b=%41"), the one way every query here is read: split at '&'
// and at the first '=', names and values percent-decoded. Empty pieces are skipped;
// "a" and "a=" both give "a" the value "". A value whose escapes are malformed has
// none (nullopt), so a caller can pass over a parameter it does not know whatever it
// holds; a malformed name makes the whole query nullopt.
struct QueryParam {
  std::string name;
  std::optional<std::string> value;
};
std::optional<std::vector<QueryParam>> parse_query(std::string_view query);

}  // namespace pullgate::registry
