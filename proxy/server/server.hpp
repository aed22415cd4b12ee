#pragma once
// Listener and sessions: one coroutine per connection, HTTP/1.1 keep-alive, limits
// and timeouts, optional TLS, graceful shutdown.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "proxy/server/handler.hpp"
#include "registry/task_set.hpp"

namespace pullgate::proxy {

// What a listener needs to know (main makes them from the config: the mirror's, and
// the admin listener's with its own address, no TLS, and request bodies).
struct ServerOptions {
  std::string host;  // an IP address, or localhost
  std::uint16_t port = 0;
  std::string tls_cert_file, tls_key_file;
  std::size_t max_header_bytes = 16 * 1024;
  unsigned max_requests_per_connection = 10'000;
  unsigned idle_timeout_s = 60;
  unsigned header_timeout_s = 15;
  std::size_t max_body_bytes = 0;  // 0: bodies are not read (the request is answered, then the connection closes)
  // Mutual TLS (with tls_cert_file): client certificates issued by this CA bundle
  // are verified, and the subject CN of one is RequestContext::peer_identity.
  std::string tls_client_ca_file;
  bool tls_client_cert_required = false;  // a handshake without a client certificate fails
};

class Server {
 public:
  // Binds the listener (throws std::runtime_error with one line when it cannot).
  Server(asio::io_context& ioc, ServerOptions options, Handler& handler);
  asio::ip::tcp::endpoint local_endpoint() const;
  // Starts accepting; returns at once.
  void start();
  // Stops accepting, closes idle connections, lets requests in progress finish.
  void stop();
  // After stop(): cancels the sessions still running (their responses end short).
  void cancel_sessions() { sessions_tasks_.cancel_all(); }
  std::size_t active_sessions() const;

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> session(asio::ip::tcp::socket socket);
  template <class Stream>
  asio::awaitable<void> serve_requests(Stream& stream, std::uint64_t id, const std::string& client,
                                       const std::string& peer_identity = {});

  asio::io_context& ioc_;
  const ServerOptions config_;
  Handler& handler_;
  asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<asio::ssl::context> tls_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  registry::TaskSet sessions_tasks_;  // every session, for shutdown
  std::uint64_t next_id_ = 0;
  // Per session: closes it if it is idle between requests.
  std::unordered_map<std::uint64_t, std::function<void()>> idle_closers_;
  std::size_t sessions_ = 0;
};

}  // namespace pullgate::proxy
