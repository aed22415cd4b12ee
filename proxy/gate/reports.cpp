#include "proxy/gate/reports.hpp"

#include <chrono>

namespace pullgate::proxy {

namespace {

nlohmann::json counts_json(const policy::ReportSummary& s) {
  nlohmann::json counts = nlohmann::json::object();
  for (auto& [severity, n] : s.counts) counts[std::string(policy::to_string(severity))] = n;
  return counts;
}

std::string time_text(std::int64_t ms) {
  return policy::format_rfc3339(policy::time_from_ms(ms));
}

}  // namespace

ImportResult import_report(DecisionWrites& writes, std::string_view document, std::string_view digest_override,
                           std::int64_t now_ms) {
  ImportResult result;
  auto parsed = policy::parse_report(document, digest_override);
  if (!parsed.summary) {
    result.error = parsed.error;
    return result;
  }
  const auto& summary = *parsed.summary;
  auto digest = registry::Digest::parse(summary.digest);
  if (!digest) {
    result.error = "the report names no valid manifest digest";
    return result;
  }
  // A report from the future would never grow too old for max_report_age: a few
  // minutes of clock skew between scanner and mirror are allowed, not more.
  constexpr std::int64_t max_skew_ms = 10 * 60 * 1000;
  const std::int64_t scanned_at_ms = summary.scanned_at ? policy::ms_of(*summary.scanned_at) : now_ms;
  if (scanned_at_ms > now_ms + max_skew_ms) {
    result.error = "the report's scan time " + policy::format_ms(scanned_at_ms) +
                   " is more than 10 minutes ahead of this mirror's clock";
    return result;
  }
  cache::ReportRecord record;
  record.summary_json = policy::encode_summary(summary);
  record.scanner = summary.scanner;
  record.scanned_at_ms = scanned_at_ms;
  record.imported_at_ms = now_ms;
  // A computed verdict was decided without this report: decide again on next use.
  // Manual verdicts stand.
  result.replaced_verdict = writes.put_report(*digest, record);
  result.ok = true;
  result.digest = digest->str();
  result.summary = {{"scanner", summary.scanner},
                    {"scanned_at", time_text(record.scanned_at_ms)},
                    {"counts", counts_json(summary)},
                    {"findings", summary.findings.size()}};
  return result;
}

nlohmann::json report_json(const std::string& digest, const cache::ReportRecord& record, bool with_findings) {
  nlohmann::json j = {{"digest", digest},
                      {"scanner", record.scanner},
                      {"scanned_at", time_text(record.scanned_at_ms)},
                      {"imported_at", time_text(record.imported_at_ms)}};
  if (auto summary = policy::decode_summary(record.summary_json)) {
    j["scanner_version"] = summary->scanner_version;
    j["counts"] = counts_json(*summary);
    if (with_findings) {
      nlohmann::json findings = nlohmann::json::array();
      for (auto& f : summary->findings)
        findings.push_back({{"id", f.id},
                            {"package", f.package},
                            {"installed_version", f.installed_version},
                            {"fixed_version", f.fixed_version},
                            {"severity", policy::to_string(f.severity)}});
      j["findings"] = findings;
    } else {
      j["findings"] = summary->findings.size();
    }
  } else {
    j["error"] = "the stored summary does not decode";
  }
  return j;
}

}  // namespace pullgate::proxy
