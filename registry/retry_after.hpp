#pragma once
// An upstream's 429 with Retry-After, remembered: until the time it names, requests
// to that upstream are answered with the 429 (and the time left) instead of being
// sent. A rate-limited registry (Docker Hub, GHCR) counts every request, refused ones
// too, so a mirror that keeps asking during the window only makes the window longer;
// meanwhile the mirror serves what it has cached (stale-if-error).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pullgate::registry {

// The longest hold taken from an upstream: asking once an hour is not hammering, and a
// mirror that stopped asking for longer (a wrong or hostile Retry-After) would go
// unnoticed for too long.
inline constexpr std::chrono::seconds kMaxRetryAfter{3600};

// Retry-After's delta-seconds or HTTP-date (RFC 9110 10.2.3), as a wait from `now`,
// at most kMaxRetryAfter; nullopt for anything else, a date in the past included.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// Thread-safe: every session of the mirror asks it before a request to the upstream.
class RateLimitHold {
 public:
  using Clock = std::chrono::steady_clock;
  void hold(Clock::time_point now, std::chrono::seconds wait);
  // The time left, rounded up to whole seconds; nullopt when not held.
  std::optional<std::chrono::seconds> left(Clock::time_point now) const;

 private:
  std::atomic<std::int64_t> until_ns_{0};  // steady clock; 0: never held
};

}  // namespace pullgate::registry
