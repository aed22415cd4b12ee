#pragma once
// What the fuzz targets share: an invariant check that stops the run with a message
// (libFuzzer keeps the input that broke it), and the split of one input into the
// several values a parser takes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace pullgate::fuzz {

// abort(), not assert(): the targets are built without NDEBUG games, and an abort is
// what libFuzzer reports as a crash with the input saved.
inline void require(bool holds, std::string_view what, std::string_view detail = {}) {
  if (holds) return;
  std::fprintf(stderr, "invariant broken: %.*s%s%.*s\n", static_cast<int>(what.size()), what.data(),
               detail.empty() ? "" : ": ", static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The input cut at its first `count - 1` newlines (a header value has none, so the
// parts are what the parser could get); missing parts are empty.
inline std::vector<std::string_view> fields(std::string_view text, std::size_t count) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < count) {
    auto newline = text.find('\n');
    if (newline == std::string_view::npos) break;
    out.push_back(text.substr(0, newline));
    text.remove_prefix(newline + 1);
  }
  out.push_back(text);
  out.resize(count);
  return out;
}

inline bool has_control(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

inline bool one_line(std::string_view text) { return !text.empty() && text.find('\n') == std::string_view::npos; }

}  // namespace pullgate::fuzz
