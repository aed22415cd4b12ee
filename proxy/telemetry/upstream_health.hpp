#pragma once
// Each upstream's health as the mirror saw it, for the admin status page: requests,
// how many were trouble (no answer, 429, 5xx, the upstream's own 401/403) and 429s
// among them, when it last answered well, and its last trouble with when and what.
// The counters are in /metrics too (pullgate_upstream_requests_total); the last
// error's text and time are kept only here. Fed on every upstream request (a cache
// miss, so a lock here is nothing next to the round trip it follows).
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace pullgate::proxy {

class UpstreamHealth {
 public:
  struct Entry {
    std::string upstream;
    std::uint64_t requests = 0;
    std::uint64_t troubles = 0;
    std::uint64_t rate_limited = 0;  // 429s
    std::int64_t last_ok_ms = 0;     // 0: never
    std::int64_t last_trouble_ms = 0;
    unsigned last_trouble_status = 0;  // 0: no answer
    std::string last_trouble;          // one line
  };

  // Upstream trouble as the mirror treats it (proxy/mirror/upstream_failure.hpp): no
  // answer (0), 401/403, 429, 5xx. 404 and the rest are answers.
  static bool is_trouble(unsigned status) {
    return status == 0 || status == 401 || status == 403 || status == 429 || status >= 500;
  }

  // status: the upstream's HTTP status, 0 when it did not answer; error: why (may be
  // empty); now_ms: the wall clock, ms since the epoch.
  void note(std::string_view upstream, unsigned status, std::string_view error, std::int64_t now_ms);
  // By upstream name.
  std::vector<Entry> entries() const;

 private:
  // Names come from the config (the mirror asks only configured upstreams), so the
  // map stays as small as the config; longer texts are cut.
  static constexpr std::size_t max_error_chars = 300;
  mutable std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace pullgate::proxy
