#pragma once
// One JSON object on one line, written field by field into a string: the log and
// audit writers run on every request, where building a DOM would cost more than
// the rest of a warm request. Strings are escaped; invalid UTF-8 becomes U+FFFD.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pullgate::proxy {

class JsonLine {
 public:
  JsonLine() {
    out_.reserve(512);
    out_ += '{';
  }
  JsonLine& field(std::string_view key, std::string_view value);
  JsonLine& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  JsonLine& field(std::string_view key, const std::string& value) { return field(key, std::string_view(value)); }
  JsonLine& field(std::string_view key, std::int64_t value);
  JsonLine& field(std::string_view key, std::uint64_t value);
  JsonLine& field(std::string_view key, unsigned value) { return field(key, static_cast<std::uint64_t>(value)); }
  JsonLine& field(std::string_view key, int value) { return field(key, static_cast<std::int64_t>(value)); }
  JsonLine& field(std::string_view key, double value);
  JsonLine& field(std::string_view key, bool value);
  JsonLine& field(std::string_view key, const std::vector<std::string>& values);
  // Fields rendered earlier by another JsonLine (the text between its braces).
  JsonLine& raw(std::string_view fields);
  // "{...}\n"; the builder is empty afterwards.
  std::string finish();

  // `s` as a JSON string (quoted, escaped, invalid UTF-8 as U+FFFD), appended to out:
  // for hot paths that assemble a line from parts rendered earlier.
  static void append_string(std::string& out, std::string_view s);

 private:
  void key(std::string_view k);
  void string(std::string_view s);
  std::string out_;
  bool first_ = true;
};

}  // namespace pullgate::proxy
