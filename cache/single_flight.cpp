#include "cache/single_flight.hpp"

#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace pullgate::cache {

bool SingleFlight::Flight::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

void SingleFlight::Flight::set_outcome(int outcome) {
  std::lock_guard lock(mutex_);
  outcome_ = outcome;
}

int SingleFlight::Flight::outcome() const {
  std::lock_guard lock(mutex_);
  return outcome_;
}

SingleFlight::Joined SingleFlight::join(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto& flight = flights_[key];
  if (flight) return {flight, false};
  flight = std::make_shared<Flight>();
  return {flight, true};
}

void SingleFlight::finish(const std::string& key, const std::shared_ptr<Flight>& flight) {
  {
    std::lock_guard lock(mutex_);
    auto it = flights_.find(key);
    if (it != flights_.end() && it->second == flight) flights_.erase(it);
  }
  WakeList::Timers waiters;
  {
    std::lock_guard lock(flight->mutex_);
    flight->done_ = true;
    waiters = flight->waiters_.take();
  }
  WakeList::wake(waiters);
}

asio::awaitable<void> SingleFlight::wait(Flight& flight) {
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    // A second at most per wait: the flight's state is looked at again even if a
    // wake-up were missed.
    std::shared_ptr<asio::steady_timer> timer;
    {
      std::lock_guard lock(flight.mutex_);
      if (flight.done_) co_return;
      timer = flight.waiters_.add(executor);
    }
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

std::size_t SingleFlight::in_flight() const {
  std::lock_guard lock(mutex_);
  return flights_.size();
}

}  // namespace pullgate::cache
