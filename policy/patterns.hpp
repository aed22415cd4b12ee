#pragma once
// Private to policy/: what the document parser checks about globs and digests, and
// how scopes are ranked. Kept apart from parsing so each can be tested directly.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pullgate::policy::detail {

// Which field a glob is written for: each allows its own characters.
enum class GlobKind { upstream, repository, tag };

inline constexpr std::size_t max_glob_length = 255;

// Empty when the glob is valid, else why not (one short phrase).
std::optional<std::string> glob_problem(std::string_view pattern, GlobKind kind);

// True when the pattern has no wildcard, i.e. it matches exactly one text.
bool is_literal(std::string_view pattern);

// Characters that are not '*' or '?': the specificity of a scope's pattern.
std::size_t literal_count(std::string_view pattern);

}  // namespace pullgate::policy::detail
