#pragma once
// Shell-style globs on names, shared by the policy's patterns (policy/) and the
// cache's pins (cache/pins.hpp): one matcher, one set of character checks.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pullgate::registry {

// '*' matches any run of characters except '/', '**' any run including '/', '?' one
// character other than '/'. Everything else is literal.
bool glob_match(std::string_view pattern, std::string_view text);

// Which field a glob is written for: each allows its own characters.
enum class GlobKind { upstream, repository, tag };

inline constexpr std::size_t max_glob_length = 255;

// Empty when the glob is valid, else why not (one short phrase).
std::optional<std::string> glob_problem(std::string_view pattern, GlobKind kind);

}  // namespace pullgate::registry
