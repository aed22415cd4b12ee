#include "registry/upstream_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/ssl.h>

namespace pullgate::registry {
namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadBufferSize = 64 * 1024;

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

asio::awaitable<std::unique_ptr<Connection>> Connection::open(asio::any_io_executor executor,
                                                              asio::ssl::context& tls_context,
                                                              bool verify_peer, const Origin& origin,
                                                              std::chrono::milliseconds timeout) {
  // A strand per connection: the io_context may run on several threads, and the
  // stream's timer and socket must not be touched concurrently.
  auto strand = asio::make_strand(executor);
  asio::ip::tcp::resolver resolver(strand);
  // Named, not a temporary: GCC 12 destroys string temporaries of a co_await
  // expression twice.
  const std::string port = std::to_string(origin.port);
  auto [resolve_error, endpoints] = co_await resolver.async_resolve(origin.host, port, use_tuple);
  if (resolve_error) {
    throw UpstreamError(UpstreamError::Kind::connect,
                        "resolve " + origin.host + ": " + resolve_error.message());
  }

  beast::tcp_stream tcp(strand);
  tcp.expires_after(timeout);
  auto [connect_error, endpoint] = co_await tcp.async_connect(endpoints, use_tuple);
  if (connect_error == beast::error::timeout) {
    throw UpstreamError(UpstreamError::Kind::timeout, "connect to " + origin.key() + " timed out");
  }
  if (connect_error) {
    throw UpstreamError(UpstreamError::Kind::connect,
                        "connect to " + origin.key() + ": " + connect_error.message());
  }
  tcp.socket().set_option(asio::ip::tcp::no_delay(true));

  std::unique_ptr<Connection> connection(new Connection());
  // Beast reads at most the buffer's free capacity per call: without room, body
  // pieces shrink to 512 bytes.
  connection->buffer_.reserve(kReadBufferSize);
  if (!origin.tls()) {
    tcp.expires_never();
    connection->plain_.emplace(std::move(tcp));
    co_return connection;
  }

  auto& tls = connection->tls_.emplace(std::move(tcp), tls_context);
  // SNI carries names only; an IP literal is verified against the certificate's IP SANs.
  if (!is_ip_literal(origin.host) &&
      !SSL_set_tlsext_host_name(tls.native_handle(), origin.host.c_str())) {
    throw UpstreamError(UpstreamError::Kind::tls, "cannot set SNI for " + origin.host);
  }
  if (verify_peer) {
    tls.set_verify_mode(asio::ssl::verify_peer);
    tls.set_verify_callback(asio::ssl::host_name_verification(origin.host));
  } else {
    tls.set_verify_mode(asio::ssl::verify_none);
  }
  auto [handshake_error] = co_await tls.async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (handshake_error == beast::error::timeout) {
    throw UpstreamError(UpstreamError::Kind::timeout, "TLS handshake with " + origin.key() + " timed out");
  }
  if (handshake_error) {
    throw UpstreamError(UpstreamError::Kind::tls,
                        "TLS handshake with " + origin.key() + ": " + handshake_error.message());
  }
  tls.next_layer().expires_never();
  co_return connection;
}

beast::tcp_stream& Connection::tcp() { return tls_ ? tls_->next_layer() : *plain_; }

void Connection::expires_after(std::chrono::milliseconds timeout) { tcp().expires_after(timeout); }

void Connection::expires_never() { tcp().expires_never(); }

template <class Request>
asio::awaitable<error_code> Connection::write_request(Request& request) {
  auto [ec, n] = tls_ ? co_await http::async_write(*tls_, request, use_tuple)
                      : co_await http::async_write(*plain_, request, use_tuple);
  co_return ec;
}

asio::awaitable<error_code> Connection::write(http::request<http::empty_body>& request) {
  return write_request(request);
}

asio::awaitable<error_code> Connection::write(http::request<http::string_body>& request) {
  return write_request(request);
}

asio::awaitable<error_code> Connection::read_header(ResponseParser& parser) {
  auto [ec, n] = tls_ ? co_await http::async_read_header(*tls_, buffer_, parser, use_tuple)
                      : co_await http::async_read_header(*plain_, buffer_, parser, use_tuple);
  co_return ec;
}

asio::awaitable<error_code> Connection::read_some(ResponseParser& parser) {
  auto [ec, n] = tls_ ? co_await http::async_read_some(*tls_, buffer_, parser, use_tuple)
                      : co_await http::async_read_some(*plain_, buffer_, parser, use_tuple);
  co_return ec;
}

std::unique_ptr<Connection> ConnectionPool::take(const std::string& origin_key) {
  std::lock_guard lock(mutex_);
  auto found = idle_.find(origin_key);
  if (found == idle_.end() || found->second.empty()) return nullptr;
  auto connection = std::move(found->second.back());
  found->second.pop_back();
  return connection;
}

void ConnectionPool::put(const std::string& origin_key, std::unique_ptr<Connection> connection) {
  std::lock_guard lock(mutex_);
  auto& idle = idle_[origin_key];
  if (idle.size() < max_idle_) idle.push_back(std::move(connection));
  // Over the limit the connection is destroyed here, which closes it.
}

std::size_t ConnectionPool::idle_count(const std::string& origin_key) {
  std::lock_guard lock(mutex_);
  auto found = idle_.find(origin_key);
  return found == idle_.end() ? 0 : found->second.size();
}

}  // namespace pullgate::registry
