#pragma once
// Untrusted text quoted in a one-line message (an error, a reason, a note): names from
// archives, reports, signatures and policy documents.
#include <string>
#include <string_view>

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

}  // namespace pullgate::registry
