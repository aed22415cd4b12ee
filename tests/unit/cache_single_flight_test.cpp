// SingleFlight: one leader per key, followers wake when it finishes and see what it
// found, and the key is free again afterwards.
#include "cache/single_flight.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace pullgate::cache {
namespace {

TEST(SingleFlight, OneLeaderPerKeyUntilItFinishes) {
  SingleFlight flights;
  auto first = flights.join("a");
  auto second = flights.join("a");
  auto other = flights.join("b");
  EXPECT_TRUE(first.leader);
  EXPECT_FALSE(second.leader);
  EXPECT_EQ(first.flight, second.flight);
  EXPECT_TRUE(other.leader);
  EXPECT_EQ(flights.in_flight(), 2u);
  flights.finish("a", first.flight);
  EXPECT_TRUE(first.flight->done());
  EXPECT_EQ(flights.in_flight(), 1u);
  auto again = flights.join("a");
  EXPECT_TRUE(again.leader);
  EXPECT_NE(again.flight, first.flight);
  // A stale finish of the old flight leaves the new one alone.
  flights.finish("a", first.flight);
  EXPECT_FALSE(again.flight->done());
  EXPECT_EQ(flights.in_flight(), 2u);
}

TEST(SingleFlight, WaitersWakeWhenTheLeaderFinishes) {
  asio::io_context ioc;
  SingleFlight flights;
  auto leader = flights.join("m");
  ASSERT_TRUE(leader.leader);
  int woke = 0;
  for (int i = 0; i < 5; ++i) {
    auto follower = flights.join("m");
    ASSERT_FALSE(follower.leader);
    asio::co_spawn(
        ioc,
        [&woke, flight = follower.flight]() -> asio::awaitable<void> {
          co_await SingleFlight::wait(*flight);
          EXPECT_EQ(flight->outcome(), 2);
          ++woke;
        },
        asio::detached);
  }
  // The leader finishes from a scope guard a little later, from another coroutine.
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(ioc, std::chrono::milliseconds(20));
        co_await timer.async_wait(asio::use_awaitable);
        EXPECT_EQ(woke, 0);
        EXPECT_EQ(leader.flight->outcome(), 0);
        FlightLeader done(flights, "m", leader.flight);
        leader.flight->set_outcome(2);  // before the guard ends the flight
      },
      asio::detached);
  ioc.run();
  EXPECT_EQ(woke, 5);
  EXPECT_EQ(flights.in_flight(), 0u);
}

TEST(SingleFlight, AWaitOnAFinishedFlightReturnsAtOnce) {
  asio::io_context ioc;
  SingleFlight flights;
  auto joined = flights.join("k");
  flights.finish("k", joined.flight);
  bool returned = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        co_await SingleFlight::wait(*joined.flight);
        returned = true;
      },
      asio::detached);
  ioc.run();
  EXPECT_TRUE(returned);
}

}  // namespace
}  // namespace pullgate::cache
