#include "policy/patterns.hpp"
#include "policy/policy.hpp"

// The matcher and the character checks are registry/glob.cpp's (pins use them too).
namespace pullgate::policy::detail {

bool is_literal(std::string_view pattern) { return pattern.find_first_of("*?") == std::string_view::npos; }

std::size_t literal_count(std::string_view pattern) {
  std::size_t count = 0;
  for (const char c : pattern) {
    if (c != '*' && c != '?') ++count;
  }
  return count;
}

}  // namespace pullgate::policy::detail
