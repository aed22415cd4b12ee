#pragma once
// UTF-8 validation for text that leaves the process (log lines, metrics): both
// formats must stay valid whatever bytes a request carried.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pullgate::proxy {

// Length of the valid UTF-8 sequence starting at s[i] (lead byte >= 0x80), or 0 for
// a stray continuation byte, an overlong form, a surrogate or a truncated sequence.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  std::size_t n;
  std::uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

}  // namespace pullgate::proxy
