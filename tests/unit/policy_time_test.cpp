#include <gtest/gtest.h>

#include <limits>

#include "policy/policy.hpp"
#include "policy/rfc3339.hpp"

namespace pullgate::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

std::int64_t epoch_seconds(const std::optional<TimePoint>& time) {
  return std::chrono::duration_cast<seconds>(time->time_since_epoch()).count();
}

TEST(Rfc3339, ParsesUtcAndOffsets) {
  ASSERT_TRUE(parse_rfc3339("1970-01-01T00:00:00Z"));
  EXPECT_EQ(epoch_seconds(parse_rfc3339("1970-01-01T00:00:00Z")), 0);
  EXPECT_EQ(epoch_seconds(parse_rfc3339("2026-12-01T00:00:00Z")), 1796083200);
  EXPECT_EQ(epoch_seconds(parse_rfc3339("2026-12-01T01:30:00+01:30")), 1796083200);
  EXPECT_EQ(epoch_seconds(parse_rfc3339("2026-11-30T19:00:00-05:00")), 1796083200);
  EXPECT_EQ(epoch_seconds(parse_rfc3339("2026-12-01t00:00:00z")), 1796083200);
  EXPECT_EQ(epoch_seconds(parse_rfc3339("2024-02-29T12:00:00Z")), 1709208000);
  EXPECT_EQ(epoch_seconds(parse_rfc3339("1969-12-31T23:59:59Z")), -1);
}

TEST(Rfc3339, FractionalSeconds) {
  const auto time = parse_rfc3339("2026-12-01T00:00:00.25Z");
  ASSERT_TRUE(time);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(time->time_since_epoch()).count(), 1796083200250);
  EXPECT_TRUE(parse_rfc3339("2026-12-01T00:00:00.123456789123Z"));
  EXPECT_FALSE(parse_rfc3339("2026-12-01T00:00:00.Z"));
}

TEST(Rfc3339, RefusesWhatIsNotRfc3339) {
  const char* cases[] = {
      "",
      "2026-12-01",
      "2026-12-01T00:00:00",          // no offset
      "2026-12-01 00:00:00Z",         // space separator
      "2026-13-01T00:00:00Z",
      "2026-00-01T00:00:00Z",
      "2026-02-29T00:00:00Z",         // not a leap year
      "2100-02-29T00:00:00Z",         // not a leap year either
      "2026-04-31T00:00:00Z",
      "2026-12-01T24:00:00Z",
      "2026-12-01T00:60:00Z",
      "2026-12-01T00:00:61Z",
      "2026-12-01T00:00:00+24:00",
      "2026-12-01T00:00:00+0100",
      "2026-12-01T00:00:00Z ",
      "26-12-01T00:00:00Z",
      "+2026-12-01T00:00:00Z",
      "2026-1a-01T00:00:00Z",
      "9999-12-31T23:59:59Z",         // beyond what a nanosecond TimePoint holds
      "0001-01-01T00:00:00Z",
      "2262-03-01T00:00:00Z",         // representable, but past the documented 2261
      "1677-10-01T00:00:00Z",
  };
  for (const char* text : cases) EXPECT_FALSE(parse_rfc3339(text)) << text;
  EXPECT_TRUE(parse_rfc3339("2261-12-31T23:59:59Z"));
  EXPECT_TRUE(parse_rfc3339("1678-01-01T00:00:00Z"));
}

TEST(TimeFromMs, ClampsWhatATimePointCannotHold) {
  EXPECT_EQ(time_from_ms(1796083200000), TimePoint(seconds(1796083200)));
  EXPECT_EQ(time_from_ms(-1000), TimePoint(seconds(-1)));
  // 100000 days ahead: past 2262, so "never" rather than a wrap into the past.
  const std::int64_t far = 1796083200000 + 100000LL * 86'400'000;
  EXPECT_EQ(time_from_ms(far), TimePoint::max());
  EXPECT_EQ(time_from_ms(std::numeric_limits<std::int64_t>::max()), TimePoint::max());
  EXPECT_EQ(time_from_ms(std::numeric_limits<std::int64_t>::min()), TimePoint::min());
}

TEST(Rfc3339, FormatsUtc) {
  EXPECT_EQ(format_rfc3339(TimePoint(seconds(1796083200))), "2026-12-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(TimePoint(seconds(-1))), "1969-12-31T23:59:59Z");
  EXPECT_EQ(format_rfc3339(*parse_rfc3339("2026-12-01T00:00:00.25+00:00")), "2026-12-01T00:00:00.25Z");
  const auto round_trip = parse_rfc3339(format_rfc3339(TimePoint(seconds(1709208000))));
  ASSERT_TRUE(round_trip);
  EXPECT_EQ(epoch_seconds(round_trip), 1709208000);
}

// One formatter, three shapes; each rounds the fraction down, before 1970 too.
TEST(Rfc3339, FormatsEachFractionShape) {
  const TimePoint t = TimePoint(seconds(1796083200)) + nanoseconds(250'400'000);
  EXPECT_EQ(format_rfc3339(t, Fraction::none), "2026-12-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(t, Fraction::milliseconds), "2026-12-01T00:00:00.250Z");
  EXPECT_EQ(format_rfc3339(t, Fraction::trimmed), "2026-12-01T00:00:00.2504Z");
  EXPECT_EQ(format_rfc3339(TimePoint(seconds(1796083200)), Fraction::milliseconds), "2026-12-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(TimePoint(nanoseconds(-1)), Fraction::milliseconds), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339(TimePoint(nanoseconds(-1)), Fraction::none), "1969-12-31T23:59:59Z");
  EXPECT_EQ(format_rfc3339(TimePoint(nanoseconds(-1))), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(format_rfc3339(*parse_rfc3339("2024-02-29T23:59:59.999Z"), Fraction::milliseconds),
            "2024-02-29T23:59:59.999Z");
  // The ends of what a TimePoint holds.
  EXPECT_EQ(format_rfc3339(TimePoint::max()), "2262-04-11T23:47:16.854775807Z");
  EXPECT_EQ(format_rfc3339(TimePoint::min()), "1677-09-21T00:12:43.145224192Z");

  std::string line = "{\"time\":\"";
  line.reserve(64);
  const auto capacity = line.capacity();
  append_rfc3339(line, t, Fraction::milliseconds);
  EXPECT_EQ(line, "{\"time\":\"2026-12-01T00:00:00.250Z");
  EXPECT_EQ(line.capacity(), capacity);
  char text[max_rfc3339_length];
  EXPECT_EQ(std::string(text, write_rfc3339(text, TimePoint::min() + nanoseconds(1), Fraction::trimmed)),
            "1677-09-21T00:12:43.145224193Z");
}

// Stored records' times are milliseconds that may lie beyond what a TimePoint holds
// (a fleet store's record from far ahead): shown clamped, never wrapped around.
TEST(FormatMs, WholeSecondsClampedToWhatATimePointHolds) {
  EXPECT_EQ(format_ms(1796083200999), "2026-12-01T00:00:00Z");
  EXPECT_EQ(format_ms(-1), "1969-12-31T23:59:59Z");
  EXPECT_EQ(format_ms(std::numeric_limits<std::int64_t>::max()), "2262-04-11T23:47:16Z");
  EXPECT_EQ(format_ms(std::numeric_limits<std::int64_t>::min()), "1677-09-21T00:12:43Z");
  EXPECT_EQ(format_ms(1796083200000 + 1'000'000LL * 86'400'000), "2262-04-11T23:47:16Z");
}

}  // namespace
}  // namespace pullgate::policy
