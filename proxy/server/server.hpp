#pragma once
// Listener and sessions: one coroutine per connection, HTTP/1.1 keep-alive, limits
// and timeouts, optional TLS, graceful shutdown.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "proxy/server/handler.hpp"
#include "proxy/server/waiting_sessions.hpp"
#include "proxy/telemetry/metrics.hpp"
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

// Each connection holds a descriptor, and the usual soft RLIMIT_NOFILE (1024) is far
// below what a mirror for a cluster sees: at start the soft limit is raised to the
// hard one, as nginx's worker_rlimit_nofile and Go's runtime do.
struct DescriptorLimit {
  std::uint64_t before = 0;  // the soft limit found
  std::uint64_t now = 0;     // the soft limit in force
  std::string error;         // why it could not be raised (then now == before)
};
DescriptorLimit raise_descriptor_limit();

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
  // Counts the connections shed near the descriptor limit, by reason (header, idle).
  void count_shed_in(CounterFamily& shed) { shed_counter_ = &shed; }

 private:
  asio::awaitable<void> accept_loop();
  // A session's wait on its client, read and written on the session's strand only.
  struct WaitState {
    WaitingSessions::Ticket ticket = 0;  // the wait in progress, 0 when none
    bool closed = false;                 // the server closed the connection while it waited (shed or stop)
  };
  asio::awaitable<void> session(asio::ip::tcp::socket socket);
  template <class Stream>
  asio::awaitable<void> serve_requests(Stream& stream, const std::string& client,
                                       const std::shared_ptr<WaitState>& wait,
                                       const std::string& peer_identity = {});
  // Closes up to `count` of the oldest waiting sessions; counts and logs them.
  std::size_t shed_waiting(std::size_t count, int descriptor);

  asio::io_context& ioc_;
  const ServerOptions config_;
  Handler& handler_;
  asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<asio::ssl::context> tls_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  registry::TaskSet sessions_tasks_;  // every session, for shutdown
  // Sessions waiting on their client: shed near the descriptor limit, closed at stop.
  WaitingSessions waiting_;
  std::size_t sessions_ = 0;
  // An accepted descriptor numbered this high means the process is this close to its
  // limit (see accept_loop); the soft limit when the listener was made.
  std::uint64_t descriptor_limit_ = 0;
  std::uint64_t shed_mark_ = 0;
  CounterFamily* shed_counter_ = nullptr;
  // Said at most every 10 s (the accept loop's own, no lock): sheds and accept failures since the last line.
  WaitingSessions::Shed shed_unlogged_;
  std::chrono::steady_clock::time_point shed_logged_{};
  std::size_t accept_failures_unlogged_ = 0;
  std::chrono::steady_clock::time_point accept_failure_logged_{};
};

}  // namespace pullgate::proxy
