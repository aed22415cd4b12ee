#pragma once
// What a client is told when the upstream did not give the mirror what it asked for,
// as a value: the mirror's leader of a single flight hands the same value to every
// request waiting on it, and unit tests call the mapping directly.
//
// The mapping: 404 is an answer (the content does not exist); a pullgate upstream's
// 403 DENIED is a decision, passed on with its message as this mirror's own 403
// DENIED and never answered from the cache; everything else (the upstream's own
// 401/403 for credentials, 429, 5xx, no answer at all) is upstream trouble, for
// which cached content may stand in.
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "registry/errors.hpp"
#include "registry/upstream.hpp"

namespace pullgate::proxy {

using registry::decision_header;
using registry::max_error_body;

struct ErrorReply {
  unsigned status = 502;
  registry::ErrorCode code = registry::ErrorCode::unknown;
  std::string message;
  std::string retry_after;  // with a 429
  // The upstream (or the way to it) failed: a cached copy may be served instead.
  // False for answers (404) and decisions (a parent's denial).
  bool trouble = false;
};

// What the upstream answered, when it was not what the mirror asked for.
struct UpstreamAnswer {
  unsigned status = 0;        // 0: no answer (network, TLS, timeout); `detail` says why
  std::string retry_after;    // its Retry-After
  std::string decision;       // its Pullgate-Decision header
  std::string body;           // the start of its body (an OCI error, if any)
  std::string detail;
};

// A pullgate upstream's denial: its message, when `answer` is a 403 that carries
// Pullgate-Decision: deny and an OCI error body whose first error is DENIED.
std::optional<std::string> upstream_denial(const UpstreamAnswer& answer);

// What a response that is not a success says: its status and headers, and its error
// body when it may be a pullgate upstream's denial (unread otherwise).
boost::asio::awaitable<UpstreamAnswer> upstream_answer(registry::UpstreamResponse& response);

// `upstream`: its name; `repository`: as the upstream names it; `what`: the reference
// or digest asked for (may be empty); `not_found`: the code for a 404.
ErrorReply upstream_failure_reply(std::string_view upstream, std::string_view repository, std::string_view what,
                                  const UpstreamAnswer& answer, registry::ErrorCode not_found);

}  // namespace pullgate::proxy
