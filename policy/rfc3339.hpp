#pragma once
// Private to policy/: RFC 3339 times, parsed and printed by hand (no locale, no
// time zone database), so a policy reads the same on every machine.
#include <optional>
#include <string>
#include <string_view>

#include "policy/policy.hpp"

namespace pullgate::policy::detail {

// "2026-12-01T00:00:00Z", "2026-12-01T01:30:00.25+01:30", ... Empty when the text is
// not an RFC 3339 date-time or lies outside what TimePoint can hold.
std::optional<TimePoint> parse_rfc3339(std::string_view text);

// UTC, whole seconds unless the time has a fraction: "2026-12-01T00:00:00Z".
std::string format_rfc3339(TimePoint time);

}  // namespace pullgate::policy::detail
