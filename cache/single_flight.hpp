#pragma once
// One fetch per key at a time. The first to ask for a key leads: it fetches and then
// finishes the flight; whoever asks meanwhile waits for that, then looks in the cache
// (and fetches on its own only if the leader failed). Manifests and tags use it, so
// that a rollout pulling one new image on many nodes asks the upstream once, not
// once per node (at Docker Hub every manifest GET counts against the rate limit).
// Blobs have BlobFetches, which also streams to the waiters.
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cache/wake_list.hpp"

namespace pullgate::cache {

namespace asio = boost::asio;

class SingleFlight {
 public:
  class Flight {
   public:
    bool done() const;
    // What the leader found, for its waiters to act on without asking again; set
    // before the flight ends (0 until then). What the numbers mean is the caller's.
    void set_outcome(int outcome);
    int outcome() const;

   private:
    friend class SingleFlight;
    mutable std::mutex mutex_;
    bool done_ = false;
    int outcome_ = 0;
    WakeList waiters_;
  };

  struct Joined {
    std::shared_ptr<Flight> flight;
    bool leader = false;
  };
  Joined join(const std::string& key);
  // Ends the leader's flight (whatever the outcome): its waiters wake, and the next
  // join of the key starts a new flight.
  void finish(const std::string& key, const std::shared_ptr<Flight>& flight);
  // Returns once the flight is finished.
  static asio::awaitable<void> wait(Flight& flight);
  std::size_t in_flight() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
};

// Finishes a flight when the leader's scope ends, on every path out of it.
class FlightLeader {
 public:
  FlightLeader(SingleFlight& flights, std::string key, std::shared_ptr<SingleFlight::Flight> flight)
      : flights_(flights), key_(std::move(key)), flight_(std::move(flight)) {}
  ~FlightLeader() { flights_.finish(key_, flight_); }
  FlightLeader(const FlightLeader&) = delete;
  FlightLeader& operator=(const FlightLeader&) = delete;

 private:
  SingleFlight& flights_;
  std::string key_;
  std::shared_ptr<SingleFlight::Flight> flight_;
};

}  // namespace pullgate::cache
