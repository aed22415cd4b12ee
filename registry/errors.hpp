#pragma once
// OCI distribution error codes and bodies.
#include <cstddef>
#include <string>
#include <string_view>

namespace pullgate::registry {

enum class ErrorCode {
  blob_unknown,
  blob_upload_invalid,
  blob_upload_unknown,
  digest_invalid,
  manifest_blob_unknown,
  manifest_invalid,
  manifest_unknown,
  name_invalid,
  name_unknown,
  size_invalid,
  unauthorized,
  denied,
  unsupported,
  toomanyrequests,
  range_invalid,  // not in the spec's table; used with 416 as Distribution does
  unknown,        // Distribution's UNKNOWN, for upstream and internal failures
  unavailable,    // Distribution's UNAVAILABLE, with 503: the mirror cannot answer now
};

std::string_view code_name(ErrorCode code);

// Set by pullgate, to "deny", on every refusal its gate makes (the 403 of a GET, and
// the 200 it answers a denied manifest HEAD with), so that a pullgate in front of it
// can tell a gate decision from a registry's 403 for missing credentials.
inline constexpr std::string_view decision_header = "Pullgate-Decision";
// How much of an upstream's error body is read to find a denial's reasons.
inline constexpr std::size_t max_error_body = 16 * 1024;  // "BLOB_UNKNOWN", ...

// {"errors":[{"code":"...","message":"...","detail":...}]}; detail omitted when empty.
// detail_json, when not empty, must itself be a JSON value and is inserted as is.
std::string error_body(ErrorCode code, std::string_view message,
                       std::string_view detail_json = {});

}  // namespace pullgate::registry
