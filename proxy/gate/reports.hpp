#pragma once
// Importing a scanner's report: parse it, file it under its manifest digest, end
// that digest's wait in the pending queue, and drop the digest's computed verdict
// so that the next pull decides again with the report. Shared by the CLI and the
// admin API.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cache/meta_store.hpp"
#include "proxy/gate/decision_writes.hpp"
#include "policy/report.hpp"

namespace pullgate::proxy {

struct ImportResult {
  bool ok = false;
  std::string error;                  // one line, when !ok
  std::string digest;
  nlohmann::json summary;             // counts and scanner, when ok
  bool replaced_verdict = false;      // a computed verdict was dropped
};

ImportResult import_report(DecisionWrites& writes, std::string_view document, std::string_view digest_override,
                           std::int64_t now_ms);

// {"digest","scanner","scanner_version","scanned_at","imported_at","counts":{...},"findings":N,...}
nlohmann::json report_json(const std::string& digest, const cache::ReportRecord& record, bool with_findings);

}  // namespace pullgate::proxy
