#include "registry/range.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace pullgate::registry {
namespace {

using Kind = RangeRequest::Kind;

struct RangeCase {
  std::string header;
  std::uint64_t size;
  Kind kind;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
};

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::none: return "none";
    case Kind::satisfiable: return "satisfiable";
    case Kind::unsatisfiable: return "unsatisfiable";
    case Kind::invalid: return "invalid";
  }
  return "?";
}

TEST(Range, Table) {
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  const RangeCase cases[] = {
      // Absent or ignored.
      {"", 100, Kind::none},
      {"   ", 100, Kind::none},
      {"items=0-5", 100, Kind::none},
      {"bytes=0-1,5-6", 100, Kind::none},
      {"bytes=0-1, 5-6", 100, Kind::none},
      {"bytes=0-1,junk", 100, Kind::none},
      // Satisfiable forms.
      {"bytes=0-", 100, Kind::satisfiable, 0, 99},
      {"bytes=10-", 100, Kind::satisfiable, 10, 99},
      {"bytes=0-0", 100, Kind::satisfiable, 0, 0},
      {"bytes=10-19", 100, Kind::satisfiable, 10, 19},
      {"bytes=99-99", 100, Kind::satisfiable, 99, 99},
      {"bytes=90-1000", 100, Kind::satisfiable, 90, 99},   // clipped
      {"bytes=0-18446744073709551615", 100, Kind::satisfiable, 0, 99},
      {"bytes=-10", 100, Kind::satisfiable, 90, 99},
      {"bytes=-100", 100, Kind::satisfiable, 0, 99},
      {"bytes=-1000", 100, Kind::satisfiable, 0, 99},
      {"bytes=-1", 1, Kind::satisfiable, 0, 0},
      // Whitespace and case the RFC allows.
      {"  bytes=5-9  ", 100, Kind::satisfiable, 5, 9},
      {"Bytes=5-9", 100, Kind::satisfiable, 5, 9},
      {"BYTES=5-9", 100, Kind::satisfiable, 5, 9},
      {"bytes= 5-9", 100, Kind::satisfiable, 5, 9},
      {"bytes=5-9 ,", 100, Kind::satisfiable, 5, 9},      // empty list elements
      {"bytes=,5-9", 100, Kind::satisfiable, 5, 9},
      {"bytes=\t5-9", 100, Kind::satisfiable, 5, 9},
      {"bytes=00005-0009", 100, Kind::satisfiable, 5, 9},
      // Unsatisfiable.
      {"bytes=100-", 100, Kind::unsatisfiable},
      {"bytes=100-200", 100, Kind::unsatisfiable},
      {"bytes=-0", 100, Kind::unsatisfiable},
      {"bytes=0-", 0, Kind::unsatisfiable},
      {"bytes=0-0", 0, Kind::unsatisfiable},
      {"bytes=-0", 0, Kind::unsatisfiable},
      {"bytes=18446744073709551615-", max, Kind::unsatisfiable},
      // Size 0 with a suffix: nothing to name, serve the (empty) whole.
      {"bytes=-5", 0, Kind::none},
      // Invalid.
      {"bytes", 100, Kind::invalid},
      {"bytes=", 100, Kind::invalid},
      {"bytes=,", 100, Kind::invalid},
      {"bytes=-", 100, Kind::invalid},
      {"bytes=5", 100, Kind::invalid},
      {"bytes=9-5", 100, Kind::invalid},
      {"bytes=a-b", 100, Kind::invalid},
      {"bytes=5-b", 100, Kind::invalid},
      {"bytes=+5-9", 100, Kind::invalid},
      {"bytes=5 - 9", 100, Kind::invalid},
      {"bytes=5--9", 100, Kind::invalid},
      {"bytes=-5-9", 100, Kind::invalid},
      {"bytes=-+5", 100, Kind::invalid},
      {"bytes=0x10-", 100, Kind::invalid},
      {"bytes=18446744073709551616-", 100, Kind::invalid},   // 2^64
      {"bytes=0-18446744073709551616", 100, Kind::invalid},
      {"bytes=-18446744073709551616", 100, Kind::invalid},
      {"bytes=" + std::string(5000, '9') + "-", 100, Kind::invalid},
      {"=0-5", 100, Kind::invalid},
      {"by tes=0-5", 100, Kind::invalid},
      {"bytes=5\xc3\xa9-9", 100, Kind::invalid},
      {std::string("bytes=5\0-9", 10), 100, Kind::invalid},
      {"garbage", 100, Kind::invalid},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("header '" + c.header.substr(0, 60) + "' size " + std::to_string(c.size));
    const auto request = parse_range(c.header, c.size);
    EXPECT_EQ(kind_name(request.kind), std::string(kind_name(c.kind)));
    if (c.kind == Kind::satisfiable && request.kind == Kind::satisfiable) {
      EXPECT_EQ(request.range.first, c.first);
      EXPECT_EQ(request.range.last, c.last);
      EXPECT_LE(request.range.last, c.size - 1);
      EXPECT_EQ(request.range.length(), c.last - c.first + 1);
    }
  }
}

TEST(Range, HugeSizes) {
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  const auto tail = parse_range("bytes=-10", max);
  ASSERT_EQ(tail.kind, Kind::satisfiable);
  EXPECT_EQ(tail.range.first, max - 10);
  EXPECT_EQ(tail.range.last, max - 1);

  const auto open = parse_range("bytes=5-", max);
  ASSERT_EQ(open.kind, Kind::satisfiable);
  EXPECT_EQ(open.range.last, max - 1);
}

TEST(ContentRange, Format) {
  EXPECT_EQ(content_range({0, 99}, 100), "bytes 0-99/100");
  EXPECT_EQ(content_range({5, 5}, 6), "bytes 5-5/6");
  EXPECT_EQ(content_range({0, 18446744073709551614ull}, 18446744073709551615ull),
            "bytes 0-18446744073709551614/18446744073709551615");
}

}  // namespace
}  // namespace pullgate::registry
