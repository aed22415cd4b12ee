#include "registry/retry_after.hpp"

#include <gtest/gtest.h>

namespace pullgate::registry {
namespace {

using std::chrono::seconds;

const auto kNow = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(RetryAfter, DeltaSecondsAndDates) {
  EXPECT_EQ(parse_retry_after("120", kNow), seconds(120));
  EXPECT_EQ(parse_retry_after(" 7 ", kNow), seconds(7));
  EXPECT_EQ(parse_retry_after("0", kNow), seconds(0));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", kNow), seconds(60));
}

TEST(RetryAfter, CappedAndRefused) {
  EXPECT_EQ(parse_retry_after("86400", kNow), kMaxRetryAfter);
  EXPECT_EQ(parse_retry_after("99999999999999999999999", kNow), kMaxRetryAfter);
  EXPECT_EQ(parse_retry_after("Sun, 13 Nov 1994 08:49:37 GMT", kNow), kMaxRetryAfter);
  for (const char* bad : {"", "-5", "1.5", "soon", "Sun, 06 Nov 1994 08:49:36 GMT",
                          "Sun, 06 Nov 1994 08:49:37 GMT trailing", "120s"}) {
    EXPECT_EQ(parse_retry_after(bad, kNow), std::nullopt) << bad;
  }
}

TEST(RateLimitHold, HoldsUntilTheTimeNamedAndTheLaterHoldWins) {
  RateLimitHold hold;
  const RateLimitHold::Clock::time_point t0{std::chrono::hours(1)};
  EXPECT_EQ(hold.left(t0), std::nullopt);
  hold.hold(t0, seconds(30));
  EXPECT_EQ(hold.left(t0), seconds(30));
  EXPECT_EQ(hold.left(t0 + std::chrono::milliseconds(100)), seconds(30));  // rounded up
  EXPECT_EQ(hold.left(t0 + seconds(29)), seconds(1));
  EXPECT_EQ(hold.left(t0 + seconds(30)), std::nullopt);
  hold.hold(t0, seconds(60));
  hold.hold(t0, seconds(10));  // an earlier end does not shorten it
  EXPECT_EQ(hold.left(t0 + seconds(40)), seconds(20));
}

}  // namespace
}  // namespace pullgate::registry
