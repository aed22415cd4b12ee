#include "proxy/json_line.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace pullgate::proxy {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
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

}  // namespace

void JsonLine::key(std::string_view k) {
  if (!first_) out_ += ',';
  first_ = false;
  string(k);
  out_ += ':';
}

void JsonLine::string(std::string_view s) {
  out_ += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    // Plain printable ASCII (nearly everything) is copied a run at a time.
    std::size_t run = i;
    while (run < s.size()) {
      auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') break;
      ++run;
    }
    out_.append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out_ += '\\';
      out_ += static_cast<char>(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out_ += esc;
      ++i;
    } else if (auto n = utf8_sequence(s, i)) {
      out_.append(s.substr(i, n));
      i += n;
    } else {
      out_ += "\\ufffd";
      ++i;
    }
  }
  out_ += '"';
}

JsonLine& JsonLine::field(std::string_view k, std::string_view value) {
  key(k);
  string(value);
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, std::int64_t value) {
  key(k);
  char text[24];
  auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  out_.append(text, end);
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, std::uint64_t value) {
  key(k);
  char text[24];
  auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  out_.append(text, end);
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    out_ += "null";
    return *this;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", value);
  out_ += text;
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, bool value) {
  key(k);
  out_ += value ? "true" : "false";
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, const std::vector<std::string>& values) {
  key(k);
  out_ += '[';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out_ += ',';
    string(values[i]);
  }
  out_ += ']';
  return *this;
}

JsonLine& JsonLine::raw(std::string_view fields) {
  if (fields.empty()) return *this;
  if (!first_) out_ += ',';
  first_ = false;
  out_.append(fields);
  return *this;
}

std::string JsonLine::finish() {
  out_ += "}\n";
  first_ = true;
  std::string line = std::move(out_);
  out_.clear();
  out_ += '{';
  return line;
}

}  // namespace pullgate::proxy
