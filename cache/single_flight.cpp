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
  std::vector<std::shared_ptr<asio::steady_timer>> waiters;
  {
    std::lock_guard lock(flight->mutex_);
    flight->done_ = true;
    waiters.swap(flight->waiters_);
  }
  // Cancelled through each waiter's own executor, so that the cancel cannot run
  // before its wait has started.
  for (auto& timer : waiters) asio::post(timer->get_executor(), [timer] { timer->cancel(); });
}

asio::awaitable<void> SingleFlight::wait(Flight& flight) {
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    // A second at most per wait: the flight's state is looked at again even if a
    // wake-up were missed.
    auto timer = std::make_shared<asio::steady_timer>(executor, std::chrono::seconds(1));
    {
      std::lock_guard lock(flight.mutex_);
      if (flight.done_) co_return;
      flight.waiters_.push_back(timer);
    }
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

std::size_t SingleFlight::in_flight() const {
  std::lock_guard lock(mutex_);
  return flights_.size();
}

}  // namespace pullgate::cache
