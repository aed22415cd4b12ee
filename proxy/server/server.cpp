#include "proxy/server/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "proxy/server/client_certificates.hpp"
#include "proxy/telemetry/log.hpp"
#include "registry/errors.hpp"

namespace pullgate::proxy {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr std::chrono::seconds write_timeout{120};
constexpr std::chrono::seconds shed_log_interval{10};
// Descriptors kept free for what requests in progress open (blob files, upstream
// connections, temp files of fills): an eighth of the limit, at least 64 and at most
// 4096, and never more than half of a tiny limit.
std::uint64_t descriptor_reserve(std::uint64_t limit) {
  return std::min(std::clamp<std::uint64_t>(limit / 8, 64, 4096), limit / 2);
}
// Waiting sessions closed at once when accept() finds no descriptor left: enough that
// the connections queued behind it get in without one failed accept each.
constexpr std::size_t shed_batch = 16;

beast::tcp_stream& tcp_layer(beast::tcp_stream& s) { return s; }
beast::tcp_stream& tcp_layer(beast::ssl_stream<beast::tcp_stream>& s) { return s.next_layer(); }

template <class Stream>
class StreamWriter final : public ClientStream {
 public:
  explicit StreamWriter(Stream& stream) : stream_(stream) {}

  asio::awaitable<void> write(http::response<http::string_body>& response) override {
    tcp_layer(stream_).expires_after(write_timeout);
    co_await http::async_write(stream_, response, asio::use_awaitable);
  }

  asio::awaitable<void> write_header(http::response<http::empty_body>& header) override {
    tcp_layer(stream_).expires_after(write_timeout);
    http::response_serializer<http::empty_body> serializer(header);
    co_await http::async_write_header(stream_, serializer, asio::use_awaitable);
  }

  asio::awaitable<void> write_file(int fd, std::uint64_t offset, std::uint64_t length) override {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      co_await send_file(fd, offset, length);
    } else {
      co_await copy_file(fd, offset, length);
    }
  }

 private:
  // Zero-copy: the kernel moves file pages to the socket.
  asio::awaitable<void> send_file(int fd, std::uint64_t offset, std::uint64_t length) {
    using namespace asio::experimental::awaitable_operators;
    auto& socket = stream_.socket();
    socket.native_non_blocking(true);
    // Corked while the body streams (as nginx's tcp_nopush): only full segments go
    // out, instead of a short one at the end of every sendfile call.
    int on = 1, off_flag = 0;
    ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    struct Uncork {
      int fd;
      int value;
      ~Uncork() { ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value); }
    } uncork{socket.native_handle(), off_flag};
    while (length > 0) {
      off_t off = static_cast<off_t>(offset);
      auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(length, 4u << 20));
      auto n = ::sendfile(socket.native_handle(), fd, &off, chunk);
      if (n > 0) {
        offset += static_cast<std::uint64_t>(n);
        length -= static_cast<std::uint64_t>(n);
        continue;
      }
      if (n == 0) throw boost::system::system_error(asio::error::eof, "blob file ended early");
      if (errno == EINTR) continue;
      if (errno != EAGAIN) throw boost::system::system_error(error_code(errno, boost::system::system_category()));
      asio::steady_timer timer(co_await asio::this_coro::executor, write_timeout);
      auto which = co_await (socket.async_wait(tcp::socket::wait_write, asio::use_awaitable) ||
                             timer.async_wait(asio::use_awaitable));
      if (which.index() == 1) throw boost::system::system_error(beast::error::timeout);
    }
  }

  asio::awaitable<void> copy_file(int fd, std::uint64_t offset, std::uint64_t length) {
    std::array<char, 64 * 1024> buffer;
    while (length > 0) {
      auto want = static_cast<std::size_t>(std::min<std::uint64_t>(length, buffer.size()));
      auto n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw boost::system::system_error(asio::error::eof, "blob file ended early");
      tcp_layer(stream_).expires_after(write_timeout);
      co_await asio::async_write(stream_, asio::buffer(buffer.data(), static_cast<std::size_t>(n)),
                                 asio::use_awaitable);
      offset += static_cast<std::uint64_t>(n);
      length -= static_cast<std::uint64_t>(n);
    }
  }

  Stream& stream_;
};

// Ends a session's wait on its client (WaitingSessions::Close). On the session's strand
// (a stream is not thread-safe), and only if the session still exists and is still in
// that wait: one whose request came in meanwhile is being answered, and stays.
template <class WaitState>
std::function<void(WaitingSessions::Ticket)> closer(beast::tcp_stream& tcp, const std::shared_ptr<WaitState>& state) {
  return [executor = tcp.get_executor(), &tcp, weak = std::weak_ptr<WaitState>(state)](WaitingSessions::Ticket ticket) {
    asio::post(executor, [&tcp, weak, ticket] {
      auto wait = weak.lock();
      if (!wait || wait->ticket != ticket) return;
      wait->closed = true;
      tcp.cancel();
    });
  };
}

http::response<http::string_body> protocol_error(unsigned status, std::string_view message) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::content_type, "application/json");
  res.set("Docker-Distribution-API-Version", "registry/2.0");
  res.body() = registry::error_body(registry::ErrorCode::unknown, message);
  res.keep_alive(false);
  res.prepare_payload();
  return res;
}

}  // namespace

DescriptorLimit raise_descriptor_limit() {
  DescriptorLimit result;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    result.error = std::string("getrlimit: ") + std::strerror(errno);
    return result;
  }
  result.before = result.now = limit.rlim_cur;
  // Linux refuses an infinite RLIMIT_NOFILE (it is capped by fs.nr_open): leave it.
  if (limit.rlim_cur >= limit.rlim_max || limit.rlim_max == RLIM_INFINITY) return result;
  rlimit raised{limit.rlim_max, limit.rlim_max};
  if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    result.error = std::string("setrlimit: ") + std::strerror(errno);
    return result;
  }
  result.now = raised.rlim_cur;
  return result;
}

Server::Server(asio::io_context& ioc, ServerOptions options, Handler& handler)
    : ioc_(ioc), config_(std::move(options)), handler_(handler), acceptor_(ioc) {
  const auto& config = config_;
  const std::string listen = config.host + ":" + std::to_string(config.port);
  error_code ec;
  auto address = asio::ip::make_address(config.host == "localhost" ? "127.0.0.1" : config.host, ec);
  if (ec) throw std::runtime_error("listen: " + config.host + " is not an IP address");
  tcp::endpoint endpoint(address, config.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint, ec);
  if (ec) throw std::runtime_error("cannot listen on " + listen + ": " + ec.message());
  acceptor_.listen(asio::socket_base::max_listen_connections);
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    descriptor_limit_ = limit.rlim_cur;
    shed_mark_ = limit.rlim_cur - descriptor_reserve(limit.rlim_cur);
  } else {
    descriptor_limit_ = shed_mark_ = std::numeric_limits<std::uint64_t>::max();
  }

  if (!config.tls_cert_file.empty()) {
    tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1);
    tls_->use_certificate_chain_file(config.tls_cert_file, ec);
    if (ec) throw std::runtime_error("tls: cannot load " + config.tls_cert_file + ": " + ec.message());
    tls_->use_private_key_file(config.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) throw std::runtime_error("tls: cannot load " + config.tls_key_file + ": " + ec.message());
    if (!config.tls_client_ca_file.empty())
      ask_client_certificates(*tls_, config.tls_client_ca_file, config.tls_client_cert_required);
  }
}

tcp::endpoint Server::local_endpoint() const { return acceptor_.local_endpoint(); }

void Server::start() {
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), [](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log_event("error", "accept loop ended", {{"error", ex.what()}});
      }
    }
  });
}

void Server::stop() {
  stopping_ = true;
  asio::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
  waiting_.close_all();
}

std::size_t Server::active_sessions() const {
  std::lock_guard lock(mutex_);
  return sessions_;
}

std::size_t Server::shed_waiting(std::size_t count, int descriptor) {
  const auto shed = waiting_.shed_oldest(count);
  if (shed.total() == 0) return 0;
  if (shed_counter_) {
    if (shed.header) shed_counter_->with({to_string(Wait::header)}).inc(shed.header);
    if (shed.idle) shed_counter_->with({to_string(Wait::idle)}).inc(shed.idle);
  }
  shed_unlogged_.header += shed.header;
  shed_unlogged_.idle += shed.idle;
  // A flood sheds on every accept: one line per interval says how many.
  const auto now = std::chrono::steady_clock::now();
  if (now - shed_logged_ >= shed_log_interval) {
    nlohmann::json fields = {{"header", shed_unlogged_.header}, {"idle", shed_unlogged_.idle},
                             {"descriptor_limit", descriptor_limit_}, {"still_waiting", waiting_.size()}};
    if (descriptor >= 0) fields["descriptor"] = descriptor;
    else fields["cause"] = "accept found no descriptor";
    log_event("warn", "connections waiting on their client shed near the descriptor limit", std::move(fields));
    shed_unlogged_ = {};
    shed_logged_ = now;
  }
  return shed.total();
}

asio::awaitable<void> Server::accept_loop() {
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(ioc_), as_tuple_awaitable);
    if (ec == asio::error::operation_aborted || stopping_) break;
    if (ec) {
      // The connection stays queued and the listener readable, so accepting again at
      // once would spin. Out of descriptors (the process's or the system's): close the
      // oldest sessions that only wait on their client, and accept again as soon as
      // their descriptors are free; else (or with none to close) pause a little. What
      // is connected keeps being served either way.
      const bool no_descriptors = ec == boost::system::errc::too_many_files_open ||
                                  ec == boost::system::errc::too_many_files_open_in_system;
      std::size_t shed = 0;
      if (no_descriptors) {
        // Linux's accept() takes the descriptor before it looks at the queue, so it
        // fails so with no connection queued too: first wait until one is there to be
        // let in, so that none is shed for nothing.
        auto [wait_ec] = co_await acceptor_.async_wait(tcp::acceptor::wait_read, as_tuple_awaitable);
        if (wait_ec == asio::error::operation_aborted || stopping_) break;
        shed = shed_waiting(shed_batch, -1);
      }
      ++accept_failures_unlogged_;
      const auto now = std::chrono::steady_clock::now();
      if (now - accept_failure_logged_ >= shed_log_interval) {
        log_event("warn", "accept failed", {{"error", ec.message()}, {"times", accept_failures_unlogged_}});
        accept_failures_unlogged_ = 0;
        accept_failure_logged_ = now;
      }
      asio::steady_timer pause(ioc_, std::chrono::milliseconds(shed > 0 ? 5 : 100));
      co_await pause.async_wait(as_tuple_awaitable);
      continue;
    }
    // Linux hands out the lowest free descriptor, so every descriptor below this one is
    // open: a number past the mark means fewer than the reserve are left for requests
    // in progress (whatever holds them: sessions, blob files, upstream connections).
    // Then the oldest sessions doing nothing make room for this one and the reserve,
    // before accept() fails and a request's open() with it (a few at a time: their
    // descriptors free up only once their strands have run).
    if (const auto fd = static_cast<std::uint64_t>(socket.native_handle()); fd >= shed_mark_)
      shed_waiting(std::min<std::uint64_t>(fd - shed_mark_ + 1, shed_batch), socket.native_handle());
    auto executor = socket.get_executor();
    sessions_tasks_.spawn(executor, session(std::move(socket)), [this](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const boost::system::system_error& ex) {
        // Cancelled at shutdown: expected, and said once by main.
        if (stopping_ && ex.code() == asio::error::operation_aborted) return;
        log_event("error", "session failed", {{"error", ex.what()}});
      } catch (const std::exception& ex) {
        log_event("error", "session failed", {{"error", ex.what()}});
      }
    });
  }
}

asio::awaitable<void> Server::session(tcp::socket socket) {
  error_code ec;
  auto remote = socket.remote_endpoint(ec);
  std::string client = ec ? "unknown" : remote.address().to_string() + ":" + std::to_string(remote.port());
  socket.set_option(tcp::no_delay(true), ec);
  {
    std::lock_guard lock(mutex_);
    ++sessions_;
  }
  auto wait = std::make_shared<WaitState>();
  struct Leave {
    Server& server;
    WaitState& wait;
    ~Leave() {
      // Ended inside a wait (destroyed while suspended): no stale entry is left to shed.
      if (wait.ticket != 0) server.waiting_.remove(wait.ticket);
      std::lock_guard lock(server.mutex_);
      --server.sessions_;
    }
  } leave{*this, *wait};

  beast::tcp_stream stream(std::move(socket));
  if (!tls_) {
    co_await serve_requests(stream, client, wait);
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> tls_stream(std::move(stream), *tls_);
  tls_stream.next_layer().expires_after(std::chrono::seconds(config_.header_timeout_s));
  wait->ticket = waiting_.add(Wait::header, closer(tls_stream.next_layer(), wait));
  auto [hs_ec] = co_await tls_stream.async_handshake(asio::ssl::stream_base::server, as_tuple_awaitable);
  waiting_.remove(std::exchange(wait->ticket, 0));
  if (hs_ec || wait->closed || stopping_) co_return;
  co_await serve_requests(tls_stream, client, wait, verified_peer_name(tls_stream.native_handle()));
  // A closed one ends without the close_notify exchange, which would hold its
  // descriptor up to 5 s more.
  if (wait->closed) co_return;
  tls_stream.next_layer().expires_after(std::chrono::seconds(5));
  co_await tls_stream.async_shutdown(as_tuple_awaitable);
}

template <class Stream>
asio::awaitable<void> Server::serve_requests(Stream& stream, const std::string& client,
                                             const std::shared_ptr<WaitState>& wait,
                                             const std::string& peer_identity) {
  beast::flat_buffer buffer(config_.max_header_bytes + 1024);
  StreamWriter<Stream> writer(stream);
  for (unsigned served = 0; served < config_.max_requests_per_connection && !stopping_; ++served) {
    // Waiting for a request: near the descriptor limit, or at shutdown, the server
    // may close this connection.
    wait->ticket = waiting_.add(served == 0 ? Wait::header : Wait::idle, closer(tcp_layer(stream), wait));
    // A stop() that ran before the wait was noted did not see it.
    if (stopping_) {
      waiting_.remove(std::exchange(wait->ticket, 0));
      break;
    }
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config_.max_header_bytes));
    // The body limit is checked against Content-Length when the header completes.
    if (config_.max_body_bytes > 0) parser.body_limit(config_.max_body_bytes);
    else parser.body_limit(boost::none);
    tcp_layer(stream).expires_after(std::chrono::seconds(served == 0 ? config_.header_timeout_s
                                                                     : config_.idle_timeout_s));
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, as_tuple_awaitable);
    waiting_.remove(std::exchange(wait->ticket, 0));
    // Closed by the server as the header came in (the read had completed, this
    // coroutine not yet resumed): the close stands, as counted, and the request is
    // dropped unanswered, as on any keep-alive connection closed by its server.
    if (wait->closed) break;
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof)
      break;
    if (ec) {
      auto status = ec == http::error::header_limit ? 431u : ec == http::error::body_limit ? 413u : 400u;
      auto res = protocol_error(status, status == 431   ? std::string("request header too large")
                                        : status == 413 ? std::string("request body too large")
                                                        : "malformed request: " + ec.message());
      co_await writer.write(res);
      break;
    }
    RequestContext context;
    context.client = client;
    context.peer_identity = peer_identity;
    context.has_body = parser.chunked() || (parser.content_length() && *parser.content_length() > 0);
    context.last = served + 1 >= config_.max_requests_per_connection || stopping_;
    if (context.has_body && config_.max_body_bytes > 0) {
      // This listener takes bodies (the admin API): read it whole, within a limit.
      http::request_parser<http::string_body> body_parser(std::move(parser));
      body_parser.body_limit(config_.max_body_bytes);
      auto [body_ec, body_n] = co_await http::async_read(stream, buffer, body_parser, as_tuple_awaitable);
      if (body_ec) {
        auto status = body_ec == http::error::body_limit ? 413u : 400u;
        auto res = protocol_error(status, status == 413 ? "request body too large" : "malformed body: " + body_ec.message());
        co_await writer.write(res);
        break;
      }
      context.body = std::move(body_parser.get().body());
      context.has_body = false;  // read: the connection can be kept
      Request request{body_parser.get().base()};
      Outcome outcome;
      try {
        outcome = co_await handler_.handle(request, writer, context);
      } catch (const boost::system::system_error&) {
        break;
      }
      if (outcome.close || !request.keep_alive()) break;
      continue;
    }
    auto& request = parser.get();
    Outcome outcome;
    try {
      outcome = co_await handler_.handle(request, writer, context);
    } catch (const boost::system::system_error&) {
      break;  // the client went away or stalled mid-response
    }
    if (outcome.close || context.has_body || !request.keep_alive()) break;
  }
}

}  // namespace pullgate::proxy
