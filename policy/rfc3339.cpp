#include "policy/rfc3339.hpp"

#include <cstdint>
#include <limits>

namespace pullgate::policy::detail {
namespace {

// Howard Hinnant's days_from_civil / civil_from_days: proleptic Gregorian calendar.
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

Civil civil_from_days(std::int64_t days) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned mp = (5 * day_of_year + 2) / 153;
  const unsigned day = day_of_year - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2), month, day};
}

bool is_leap(std::int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

unsigned days_in_month(std::int64_t year, unsigned month) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

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

}  // namespace

std::optional<TimePoint> parse_rfc3339(std::string_view text) {
  // date-time = full-date "T" partial-time time-offset
  const auto year = digits(text, 0, 4);
  const auto month = digits(text, 5, 2);
  const auto day = digits(text, 8, 2);
  if (!year || !month || !day || !is_at(text, 4, '-') || !is_at(text, 7, '-')) return std::nullopt;
  if (!is_at(text, 10, 'T') && !is_at(text, 10, 't')) return std::nullopt;
  const auto hour = digits(text, 11, 2);
  const auto minute = digits(text, 14, 2);
  const auto second = digits(text, 17, 2);
  if (!hour || !minute || !second || !is_at(text, 13, ':') || !is_at(text, 16, ':')) return std::nullopt;
  if (*month < 1 || *month > 12 || *day < 1 || *day > days_in_month(*year, *month)) return std::nullopt;
  // The whole years a TimePoint holds (it ends in April 2262), as documented.
  if (*year < 1678 || *year > 2261) return std::nullopt;
  // 60 is a leap second; TimePoint has none, so it lands on the next minute's start.
  if (*hour > 23 || *minute > 59 || *second > 60) return std::nullopt;

  std::size_t pos = 19;
  std::int64_t nanoseconds = 0;
  if (is_at(text, pos, '.')) {
    ++pos;
    const std::size_t start = pos;
    std::int64_t scale = 100'000'000;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      nanoseconds += (text[pos] - '0') * scale;  // digits past nanoseconds are dropped
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }

  std::int64_t offset_seconds = 0;
  if (is_at(text, pos, 'Z') || is_at(text, pos, 'z')) {
    ++pos;
  } else if (is_at(text, pos, '+') || is_at(text, pos, '-')) {
    const bool ahead = text[pos] == '+';
    const auto offset_hour = digits(text, pos + 1, 2);
    const auto offset_minute = digits(text, pos + 4, 2);
    if (!offset_hour || !offset_minute || !is_at(text, pos + 3, ':')) return std::nullopt;
    if (*offset_hour > 23 || *offset_minute > 59) return std::nullopt;
    offset_seconds = (ahead ? 1 : -1) * static_cast<std::int64_t>(*offset_hour * 3600 + *offset_minute * 60);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;

  // A local time ahead of UTC by the offset: subtract it to get UTC.
  const std::int64_t seconds = days_from_civil(*year, *month, *day) * 86400 + *hour * 3600 + *minute * 60 +
                               *second - offset_seconds;
  using Seconds = std::chrono::seconds;
  const auto limit = std::chrono::duration_cast<Seconds>(Clock::duration::max()).count() - 1;
  if (seconds > limit || seconds < -limit) return std::nullopt;
  const auto since_epoch = std::chrono::duration_cast<Clock::duration>(Seconds(seconds)) +
                           std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(nanoseconds));
  return TimePoint(since_epoch);
}

std::string format_rfc3339(TimePoint time) {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
  std::int64_t seconds = since_epoch / 1'000'000'000;
  std::int64_t fraction = since_epoch % 1'000'000'000;
  if (fraction < 0) {
    fraction += 1'000'000'000;
    --seconds;
  }
  std::int64_t days = seconds / 86400;
  std::int64_t in_day = seconds % 86400;
  if (in_day < 0) {
    in_day += 86400;
    --days;
  }
  const Civil date = civil_from_days(days);
  auto two = [](std::int64_t value) {
    return std::string(1, static_cast<char>('0' + value / 10)) + static_cast<char>('0' + value % 10);
  };
  std::string year = std::to_string(date.year);
  if (year.size() < 4) year.insert(0, 4 - year.size(), '0');
  std::string out = year + "-" + two(date.month) + "-" + two(date.day) + "T" + two(in_day / 3600) + ":" +
                    two(in_day / 60 % 60) + ":" + two(in_day % 60);
  if (fraction != 0) {
    std::string digits_text = std::to_string(fraction);
    digits_text.insert(0, 9 - digits_text.size(), '0');
    while (digits_text.back() == '0') digits_text.pop_back();
    out += "." + digits_text;
  }
  return out + "Z";
}

}  // namespace pullgate::policy::detail
