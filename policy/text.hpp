#pragma once
// Text helpers for reasons and errors built from untrusted input (reports,
// signatures, policy documents).
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace pullgate::policy {

// `text` as it may be quoted in a reason printed on one line: control characters
// become '?', and text longer than `max_length` is cut and ends in "...".
inline std::string printable(std::string_view text, std::size_t max_length) {
  std::string out(text.substr(0, max_length));
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = '?';
  }
  if (text.size() > max_length) out += "...";
  return out;
}

// ASCII case-insensitive equality (digests, CVE ids, header-like names).
inline bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

}  // namespace pullgate::policy
