#pragma once
// The request handler interface between sessions and the mirror.
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include "proxy/server/client_stream.hpp"

namespace pullgate::proxy {

using Request = http::request<http::empty_body>;

struct RequestContext {
  std::string client;  // "address:port"
  bool has_body = false;  // the request announced a body the session did not read
  std::string body;       // the body, on listeners that read bodies (admin)
  bool last = false;      // the connection's last request (limit reached): answer with Connection: close
  bool scanner = false;   // a scanner's pull on the admin listener: past the gate (audited as such)
  // The subject CN of the client certificate the listener verified (mutual TLS);
  // empty without one. Who that is and what it may pull is decided above the server.
  std::string peer_identity;
};

struct Outcome {
  unsigned status = 0;
  std::uint64_t bytes = 0;  // body bytes sent
  bool close = false;       // the response ended short or must be the last
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual asio::awaitable<Outcome> handle(const Request& request, ClientStream& client,
                                          const RequestContext& context) = 0;
};

}  // namespace pullgate::proxy
