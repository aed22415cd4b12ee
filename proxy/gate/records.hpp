#pragma once
// Stored records as JSON, one view each, for the CLI and the admin API alike.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/meta_store.hpp"
#include "policy/policy.hpp"

namespace pullgate::proxy {

// A verdict: times both as RFC 3339 ("evaluated_at", "expires_at") and as
// milliseconds since the epoch ("evaluated_at_ms", "expires_at_ms"); no expiry is null.
nlohmann::json verdict_json(const registry::Digest& digest, const cache::VerdictRecord& v);

// An exception; "expired" is judged at now_ms.
nlohmann::json exception_json(const cache::ExceptionRecord& record, std::int64_t now_ms);

// Checks an exception's fields ({"id","digest","repository","upstream","reason",
// "who","expires"}) with the policy parser itself, so the CLI and the admin API
// accept exactly what a policy file accepts; returns its expiry. Error lines name
// the field with field_prefix before it ("--digest: ..." for the CLI).
struct CheckedException {
  std::optional<policy::TimePoint> expires;
  std::vector<std::string> errors;
};
CheckedException check_exception(const nlohmann::json& fields, std::string_view field_prefix = "--");

// A pending-queue entry.
nlohmann::json pending_json(const std::string& digest, const cache::PendingRecord& record);

}  // namespace pullgate::proxy
