// SingleFlight: one leader per key, followers wake when it finishes and take what it
// found (a failure included), and the key is free again afterwards.
#include "cache/single_flight.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace pullgate::cache {
namespace {

TEST(SingleFlight, OneLeaderPerKeyUntilItFinishes) {
  SingleFlight<> flights;
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

// What a leader of an upstream fetch hands its followers: a value or a failure.
struct Failure {
  unsigned status;
  std::string retry_after;
};
using Answer = std::variant<std::string, Failure>;

TEST(SingleFlight, FollowersTakeTheLeadersFailure) {
  asio::io_context ioc;
  SingleFlight<Answer> flights;
  auto leader = flights.join("m");
  ASSERT_TRUE(leader.leader);
  int woke = 0;
  for (int i = 0; i < 5; ++i) {
    auto follower = flights.join("m");
    ASSERT_FALSE(follower.leader);
    asio::co_spawn(
        ioc,
        [&woke, flight = follower.flight]() -> asio::awaitable<void> {
          co_await flight->wait();
          auto outcome = flight->outcome();
          EXPECT_TRUE(outcome.has_value());
          if (!outcome) co_return;
          auto* failure = std::get_if<Failure>(&*outcome);
          EXPECT_NE(failure, nullptr);
          if (failure) {
            EXPECT_EQ(failure->status, 429u);
            EXPECT_EQ(failure->retry_after, "7");
          }
          ++woke;
        },
        asio::detached);
  }
  // The leader fails a little later, from another coroutine, and ends its flight
  // from a scope guard.
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(ioc, std::chrono::milliseconds(20));
        co_await timer.async_wait(asio::use_awaitable);
        EXPECT_EQ(woke, 0);
        EXPECT_FALSE(leader.flight->outcome().has_value());
        FlightLeader<Answer> leading(flights, "m", leader.flight);
        leading.set_outcome(Failure{429, "7"});
      },
      asio::detached);
  ioc.run();
  EXPECT_EQ(woke, 5);
  EXPECT_EQ(flights.in_flight(), 0u);
}

TEST(SingleFlight, ALeaderThatSaysNothingLeavesNoOutcome) {
  // A leader that ends by an exception sets nothing: its followers see no outcome
  // and ask for themselves, instead of taking a made-up one.
  SingleFlight<Answer> flights;
  auto leader = flights.join("k");
  auto follower = flights.join("k");
  try {
    FlightLeader<Answer> leading(flights, "k", leader.flight);
    throw std::runtime_error("internal");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(follower.flight->done());
  EXPECT_FALSE(follower.flight->outcome().has_value());
  EXPECT_TRUE(flights.join("k").leader);
}

TEST(SingleFlight, ShareFlightAsksOnceForEveryoneWaiting) {
  asio::io_context ioc;
  SingleFlight<Answer> flights;
  int asked = 0;
  std::vector<Answer> got;
  auto ask = [&]() -> asio::awaitable<Answer> {
    ++asked;
    asio::steady_timer timer(ioc, std::chrono::milliseconds(20));
    co_await timer.async_wait(asio::use_awaitable);
    co_return Failure{503, ""};
  };
  for (int i = 0; i < 4; ++i)
    asio::co_spawn(
        ioc, [&]() -> asio::awaitable<void> { got.push_back(co_await share_flight(flights, "k", ask)); },
        asio::detached);
  ioc.run();
  EXPECT_EQ(asked, 1);
  ASSERT_EQ(got.size(), 4u);
  for (auto& answer : got) {
    ASSERT_TRUE(std::holds_alternative<Failure>(answer));
    EXPECT_EQ(std::get<Failure>(answer).status, 503u);
  }
  EXPECT_EQ(flights.in_flight(), 0u);
}

TEST(SingleFlight, AWaitOnAFinishedFlightReturnsAtOnce) {
  asio::io_context ioc;
  SingleFlight<> flights;
  auto joined = flights.join("k");
  flights.finish("k", joined.flight);
  bool returned = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        co_await joined.flight->wait();
        returned = true;
      },
      asio::detached);
  ioc.run();
  EXPECT_TRUE(returned);
}

}  // namespace
}  // namespace pullgate::cache
