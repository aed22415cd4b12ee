#pragma once
// Vulnerability reports from scanners (Trivy, Grype), normalized to one summary, and
// the per-scope vulnerability policy that judges a digest by its report. Pure: no
// files, no clock of its own.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.hpp"

namespace pullgate::policy {

enum class Severity { unknown, negligible, low, medium, high, critical };
std::string_view to_string(Severity);
// Case-insensitive; "NEGLIGIBLE"/"Negligible" (Grype), "UNKNOWN", ... nullopt otherwise.
std::optional<Severity> parse_severity(std::string_view);

struct Finding {
  std::string id;                 // CVE-2024-1234, GHSA-..., ...
  std::string package;
  std::string installed_version;
  std::string fixed_version;      // empty: no fix known
  Severity severity = Severity::unknown;
  bool fixed() const { return !fixed_version.empty(); }
};

struct ReportSummary {
  std::string scanner;            // "trivy" | "grype"
  std::string scanner_version;    // when the report says
  std::string digest;             // the MANIFEST digest the report is about ("sha256:...")
  std::optional<TimePoint> scanned_at;
  std::map<Severity, std::uint32_t> counts;  // findings per severity
  std::vector<Finding> findings;  // deduplicated by (id, package, installed_version)
};

struct ReportParse {
  std::optional<ReportSummary> summary;
  std::string error;  // one line, when summary is empty
};

// `document`: the scanner's JSON output (trivy image --format json; grype -o json),
// detected by its shape. `digest_override`: the manifest digest to file the report
// under when the report names none (or to choose among several RepoDigests); it must
// be a valid digest. Trivy: the digest comes from Metadata.RepoDigests
// ("repo@sha256:..."), never from Metadata.ImageID (that is the config digest).
// Grype: source.target.manifestDigest. Limits: 64 MiB documents, nesting depth 64,
// 200,000 findings; anything else malformed is refused with one line naming where.
ReportParse parse_report(std::string_view document, std::string_view digest_override = {});

// JSON for LMDB and the admin API, and back (nullopt when it does not decode).
std::string encode_summary(const ReportSummary& summary);
std::optional<ReportSummary> decode_summary(std::string_view json);

}  // namespace pullgate::policy
