#include "policy/rfc3339.hpp"

#include "policy/policy.hpp"

namespace pullgate::policy {
namespace {

using namespace std::chrono;

// Reads exactly `width` decimal digits at `pos`.
std::optional<unsigned> digits(std::string_view text, std::size_t pos, std::size_t width) {
  if (pos + width > text.size()) return std::nullopt;
  unsigned value = 0;
  for (std::size_t i = pos; i < pos + width; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(text[i] - '0');
  }
  return value;
}

bool is_at(std::string_view text, std::size_t pos, char c) { return pos < text.size() && text[pos] == c; }

// Writes `value` as exactly `width` digits ending just before `end`.
void put_digits(char* end, unsigned value, int width) {
  for (int i = 0; i < width; ++i) {
    *--end = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

}  // namespace

std::optional<TimePoint> parse_rfc3339(std::string_view text) {
  // date-time = full-date "T" partial-time time-offset
  const auto y = digits(text, 0, 4);
  const auto m = digits(text, 5, 2);
  const auto d = digits(text, 8, 2);
  if (!y || !m || !d || !is_at(text, 4, '-') || !is_at(text, 7, '-')) return std::nullopt;
  if (!is_at(text, 10, 'T') && !is_at(text, 10, 't')) return std::nullopt;
  const auto hour = digits(text, 11, 2);
  const auto minute = digits(text, 14, 2);
  const auto second = digits(text, 17, 2);
  if (!hour || !minute || !second || !is_at(text, 13, ':') || !is_at(text, 16, ':')) return std::nullopt;
  const year_month_day date{year(static_cast<int>(*y)), month(*m), day(*d)};
  if (!date.ok()) return std::nullopt;
  // The whole years a TimePoint holds (it ends in April 2262), as documented. Within
  // them no offset or leap second can reach past what a TimePoint holds.
  if (*y < 1678 || *y > 2261) return std::nullopt;
  // 60 is a leap second; TimePoint has none, so it lands on the next minute's start.
  if (*hour > 23 || *minute > 59 || *second > 60) return std::nullopt;

  std::size_t pos = 19;
  nanoseconds fraction{0};
  if (is_at(text, pos, '.')) {
    ++pos;
    const std::size_t start = pos;
    std::int64_t scale = 100'000'000;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      fraction += nanoseconds((text[pos] - '0') * scale);  // digits past nanoseconds are dropped
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }

  minutes offset{0};
  if (is_at(text, pos, 'Z') || is_at(text, pos, 'z')) {
    ++pos;
  } else if (is_at(text, pos, '+') || is_at(text, pos, '-')) {
    const bool ahead = text[pos] == '+';
    const auto offset_hour = digits(text, pos + 1, 2);
    const auto offset_minute = digits(text, pos + 4, 2);
    if (!offset_hour || !offset_minute || !is_at(text, pos + 3, ':')) return std::nullopt;
    if (*offset_hour > 23 || *offset_minute > 59) return std::nullopt;
    offset = (ahead ? 1 : -1) * (hours(*offset_hour) + minutes(*offset_minute));
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;

  // A local time ahead of UTC by the offset: subtract it to get UTC.
  const sys_seconds utc = sys_days(date) + hours(*hour) + minutes(*minute) + seconds(*second) - offset;
  return time_point_cast<Clock::duration>(utc) + duration_cast<Clock::duration>(fraction);
}

std::size_t write_rfc3339(char* text, TimePoint time, Fraction fraction) {
  // In whole seconds first: TimePoint::min() in nanoseconds rounded down to its
  // midnight would no longer fit a TimePoint.
  const auto since_epoch = duration_cast<nanoseconds>(time.time_since_epoch());
  const sys_seconds whole{floor<seconds>(since_epoch)};
  const auto nanos = static_cast<unsigned>((since_epoch.count() % 1'000'000'000 + 1'000'000'000) % 1'000'000'000);
  const auto midnight = floor<days>(whole);
  const year_month_day date{midnight};
  const hh_mm_ss<seconds> clock{whole - midnight};
  // A TimePoint's years (1677 to 2262) always take four digits.
  put_digits(text + 4, static_cast<unsigned>(static_cast<int>(date.year())), 4);
  text[4] = '-';
  put_digits(text + 7, static_cast<unsigned>(date.month()), 2);
  text[7] = '-';
  put_digits(text + 10, static_cast<unsigned>(date.day()), 2);
  text[10] = 'T';
  put_digits(text + 13, static_cast<unsigned>(clock.hours().count()), 2);
  text[13] = ':';
  put_digits(text + 16, static_cast<unsigned>(clock.minutes().count()), 2);
  text[16] = ':';
  put_digits(text + 19, static_cast<unsigned>(clock.seconds().count()), 2);
  std::size_t length = 19;
  if (fraction == Fraction::milliseconds) {
    text[length++] = '.';
    put_digits(text + length + 3, nanos / 1'000'000, 3);
    length += 3;
  } else if (fraction == Fraction::trimmed && nanos != 0) {
    text[length++] = '.';
    put_digits(text + length + 9, nanos, 9);
    length += 9;
    while (text[length - 1] == '0') --length;
  }
  text[length++] = 'Z';
  return length;
}

void append_rfc3339(std::string& out, TimePoint time, Fraction fraction) {
  char text[max_rfc3339_length];
  out.append(text, write_rfc3339(text, time, fraction));
}

std::string format_rfc3339(TimePoint time, Fraction fraction) {
  std::string out;
  out.reserve(max_rfc3339_length);
  append_rfc3339(out, time, fraction);
  return out;
}

std::string format_ms(std::int64_t ms_since_epoch) {
  return format_rfc3339(time_from_ms(ms_since_epoch), Fraction::none);
}

}  // namespace pullgate::policy
