#pragma once
// The upstream registry client: HTTP and HTTPS, keep-alive connection reuse, the
// bearer-token and basic auth flows, and redirects to other hosts (CDNs, presigned
// object-store URLs), all inside send(). Callers see one final response whose body
// they stream with read_some().
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>

#include "registry/parent_naming.hpp"

namespace pullgate::registry {

namespace asio = boost::asio;
namespace http = boost::beast::http;

struct UpstreamSettings {
  std::string name;      // how config and logs name it, e.g. "docker.io"
  std::string url;       // "https://registry-1.docker.io" or "http://127.0.0.1:5000"
  std::string username;  // empty: anonymous
  std::string password;
  std::string ca_file;   // extra CA bundle (PEM); empty: system store only
  bool insecure = false; // skip TLS peer verification (tests only)
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds response_timeout{30'000};  // to the response header
  std::chrono::milliseconds read_timeout{30'000};      // between body reads
  std::size_t max_idle_connections = 16;               // per host
  // The upstream is a parent mirror (a regional pullgate): every request names the
  // original upstream to it this way. None: an ordinary registry.
  std::optional<ParentNaming> parent;
};

struct UpstreamRequest {
  http::verb method = http::verb::get;
  std::string target;  // origin-form path and query, already percent-encoded
  std::string scope;   // bearer scope, e.g. "repository:library/nginx:pull"
  std::vector<std::pair<std::string, std::string>> headers;  // Accept, Range, ...
};

// Network, TLS, timeout and protocol failures. HTTP statuses are not errors:
// send() returns a 404, 429 or 503 as a response.
class UpstreamError : public std::runtime_error {
 public:
  // too_large: a body longer than the limit its reader set (read_body).
  enum class Kind { connect, tls, timeout, protocol, redirect, auth, too_large };
  UpstreamError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class UpstreamResponse {
 public:
  virtual ~UpstreamResponse() = default;
  virtual unsigned status() const = 0;
  virtual const http::fields& headers() const = 0;
  virtual std::optional<std::uint64_t> content_length() const = 0;
  // Next piece of the body into `buffer`; 0 at the end of the body. Throws
  // UpstreamError on a reset, timeout or truncation. A response destroyed before
  // its body was read to the end closes its connection instead of reusing it.
  virtual asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer) = 0;
  // A 429 answered without sending anything, while the upstream's earlier Retry-After
  // holds (retry_after.hpp): not an upstream request, for those who count them.
  virtual bool held() const { return false; }
};

class Upstream {
 public:
  virtual ~Upstream() = default;
  virtual const UpstreamSettings& settings() const = 0;
  // Thread-safe: called from many sessions at once. Sends User-Agent
  // pullgate/<version>. To a parent mirror, the target and scope are named for it
  // (name_for_parent, scope_for_parent) before anything is sent. Follows up to 5 redirects (keeping Range, dropping
  // Authorization on a cross-host hop), answers a 401 Bearer challenge by fetching
  // a token for request.scope (cached until it expires; concurrent requests wait for
  // one fetch; credentials are sent to a realm only on the upstream's own domain) and
  // a 401 Basic challenge with the credentials, then retries once. After the upstream's
  // 429 with Retry-After, answers its 429 (held()) without sending until that time.
  virtual asio::awaitable<std::unique_ptr<UpstreamResponse>> send(UpstreamRequest request) = 0;
};

// executor: where connections live (the server's io_context executor).
// Throws std::runtime_error for a malformed url or an unreadable ca_file.
std::unique_ptr<Upstream> make_http_upstream(asio::any_io_executor executor, UpstreamSettings settings);

// Reads the whole body; throws UpstreamError(too_large) when it exceeds `limit`.
asio::awaitable<std::string> read_body(UpstreamResponse& response, std::size_t limit);

}  // namespace pullgate::registry
