// Scanner reports (policy/report.hpp), Trivy's and Grype's JSON as the admin API
// receives them: a summary that adds up and survives its LMDB encoding, or one
// line saying what is wrong. Input: one byte choosing whether the caller names the
// digest, then the document.
#include "policy/report.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::policy;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;

namespace {

bool same(const ReportSummary& a, const ReportSummary& b) {
  if (a.scanner != b.scanner || a.scanner_version != b.scanner_version || a.digest != b.digest ||
      a.scanned_at != b.scanned_at || a.findings.size() != b.findings.size())
    return false;
  for (std::size_t i = 0; i < a.findings.size(); ++i) {
    const auto &x = a.findings[i], &y = b.findings[i];
    if (x.id != y.id || x.package != y.package || x.installed_version != y.installed_version ||
        x.fixed_version != y.fixed_version || x.severity != y.severity)
      return false;
  }
  for (const auto& [severity, count] : a.counts) {
    auto found = b.counts.find(severity);
    if (count != (found == b.counts.end() ? 0 : found->second)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string override_digest = data[0] & 1 ? "sha256:" + std::string(64, 'b') : "";
  const auto document = pullgate::fuzz::as_text(data + 1, size - 1);
  const auto parsed = parse_report(document, override_digest);
  if (!parsed.summary) {
    require(one_line(parsed.error), "a one-line refusal", parsed.error);
  } else {
    const auto& summary = *parsed.summary;
    require(summary.scanner == "trivy" || summary.scanner == "grype", "a known scanner", summary.scanner);
    require(pullgate::registry::Digest::parse(summary.digest).has_value(), "a valid digest", summary.digest);
    std::uint64_t counted = 0;
    for (const auto& [severity, count] : summary.counts) counted += count;
    require(counted == summary.findings.size(), "the counts add up to the findings");
    require(summary.findings.size() <= 200'000, "at most 200,000 findings");
    const auto stored = encode_summary(summary);
    const auto decoded = decode_summary(stored);
    require(decoded && same(*decoded, summary), "the summary survives its encoding", stored);
  }
  // What LMDB or the fleet store hands back is read with the same care.
  if (auto decoded = decode_summary(document)) {
    auto again = decode_summary(encode_summary(*decoded));
    require(again && same(*again, *decoded), "a decoded summary re-encodes to itself");
  }
  return 0;
}
