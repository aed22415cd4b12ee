#include "policy/report.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "policy/json_reading.hpp"
#include "policy/patterns.hpp"
#include "registry/digest.hpp"
#include "policy/text.hpp"

namespace pullgate::policy {
namespace {

using namespace detail;  // reading checked JSON values (policy/json_reading.hpp)

constexpr std::size_t max_document_bytes = std::size_t{64} << 20;
constexpr int max_nesting = 64;
constexpr std::size_t max_findings = 200'000;


constexpr std::array<Severity, 6> all_severities = {Severity::unknown, Severity::negligible, Severity::low,
                                                    Severity::medium,  Severity::high,       Severity::critical};

Severity severity_field(const json& object, std::string_view key, const std::string& path) {
  const std::string text = as_string(required(object, key, path), join(path, key));
  const auto severity = parse_severity(text);
  if (!severity) fail(join(path, key), "unknown severity " + shown(text));
  return *severity;
}

std::string checked_digest(const std::string& digest, const std::string& path) {
  if (!registry::Digest::parse(digest)) {
    fail(path, shown(digest) + " is not a digest (sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)");
  }
  return digest;
}

// "docker.io/library/alpine@sha256:..." -> "sha256:...".
std::string digest_of_repo_digest(const std::string& reference, const std::string& path) {
  const auto at = reference.rfind('@');
  if (at == std::string::npos) fail(path, shown(reference) + " has no @digest");
  return checked_digest(reference.substr(at + 1), path);
}

std::set<std::string> repo_digests(const json& array, const std::string& path) {
  as_array(array, path);
  std::set<std::string> digests;
  for (std::size_t i = 0; i < array.size(); ++i) {
    digests.insert(digest_of_repo_digest(as_string(array[i], index(path, i)), index(path, i)));
  }
  return digests;
}

std::string listed(const std::set<std::string>& digests) {
  std::string out;
  for (const auto& digest : digests) out += (out.empty() ? "" : ", ") + digest;
  return out;
}

// Which digest the report is filed under. `named`: the manifest digests the report
// itself names; `where`: the field they came from, for errors.
std::string choose_digest(const std::set<std::string>& named, std::string_view override_digest,
                          const std::string& where) {
  if (named.empty()) {
    if (override_digest.empty()) {
      fail(where, "the report names no manifest digest; give the digest to file it under");
    }
    return std::string(override_digest);
  }
  if (!override_digest.empty()) {
    if (!named.contains(std::string(override_digest))) {
      fail(where, "the report is about " + listed(named) + ", not " + std::string(override_digest) +
                      "; refusing to file it under another image");
    }
    return std::string(override_digest);
  }
  if (named.size() > 1) {
    fail(where, "the report names several manifest digests (" + listed(named) + "); give the one to file it under");
  }
  return *named.begin();
}

class FindingCollector {
 public:
  void add(Finding finding, const std::string& path) {
    if (++seen_ > max_findings) fail(path, "more than " + std::to_string(max_findings) + " findings");
    auto key = std::make_tuple(finding.id, finding.package, finding.installed_version);
    auto [it, inserted] = findings_.try_emplace(std::move(key), std::move(finding));
    if (inserted) return;
    // The same vulnerability reported twice (two matchers, two layers): keep the
    // gravest reading, and a known fix if either names one.
    Finding& kept = it->second;
    if (finding.severity > kept.severity) {
      if (finding.fixed_version.empty()) finding.fixed_version = kept.fixed_version;
      kept = std::move(finding);
    } else if (kept.fixed_version.empty()) {
      kept.fixed_version = std::move(finding.fixed_version);
    }
  }

  void finish(ReportSummary& summary) {
    for (Severity severity : all_severities) summary.counts[severity] = 0;
    for (auto& [key, finding] : findings_) {
      ++summary.counts[finding.severity];
      summary.findings.push_back(std::move(finding));
    }
    // Gravest first, then by id: stable output for the admin API and tests.
    std::stable_sort(summary.findings.begin(), summary.findings.end(),
                     [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
  }

 private:
  std::size_t seen_ = 0;
  std::map<std::tuple<std::string, std::string, std::string>, Finding> findings_;
};

ReportSummary read_trivy(const json& root, std::string_view override_digest) {
  ReportSummary summary;
  summary.scanner = "trivy";

  const json& schema = required(root, "SchemaVersion", "");
  expect(schema.is_number_integer() || schema.is_number_unsigned(), schema, "SchemaVersion", "an integer");
  if (schema != 2) fail("SchemaVersion", "unsupported version " + schema.dump() + " (this reader knows 2)");

  // Newer Trivy releases name themselves; older ones do not.
  if (const json* trivy = field(root, "Trivy")) {
    summary.scanner_version = optional_string(as_object(*trivy, "Trivy"), "Version", "Trivy");
  }
  summary.scanned_at = time_field(root, "CreatedAt", "");

  // Metadata.ImageID is the config digest: never a key for a verdict.
  std::set<std::string> named;
  if (const json* metadata = field(root, "Metadata")) {
    as_object(*metadata, "Metadata");
    if (const json* digests = field(*metadata, "RepoDigests")) named = repo_digests(*digests, "Metadata.RepoDigests");
  }
  summary.digest = choose_digest(named, override_digest, "Metadata.RepoDigests");

  FindingCollector collector;
  if (const json* results = field(root, "Results")) {
    as_array(*results, "Results");
    for (std::size_t r = 0; r < results->size(); ++r) {
      const std::string result_path = index("Results", r);
      const json& result = as_object((*results)[r], result_path);
      const json* vulnerabilities = field(result, "Vulnerabilities");
      if (!vulnerabilities) continue;  // a target with nothing found
      const std::string list_path = join(result_path, "Vulnerabilities");
      as_array(*vulnerabilities, list_path);
      for (std::size_t v = 0; v < vulnerabilities->size(); ++v) {
        const std::string path = index(list_path, v);
        const json& entry = as_object((*vulnerabilities)[v], path);
        Finding finding;
        finding.id = required_string(entry, "VulnerabilityID", path);
        finding.package = required_string(entry, "PkgName", path);
        finding.installed_version = optional_string(entry, "InstalledVersion", path);
        finding.fixed_version = optional_string(entry, "FixedVersion", path);
        finding.severity = severity_field(entry, "Severity", path);
        collector.add(std::move(finding), path);
      }
    }
  }
  collector.finish(summary);
  return summary;
}

std::string grype_fix(const json& vulnerability, const std::string& path) {
  const json* fix = field(vulnerability, "fix");
  if (!fix) return {};
  const std::string fix_path = join(path, "fix");
  as_object(*fix, fix_path);
  const std::string state = optional_string(*fix, "state", fix_path);
  std::string versions;
  if (const json* list = field(*fix, "versions")) {
    const std::string list_path = join(fix_path, "versions");
    as_array(*list, list_path);
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string version = as_string((*list)[i], index(list_path, i));
      if (version.empty()) continue;
      versions += (versions.empty() ? "" : ", ") + version;
    }
  }
  // "not-fixed", "wont-fix", "unknown": no fix to install, whatever versions say.
  return state == "fixed" ? versions : std::string();
}

ReportSummary read_grype(const json& root, std::string_view override_digest) {
  ReportSummary summary;
  summary.scanner = "grype";

  if (const json* descriptor = field(root, "descriptor")) {
    as_object(*descriptor, "descriptor");
    const std::string name = optional_string(*descriptor, "name", "descriptor");
    if (!name.empty() && name != "grype") fail("descriptor.name", "expected \"grype\", not " + shown(name));
    summary.scanner_version = optional_string(*descriptor, "version", "descriptor");
    summary.scanned_at = time_field(*descriptor, "timestamp", "descriptor");
  }

  // An image source has a target object; a directory or file source has a path
  // string there and names no digest.
  std::set<std::string> named;
  std::string where = "source.target.manifestDigest";
  if (const json* source = field(root, "source")) {
    as_object(*source, "source");
    const std::string type = required_string(*source, "type", "source");
    const json* target = field(*source, "target");
    if (type == "image" && target) {
      as_object(*target, "source.target");
      const std::string manifest = optional_string(*target, "manifestDigest", "source.target");
      if (!manifest.empty()) {
        named.insert(checked_digest(manifest, where));
      } else if (const json* digests = field(*target, "repoDigests")) {
        where = "source.target.repoDigests";
        named = repo_digests(*digests, where);
      }
    }
  }
  summary.digest = choose_digest(named, override_digest, where);

  FindingCollector collector;
  const json& matches = as_array(required(root, "matches", ""), "matches");
  for (std::size_t m = 0; m < matches.size(); ++m) {
    const std::string path = index("matches", m);
    const json& match = as_object(matches[m], path);
    const std::string vulnerability_path = join(path, "vulnerability");
    const json& vulnerability = as_object(required(match, "vulnerability", path), vulnerability_path);
    const std::string artifact_path = join(path, "artifact");
    const json& artifact = as_object(required(match, "artifact", path), artifact_path);
    Finding finding;
    finding.id = required_string(vulnerability, "id", vulnerability_path);
    finding.severity = severity_field(vulnerability, "severity", vulnerability_path);
    finding.fixed_version = grype_fix(vulnerability, vulnerability_path);
    finding.package = required_string(artifact, "name", artifact_path);
    finding.installed_version = optional_string(artifact, "version", artifact_path);
    collector.add(std::move(finding), path);
  }
  collector.finish(summary);
  return summary;
}

}  // namespace

std::string_view to_string(Severity severity) {
  switch (severity) {
    case Severity::unknown: return "unknown";
    case Severity::negligible: return "negligible";
    case Severity::low: return "low";
    case Severity::medium: return "medium";
    case Severity::high: return "high";
    case Severity::critical: return "critical";
  }
  return "unknown";
}

std::optional<Severity> parse_severity(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (Severity severity : all_severities) {
    if (lower == to_string(severity)) return severity;
  }
  return std::nullopt;
}

ReportParse parse_report(std::string_view document, std::string_view digest_override) {
  ReportParse result;
  if (!digest_override.empty() && !registry::Digest::parse(digest_override)) {
    result.error = "digest override: " + shown(digest_override) +
                   " is not a digest (sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)";
    return result;
  }
  auto root = parse_bounded(document, max_document_bytes, "64 MiB", max_nesting, result.error);
  if (!root) return result;
  if (!root->is_object()) {
    result.error = "document: must be an object, not " + std::string(type_name(*root));
    return result;
  }
  // Shapes: Trivy always writes SchemaVersion; Grype always writes matches.
  const bool trivy = root->contains("SchemaVersion");
  const bool grype = root->contains("matches");
  try {
    if (trivy && !grype) {
      result.summary = read_trivy(*root, digest_override);
    } else if (grype && !trivy) {
      result.summary = read_grype(*root, digest_override);
    } else {
      result.error = "document: not a Trivy report (SchemaVersion, Results) or a Grype report (matches, source)";
    }
  } catch (const Failure& failure) {
    result.error = failure.message;
  } catch (const json::exception& e) {
    // Reading only checked values should never get here; if it does, it is still
    // a refusal of the document, not a crash.
    result.error = one_line("document: " + std::string(e.what()));
  }
  return result;
}

std::string encode_summary(const ReportSummary& summary) {
  json counts = json::object();
  for (const auto& [severity, count] : summary.counts) counts[std::string(to_string(severity))] = count;
  json findings = json::array();
  for (const Finding& finding : summary.findings) {
    findings.push_back({{"id", finding.id},
                        {"package", finding.package},
                        {"installed", finding.installed_version},
                        {"fixed", finding.fixed_version},
                        {"severity", to_string(finding.severity)}});
  }
  json out = {{"v", 1},
              {"scanner", summary.scanner},
              {"scanner_version", summary.scanner_version},
              {"digest", summary.digest},
              {"counts", std::move(counts)},
              {"findings", std::move(findings)}};
  if (summary.scanned_at) out["scanned_at"] = format_rfc3339(*summary.scanned_at);
  // Replace, not throw, on bytes that are not UTF-8: the strings came from a parsed
  // document, so this only matters for summaries built by hand.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<ReportSummary> decode_summary(std::string_view text) {
  std::string error;
  auto root = parse_bounded(text, max_document_bytes, "64 MiB", max_nesting, error);
  if (!root || !root->is_object()) return std::nullopt;
  try {
    const json& v = required(*root, "v", "");
    if (!v.is_number_integer() || v != 1) return std::nullopt;
    ReportSummary summary;
    summary.scanner = required_string(*root, "scanner", "");
    summary.scanner_version = optional_string(*root, "scanner_version", "");
    summary.digest = checked_digest(required_string(*root, "digest", ""), "digest");
    summary.scanned_at = time_field(*root, "scanned_at", "");

    const json& counts = as_object(required(*root, "counts", ""), "counts");
    for (const auto& [name, count] : counts.items()) {
      const auto severity = parse_severity(name);
      if (!severity || !count.is_number_unsigned() || count.get<std::uint64_t>() > max_findings) return std::nullopt;
      summary.counts[*severity] = count.get<std::uint32_t>();
    }

    const json& findings = as_array(required(*root, "findings", ""), "findings");
    if (findings.size() > max_findings) return std::nullopt;
    std::map<Severity, std::uint32_t> recounted;
    for (std::size_t i = 0; i < findings.size(); ++i) {
      const json& entry = as_object(findings[i], index("findings", i));
      Finding finding;
      finding.id = required_string(entry, "id", "");
      finding.package = required_string(entry, "package", "");
      finding.installed_version = optional_string(entry, "installed", "");
      finding.fixed_version = optional_string(entry, "fixed", "");
      finding.severity = severity_field(entry, "severity", "");
      ++recounted[finding.severity];
      summary.findings.push_back(std::move(finding));
    }
    // Counts that disagree with the findings mean a damaged record.
    for (Severity severity : all_severities) {
      const auto stored = summary.counts.find(severity);
      const std::uint32_t stored_count = stored == summary.counts.end() ? 0 : stored->second;
      const auto found = recounted.find(severity);
      if (stored_count != (found == recounted.end() ? 0 : found->second)) return std::nullopt;
    }
    return summary;
  } catch (const Failure&) {
    return std::nullopt;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace pullgate::policy
