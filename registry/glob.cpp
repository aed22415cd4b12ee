#include "registry/glob.hpp"

#include <algorithm>
#include <vector>

namespace pullgate::registry {
namespace {

enum class Token : unsigned char { literal, any_char, star, double_star };

struct Step {
  Token token;
  char literal;
};

std::vector<Step> tokenize(std::string_view pattern) {
  std::vector<Step> steps;
  steps.reserve(pattern.size());
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '*') {
      if (i + 1 < pattern.size() && pattern[i + 1] == '*') {
        steps.push_back({Token::double_star, 0});
        ++i;
      } else {
        steps.push_back({Token::star, 0});
      }
    } else if (c == '?') {
      steps.push_back({Token::any_char, 0});
    } else {
      steps.push_back({Token::literal, c});
    }
  }
  return steps;
}

// A star may match nothing, so reaching it also reaches the step after it.
void close_over_stars(const std::vector<Step>& steps, std::vector<char>& active) {
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (active[i] && (steps[i].token == Token::star || steps[i].token == Token::double_star)) active[i + 1] = 1;
  }
}

}  // namespace

// Simulates the pattern as a set of positions (an NFA) over the text, so the cost is
// at most pattern length times text length whatever the pattern: a backtracking
// matcher goes exponential on patterns like "*a*a*a*a*b".
bool glob_match(std::string_view pattern, std::string_view text) {
  const std::vector<Step> steps = tokenize(pattern);
  std::vector<char> active(steps.size() + 1, 0);
  std::vector<char> next(steps.size() + 1, 0);
  active[0] = 1;
  close_over_stars(steps, active);
  for (const char c : text) {
    std::fill(next.begin(), next.end(), 0);
    bool any = false;
    for (std::size_t i = 0; i < steps.size(); ++i) {
      if (!active[i]) continue;
      const Step& step = steps[i];
      switch (step.token) {
        case Token::literal:
          if (step.literal == c) next[i + 1] = any = true;
          break;
        case Token::any_char:
          if (c != '/') next[i + 1] = any = true;
          break;
        case Token::star:
          if (c != '/') next[i] = any = true;
          break;
        case Token::double_star:
          next[i] = any = true;
          break;
      }
    }
    if (!any) return false;
    close_over_stars(steps, next);
    active.swap(next);
  }
  return active[steps.size()] != 0;
}

namespace {


bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

bool allowed(char c, GlobKind kind) {
  if (c == '*' || c == '?') return true;
  switch (kind) {
    case GlobKind::repository:  // OCI repository names: [a-z0-9] separated by . _ - /
      return is_lower_alnum(c) || c == '.' || c == '_' || c == '-' || c == '/';
    case GlobKind::upstream:  // a host, optionally with a port
      return is_lower_alnum(c) || c == '.' || c == '_' || c == '-' || c == '/' || c == ':';
    case GlobKind::tag:  // OCI tags: [A-Za-z0-9_.-]
      return is_alnum(c) || c == '.' || c == '_' || c == '-';
  }
  return false;
}

std::string describe(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x21 && byte < 0x7f) return std::string("'") + c + "'";
  static constexpr char hex[] = "0123456789abcdef";
  return std::string("byte 0x") + hex[byte >> 4] + hex[byte & 0xf];
}

}  // namespace

std::optional<std::string> glob_problem(std::string_view pattern, GlobKind kind) {
  if (pattern.empty()) return "must not be empty";
  if (pattern.size() > max_glob_length) {
    return "is " + std::to_string(pattern.size()) + " characters long, at most " + std::to_string(max_glob_length) +
           " are allowed";
  }
  for (const char c : pattern) {
    if (!allowed(c, kind)) {
      const char* charset = kind == GlobKind::tag ? "A-Z a-z 0-9 . _ -"
                            : kind == GlobKind::upstream ? "a-z 0-9 . _ - / :"
                                                         : "a-z 0-9 . _ - /";
      return "contains " + describe(c) + "; allowed are " + charset + " and the wildcards * and ?";
    }
  }
  return std::nullopt;
}

}  // namespace pullgate::registry
