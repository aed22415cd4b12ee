#pragma once
// Base64, standard alphabet (RFC 4648 section 4): signatures and DSSE payloads,
// Basic credentials, and bytes stored inside JSON records.
#include <string>
#include <string_view>

namespace pullgate::registry {

// Padding is optional, but when present it completes the last group exactly; no
// whitespace; leftover bits must be zero (one text per byte string, as encoders
// write it). False when the text is not base64 (`out` is then unchanged).
bool base64_decode(std::string_view text, std::string& out);
// With padding.
std::string base64_encode(std::string_view bytes);

}  // namespace pullgate::registry
