#include "registry/upstream.hpp"

#include <array>
#include <stdexcept>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <openssl/evp.h>

#include "registry/retry_after.hpp"
#include "registry/upstream_connection.hpp"
#include "registry/upstream_token.hpp"
#include "registry/upstream_url.hpp"
#include "registry/www_authenticate.hpp"

namespace pullgate::registry {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr int kMaxRedirects = 5;
// A 401 or redirect body up to this size is read so the connection can be reused.
constexpr std::size_t kDrainLimit = 64 * 1024;
constexpr std::size_t kTokenBodyLimit = 1024 * 1024;
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
constexpr std::string_view kUserAgent = "pullgate/" PULLGATE_VERSION;

[[noreturn]] void throw_io(const error_code& ec, const std::string& doing) {
  using Kind = UpstreamError::Kind;
  Kind kind = Kind::connect;
  if (ec == beast::error::timeout) {
    kind = Kind::timeout;
  } else if (ec.category() == http::make_error_code(http::error::end_of_stream).category() ||
             ec == asio::ssl::error::stream_truncated) {
    kind = Kind::protocol;
  } else if (ec.category() == asio::error::get_ssl_category()) {
    kind = Kind::tls;
  }
  throw UpstreamError(kind, doing + ": " + ec.message());
}

std::string basic_authorization(const std::string& username, const std::string& password) {
  std::string plain = username + ":" + password;
  std::string encoded(4 * ((plain.size() + 2) / 3) + 1, '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                               reinterpret_cast<const unsigned char*>(plain.data()),
                               static_cast<int>(plain.size()));
  encoded.resize(static_cast<std::size_t>(length));
  return "Basic " + encoded;
}

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

class HttpResponse final : public UpstreamResponse {
 public:
  HttpResponse(std::shared_ptr<ConnectionPool> pool, Url url, std::chrono::milliseconds read_timeout,
               std::unique_ptr<Connection> connection, std::unique_ptr<ResponseParser> parser)
      : pool_(std::move(pool)),
        url_(std::move(url)),
        read_timeout_(read_timeout),
        connection_(std::move(connection)),
        parser_(std::move(parser)) {
    if (parser_->is_done()) finish();
  }

  unsigned status() const override { return parser_->get().result_int(); }
  const http::fields& headers() const override { return parser_->get(); }
  std::optional<std::uint64_t> content_length() const override {
    auto length = parser_->content_length();
    return length ? std::optional<std::uint64_t>(*length) : std::nullopt;
  }
  const Url& url() const { return url_; }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer) override {
    if (buffer.size() == 0) throw std::invalid_argument("read_some needs a non-empty buffer");
    while (!done_) {
      if (!connection_) throw UpstreamError(UpstreamError::Kind::protocol, "upstream response already failed");
      auto& body = parser_->get().body();
      body.data = buffer.data();
      body.size = buffer.size();
      connection_->expires_after(read_timeout_);
      auto ec = co_await connection_->read_some(*parser_);
      if (ec == http::error::need_buffer) ec = {};
      // Over TLS a body delimited by the end of the connection ends without close_notify.
      if (ec == asio::ssl::error::stream_truncated && parser_->need_eof()) parser_->put_eof(ec);
      if (ec) {
        connection_.reset();
        if (ec == http::error::partial_message) {
          throw UpstreamError(UpstreamError::Kind::protocol,
                              "upstream " + url_.origin.key() + " closed the connection before the end of the body");
        }
        throw_io(ec, "reading body from " + url_.origin.key());
      }
      std::size_t produced = buffer.size() - body.size;
      if (parser_->is_done()) finish();
      if (produced > 0) co_return produced;
    }
    co_return 0;
  }

 private:
  // The body is complete: a keep-alive connection with nothing left over goes back
  // to the pool; anything else is closed.
  void finish() {
    done_ = true;
    if (!connection_) return;
    if (parser_->get().keep_alive() && !connection_->has_buffered_bytes()) {
      connection_->expires_never();
      pool_->put(url_.origin.key(), std::move(connection_));
    }
    connection_.reset();
  }

  std::shared_ptr<ConnectionPool> pool_;
  Url url_;
  std::chrono::milliseconds read_timeout_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<ResponseParser> parser_;
  bool done_ = false;
};

// What a request gets while the upstream's Retry-After holds: its 429 again, with the
// time left, and nothing sent.
class HeldResponse final : public UpstreamResponse {
 public:
  explicit HeldResponse(std::chrono::seconds left) {
    headers_.set(http::field::retry_after, std::to_string(left.count()));
  }
  unsigned status() const override { return 429; }
  const http::fields& headers() const override { return headers_; }
  std::optional<std::uint64_t> content_length() const override { return 0; }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer) override { co_return 0; }
  bool held() const override { return true; }

 private:
  http::fields headers_;
};

asio::awaitable<void> drain(UpstreamResponse& response) {
  auto length = response.content_length();
  if (length && *length > kDrainLimit) co_return;
  try {
    co_await read_body(response, kDrainLimit);
  } catch (const UpstreamError&) {
    // Only connection reuse is lost; the caller goes on with a new request.
  }
}

class HttpUpstream final : public Upstream {
 public:
  HttpUpstream(asio::any_io_executor executor, UpstreamSettings settings, Url base)
      : executor_(std::move(executor)),
        settings_(std::move(settings)),
        base_(std::move(base)),
        tls_context_(asio::ssl::context::tls_client),
        pool_(std::make_shared<ConnectionPool>(settings_.max_idle_connections)) {
    tls_context_.set_default_verify_paths();
    if (!settings_.ca_file.empty()) {
      error_code ec;
      tls_context_.load_verify_file(settings_.ca_file, ec);
      if (ec) {
        throw std::runtime_error("upstream " + settings_.name + ": cannot load ca_file " +
                                 settings_.ca_file + ": " + ec.message());
      }
    }
    tls_context_.set_verify_mode(settings_.insecure ? asio::ssl::verify_none : asio::ssl::verify_peer);
  }

  const UpstreamSettings& settings() const override { return settings_; }

  asio::awaitable<std::unique_ptr<UpstreamResponse>> send(UpstreamRequest request) override {
    if (auto left = hold_.left(RateLimitHold::Clock::now())) co_return std::make_unique<HeldResponse>(*left);
    auto response = co_await send_now(std::move(request));
    // The upstream's own 429 (not a CDN's or a token server's) holds every request to it.
    if (response->status() == 429 && response->url().origin == base_.origin) {
      auto wait = parse_retry_after(response->headers()[http::field::retry_after], std::chrono::system_clock::now());
      if (wait) hold_.hold(RateLimitHold::Clock::now(), *wait);
    }
    co_return response;
  }

 private:
  asio::awaitable<std::unique_ptr<HttpResponse>> send_now(UpstreamRequest request) {
    if (!request.target.starts_with('/') || !is_visible_ascii(request.target)) {
      throw UpstreamError(UpstreamError::Kind::protocol, "invalid upstream request target");
    }
    if (settings_.parent) {
      request.target = name_for_parent(request.target, *settings_.parent);
      request.scope = scope_for_parent(request.scope, *settings_.parent);
    }
    Url url{base_.origin, request.target};
    std::optional<std::string> authorization;
    std::optional<std::string> sent_token;
    if (!request.scope.empty()) {
      sent_token = tokens_.cached(request.scope);
      if (sent_token) authorization = "Bearer " + *sent_token;
    }

    auto response = co_await follow(url, request.method, request.headers, authorization);
    // Only the upstream's own 401 is answered; a CDN's 401 goes to the caller as is.
    if (response->status() != 401 || response->url().origin != base_.origin) co_return response;

    std::vector<Challenge> challenges;
    auto [first, last] = response->headers().equal_range(http::field::www_authenticate);
    for (auto field = first; field != last; ++field) {
      auto parsed = parse_www_authenticate(field->value());
      challenges.insert(challenges.end(), parsed.begin(), parsed.end());
    }
    auto bearer = std::find_if(challenges.begin(), challenges.end(),
                               [](const Challenge& c) { return c.scheme == "bearer"; });
    auto basic = std::find_if(challenges.begin(), challenges.end(),
                              [](const Challenge& c) { return c.scheme == "basic"; });

    if (bearer != challenges.end()) {
      std::string scope = request.scope.empty() ? bearer->param("scope").value_or("") : request.scope;
      Challenge challenge = *bearer;
      co_await drain(*response);
      // Named, not a temporary: GCC 12 destroys temporaries in a co_await expression twice.
      TokenCache::Fetch fetch = [this, challenge, scope] { return fetch_token(challenge, scope); };
      auto token = co_await tokens_.get(scope, sent_token, std::move(fetch));
      authorization = "Bearer " + token;
    } else if (basic != challenges.end() && !settings_.username.empty()) {
      co_await drain(*response);
      authorization = basic_authorization(settings_.username, settings_.password);
    } else {
      co_return response;
    }
    co_return co_await follow(url, request.method, request.headers, authorization);
  }

  asio::awaitable<BearerToken> fetch_token(Challenge challenge, std::string scope) {
    auto realm = challenge.param("realm");
    if (!realm) throw UpstreamError(UpstreamError::Kind::auth, "bearer challenge without a realm");
    auto url = parse_url(*realm);
    if (!url) throw UpstreamError(UpstreamError::Kind::auth, "bearer realm is not an http(s) URL");

    std::string query;
    if (auto service = challenge.param("service")) query = "service=" + percent_encode(*service);
    if (!scope.empty()) query += (query.empty() ? "" : "&") + ("scope=" + percent_encode(scope));
    if (!query.empty()) url->target += (url->target.find('?') == std::string::npos ? "?" : "&") + query;

    std::optional<std::string> authorization;
    if (!settings_.username.empty() && may_send_credentials(base_.origin, url->origin)) {
      authorization = basic_authorization(settings_.username, settings_.password);
    }
    Headers accept_json{{"Accept", "application/json"}};  // named: see send()
    auto response = co_await follow(*url, http::verb::get, accept_json, authorization);
    if (response->status() != 200) {
      throw UpstreamError(UpstreamError::Kind::auth, "token endpoint " + url->origin.key() +
                                                         " answered " + std::to_string(response->status()));
    }
    auto body = co_await read_body(*response, kTokenBodyLimit);
    auto token = parse_token_response(body);
    if (!token) throw UpstreamError(UpstreamError::Kind::auth, "malformed token response from " + url->origin.key());
    co_return *token;
  }

  // One request plus the redirects it leads to.
  asio::awaitable<std::unique_ptr<HttpResponse>> follow(Url url, http::verb method, Headers headers,
                                                        std::optional<std::string> authorization) {
    for (int redirects = 0;; ++redirects) {
      auto response = co_await exchange(url, method, headers, authorization);
      if (!is_redirect(response->status())) co_return response;
      auto location = response->headers()[http::field::location];
      if (location.empty()) co_return response;
      if (redirects == kMaxRedirects) {
        throw UpstreamError(UpstreamError::Kind::redirect, "more than 5 redirects from " + base_.origin.key());
      }
      auto next = resolve_location(url, location);
      if (!next) throw UpstreamError(UpstreamError::Kind::redirect, "unusable redirect Location");
      if (response->status() == 303 && method != http::verb::head) method = http::verb::get;
      // Credentials stay with the host they were meant for (object stores reject them anyway).
      if (next->origin != url.origin) authorization.reset();
      co_await drain(*response);
      url = std::move(*next);
    }
  }

  // One request and its response header, on a pooled connection when there is one.
  asio::awaitable<std::unique_ptr<HttpResponse>> exchange(const Url& url, http::verb method,
                                                          const Headers& headers,
                                                          const std::optional<std::string>& authorization) {
    bool idempotent = method == http::verb::get || method == http::verb::head;
    auto key = url.origin.key();
    for (int attempt = 0;; ++attempt) {
      // A retry always takes a fresh connection: the pooled one went stale.
      std::unique_ptr<Connection> connection = attempt == 0 ? pool_->take(key) : nullptr;
      bool reused = connection != nullptr;
      if (!connection) {
        connection = co_await Connection::open(executor_, tls_context_, !settings_.insecure, url.origin,
                                               settings_.connect_timeout);
      }

      http::request<http::empty_body> request{method, url.target, 11};
      request.set(http::field::host, url.origin.host_header());
      request.set(http::field::user_agent, kUserAgent);
      for (const auto& [name, value] : headers) request.insert(name, value);
      if (authorization) request.set(http::field::authorization, *authorization);

      connection->expires_after(settings_.response_timeout);
      auto ec = co_await connection->write(request);
      if (ec) {
        if (reused && idempotent && ec != beast::error::timeout) continue;
        throw_io(ec, "sending request to " + url.origin.key());
      }

      auto parser = std::make_unique<ResponseParser>();
      parser->body_limit(boost::none);  // blobs are many GiB; callers stream them
      parser->header_limit(kHeaderLimit);
      if (method == http::verb::head) parser->skip(true);
      ec = co_await connection->read_header(*parser);
      if (ec) {
        if (reused && idempotent && ec != beast::error::timeout && !parser->got_some()) continue;
        if (ec == beast::error::timeout) {
          throw UpstreamError(UpstreamError::Kind::timeout,
                              "no response from " + url.origin.key() + " within the response timeout");
        }
        throw_io(ec, "reading response from " + url.origin.key());
      }
      co_return std::make_unique<HttpResponse>(pool_, url, settings_.read_timeout, std::move(connection),
                                               std::move(parser));
    }
  }

  asio::any_io_executor executor_;
  UpstreamSettings settings_;
  Url base_;
  asio::ssl::context tls_context_;
  std::shared_ptr<ConnectionPool> pool_;
  TokenCache tokens_;
  RateLimitHold hold_;
};

}  // namespace

std::unique_ptr<Upstream> make_http_upstream(asio::any_io_executor executor, UpstreamSettings settings) {
  auto base = parse_url(settings.url);
  if (!base) throw std::runtime_error("upstream " + settings.name + ": malformed url '" + settings.url + "'");
  if (base->target != "/") {
    throw std::runtime_error("upstream " + settings.name + ": url must not have a path or query");
  }
  return std::make_unique<HttpUpstream>(std::move(executor), std::move(settings), std::move(*base));
}

asio::awaitable<std::string> read_body(UpstreamResponse& response, std::size_t limit) {
  auto length = response.content_length();
  if (length && *length > limit) {
    throw UpstreamError(UpstreamError::Kind::too_large,
                        "upstream body of " + std::to_string(*length) + " bytes exceeds the limit");
  }
  std::string body;
  std::array<char, 16 * 1024> chunk;
  for (;;) {
    std::size_t n = co_await response.read_some(asio::buffer(chunk));
    if (n == 0) co_return body;
    if (body.size() + n > limit) {
      throw UpstreamError(UpstreamError::Kind::too_large, "upstream body exceeds the limit of " +
                                                             std::to_string(limit) + " bytes");
    }
    body.append(chunk.data(), n);
  }
}

}  // namespace pullgate::registry
