#pragma once
// One HTTP/1.1 connection to an upstream origin (plain TCP or TLS) and the pool of
// idle keep-alive connections per origin that the upstream client reuses.
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "registry/upstream.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::registry {

namespace beast = boost::beast;
using error_code = boost::system::error_code;
using ResponseParser = http::response_parser<http::buffer_body>;

class Connection {
 public:
  // Resolves, connects and (for https) handshakes within `timeout`. Throws
  // UpstreamError of kind connect, timeout or tls.
  static asio::awaitable<std::unique_ptr<Connection>> open(asio::any_io_executor executor,
                                                           asio::ssl::context& tls_context,
                                                           bool verify_peer, const Origin& origin,
                                                           std::chrono::milliseconds timeout);

  // Deadline for the operations that follow (beast closes the socket when it passes).
  void expires_after(std::chrono::milliseconds timeout);
  void expires_never();
  asio::awaitable<error_code> write(http::request<http::empty_body>& request);
  // A request with a body (etcd's JSON gateway takes POSTs).
  asio::awaitable<error_code> write(http::request<http::string_body>& request);
  asio::awaitable<error_code> read_header(ResponseParser& parser);
  asio::awaitable<error_code> read_some(ResponseParser& parser);
  // Bytes read past the last parsed message; a connection with leftovers is not reusable.
  bool has_buffered_bytes() const { return buffer_.size() != 0; }

 private:
  Connection() = default;
  beast::tcp_stream& tcp();
  template <class Request>
  asio::awaitable<error_code> write_request(Request& request);

  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
};

// Idle connections per origin key. Thread-safe.
class ConnectionPool {
 public:
  explicit ConnectionPool(std::size_t max_idle_per_origin) : max_idle_(max_idle_per_origin) {}
  std::unique_ptr<Connection> take(const std::string& origin_key);
  void put(const std::string& origin_key, std::unique_ptr<Connection> connection);
  std::size_t idle_count(const std::string& origin_key);

 private:
  std::mutex mutex_;
  std::size_t max_idle_;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
};

}  // namespace pullgate::registry
