#pragma once
// The sessions that are waiting on their client and doing nothing else: a new
// connection whose first request header has not arrived (a TLS handshake included),
// and a keep-alive connection between requests. Kept in the order their wait began,
// so that near the descriptor limit the oldest are shed first (as nginx drains its
// reusable connections), and so that a shutdown closes them all.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string_view>

namespace pullgate::proxy {

enum class Wait {
  header,  // no complete request yet on this connection: the first header, or a TLS handshake
  idle,    // a keep-alive connection waiting for its next request
};
std::string_view to_string(Wait wait);

class WaitingSessions {
 public:
  using Ticket = std::uint64_t;

  // Called with the wait's ticket to end it: quick, from any thread, under this
  // object's lock (it posts to the session's strand, where the session may have
  // stopped waiting meanwhile).
  using Close = std::function<void(Ticket)>;

  // Notes a wait that began now.
  Ticket add(Wait wait, Close close);
  // The wait ended (a request arrived, or the session ended). An unknown ticket (shed
  // or closed meanwhile) is ignored.
  void remove(Ticket ticket);

  struct Shed {
    std::size_t header = 0;
    std::size_t idle = 0;
    std::size_t total() const { return header + idle; }
  };
  // Closes the `count` oldest waits (fewer if fewer wait) and forgets them.
  Shed shed_oldest(std::size_t count);
  // Closes every wait (shutdown) and forgets them.
  void close_all();
  std::size_t size() const;

 private:
  struct Entry {
    Wait wait;
    Close close;
  };
  mutable std::mutex mutex_;
  Ticket next_ = 1;
  std::map<Ticket, Entry> entries_;  // tickets grow: the first is the oldest wait
};

}  // namespace pullgate::proxy
