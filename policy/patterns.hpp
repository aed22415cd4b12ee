#pragma once
// Private to policy/: what the document parser checks about globs and digests, and
// how scopes are ranked. Kept apart from parsing so each can be tested directly.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "registry/glob.hpp"

namespace pullgate::policy::detail {

// The character checks are registry/glob.hpp's (pins use them too).
using registry::glob_problem;
using registry::GlobKind;
using registry::max_glob_length;

// True when the pattern has no wildcard, i.e. it matches exactly one text.
bool is_literal(std::string_view pattern);

// Characters that are not '*' or '?': the specificity of a scope's pattern.
std::size_t literal_count(std::string_view pattern);

}  // namespace pullgate::policy::detail
