#pragma once
// Coroutines waiting for something to change, woken all at once. Each waiter sleeps
// on a timer of its own for a second at most (a missed wake-up costs a second, never
// a hang); waking cancels every timer through its waiter's own executor (a strand or
// a single thread), so a cancel cannot run before that waiter's wait has started.
//
// Not locked itself: the owner adds and takes under its own lock, and wakes after
// releasing it.
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace pullgate::cache {

class WakeList {
 public:
  using Timers = std::vector<std::shared_ptr<boost::asio::steady_timer>>;

  // The calling coroutine's timer, to wait on once the owner's lock is released.
  std::shared_ptr<boost::asio::steady_timer> add(const boost::asio::any_io_executor& executor) {
    auto timer = std::make_shared<boost::asio::steady_timer>(executor, std::chrono::seconds(1));
    timers_.push_back(timer);
    return timer;
  }
  bool empty() const { return timers_.empty(); }
  // Everyone waiting now; pass the result to wake() after releasing the lock.
  Timers take() { return std::exchange(timers_, {}); }
  static void wake(const Timers& timers) {
    for (auto& timer : timers) boost::asio::post(timer->get_executor(), [timer] { timer->cancel(); });
  }

 private:
  Timers timers_;
};

}  // namespace pullgate::cache
