#include "registry/retry_after.hpp"

#include <algorithm>
#include <ctime>
#include <string>

namespace pullgate::registry {

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // More digits than an hour has: the cap, without overflowing.
    if (value.size() > 9) return kMaxRetryAfter;
    return std::min(std::chrono::seconds(std::stoll(std::string(value))), kMaxRetryAfter);
  }
  // IMF-fixdate, the form RFC 9110 says senders use: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  std::string text(value);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (at <= now) return std::nullopt;
  auto wait = std::chrono::ceil<std::chrono::seconds>(at - now);
  return std::min(wait, kMaxRetryAfter);
}

void RateLimitHold::hold(Clock::time_point now, std::chrono::seconds wait) {
  const std::int64_t until = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 (now + wait).time_since_epoch()).count();
  // The later of two concurrent holds wins.
  std::int64_t seen = until_ns_.load();
  while (seen < until && !until_ns_.compare_exchange_weak(seen, until)) {
  }
}

std::optional<std::chrono::seconds> RateLimitHold::left(Clock::time_point now) const {
  const std::int64_t until = until_ns_.load();
  const std::int64_t at = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  if (until == 0 || at >= until) return std::nullopt;
  return std::chrono::ceil<std::chrono::seconds>(std::chrono::nanoseconds(until - at));
}

}  // namespace pullgate::registry
