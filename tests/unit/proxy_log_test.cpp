// The time of log and audit lines: RFC 3339, UTC, exactly milliseconds.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "proxy/telemetry/log.hpp"

namespace pullgate::proxy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;

std::string stamp(TimePoint at) {
  std::string out = "x";
  append_utc_timestamp(out, at);
  return out;
}

// Each thread formats a second once and then only the milliseconds: crossing a
// second, a day, a year, and going back must still give each time exactly.
TEST(UtcTimestamp, EveryCallGivesItsOwnTime) {
  const TimePoint eve = TimePoint(seconds(1798761599));  // 2026-12-31T23:59:59Z
  EXPECT_EQ(stamp(eve), "x2026-12-31T23:59:59.000Z");
  EXPECT_EQ(stamp(eve + milliseconds(7)), "x2026-12-31T23:59:59.007Z");
  EXPECT_EQ(stamp(eve + milliseconds(999) + std::chrono::microseconds(999)), "x2026-12-31T23:59:59.999Z");
  EXPECT_EQ(stamp(eve + milliseconds(1000)), "x2027-01-01T00:00:00.000Z");
  EXPECT_EQ(stamp(eve + milliseconds(1042)), "x2027-01-01T00:00:00.042Z");
  EXPECT_EQ(stamp(eve + milliseconds(10)), "x2026-12-31T23:59:59.010Z");
  EXPECT_EQ(stamp(TimePoint(seconds(1709208000)) + milliseconds(120)), "x2024-02-29T12:00:00.120Z");
  EXPECT_EQ(utc_timestamp().size(), 24u);
}

}  // namespace
}  // namespace pullgate::proxy
