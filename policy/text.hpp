#pragma once
// Text helpers for reasons and errors built from untrusted input (reports,
// signatures, policy documents).
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "registry/text.hpp"

namespace pullgate::policy {

// `text` as it may be quoted in a reason printed on one line (registry/text.hpp).
using registry::printable;

// ASCII case-insensitive equality (digests, CVE ids, header-like names).
inline bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

// Bytes as lowercase hexadecimal: digests, hashes and log ids in reasons.
inline std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out += digits[byte >> 4];
    out += digits[byte & 0xf];
  }
  return out;
}

}  // namespace pullgate::policy
