#pragma once
// The one wall clock. Every part that records a time or compares one with a stored
// time (tag TTLs, expiries, when a record was stored or checked) asks the WallClock it
// was given: main gives every part the same one, the system's; tests give theirs and
// move it instead of sleeping. Durations (how long a request took, a deadline) are
// measured on std::chrono::steady_clock, not here.
#include <chrono>
#include <cstdint>
#include <functional>

namespace pullgate {

using WallTime = std::chrono::system_clock::time_point;
using WallClock = std::function<WallTime()>;

inline WallClock system_wall_clock() {
  return [] { return std::chrono::system_clock::now(); };
}

// How records store times: milliseconds since the epoch.
inline std::int64_t ms_since_epoch(WallTime time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

}  // namespace pullgate
