#include "registry/errors.hpp"

#include <nlohmann/json.hpp>

namespace pullgate::registry {

std::string_view code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::blob_unknown: return "BLOB_UNKNOWN";
    case ErrorCode::blob_upload_invalid: return "BLOB_UPLOAD_INVALID";
    case ErrorCode::blob_upload_unknown: return "BLOB_UPLOAD_UNKNOWN";
    case ErrorCode::digest_invalid: return "DIGEST_INVALID";
    case ErrorCode::manifest_blob_unknown: return "MANIFEST_BLOB_UNKNOWN";
    case ErrorCode::manifest_invalid: return "MANIFEST_INVALID";
    case ErrorCode::manifest_unknown: return "MANIFEST_UNKNOWN";
    case ErrorCode::name_invalid: return "NAME_INVALID";
    case ErrorCode::name_unknown: return "NAME_UNKNOWN";
    case ErrorCode::size_invalid: return "SIZE_INVALID";
    case ErrorCode::unauthorized: return "UNAUTHORIZED";
    case ErrorCode::denied: return "DENIED";
    case ErrorCode::unsupported: return "UNSUPPORTED";
    case ErrorCode::toomanyrequests: return "TOOMANYREQUESTS";
    case ErrorCode::range_invalid: return "RANGE_INVALID";
    case ErrorCode::unknown: return "UNKNOWN";
    case ErrorCode::unavailable: return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

std::string error_body(ErrorCode code, std::string_view message, std::string_view detail_json) {
  nlohmann::json error = {{"code", code_name(code)}, {"message", message}};
  if (!detail_json.empty()) {
    // The contract says detail_json is JSON; if a caller breaks it, keep the body
    // valid by carrying the text as a string rather than emitting broken JSON.
    auto detail = nlohmann::json::parse(detail_json, nullptr, /*allow_exceptions=*/false);
    error["detail"] = detail.is_discarded() ? nlohmann::json(std::string(detail_json)) : std::move(detail);
  }
  nlohmann::json body = {{"errors", nlohmann::json::array({std::move(error)})}};
  // Messages may carry bytes from the request (a bad tag, a path); replace invalid
  // UTF-8 instead of throwing.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace pullgate::registry
