#include "proxy/telemetry/json_line.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "proxy/telemetry/utf8.hpp"

namespace pullgate::proxy {

void JsonLine::key(std::string_view k) {
  if (!first_) out_ += ',';
  first_ = false;
  string(k);
  out_ += ':';
}

void JsonLine::string(std::string_view s) { append_string(out_, s); }

void JsonLine::append_string(std::string& out_, std::string_view s) {
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
