// The upstream client against an in-process scripted HTTP server on loopback.
#include <gtest/gtest.h>

// Replies name only the fields they script; the rest keep their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include "registry/upstream.hpp"
#include "registry/upstream_token.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::registry {
namespace {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

struct Reply {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool chunked = false;
  std::optional<std::size_t> truncate_after;  // send this much body, then close
  bool close = false;                         // close after the response without saying so
  std::chrono::milliseconds delay{0};
};

struct Seen {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string header(const std::string& name) const {
    auto found = headers.find(name);
    return found == headers.end() ? "" : found->second;
  }
  bool has(const std::string& name) const { return headers.count(name) != 0; }
};

// A scripted HTTP/1.1 server on 127.0.0.1, one thread, one coroutine per connection.
class FakeServer {
 public:
  using Handler = std::function<Reply(const Seen&)>;

  explicit FakeServer(Handler handler)
      : handler_(std::move(handler)), acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(ioc_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FakeServer() {
    ioc_.stop();
    thread_.join();
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  int connections() const { return connections_; }
  // Connections this server has shut down itself (Reply::close, truncation).
  int closed() const { return closed_; }
  std::vector<Seen> requests() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  int count(const std::string& target_prefix) {
    std::lock_guard lock(mutex_);
    return static_cast<int>(std::count_if(seen_.begin(), seen_.end(), [&](const Seen& s) {
      return s.target.starts_with(target_prefix);
    }));
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      ++connections_;
      asio::co_spawn(ioc_, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> request;
      auto [ec, n] = co_await http::async_read(socket, buffer, request, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      Seen seen{std::string(request.method_string()), std::string(request.target()), {}};
      for (const auto& field : request) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        seen.headers[name] = std::string(field.value());
      }
      {
        std::lock_guard lock(mutex_);
        seen_.push_back(seen);
      }
      Reply reply = handler_(seen);
      if (reply.delay.count() > 0) {
        asio::steady_timer timer(ioc_, reply.delay);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      std::string text = "HTTP/1.1 " + std::to_string(reply.status) + " Scripted\r\n";
      bool has_length = false;
      for (const auto& [name, value] : reply.headers) {
        text += name + ": " + value + "\r\n";
        has_length = has_length || name == "Content-Length";
      }
      bool head = seen.method == "HEAD";
      std::string body = head ? "" : reply.body;
      if (reply.chunked) {
        text += "Transfer-Encoding: chunked\r\n\r\n";
        for (std::size_t at = 0; at < body.size(); at += 7000) {
          auto piece = body.substr(at, 7000);
          char size[32];
          std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
          text += size + piece + "\r\n";
        }
        text += "0\r\n\r\n";
      } else {
        if (!has_length) text += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
        text += "\r\n";
        text += reply.truncate_after ? body.substr(0, *reply.truncate_after) : body;
      }
      auto [write_error, written] =
          co_await asio::async_write(socket, asio::buffer(text), asio::as_tuple(asio::use_awaitable));
      if (write_error || reply.close || reply.truncate_after) {
        boost::system::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        ++closed_;
        co_return;
      }
    }
  }

  Handler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<int> connections_{0};
  std::atomic<int> closed_{0};
  std::mutex mutex_;
  std::vector<Seen> seen_;
};

struct Fetched {
  unsigned status = 0;
  std::string body;
};

asio::awaitable<Fetched> fetch(Upstream& upstream, UpstreamRequest request) {
  auto response = co_await upstream.send(std::move(request));
  Fetched result{response->status(), {}};
  result.body = co_await read_body(*response, 1 << 22);
  co_return result;
}

UpstreamRequest get(std::string target, std::string scope = {}) {
  UpstreamRequest request;
  request.target = std::move(target);
  request.scope = std::move(scope);
  return request;
}

class UpstreamTest : public ::testing::Test {
 protected:
  template <class T>
  T run(asio::awaitable<T> work) {
    return asio::co_spawn(asio::make_strand(threads_), std::move(work), asio::use_future).get();
  }

  std::unique_ptr<Upstream> make(const std::string& url, std::function<void(UpstreamSettings&)> adjust = {}) {
    UpstreamSettings settings;
    settings.name = "test";
    settings.url = url;
    settings.connect_timeout = 2s;
    settings.response_timeout = 2s;
    settings.read_timeout = 2s;
    if (adjust) adjust(settings);
    return make_http_upstream(threads_.get_executor(), settings);
  }

  UpstreamError::Kind error_kind(std::function<void()> action) {
    try {
      action();
    } catch (const UpstreamError& e) {
      return e.kind();
    }
    ADD_FAILURE() << "no UpstreamError thrown";
    return UpstreamError::Kind::protocol;
  }

  asio::thread_pool threads_{2};
};

TEST_F(UpstreamTest, KeepAliveReusesOneConnection) {
  FakeServer server([](const Seen&) { return Reply{.body = "hello"}; });
  auto upstream = make(server.url());
  for (int i = 0; i < 3; ++i) {
    auto result = run(fetch(*upstream, get("/v2/")));
    EXPECT_EQ(result.status, 200u);
    EXPECT_EQ(result.body, "hello");
  }
  EXPECT_EQ(server.connections(), 1);
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].header("user-agent"), "pullgate/" PULLGATE_VERSION);
  EXPECT_EQ(seen[0].header("host"), "127.0.0.1:" + std::to_string(server.port()));
}

TEST_F(UpstreamTest, UnreadBodyClosesTheConnection) {
  FakeServer server([](const Seen&) { return Reply{.body = std::string(50000, 'x')}; });
  auto upstream = make(server.url());
  run([&]() -> asio::awaitable<void> {
    UpstreamRequest request = get("/v2/");  // named: GCC 12 mishandles temporaries in co_await
    auto response = co_await upstream->send(request);
    EXPECT_EQ(response->status(), 200u);
  }());
  auto result = run(fetch(*upstream, get("/v2/")));
  EXPECT_EQ(result.body.size(), 50000u);
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(UpstreamTest, HeadReportsLengthWithoutBodyAndKeepsTheConnection) {
  FakeServer server([](const Seen&) {
    return Reply{.headers = {{"Content-Length", "12345"}, {"Docker-Content-Digest", "sha256:ab"}}};
  });
  auto upstream = make(server.url());
  run([&]() -> asio::awaitable<void> {
    UpstreamRequest request = get("/v2/x/manifests/latest");
    request.method = http::verb::head;
    auto response = co_await upstream->send(request);
    EXPECT_EQ(response->status(), 200u);
    EXPECT_EQ(response->content_length(), std::optional<std::uint64_t>(12345));
    EXPECT_EQ(response->headers()["Docker-Content-Digest"], "sha256:ab");
    char buffer[16];
    EXPECT_EQ(co_await response->read_some(asio::buffer(buffer)), 0u);
  }());
  run([&]() -> asio::awaitable<void> {
    UpstreamRequest request = get("/v2/x/manifests/latest");
    request.method = http::verb::head;
    auto response = co_await upstream->send(request);
    EXPECT_EQ(response->status(), 200u);
  }());
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(UpstreamTest, StalePooledConnectionIsRetriedOnAFreshOne) {
  std::atomic<int> calls{0};
  FakeServer server([&](const Seen&) {
    // The first response claims keep-alive, then the server drops the connection.
    return Reply{.body = "ok", .close = calls++ == 0};
  });
  auto upstream = make(server.url());
  EXPECT_EQ(run(fetch(*upstream, get("/v2/"))).body, "ok");
  // The server has shut the pooled connection down (its FIN is on loopback by then;
  // were it not, the request would fail on the pooled socket and retry just the same).
  for (int i = 0; i < 1000 && server.closed() == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(server.closed(), 1);
  EXPECT_EQ(run(fetch(*upstream, get("/v2/"))).body, "ok");
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.count("/v2/"), 2);
}

TEST_F(UpstreamTest, ChunkedBodyStreamsInPieces) {
  std::string payload;
  for (int i = 0; i < 300000; ++i) payload.push_back(static_cast<char>('a' + i % 26));
  FakeServer server([&](const Seen&) { return Reply{.body = payload, .chunked = true}; });
  auto upstream = make(server.url());
  run([&]() -> asio::awaitable<void> {
    UpstreamRequest request = get("/v2/x/blobs/sha256:1");  // named: GCC 12 mishandles temporaries in co_await
    auto response = co_await upstream->send(request);
    EXPECT_FALSE(response->content_length().has_value());
    std::string received;
    char buffer[4096];
    int pieces = 0;
    while (std::size_t n = co_await response->read_some(asio::buffer(buffer))) {
      received.append(buffer, n);
      ++pieces;
    }
    EXPECT_EQ(received, payload);
    EXPECT_GT(pieces, 70);
  }());
}

Reply bearer_protected(const Seen& seen, const std::string& realm, std::atomic<int>& token_fetches,
                       std::vector<Seen>& token_requests, std::mutex& mutex) {
  if (seen.target.starts_with("/token")) {
    ++token_fetches;
    std::lock_guard lock(mutex);
    token_requests.push_back(seen);
    return Reply{.headers = {{"Content-Type", "application/json"}},
                 .body = R"({"token":"tok-1","expires_in":300})",
                 .delay = 200ms};
  }
  if (seen.header("authorization") == "Bearer tok-1") return Reply{.body = "manifest"};
  return Reply{.status = 401,
               .headers = {{"WWW-Authenticate", "Bearer realm=\"" + realm +
                                                    "\",service=\"test-registry\",scope=\"repository:library/nginx:pull\""}},
               .body = R"({"errors":[{"code":"UNAUTHORIZED"}]})"};
}

TEST_F(UpstreamTest, BearerTokenIsFetchedOnceAndCached) {
  std::atomic<int> token_fetches{0};
  std::vector<Seen> token_requests;
  std::mutex mutex;
  std::string realm;
  FakeServer server([&](const Seen& seen) { return bearer_protected(seen, realm, token_fetches, token_requests, mutex); });
  realm = server.url() + "/token";
  auto upstream = make(server.url(), [](UpstreamSettings& s) {
    s.username = "user";
    s.password = "pass";
  });
  for (int i = 0; i < 2; ++i) {
    auto result = run(fetch(*upstream, get("/v2/library/nginx/manifests/latest", "repository:library/nginx:pull")));
    EXPECT_EQ(result.status, 200u);
    EXPECT_EQ(result.body, "manifest");
  }
  EXPECT_EQ(token_fetches, 1);
  EXPECT_EQ(server.count("/v2/"), 3);  // 401, then 200 with the token, then 200 from the cache
  ASSERT_EQ(token_requests.size(), 1u);
  EXPECT_EQ(token_requests[0].target, "/token?service=test-registry&scope=repository%3Alibrary%2Fnginx%3Apull");
  // The realm is the upstream host itself, so it sees the credentials.
  EXPECT_EQ(token_requests[0].header("authorization"), "Basic dXNlcjpwYXNz");
}

TEST_F(UpstreamTest, ConcurrentRequestsShareOneTokenFetch) {
  std::atomic<int> token_fetches{0};
  std::vector<Seen> token_requests;
  std::mutex mutex;
  std::string realm;
  FakeServer server([&](const Seen& seen) { return bearer_protected(seen, realm, token_fetches, token_requests, mutex); });
  realm = server.url() + "/token";
  auto upstream = make(server.url());
  std::vector<std::future<Fetched>> results;
  for (int i = 0; i < 10; ++i) {
    results.push_back(asio::co_spawn(asio::make_strand(threads_),
                                     fetch(*upstream, get("/v2/library/nginx/manifests/latest",
                                                          "repository:library/nginx:pull")),
                                     asio::use_future));
  }
  for (auto& result : results) EXPECT_EQ(result.get().status, 200u);
  EXPECT_EQ(token_fetches, 1);
  ASSERT_EQ(token_requests.size(), 1u);
  EXPECT_FALSE(token_requests[0].has("authorization"));  // anonymous: no credentials configured
}

TEST_F(UpstreamTest, CredentialsAreNotSentToAForeignRealm) {
  std::atomic<int> token_fetches{0};
  std::vector<Seen> token_requests;
  std::mutex mutex;
  std::string realm;
  FakeServer server([&](const Seen& seen) { return bearer_protected(seen, realm, token_fetches, token_requests, mutex); });
  // Same server, but named "localhost": not the IP literal the upstream is configured with.
  realm = "http://localhost:" + std::to_string(server.port()) + "/token";
  auto upstream = make(server.url(), [](UpstreamSettings& s) {
    s.username = "user";
    s.password = "secret";
  });
  auto result = run(fetch(*upstream, get("/v2/library/nginx/manifests/latest", "repository:library/nginx:pull")));
  EXPECT_EQ(result.status, 200u);
  ASSERT_EQ(token_requests.size(), 1u);
  EXPECT_FALSE(token_requests[0].has("authorization"));
}

TEST_F(UpstreamTest, EmptyScopeUsesTheChallengeScope) {
  std::atomic<int> token_fetches{0};
  std::vector<Seen> token_requests;
  std::mutex mutex;
  std::string realm;
  FakeServer server([&](const Seen& seen) { return bearer_protected(seen, realm, token_fetches, token_requests, mutex); });
  realm = server.url() + "/token";
  auto upstream = make(server.url());
  EXPECT_EQ(run(fetch(*upstream, get("/v2/library/nginx/tags/list"))).status, 200u);
  ASSERT_EQ(token_requests.size(), 1u);
  EXPECT_NE(token_requests[0].target.find("scope=repository%3Alibrary%2Fnginx%3Apull"), std::string::npos);
}

TEST_F(UpstreamTest, FailingTokenEndpointOrBadRealmThrowsAuth) {
  std::string realm;
  FakeServer server([&](const Seen& seen) {
    if (seen.target.starts_with("/token")) return Reply{.status = 403, .body = "no"};
    return Reply{.status = 401, .headers = {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\""}}};
  });
  auto upstream = make(server.url());
  realm = server.url() + "/token";
  EXPECT_EQ(error_kind([&] { run(fetch(*upstream, get("/v2/a/manifests/1", "repository:a:pull"))); }),
            UpstreamError::Kind::auth);
  realm = "/relative";
  EXPECT_EQ(error_kind([&] { run(fetch(*upstream, get("/v2/a/manifests/1", "repository:a:pull"))); }),
            UpstreamError::Kind::auth);
}

Reply basic_protected(const Seen& seen) {
  if (seen.header("authorization") == "Basic dXNlcjpwYXNz") return Reply{.body = "welcome"};
  return Reply{.status = 401, .headers = {{"WWW-Authenticate", "Basic realm=\"registry\""}}, .body = "who?"};
}

TEST_F(UpstreamTest, BasicChallengeIsAnsweredWithCredentials) {
  FakeServer server(basic_protected);
  auto upstream = make(server.url(), [](UpstreamSettings& s) {
    s.username = "user";
    s.password = "pass";
  });
  auto result = run(fetch(*upstream, get("/v2/")));
  EXPECT_EQ(result.status, 200u);
  EXPECT_EQ(result.body, "welcome");
  EXPECT_EQ(server.connections(), 1);  // the 401 body was drained, the connection reused
}

TEST_F(UpstreamTest, BasicChallengeWithoutCredentialsReturnsThe401) {
  FakeServer server(basic_protected);
  auto upstream = make(server.url());
  auto result = run(fetch(*upstream, get("/v2/")));
  EXPECT_EQ(result.status, 401u);
  EXPECT_EQ(result.body, "who?");
}

TEST_F(UpstreamTest, RedirectToAnotherHostKeepsRangeAndDropsAuthorization) {
  FakeServer cdn([](const Seen&) { return Reply{.status = 206, .body = "blob"}; });
  std::string location = cdn.url() + "/signed/blob?sig=abc";
  FakeServer registry([&](const Seen& seen) {
    if (seen.header("authorization") != "Basic dXNlcjpwYXNz") return basic_protected(seen);
    return Reply{.status = 307, .headers = {{"Location", location}}};
  });
  auto upstream = make(registry.url(), [](UpstreamSettings& s) {
    s.username = "user";
    s.password = "pass";
  });
  UpstreamRequest request = get("/v2/a/blobs/sha256:1");
  request.headers = {{"Range", "bytes=0-3"}, {"Accept", "application/octet-stream"}};
  auto result = run(fetch(*upstream, request));
  EXPECT_EQ(result.status, 206u);
  EXPECT_EQ(result.body, "blob");
  auto seen = cdn.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/signed/blob?sig=abc");
  EXPECT_EQ(seen[0].header("range"), "bytes=0-3");
  EXPECT_EQ(seen[0].header("accept"), "application/octet-stream");
  EXPECT_FALSE(seen[0].has("authorization"));
  EXPECT_EQ(seen[0].header("host"), "127.0.0.1:" + std::to_string(cdn.port()));
}

TEST_F(UpstreamTest, AParentMirrorIsToldTheOriginalUpstreamOnEveryRequest) {
  // The ns form: ?ns= on every request, the scope as the edge names it.
  std::atomic<int> token_fetches{0};
  std::vector<Seen> token_requests;
  std::mutex mutex;
  std::string realm;
  FakeServer parent([&](const Seen& seen) { return bearer_protected(seen, realm, token_fetches, token_requests, mutex); });
  realm = parent.url() + "/token";
  auto by_ns = make(parent.url(), [](UpstreamSettings& s) { s.parent = ParentNaming{"ghcr.io", ParentNaming::Form::ns}; });
  EXPECT_EQ(run(fetch(*by_ns, get("/v2/team/app/manifests/v1", "repository:team/app:pull"))).status, 200u);
  auto seen = parent.requests();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().target, "/v2/team/app/manifests/v1?ns=ghcr.io");
  ASSERT_EQ(token_requests.size(), 1u);
  EXPECT_NE(token_requests[0].target.find("scope=repository%3Ateam%2Fapp%3Apull"), std::string::npos);
  // The path form: the repository led by the upstream, in the target and the scope;
  // a redirect's Location is followed as given.
  FakeServer storage([](const Seen&) { return Reply{.body = "blob"}; });
  const std::string location = storage.url() + "/signed/blob?sig=abc";
  FakeServer path_parent([&](const Seen& seen) {
    if (seen.target.starts_with("/token")) return bearer_protected(seen, realm, token_fetches, token_requests, mutex);
    if (seen.header("authorization") != "Bearer tok-1") {
      return Reply{.status = 401,
                   .headers = {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\",service=\"parent\""}},
                   .body = "{}"};
    }
    return Reply{.status = 307, .headers = {{"Location", location}}};
  });
  realm = path_parent.url() + "/token";
  auto by_path =
      make(path_parent.url(), [](UpstreamSettings& s) { s.parent = ParentNaming{"ghcr.io", ParentNaming::Form::path}; });
  auto result = run(fetch(*by_path, get("/v2/team/app/blobs/sha256:1", "repository:team/app:pull")));
  EXPECT_EQ(result.status, 200u);
  EXPECT_EQ(result.body, "blob");
  EXPECT_EQ(path_parent.requests().back().target, "/v2/ghcr.io/team/app/blobs/sha256:1");
  ASSERT_EQ(token_requests.size(), 2u);
  EXPECT_NE(token_requests[1].target.find("scope=repository%3Aghcr.io%2Fteam%2Fapp%3Apull"), std::string::npos)
      << token_requests[1].target;
  ASSERT_EQ(storage.requests().size(), 1u);
  EXPECT_EQ(storage.requests()[0].target, "/signed/blob?sig=abc");
}

TEST_F(UpstreamTest, RelativeSeeOtherRedirectBecomesGet) {
  FakeServer server([](const Seen& seen) {
    if (seen.target == "/v2/a") return Reply{.status = 303, .headers = {{"Location", "b?x=1"}}, .body = "moved"};
    return Reply{.body = seen.method};
  });
  auto upstream = make(server.url());
  UpstreamRequest request = get("/v2/a");
  request.method = http::verb::post;
  auto result = run(fetch(*upstream, request));
  EXPECT_EQ(result.body, "GET");
  EXPECT_EQ(server.requests().back().target, "/v2/b?x=1");
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(UpstreamTest, MoreThanFiveRedirectsThrow) {
  FakeServer server([](const Seen&) { return Reply{.status = 302, .headers = {{"Location", "/v2/loop"}}}; });
  auto upstream = make(server.url());
  EXPECT_EQ(error_kind([&] { run(fetch(*upstream, get("/v2/loop"))); }), UpstreamError::Kind::redirect);
  EXPECT_EQ(server.count("/v2/loop"), 6);
}

TEST_F(UpstreamTest, TruncatedBodyThrows) {
  FakeServer server([](const Seen&) { return Reply{.body = std::string(1000, 'z'), .truncate_after = 10}; });
  auto upstream = make(server.url());
  EXPECT_EQ(error_kind([&] { run(fetch(*upstream, get("/v2/x/blobs/sha256:1"))); }), UpstreamError::Kind::protocol);
}

TEST_F(UpstreamTest, SlowResponseTimesOut) {
  FakeServer server([](const Seen&) { return Reply{.body = "late", .delay = 3s}; });
  auto upstream = make(server.url(), [](UpstreamSettings& s) { s.response_timeout = 200ms; });
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(error_kind([&] { run(fetch(*upstream, get("/v2/"))); }), UpstreamError::Kind::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST_F(UpstreamTest, RefusedConnectionThrowsConnect) {
  unsigned short port;
  {
    asio::io_context ioc;
    tcp::acceptor probe(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  auto upstream = make("http://127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(error_kind([&] { run(fetch(*upstream, get("/v2/"))); }), UpstreamError::Kind::connect);
}

TEST_F(UpstreamTest, TooManyRequestsIsReturnedAsAResponse) {
  FakeServer server([](const Seen&) {
    return Reply{.status = 429, .headers = {{"Retry-After", "7"}}, .body = R"({"errors":[{"code":"TOOMANYREQUESTS"}]})"};
  });
  auto upstream = make(server.url());
  run([&]() -> asio::awaitable<void> {
    UpstreamRequest request = get("/v2/library/nginx/manifests/latest");  // named: GCC 12 mishandles temporaries in co_await
    auto response = co_await upstream->send(request);
    EXPECT_EQ(response->status(), 429u);
    EXPECT_EQ(response->headers()["Retry-After"], "7");
  }());
}

TEST_F(UpstreamTest, ReadBodyEnforcesItsLimit) {
  FakeServer server([](const Seen&) { return Reply{.body = std::string(100, 'q'), .chunked = true}; });
  auto upstream = make(server.url());
  auto kind = error_kind([&] {
    run([&]() -> asio::awaitable<void> {
      UpstreamRequest request = get("/v2/");  // named: GCC 12 mishandles temporaries in co_await
      auto response = co_await upstream->send(request);
      co_await read_body(*response, 10);
    }());
  });
  EXPECT_EQ(kind, UpstreamError::Kind::too_large);
}

TEST_F(UpstreamTest, BadSettingsAreRejected) {
  EXPECT_THROW(make("ftp://example.com"), std::runtime_error);
  EXPECT_THROW(make("http://"), std::runtime_error);
  EXPECT_THROW(make("http://user@example.com"), std::runtime_error);
  EXPECT_THROW(make("http://example.com/prefix"), std::runtime_error);
  EXPECT_THROW(make("http://example.com:99999"), std::runtime_error);
  EXPECT_THROW(make("https://example.com", [](UpstreamSettings& s) { s.ca_file = "/nonexistent/ca.pem"; }),
               std::runtime_error);
  EXPECT_NO_THROW(make("https://registry-1.docker.io/"));
}

TEST_F(UpstreamTest, InvalidTargetIsRefusedBeforeSending) {
  auto upstream = make("http://127.0.0.1:9");
  EXPECT_EQ(error_kind([&] { run(fetch(*upstream, get("/v2/a b"))); }), UpstreamError::Kind::protocol);
  EXPECT_EQ(error_kind([&] { run(fetch(*upstream, get("v2/"))); }), UpstreamError::Kind::protocol);
}

TEST(UpstreamUrl, ParsesOrigins) {
  auto url = parse_url("HTTPS://Registry-1.Docker.io");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->origin.scheme, "https");
  EXPECT_EQ(url->origin.host, "registry-1.docker.io");
  EXPECT_EQ(url->origin.port, 443);
  EXPECT_EQ(url->target, "/");
  EXPECT_EQ(url->origin.host_header(), "registry-1.docker.io");
  EXPECT_EQ(url->origin.key(), "https://registry-1.docker.io:443");
  auto v6 = parse_url("http://[::1]:5000/token?x=1#frag");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->origin.host, "::1");
  EXPECT_EQ(v6->origin.host_header(), "[::1]:5000");
  EXPECT_EQ(v6->origin.key(), "http://[::1]:5000");
  EXPECT_EQ(v6->target, "/token?x=1");
  EXPECT_FALSE(parse_url("http://[zz]/"));
  EXPECT_FALSE(parse_url("http://a b/"));
  EXPECT_FALSE(parse_url("http://host:0/"));
  EXPECT_FALSE(parse_url("/relative"));
  EXPECT_FALSE(parse_url("http://user:secret@host/"));
  EXPECT_FALSE(parse_url("http://host:65536/"));
  EXPECT_FALSE(parse_url("http://host/a|b"));  // not a URI (Boost.URL's RFC 3986 grammar)
  EXPECT_FALSE(parse_url("http://[::1]:8080+v2/"));  // a path that is not origin-form (tests/fuzz/regressions)
  EXPECT_FALSE(parse_url("https://auth.example.com../token"));  // an empty label (tests/fuzz/regressions)
  EXPECT_FALSE(parse_url("https://auth..example.com/token"));
  EXPECT_EQ(parse_url("https://auth.example.com./token")->origin.host, "auth.example.com");
  // A percent-encoded host name is read as what it names.
  EXPECT_EQ(parse_url("http://ex%61mple.com/")->origin.host, "example.com");
}

TEST(UpstreamUrl, ResolvesLocations) {
  Url base = *parse_url("https://registry.example.com/v2/a/blobs/sha256:1?x=y");
  EXPECT_EQ(resolve_location(base, "/other")->target, "/other");
  EXPECT_EQ(resolve_location(base, "next")->target, "/v2/a/blobs/next");
  EXPECT_EQ(resolve_location(base, "?q=1")->target, "/v2/a/blobs/sha256:1?q=1");
  auto cdn = resolve_location(base, "//cdn.example.net/x");
  ASSERT_TRUE(cdn);
  EXPECT_EQ(cdn->origin.host, "cdn.example.net");
  EXPECT_EQ(cdn->origin.scheme, "https");
  auto plain = resolve_location(base, "http://s3.example.org:8080/b?sig=1");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->origin.port, 8080);
  EXPECT_EQ(plain->target, "/b?sig=1");
  EXPECT_FALSE(resolve_location(base, ""));
  EXPECT_FALSE(resolve_location(base, "ftp://x/y"));
  EXPECT_FALSE(resolve_location(base, "/a\r\nInjected: 1"));
  // RFC 3986 section 5: dot segments of a relative Location are resolved, not sent.
  EXPECT_EQ(resolve_location(base, "../../other")->target, "/v2/other");
  EXPECT_EQ(resolve_location(base, "/a/./b/../c?d")->target, "/a/c?d");
  EXPECT_FALSE(resolve_location(base, "#fragment-only"));
  EXPECT_FALSE(resolve_location(base, "/a|b"));
  EXPECT_EQ(percent_encode("a b/c~-._:\xc3\xa9"), "a%20b%2Fc~-._%3A%C3%A9");
}

TEST(UpstreamUrl, CredentialsStayOnTheUpstreamDomain) {
  auto origin = [](const char* text) { return parse_url(text)->origin; };
  EXPECT_TRUE(may_send_credentials(origin("https://registry-1.docker.io"), origin("https://auth.docker.io/token")));
  EXPECT_TRUE(may_send_credentials(origin("https://ghcr.io"), origin("https://ghcr.io/token")));
  EXPECT_FALSE(may_send_credentials(origin("https://registry-1.docker.io"), origin("https://evil.io/token")));
  EXPECT_FALSE(may_send_credentials(origin("https://registry-1.docker.io"), origin("https://docker.io.evil.io/t")));
  EXPECT_FALSE(may_send_credentials(origin("https://registry-1.docker.io"), origin("http://auth.docker.io/token")));
  EXPECT_FALSE(may_send_credentials(origin("http://10.0.0.1:5000"), origin("http://10.0.0.2/token")));
  EXPECT_TRUE(may_send_credentials(origin("http://10.0.0.1:5000"), origin("http://10.0.0.1:5001/token")));
  EXPECT_FALSE(may_send_credentials(origin("http://localhost"), origin("http://otherhost/token")));
}

// The registrable domain comes from the Public Suffix List, not the last two labels.
// Cases hold for any list since 2023: they use entries the list has long had.
TEST(UpstreamUrl, CredentialsFollowThePublicSuffixList) {
  auto origin = [](const char* text) { return parse_url(text)->origin; };
  // ECR answers with Basic auth on its own host; a realm elsewhere under
  // amazonaws.com is someone else's (an EC2 instance, an S3 bucket, another region).
  auto ecr = origin("https://123456789012.dkr.ecr.us-east-1.amazonaws.com");
  EXPECT_TRUE(may_send_credentials(ecr, origin("https://123456789012.dkr.ecr.us-east-1.amazonaws.com/")));
  EXPECT_FALSE(may_send_credentials(ecr, origin("https://ec2-203-0-113-25.compute-1.amazonaws.com/token")));
  EXPECT_FALSE(may_send_credentials(ecr, origin("https://attacker.s3.amazonaws.com/token")));
  EXPECT_FALSE(may_send_credentials(ecr, origin("https://attacker.us-east-1.amazonaws.com/token")));
  EXPECT_FALSE(may_send_credentials(ecr, origin("https://evil.amazonaws.com/token")));
  EXPECT_FALSE(may_send_credentials(ecr, origin("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/")));
  EXPECT_FALSE(may_send_credentials(origin("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
                                    origin("https://ec2-203-0-113-25.eu-west-1.compute.amazonaws.com/t")));

  EXPECT_TRUE(may_send_credentials(origin("https://registry.example.co.uk"), origin("https://auth.example.co.uk/t")));
  EXPECT_TRUE(may_send_credentials(origin("https://example.co.uk"), origin("https://auth.example.co.uk/t")));
  EXPECT_FALSE(may_send_credentials(origin("https://example.co.uk"), origin("https://evil.co.uk/t")));
  EXPECT_FALSE(may_send_credentials(origin("https://registry.example.co.uk"), origin("https://example.org.uk/t")));

  // A host that is itself a public suffix has no registrable domain: its own name only.
  EXPECT_TRUE(may_send_credentials(origin("https://co.uk"), origin("https://co.uk:8443/t")));
  EXPECT_FALSE(may_send_credentials(origin("https://co.uk"), origin("https://evil.co.uk/t")));
  EXPECT_FALSE(may_send_credentials(origin("https://s3.amazonaws.com"), origin("https://bucket.s3.amazonaws.com/t")));
  EXPECT_FALSE(may_send_credentials(origin("https://ec2-198-51-100-1.compute-1.amazonaws.com"),
                                    origin("https://ec2-198-51-100-2.compute-1.amazonaws.com/t")));

  // Docker Hub's realm, and names under a private top-level domain, still qualify.
  EXPECT_TRUE(may_send_credentials(origin("https://registry-1.docker.io"), origin("https://auth.docker.io/token")));
  EXPECT_TRUE(may_send_credentials(origin("https://registry.corp.internal"), origin("https://auth.corp.internal/t")));
  EXPECT_FALSE(may_send_credentials(origin("https://registry.corp.internal"), origin("https://auth.evil.internal/t")));
  EXPECT_TRUE(may_send_credentials(origin("http://[::1]:5000"), origin("http://[::1]:5001/token")));
  EXPECT_FALSE(may_send_credentials(origin("http://[::1]:5000"), origin("http://[::2]/token")));
}

TEST(UpstreamToken, ParsesTokenResponses) {
  auto token = parse_token_response(R"({"token":"abc","expires_in":300})");
  ASSERT_TRUE(token);
  EXPECT_EQ(token->token, "abc");
  EXPECT_EQ(token->lifetime, std::chrono::seconds(300));
  auto access = parse_token_response(R"({"access_token":"xyz"})");
  ASSERT_TRUE(access);
  EXPECT_EQ(access->token, "xyz");
  EXPECT_EQ(access->lifetime, std::chrono::seconds(60));
  EXPECT_EQ(parse_token_response(R"({"token":"a","expires_in":1e12})")->lifetime, std::chrono::seconds(86400));
  EXPECT_EQ(parse_token_response(R"({"token":"a","expires_in":"soon"})")->lifetime, std::chrono::seconds(60));
  EXPECT_FALSE(parse_token_response("not json"));
  EXPECT_FALSE(parse_token_response(R"(["token"])"));
  EXPECT_FALSE(parse_token_response(R"({"token":""})"));
  EXPECT_FALSE(parse_token_response(R"({"token":"a\r\nX: y"})"));
  EXPECT_FALSE(parse_token_response(R"({"token":42})"));
}

}  // namespace
}  // namespace pullgate::registry
