#pragma once
// RFC 3339 times: the one parser and the one formatter of pullgate (policies, reports,
// stored records, logs, the audit line), on <chrono>'s calendar types. No locale and
// no time zone database, so a time reads and prints the same on every machine.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pullgate::policy {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// "2026-12-01T00:00:00Z", "2026-12-01T01:30:00.25+01:30", ... Empty when the text is
// not an RFC 3339 date-time or its year is outside 1678 to 2261 (what TimePoint holds
// in whole years).
std::optional<TimePoint> parse_rfc3339(std::string_view text);

// Always UTC ("Z"); the fraction of a second, rounded down:
enum class Fraction {
  none,          // "2026-12-01T00:00:00Z": stored records' times
  milliseconds,  // "2026-12-01T00:00:00.250Z": log and audit lines, fixed width, so
                 // comparing the strings compares the times
  trimmed,       // "2026-12-01T00:00:00.25Z", "...:00Z" when whole: policy times
};
constexpr std::size_t max_rfc3339_length = 30;  // "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"

// Writes to `text` (room for max_rfc3339_length) and returns the length.
std::size_t write_rfc3339(char* text, TimePoint time, Fraction fraction);
// Appends to `out`; no allocation once `out` has room.
void append_rfc3339(std::string& out, TimePoint time, Fraction fraction);
std::string format_rfc3339(TimePoint time, Fraction fraction = Fraction::trimmed);

// A stored time (milliseconds since the epoch) in whole seconds, as the CLI, the admin
// API and explain show records ("2026-12-01T00:00:00Z"); clamped as time_from_ms.
std::string format_ms(std::int64_t ms_since_epoch);

}  // namespace pullgate::policy
