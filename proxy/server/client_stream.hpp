#pragma once
// What a request handler may do with the client connection: write a whole response,
// or a header followed by body bytes taken from a file. One implementation per
// transport (plain TCP with sendfile, TLS with reads and writes).
#include <cstdint>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace pullgate::proxy {

namespace asio = boost::asio;
namespace http = boost::beast::http;

class ClientStream {
 public:
  virtual ~ClientStream() = default;
  // Each throws boost::system::system_error when the client is gone or too slow.
  virtual asio::awaitable<void> write(http::response<http::string_body>& response) = 0;
  // Writes the header only; the caller sends exactly Content-Length body bytes next.
  virtual asio::awaitable<void> write_header(http::response<http::empty_body>& header) = 0;
  // Sends bytes [offset, offset+length) of an open file as body bytes.
  virtual asio::awaitable<void> write_file(int fd, std::uint64_t offset, std::uint64_t length) = 0;
};

}  // namespace pullgate::proxy
