#include "cache/etcd.hpp"

#include <algorithm>
#include <array>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include "registry/base64.hpp"
#include "registry/upstream_connection.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::cache::etcd {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using registry::Connection;
using registry::ResponseParser;
using error_code = boost::system::error_code;

// A unary answer (a range page included) is read whole; etcd's own request limit is
// 1.5 MiB, a page of kPageSize small records stays far below this.
constexpr std::size_t kBodyLimit = 64 * 1024 * 1024;
// One watch response is one line; etcd splits a large revision over responses.
constexpr std::size_t kLineLimit = 64 * 1024 * 1024;
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
constexpr std::int64_t kPageSize = 1000;
constexpr std::size_t kIdlePerEndpoint = 4;
// After every endpoint failed once, the wait before the next round: an election
// takes about a second, so several rounds fit in a request's deadline.
constexpr std::chrono::milliseconds kRoundPause{100};
constexpr std::string_view kUserAgent = "pullgate/" PULLGATE_VERSION;

// ---- the gateway's JSON ----

std::int64_t int_field(const json& object, const char* name) {
  auto found = object.find(name);
  if (found == object.end() || found->is_null()) return 0;
  try {
    if (found->is_string()) return std::stoll(found->get<std::string>());
    if (found->is_number_integer()) return found->get<std::int64_t>();
  } catch (const std::exception&) {
  }
  throw Error(Error::Kind::protocol, std::string("etcd field ") + name + " is not an integer");
}

// json::value() would throw its own type_error on a field of another type; these say
// which field of etcd's answer was wrong.
std::string string_field(const json& object, const char* name) {
  auto found = object.find(name);
  if (found == object.end() || found->is_null()) return {};
  if (!found->is_string()) throw Error(Error::Kind::protocol, std::string("etcd field ") + name + " is not a string");
  return found->get<std::string>();
}

bool bool_field(const json& object, const char* name) {
  auto found = object.find(name);
  if (found == object.end() || found->is_null()) return false;
  if (!found->is_boolean()) throw Error(Error::Kind::protocol, std::string("etcd field ") + name + " is not a boolean");
  return found->get<bool>();
}

std::string bytes_field(const json& object, const char* name) {
  auto found = object.find(name);
  if (found == object.end() || found->is_null()) return {};
  std::string bytes;
  if (!found->is_string() || !registry::base64_decode(found->get<std::string>(), bytes)) {
    throw Error(Error::Kind::protocol, std::string("etcd field ") + name + " is not base64");
  }
  return bytes;
}

const json& object_field(const json& object, const char* name) {
  static const json empty = json::object();
  auto found = object.find(name);
  if (found == object.end() || found->is_null()) return empty;
  if (!found->is_object()) throw Error(Error::Kind::protocol, std::string("etcd field ") + name + " is not an object");
  return *found;
}

const json& array_field(const json& object, const char* name) {
  static const json empty = json::array();
  auto found = object.find(name);
  if (found == object.end() || found->is_null()) return empty;
  if (!found->is_array()) throw Error(Error::Kind::protocol, std::string("etcd field ") + name + " is not an array");
  return *found;
}

std::int64_t header_revision(const json& answer) { return int_field(object_field(answer, "header"), "revision"); }

KeyValue parse_key_value(const json& kv) {
  if (!kv.is_object()) throw Error(Error::Kind::protocol, "etcd key-value is not an object");
  return KeyValue{bytes_field(kv, "key"), bytes_field(kv, "value"), int_field(kv, "create_revision"),
                  int_field(kv, "mod_revision"), int_field(kv, "lease")};
}

json parse_json(std::string_view text) {
  auto parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    throw Error(Error::Kind::protocol, "etcd answered something that is not a JSON object");
  }
  return parsed;
}

// What to do with an error etcd answered.
enum class Outcome { next_endpoint, reauthenticate, auth, failed };

struct GatewayError {
  std::string message;
  std::int64_t code = 0;  // the gRPC status code
};

// A unary error is {"error","message","code"}; an error inside a stream is
// {"error":{"grpc_code","message",...}}. nullopt: not an error.
std::optional<GatewayError> gateway_error(const json& answer) {
  auto found = answer.find("error");
  if (found == answer.end()) return std::nullopt;
  if (found->is_object()) {
    auto message = string_field(*found, "message");
    return GatewayError{message, int_field(*found, "grpc_code")};
  }
  if (!found->is_string()) return std::nullopt;
  auto message = answer.contains("message") ? string_field(answer, "message") : found->get<std::string>();
  // A lease grant reports a refusal in its own "error" string, without a code.
  if (message.empty()) return std::nullopt;
  return GatewayError{message, int_field(answer, "code")};
}

constexpr std::int64_t kUnavailable = 14;
constexpr std::int64_t kUnauthenticated = 16;
constexpr std::int64_t kPermissionDenied = 7;

Outcome outcome_of(const GatewayError& error) {
  const auto& message = error.message;
  // Another member may have a leader (or be one); "request timed out" and
  // "leader changed" come from a member in the middle of an election.
  if (error.code == kUnavailable || message.find("no leader") != std::string::npos ||
      message.find("leader changed") != std::string::npos) {
    return Outcome::next_endpoint;
  }
  if (message.find("invalid auth token") != std::string::npos ||
      message.find("auth token expired") != std::string::npos) {
    return Outcome::reauthenticate;
  }
  if (error.code == kUnauthenticated || error.code == kPermissionDenied ||
      message.find("authentication failed") != std::string::npos ||
      message.find("user name is empty") != std::string::npos) {
    return Outcome::auth;
  }
  return Outcome::failed;
}

// What a whole unary answer (or a stream's refusal) means: its JSON when it is one,
// else what to do about it. Throws Error protocol for an answer that is neither.
struct Judged {
  std::optional<json> answer;
  Outcome outcome = Outcome::failed;
  std::string message;
};

Judged judge(unsigned status, std::string_view text, const std::string& context) {
  auto parsed = json::parse(text, nullptr, false);
  bool is_object = !parsed.is_discarded() && parsed.is_object();
  auto error = is_object ? gateway_error(parsed) : std::nullopt;
  auto outcome = error ? outcome_of(*error) : Outcome::failed;
  auto message = error ? error->message : "status " + std::to_string(status);
  // A member that fails inside (5xx) may be alone in that; auth is the same everywhere.
  if (status >= 500 && outcome != Outcome::auth && outcome != Outcome::reauthenticate) {
    return Judged{std::nullopt, Outcome::next_endpoint, message};
  }
  if (!is_object) throw Error(Error::Kind::protocol, context + " is not JSON");
  if (error) return Judged{std::nullopt, outcome, message};
  if (status != 200) throw Error(Error::Kind::protocol, context + " came with status " + std::to_string(status));
  return Judged{std::move(parsed), Outcome::failed, {}};
}

// ---- one endpoint's HTTP exchange ----

struct Endpoint {
  std::string text;  // as configured
  registry::Origin origin;
};

// Why a try at one endpoint did not give an answer; the caller moves on.
struct EndpointFailure {
  std::string what;
};

bool closed_before_answer(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::connection_reset || ec == asio::error::eof ||
         ec == asio::error::broken_pipe;
}

// A piece of a response body into `piece`; 0 at its end. Errors as EndpointFailure.
asio::awaitable<std::size_t> read_piece(Connection& connection, ResponseParser& parser, std::array<char, 16384>& piece,
                                        const std::string& from) {
  if (parser.is_done()) co_return 0;
  auto& body = parser.get().body();
  body.data = piece.data();
  body.size = piece.size();
  for (;;) {
    auto ec = co_await connection.read_some(parser);
    if (ec == http::error::need_buffer) ec = {};
    // Over TLS a body delimited by the end of the connection ends without close_notify.
    if (ec == asio::ssl::error::stream_truncated && parser.need_eof()) parser.put_eof(ec);
    if (ec == boost::beast::error::timeout) throw EndpointFailure{from + ": no answer within the deadline"};
    if (ec) throw EndpointFailure{from + ": reading the answer: " + ec.message()};
    std::size_t produced = piece.size() - body.size;
    if (produced > 0 || parser.is_done()) co_return produced;
  }
}

class GatewayClient final : public Client {
 public:
  GatewayClient(asio::any_io_executor executor, Settings settings, std::vector<Endpoint> endpoints)
      : executor_(std::move(executor)),
        settings_(std::move(settings)),
        endpoints_(std::move(endpoints)),
        tls_context_(asio::ssl::context::tls_client),
        pool_(kIdlePerEndpoint) {
    load_tls_files();
  }

  asio::awaitable<Range> range_prefix(std::string prefix) override {
    Range range;
    json request{{"key", registry::base64_encode(prefix)},
                 {"range_end", registry::base64_encode(prefix_end(prefix))},
                 {"limit", kPageSize}};
    for (;;) {
      auto answer = co_await call("/v3/kv/range", request);
      // Later pages are read at the first page's revision, so the whole range is one
      // snapshot.
      if (range.revision == 0) {
        range.revision = header_revision(answer);
        request["revision"] = std::to_string(range.revision);
      }
      for (const auto& kv : array_field(answer, "kvs")) range.kvs.push_back(parse_key_value(kv));
      if (!bool_field(answer, "more") || range.kvs.empty()) co_return range;
      request["key"] = registry::base64_encode(range.kvs.back().key + std::string(1, '\0'));
    }
  }

  asio::awaitable<std::optional<KeyValue>> get(std::string key) override {
    const json body{{"key", registry::base64_encode(key)}};
    auto answer = co_await call("/v3/kv/range", body);
    const auto& kvs = array_field(answer, "kvs");
    if (kvs.empty()) co_return std::nullopt;
    co_return parse_key_value(kvs.front());
  }

  asio::awaitable<std::int64_t> put(std::string key, std::string value, std::int64_t lease) override {
    const auto body = put_request(key, value, lease);
    auto answer = co_await call("/v3/kv/put", body);
    co_return header_revision(answer);
  }

  asio::awaitable<std::int64_t> erase(std::string key) override {
    const json body{{"key", registry::base64_encode(key)}};
    auto answer = co_await call("/v3/kv/deleterange", body);
    co_return header_revision(answer);
  }

  asio::awaitable<std::optional<std::int64_t>> commit(std::vector<Write> writes, std::vector<std::string> absent,
                                                      std::vector<Unchanged> unchanged) override {
    json compare = json::array();
    for (const auto& key : absent) {
      compare.push_back({{"key", registry::base64_encode(key)},
                         {"target", "CREATE"},
                         {"result", "EQUAL"},
                         {"create_revision", "0"}});
    }
    // A key that does not exist compares with mod_revision 0.
    for (const auto& guard : unchanged) {
      compare.push_back({{"key", registry::base64_encode(guard.key)},
                         {"target", "MOD"},
                         {"result", "EQUAL"},
                         {"mod_revision", std::to_string(guard.mod_revision)}});
    }
    json success = json::array();
    for (const auto& write : writes) {
      if (write.type == Write::Type::put) {
        success.push_back({{"request_put", put_request(write.key, write.value, write.lease)}});
      } else {
        success.push_back({{"request_delete_range", {{"key", registry::base64_encode(write.key)}}}});
      }
    }
    const json body{{"compare", compare}, {"success", success}};
    auto answer = co_await call("/v3/kv/txn", body);
    if (!bool_field(answer, "succeeded")) co_return std::nullopt;
    co_return header_revision(answer);
  }

  asio::awaitable<std::int64_t> grant(std::chrono::seconds ttl) override {
    const json body{{"TTL", std::to_string(ttl.count())}};
    auto answer = co_await call("/v3/lease/grant", body);
    auto refusal = string_field(answer, "error");
    if (!refusal.empty()) throw Error(Error::Kind::failed, "etcd refused a lease: " + refusal);
    co_return int_field(answer, "ID");
  }

  asio::awaitable<std::int64_t> keep_alive(std::int64_t lease) override {
    // A stream endpoint: one request, one {"result":...} line, then the end.
    const json body{{"ID", std::to_string(lease)}};
    auto answer = co_await call("/v3/lease/keepalive", body);
    co_return int_field(object_field(answer, "result"), "TTL");
  }

  asio::awaitable<void> revoke(std::int64_t lease) override {
    try {
      const json body{{"ID", std::to_string(lease)}};
      co_await call("/v3/lease/revoke", body);
    } catch (const Error& error) {
      // Gone already (expired, or a revoke whose answer was lost on a failover): the
      // lease and its keys are deleted, as asked.
      if (error.kind() != Error::Kind::failed ||
          std::string_view(error.what()).find("lease not found") == std::string_view::npos) {
        throw;
      }
    }
  }

  asio::awaitable<void> watch(std::string prefix, std::int64_t start_revision,
                              std::function<void(const WatchBatch&)> on_batch) override;

  std::string endpoint() const override {
    std::lock_guard lock(mutex_);
    return answered_ ? endpoints_[current_].text : std::string();
  }

 private:
  // An open stream: the connection, its parser past the header.
  struct Stream {
    std::unique_ptr<Connection> connection;
    std::unique_ptr<ResponseParser> parser;
    std::size_t endpoint = 0;
  };

  void load_tls_files() {
    error_code ec;
    if (settings_.ca_file.empty()) {
      tls_context_.set_default_verify_paths(ec);
    } else {
      tls_context_.load_verify_file(settings_.ca_file, ec);
    }
    if (ec) throw std::invalid_argument("etcd: cannot load ca_file " + settings_.ca_file + ": " + ec.message());
    if (settings_.cert_file.empty() != settings_.key_file.empty()) {
      throw std::invalid_argument("etcd: cert_file and key_file go together");
    }
    if (settings_.cert_file.empty()) return;
    tls_context_.use_certificate_chain_file(settings_.cert_file, ec);
    if (ec) throw std::invalid_argument("etcd: cannot load cert_file " + settings_.cert_file + ": " + ec.message());
    tls_context_.use_private_key_file(settings_.key_file, asio::ssl::context::pem, ec);
    if (ec) throw std::invalid_argument("etcd: cannot load key_file " + settings_.key_file + ": " + ec.message());
  }

  static json put_request(const std::string& key, const std::string& value, std::int64_t lease) {
    json request{{"key", registry::base64_encode(key)}, {"value", registry::base64_encode(value)}};
    if (lease != 0) request["lease"] = std::to_string(lease);
    return request;
  }

  std::string token() {
    std::lock_guard lock(mutex_);
    return token_;
  }

  std::size_t first_endpoint() {
    std::lock_guard lock(mutex_);
    return current_;
  }

  void answered_by(std::size_t endpoint) {
    std::lock_guard lock(mutex_);
    current_ = endpoint;
    answered_ = true;
  }

  std::chrono::milliseconds left(Clock::time_point deadline) const {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return std::max(remaining, std::chrono::milliseconds(1));
  }

  // One endpoint's share of a request's deadline (up to a third of it): a member that
  // lost its leader without knowing yet takes a write and never answers it, and the
  // others must still get their turn.
  std::chrono::milliseconds attempt_budget() const {
    auto shares = static_cast<long>(std::min<std::size_t>(endpoints_.size(), 3));
    return settings_.request_timeout / shares;
  }

  // Sends one request at one endpoint and returns its connection with the answer's
  // header read. A pooled connection the member closed while idle is replaced once.
  asio::awaitable<Stream> send(std::size_t endpoint, std::string_view path, const std::string& body,
                               const std::string& authorization, Clock::time_point deadline) {
    const auto& target = endpoints_[endpoint];
    auto key = target.origin.key();
    for (int attempt = 0;; ++attempt) {
      auto connection = attempt == 0 ? pool_.take(key) : nullptr;
      bool reused = connection != nullptr;
      if (!connection) {
        try {
          connection = co_await Connection::open(executor_, tls_context_, true, target.origin,
                                                 std::min(settings_.connect_timeout, left(deadline)));
        } catch (const registry::UpstreamError& error) {
          throw EndpointFailure{error.what()};
        }
      }
      http::request<http::string_body> request{http::verb::post, path, 11};
      request.set(http::field::host, target.origin.host_header());
      request.set(http::field::user_agent, kUserAgent);
      request.set(http::field::content_type, "application/json");
      if (!authorization.empty()) request.set(http::field::authorization, authorization);
      // gRPC metadata "hasleader": a member that knows it has no leader answers "no
      // leader" at once instead of holding the request, and ends a watch when it
      // loses its leader.
      request.set("Grpc-Metadata-Hasleader", "true");
      request.body() = body;
      request.prepare_payload();

      connection->expires_after(left(deadline));
      auto ec = co_await connection->write(request);
      if (ec && reused && closed_before_answer(ec)) continue;
      if (ec) throw EndpointFailure{key + ": sending " + std::string(path) + ": " + ec.message()};

      auto parser = std::make_unique<ResponseParser>();
      parser->body_limit(boost::none);  // unary answers are limited as they are read
      parser->header_limit(kHeaderLimit);
      ec = co_await connection->read_header(*parser);
      // The member closed the idle connection just as it was taken: nothing of this
      // request was read by it.
      if (ec && reused && closed_before_answer(ec) && !parser->got_some()) continue;
      if (ec == boost::beast::error::timeout) throw EndpointFailure{key + ": no answer within the deadline"};
      if (ec) throw EndpointFailure{key + ": reading the answer to " + std::string(path) + ": " + ec.message()};
      co_return Stream{std::move(connection), std::move(parser), endpoint};
    }
  }

  // The whole body of an answer, bounded; the connection goes back to the pool when
  // it can carry another request.
  asio::awaitable<std::string> read_answer(Stream& stream, std::string_view path) {
    const auto key = endpoints_[stream.endpoint].origin.key();
    std::string body;
    std::array<char, 16384> piece;
    for (;;) {
      auto n = co_await read_piece(*stream.connection, *stream.parser, piece, key);
      if (n == 0) break;
      if (body.size() + n > kBodyLimit) {
        throw Error(Error::Kind::protocol,
                    key + " answered " + std::string(path) + " with more than " + std::to_string(kBodyLimit) + " bytes");
      }
      body.append(piece.data(), n);
    }
    if (stream.parser->get().keep_alive() && !stream.connection->has_buffered_bytes()) {
      stream.connection->expires_never();
      pool_.put(key, std::move(stream.connection));
    }
    co_return body;
  }

  // What one endpoint answered: for a unary request its JSON, for a stream (the
  // watch) the stream itself once it answered 200.
  struct Reply {
    Stream stream;
    json answer;
  };

  // The answer to `path` from the first endpoint that gives one within the deadline:
  // an endpoint that cannot be reached, times out, answers 5xx or has no leader
  // passes the request on to the next; a full round of failures pauses briefly and
  // starts again until the deadline. A token etcd no longer knows is renewed once.
  asio::awaitable<Reply> request(std::string_view path, const json& request_body, bool unary,
                                 Clock::time_point deadline, bool authenticating = false) {
    const auto body = request_body.dump();
    if (!authenticating && !settings_.username.empty() && token().empty()) co_await authenticate(deadline);
    bool reauthenticated = false;
    std::string last_failure = "no endpoint tried";
    std::size_t endpoint = first_endpoint();
    std::size_t tried = 0;
    auto move_on = [&](std::string failure) {
      // An attempt this request's own deadline cut short says less than the failure
      // before it (a refused certificate, a member without a leader): that one is kept.
      if (tried == 0 || Clock::now() < deadline) last_failure = std::move(failure);
      endpoint = (endpoint + 1) % endpoints_.size();
      ++tried;
    };
    for (;;) {
      if (tried > 0 && tried % endpoints_.size() == 0) {
        if (Clock::now() + kRoundPause >= deadline) break;
        asio::steady_timer pause(executor_, kRoundPause);
        co_await pause.async_wait(asio::use_awaitable);
      }
      if (Clock::now() >= deadline) break;
      const auto& name = endpoints_[endpoint].text;
      std::optional<Stream> stream;
      std::string text;
      try {
        const auto authorization = authenticating ? std::string() : token();
        const auto attempt_deadline = std::min(deadline, Clock::now() + attempt_budget());
        stream.emplace(co_await send(endpoint, path, body, authorization, attempt_deadline));
        if (!unary && stream->parser->get().result_int() == 200) {
          answered_by(endpoint);
          co_return Reply{std::move(*stream), json()};
        }
        text = co_await read_answer(*stream, path);
      } catch (const EndpointFailure& failure) {
        move_on(failure.what);
        continue;
      }
      auto judged = judge(stream->parser->get().result_int(), text, name + "'s answer to " + std::string(path));
      if (judged.answer) {
        answered_by(endpoint);
        co_return Reply{std::move(*stream), std::move(*judged.answer)};
      }
      switch (judged.outcome) {
        case Outcome::next_endpoint:
          move_on(name + ": " + judged.message);
          continue;
        case Outcome::reauthenticate:
          if (!authenticating && !settings_.username.empty() && !reauthenticated) {
            reauthenticated = true;
            co_await authenticate(deadline);
            continue;  // the same endpoint again, with the new token
          }
          throw Error(Error::Kind::auth, "etcd refused the token: " + judged.message);
        case Outcome::auth:
          throw Error(Error::Kind::auth, "etcd refused " + std::string(path) + ": " + judged.message);
        case Outcome::failed:
          throw Error(Error::Kind::failed, "etcd refused " + std::string(path) + ": " + judged.message);
      }
    }
    throw Error(Error::Kind::unavailable, "no etcd endpoint answered " + std::string(path) + " within " +
                                              std::to_string(settings_.request_timeout.count()) +
                                              " ms (last: " + last_failure + ")");
  }

  asio::awaitable<json> call(std::string_view path, const json& request_body) {
    auto reply = co_await request(path, request_body, true, Clock::now() + settings_.request_timeout);
    co_return std::move(reply.answer);
  }

  // Reads an open watch stream, handing each batch of events to `on_batch`, until it
  // ends (Error), is refused (WatchTokenRefused) or is cancelled.
  asio::awaitable<void> follow(Stream& stream, const std::function<void(const WatchBatch&)>& on_batch);

  asio::awaitable<void> authenticate(Clock::time_point deadline) {
    const json credentials{{"name", settings_.username}, {"password", settings_.password}};
    auto reply = co_await request("/v3/auth/authenticate", credentials, true, deadline, true);
    auto token = string_field(reply.answer, "token");
    if (token.empty()) throw Error(Error::Kind::auth, "etcd gave no token for user " + settings_.username);
    std::lock_guard lock(mutex_);
    token_ = std::move(token);
  }

  asio::any_io_executor executor_;
  Settings settings_;
  std::vector<Endpoint> endpoints_;
  asio::ssl::context tls_context_;
  registry::ConnectionPool pool_;
  mutable std::mutex mutex_;
  std::string token_;
  std::size_t current_ = 0;
  bool answered_ = false;
};

// One line of a watch stream: {"result":{header, created?, events?, compact_revision?,
// canceled?, cancel_reason?}} or a stream error {"error":{...}}.
// etcd refused the watch's token (it forgot it): the watch may authenticate again.
struct WatchTokenRefused {
  std::string message;
};

[[noreturn]] void throw_watch_error(const GatewayError& error, const std::string& from) {
  switch (outcome_of(error)) {
    case Outcome::next_endpoint:
      throw Error(Error::Kind::unavailable, "the watch on " + from + " failed: " + error.message);
    case Outcome::reauthenticate:
      throw WatchTokenRefused{error.message};
    case Outcome::auth:
      throw Error(Error::Kind::auth, "the watch on " + from + " was refused: " + error.message);
    case Outcome::failed:
      break;
  }
  throw Error(Error::Kind::failed, "the watch on " + from + " failed: " + error.message);
}

std::optional<WatchBatch> watch_batch(const json& line, const std::string& from) {
  if (auto error = gateway_error(line)) throw_watch_error(*error, from);
  const auto& result = object_field(line, "result");
  if (auto compacted = int_field(result, "compact_revision"); compacted > 0) {
    throw Error(Error::Kind::compacted,
                "etcd has compacted the revisions before " + std::to_string(compacted) + " away", compacted);
  }
  // A refusal at creation (a token etcd forgot, a permission) comes as a cancel with
  // the gRPC error as its reason.
  if (bool_field(result, "canceled")) {
    auto reason = string_field(result, "cancel_reason");
    std::int64_t code = reason.find("code = Unauthenticated") != std::string::npos ? kUnauthenticated : 0;
    throw_watch_error(GatewayError{"etcd cancelled the watch: " + reason, code}, from);
  }
  const auto& events = array_field(result, "events");
  if (events.empty()) return std::nullopt;  // created, or a progress notice
  WatchBatch batch;
  batch.revision = header_revision(result);
  for (const auto& event : events) {
    if (!event.is_object()) throw Error(Error::Kind::protocol, "etcd watch event is not an object");
    // The gateway leaves out the default: PUT.
    auto type = event.contains("type") ? string_field(event, "type") : std::string("PUT");
    batch.events.push_back(Event{type == "DELETE" ? Event::Type::erase : Event::Type::put,
                                 parse_key_value(object_field(event, "kv"))});
  }
  return batch;
}

asio::awaitable<void> GatewayClient::watch(std::string prefix, std::int64_t start_revision,
                                           std::function<void(const WatchBatch&)> on_batch) {
  json create{{"key", registry::base64_encode(prefix)}, {"range_end", registry::base64_encode(prefix_end(prefix))}};
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  const json body{{"create_request", create}};
  for (bool reauthenticated = false;; reauthenticated = true) {
    auto reply = co_await request("/v3/watch", body, false, Clock::now() + settings_.request_timeout);
    try {
      co_await follow(reply.stream, on_batch);  // ends only by throwing
    } catch (const WatchTokenRefused& refused) {
      if (reauthenticated || settings_.username.empty()) {
        throw Error(Error::Kind::auth, "etcd refused the watch's token: " + refused.message);
      }
    }
    // etcd forgot the token (restart, auth disable and enable, its TTL): once more
    // with a new one.
    co_await authenticate(Clock::now() + settings_.request_timeout);
  }
}

asio::awaitable<void> GatewayClient::follow(Stream& stream, const std::function<void(const WatchBatch&)>& on_batch) {
  const auto& from = endpoints_[stream.endpoint].text;
  // The stream stays open as long as the watch does; a cancellation of the caller
  // cancels the pending read (its error is then the caller's, not the member's).
  stream.connection->expires_never();
  auto cancellation = co_await asio::this_coro::cancellation_state;
  std::string pending;
  std::array<char, 16384> piece;
  for (;;) {
    std::size_t n = 0;
    try {
      n = co_await read_piece(*stream.connection, *stream.parser, piece, from);
    } catch (const EndpointFailure& failure) {
      if (cancellation.cancelled() != asio::cancellation_type::none) {
        throw boost::system::system_error(asio::error::operation_aborted);
      }
      throw Error(Error::Kind::unavailable, "the watch stream broke: " + failure.what);
    }
    if (n == 0) throw Error(Error::Kind::unavailable, "the watch stream from " + from + " ended");
    pending.append(piece.data(), n);
    std::size_t start = 0;
    for (auto end = pending.find('\n'); end != std::string::npos; end = pending.find('\n', start)) {
      std::string_view line(pending.data() + start, end - start);
      start = end + 1;
      if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
      if (auto batch = watch_batch(parse_json(line), from)) on_batch(*batch);
    }
    pending.erase(0, start);
    if (pending.size() > kLineLimit) {
      throw Error(Error::Kind::protocol, "a watch response from " + from + " is longer than " +
                                             std::to_string(kLineLimit) + " bytes");
    }
  }
}

}  // namespace

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  // Every byte is 0xff (or there is none): "\0" is etcd's "to the end of the keys".
  return std::string(1, '\0');
}

std::unique_ptr<Client> Client::make(asio::any_io_executor executor, Settings settings) {
  if (settings.endpoints.empty()) throw std::invalid_argument("etcd: no endpoints");
  std::vector<Endpoint> endpoints;
  for (const auto& text : settings.endpoints) {
    auto url = registry::parse_url(text);
    if (!url || url->target != "/") {
      throw std::invalid_argument("etcd: endpoint '" + text + "' is not an http(s) URL without a path");
    }
    endpoints.push_back(Endpoint{text, url->origin});
  }
  return std::make_unique<GatewayClient>(std::move(executor), std::move(settings), std::move(endpoints));
}

}  // namespace pullgate::cache::etcd
