#pragma once
// One fetch per key at a time. The first to ask for a key leads: it fetches, sets
// what came of it (the outcome: a digest, a manifest, or a failure with its status
// and Retry-After) and finishes the flight; whoever asks meanwhile waits for that
// and takes the leader's outcome as its own, failures included, instead of asking
// the upstream again. A follower whose leader set no outcome (it ended in a way it
// could not describe, e.g. an internal error) asks on its own. Manifests, tags and
// signal look-ups use it, so that a rollout pulling one new image on many nodes asks
// the upstream once, not once per node, also while the upstream is refusing (at
// Docker Hub every manifest GET counts against the rate limit). Blobs have
// BlobFetches, which also streams to the waiters.
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cache/wake_list.hpp"

namespace pullgate::cache {

namespace asio = boost::asio;

template <class Outcome = std::monostate>
class SingleFlight {
 public:
  class Flight {
   public:
    bool done() const {
      std::lock_guard lock(mutex_);
      return done_;
    }
    // What the leader found, for its followers to act on without asking again; set
    // before the flight finishes.
    void set_outcome(Outcome outcome) {
      std::lock_guard lock(mutex_);
      outcome_ = std::move(outcome);
    }
    std::optional<Outcome> outcome() const {
      std::lock_guard lock(mutex_);
      return outcome_;
    }
    // Returns once the flight is finished.
    asio::awaitable<void> wait() {
      auto executor = co_await asio::this_coro::executor;
      for (;;) {
        // A second at most per wait: the state is looked at again even if a wake-up
        // were missed.
        std::shared_ptr<asio::steady_timer> timer;
        {
          std::lock_guard lock(mutex_);
          if (done_) co_return;
          timer = waiters_.add(executor);
        }
        co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
      }
    }

   private:
    friend class SingleFlight;
    mutable std::mutex mutex_;
    bool done_ = false;
    std::optional<Outcome> outcome_;
    WakeList waiters_;
  };

  struct Joined {
    std::shared_ptr<Flight> flight;
    bool leader = false;
  };

  Joined join(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto& flight = flights_[key];
    if (flight) return {flight, false};
    flight = std::make_shared<Flight>();
    return {flight, true};
  }

  // Ends the leader's flight (whatever the outcome): its waiters wake, and the next
  // join of the key starts a new flight.
  void finish(const std::string& key, const std::shared_ptr<Flight>& flight) {
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

  std::size_t in_flight() const {
    std::lock_guard lock(mutex_);
    return flights_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
};

// Leads a flight: finishes it when the leader's scope ends, on every path out of it.
template <class Outcome = std::monostate>
class FlightLeader {
 public:
  using Flights = SingleFlight<Outcome>;
  FlightLeader(Flights& flights, std::string key, std::shared_ptr<typename Flights::Flight> flight)
      : flights_(flights), key_(std::move(key)), flight_(std::move(flight)) {}
  ~FlightLeader() { flights_.finish(key_, flight_); }
  FlightLeader(const FlightLeader&) = delete;
  FlightLeader& operator=(const FlightLeader&) = delete;
  void set_outcome(Outcome outcome) { flight_->set_outcome(std::move(outcome)); }

 private:
  Flights& flights_;
  std::string key_;
  std::shared_ptr<typename Flights::Flight> flight_;
};

// Leads or follows the flight of `key`: the leader co_awaits `ask()` and hands what
// it got to the followers, which return it as theirs; a follower whose leader said
// nothing (it ended by an exception) asks itself.
template <class Outcome, class Ask>
asio::awaitable<Outcome> share_flight(SingleFlight<Outcome>& flights, const std::string& key, Ask ask) {
  auto joined = flights.join(key);
  if (joined.leader) {
    FlightLeader<Outcome> leading(flights, key, joined.flight);
    Outcome outcome = co_await ask();
    leading.set_outcome(outcome);
    co_return outcome;
  }
  co_await joined.flight->wait();
  if (auto outcome = joined.flight->outcome()) co_return std::move(*outcome);
  co_return co_await ask();
}

}  // namespace pullgate::cache
