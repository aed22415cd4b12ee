#pragma once
// Untrusted text quoted in a one-line message (an error, a reason, a note): names from
// archives, reports, signatures and policy documents.
#include <string>
#include <string_view>
#include <vector>

namespace pullgate::registry {

// `text` as it may be quoted in a message printed on one line: control characters
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

// `text` on one line with nothing lost: line breaks and other control characters
// become \n, \r, \t or \xNN (for messages that quote what they were given whole).
inline std::string one_line(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (byte < 0x20 || byte == 0x7f) out += std::string("\\x") + hex[byte >> 4] + hex[byte & 0xf];
    else out += c;
  }
  return out;
}

// Every message of a list on one line (one_line).
inline void one_line_each(std::vector<std::string>& messages) {
  for (auto& m : messages) m = one_line(m);
}

}  // namespace pullgate::registry
