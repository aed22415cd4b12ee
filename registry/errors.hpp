#pragma once
// OCI distribution error codes and bodies.
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

std::string_view code_name(ErrorCode code);  // "BLOB_UNKNOWN", ...

// {"errors":[{"code":"...","message":"...","detail":...}]}; detail omitted when empty.
// detail_json, when not empty, must itself be a JSON value and is inserted as is.
std::string error_body(ErrorCode code, std::string_view message,
                       std::string_view detail_json = {});

}  // namespace pullgate::registry
