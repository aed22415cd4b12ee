// Scanner reports: both formats read to the same summary, filed under the manifest
// digest the report is about, and stored and read back unchanged.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "policy/report.hpp"
#include "tests/unit/fixtures.hpp"

namespace pullgate::policy {
namespace {

using json = nlohmann::json;

const std::string app_manifest = "sha256:f2a61ba65c935c5868393b3ed04e77361ceb199befab765a91a4a7d4456da6d2";
const std::string app_config = "sha256:20548860eea3e0e8de95bca449544c4e8ad253aea21b205a362192e1d8b1999a";
const std::string other_manifest = "sha256:866a4712533d39bb96c7a149688d255dcb9aa806000d3f86d3de14d33c2de8a1";
const std::string alpine_manifest = "sha256:af83da507549506005677f0fdd9b1df817ac7c3299db5aa28a5011c26d6e20b1";
const std::string alpine_config = "sha256:a3fb57f0151dedf371aad91cb8f6df1e0e52d1adf7dac6c160edf2b4a2488403";
const std::string alpine_index = "sha256:0c5ab2058a147f97350f8a33bece29884f8da99f848db9811b31172c74412967";

std::string fixture(const std::string& name) { return testing_support::fixture_text("reports", name); }

json fixture_json(const std::string& name) { return json::parse(fixture(name)); }

using Row = std::tuple<std::string, std::string, std::string, std::string, Severity>;

std::vector<Row> rows(const ReportSummary& summary) {
  std::vector<Row> out;
  for (const auto& f : summary.findings) out.emplace_back(f.id, f.package, f.installed_version, f.fixed_version, f.severity);
  return out;
}

std::map<Severity, std::uint32_t> counts(std::uint32_t unknown, std::uint32_t negligible, std::uint32_t low,
                                         std::uint32_t medium, std::uint32_t high, std::uint32_t critical) {
  return {{Severity::unknown, unknown}, {Severity::negligible, negligible}, {Severity::low, low},
          {Severity::medium, medium},   {Severity::high, high},             {Severity::critical, critical}};
}

ReportSummary parsed(std::string_view document, std::string_view override_digest = {}) {
  const ReportParse result = parse_report(document, override_digest);
  EXPECT_TRUE(result.summary) << result.error;
  EXPECT_TRUE(result.error.empty());
  return result.summary.value_or(ReportSummary{});
}

std::string refused(std::string_view document, std::string_view override_digest = {}) {
  const ReportParse result = parse_report(document, override_digest);
  EXPECT_FALSE(result.summary);
  EXPECT_FALSE(result.error.empty());
  EXPECT_EQ(result.error.find('\n'), std::string::npos) << result.error;
  return result.error;
}

TEST(Severity, ParsesEveryScannerSpellingAndNothingElse) {
  EXPECT_EQ(parse_severity("CRITICAL"), Severity::critical);
  EXPECT_EQ(parse_severity("Critical"), Severity::critical);
  EXPECT_EQ(parse_severity("high"), Severity::high);
  EXPECT_EQ(parse_severity("MEDIUM"), Severity::medium);
  EXPECT_EQ(parse_severity("Low"), Severity::low);
  EXPECT_EQ(parse_severity("Negligible"), Severity::negligible);
  EXPECT_EQ(parse_severity("UNKNOWN"), Severity::unknown);
  EXPECT_EQ(parse_severity(""), std::nullopt);
  EXPECT_EQ(parse_severity("severe"), std::nullopt);
  EXPECT_EQ(parse_severity("HIGH "), std::nullopt);
  for (Severity s : {Severity::unknown, Severity::negligible, Severity::low, Severity::medium, Severity::high,
                     Severity::critical}) {
    EXPECT_EQ(parse_severity(to_string(s)), s);
  }
}

TEST(Report, TrivyFixture) {
  const ReportSummary summary = parsed(fixture("trivy-image.json"));
  EXPECT_EQ(summary.scanner, "trivy");
  EXPECT_EQ(summary.scanner_version, "");
  // RepoDigests names the manifest; ImageID (the config) is never used.
  EXPECT_EQ(summary.digest, app_manifest);
  EXPECT_NE(summary.digest, app_config);
  ASSERT_TRUE(summary.scanned_at);
  EXPECT_EQ(*summary.scanned_at, *parse_rfc3339("2024-05-14T07:41:27.512874316Z"));
  EXPECT_EQ(summary.counts, counts(1, 0, 1, 2, 2, 1));
  // libcurl4's CVE appears twice (CRITICAL and HIGH): one finding, the graver one.
  const std::vector<Row> expected = {
      {"CVE-2023-38545", "libcurl4", "7.88.1-10+deb12u1", "7.88.1-10+deb12u4", Severity::critical},
      {"CVE-2023-4911", "libc-bin", "2.36-9+deb12u1", "2.36-9+deb12u3", Severity::high},
      {"CVE-2023-4911", "libc6", "2.36-9+deb12u1", "2.36-9+deb12u3", Severity::high},
      {"CVE-2023-4039", "gcc-12-base", "12.2.0-14", "", Severity::medium},
      {"CVE-2023-45288", "golang.org/x/net", "v0.17.0", "0.23.0", Severity::medium},
      {"CVE-2011-3374", "apt", "2.6.1", "", Severity::low},
      {"CVE-2023-50495", "ncurses-base", "6.4-4", "", Severity::unknown},
  };
  EXPECT_EQ(rows(summary), expected);
  EXPECT_TRUE(summary.findings[0].fixed());
  EXPECT_FALSE(summary.findings[3].fixed());
}

TEST(Report, GrypeFixture) {
  const ReportSummary summary = parsed(fixture("grype-image.json"));
  EXPECT_EQ(summary.scanner, "grype");
  EXPECT_EQ(summary.scanner_version, "0.74.0");
  // manifestDigest (the platform manifest) wins over repoDigests (the index) and
  // imageID (the config).
  EXPECT_EQ(summary.digest, alpine_manifest);
  ASSERT_TRUE(summary.scanned_at);
  EXPECT_EQ(*summary.scanned_at, *parse_rfc3339("2024-01-22T14:03:12.718276451Z"));
  EXPECT_EQ(summary.counts, counts(1, 1, 1, 2, 2, 1));
  // Two fix versions are joined; "not-fixed", "wont-fix" and "unknown" are no fix.
  const std::vector<Row> expected = {
      {"GHSA-xqr8-7jwr-rhp7", "requests", "2.25.0", "2.31.1, 3.0.2", Severity::critical},
      {"CVE-2023-5363", "libcrypto3", "3.1.3-r0", "3.1.4-r0", Severity::high},
      {"CVE-2023-5363", "libssl3", "3.1.3-r0", "3.1.4-r0", Severity::high},
      {"CVE-2023-42363", "busybox", "1.36.1-r2", "", Severity::medium},
      {"CVE-2023-5678", "libcrypto3", "3.1.3-r0", "3.1.4-r1", Severity::medium},
      {"CVE-2024-0727", "libssl3", "3.1.3-r0", "", Severity::low},
      {"CVE-2005-2541", "tar", "1.34-r3", "", Severity::negligible},
      {"CVE-2024-25629", "c-ares", "1.20.1-r0", "", Severity::unknown},
  };
  EXPECT_EQ(rows(summary), expected);
}

TEST(Report, TrivyWithoutVulnerabilities) {
  json report = fixture_json("trivy-image.json");
  report["Results"][0]["Vulnerabilities"] = nullptr;
  report["Results"][1].erase("Vulnerabilities");
  ReportSummary summary = parsed(report.dump());
  EXPECT_TRUE(summary.findings.empty());
  EXPECT_EQ(summary.counts, counts(0, 0, 0, 0, 0, 0));
  EXPECT_EQ(summary.digest, app_manifest);

  report["Results"][0]["Vulnerabilities"] = json::array();
  EXPECT_TRUE(parsed(report.dump()).findings.empty());
  report["Results"] = nullptr;
  EXPECT_TRUE(parsed(report.dump()).findings.empty());
  report.erase("Results");
  EXPECT_TRUE(parsed(report.dump()).findings.empty());
}

TEST(Report, GrypeWithoutMatches) {
  json report = fixture_json("grype-image.json");
  report["matches"] = json::array();
  const ReportSummary summary = parsed(report.dump());
  EXPECT_TRUE(summary.findings.empty());
  EXPECT_EQ(summary.counts, counts(0, 0, 0, 0, 0, 0));
}

TEST(Report, TrivyWithoutRepoDigestsNeedsTheDigest) {
  json report = fixture_json("trivy-image.json");
  report["Metadata"]["RepoDigests"] = json::array();  // e.g. a scanned tarball
  const std::string error = refused(report.dump());
  EXPECT_EQ(error, "Metadata.RepoDigests: the report names no manifest digest; give the digest to file it under");
  // ImageID is there and a valid digest, and still not used.
  EXPECT_EQ(parsed(report.dump(), other_manifest).digest, other_manifest);
  report["Metadata"].erase("RepoDigests");
  EXPECT_EQ(parsed(report.dump(), other_manifest).digest, other_manifest);
  report.erase("Metadata");
  EXPECT_EQ(parsed(report.dump(), other_manifest).digest, other_manifest);
  refused(report.dump());
}

TEST(Report, TrivySeveralRepoDigests) {
  json report = fixture_json("trivy-image.json");
  report["Metadata"]["RepoDigests"].push_back("mirror.example.com/team/app@" + other_manifest);
  const std::string error = refused(report.dump());
  EXPECT_NE(error.find(app_manifest), std::string::npos) << error;
  EXPECT_NE(error.find(other_manifest), std::string::npos) << error;
  EXPECT_TRUE(error.starts_with("Metadata.RepoDigests: the report names several manifest digests")) << error;
  // The override chooses among them, and only among them.
  EXPECT_EQ(parsed(report.dump(), other_manifest).digest, other_manifest);
  EXPECT_EQ(parsed(report.dump(), app_manifest).digest, app_manifest);
  refused(report.dump(), alpine_manifest);
}

TEST(Report, OverrideMustMatchTheReport) {
  // Same digest: accepted.
  EXPECT_EQ(parsed(fixture("trivy-image.json"), app_manifest).digest, app_manifest);
  EXPECT_EQ(parsed(fixture("grype-image.json"), alpine_manifest).digest, alpine_manifest);
  // A report about another image is not filed under this digest.
  EXPECT_EQ(refused(fixture("trivy-image.json"), other_manifest),
            "Metadata.RepoDigests: the report is about " + app_manifest + ", not " + other_manifest +
                "; refusing to file it under another image");
  EXPECT_EQ(refused(fixture("grype-image.json"), other_manifest),
            "source.target.manifestDigest: the report is about " + alpine_manifest + ", not " + other_manifest +
                "; refusing to file it under another image");
  // The config digest is not the image's name either.
  refused(fixture("trivy-image.json"), app_config);
  refused(fixture("grype-image.json"), alpine_config);
}

TEST(Report, OverrideMustBeADigest) {
  for (const std::string& bad : std::vector<std::string>{"sha256:abc", "latest", "SHA256:" + app_manifest.substr(7),
                                "sha256:" + std::string(64, 'G'), app_manifest + " ", "md5:" + std::string(32, 'a')}) {
    const std::string error = refused(fixture("trivy-image.json"), bad);
    EXPECT_TRUE(error.starts_with("digest override: ")) << error;
  }
}

TEST(Report, RepoDigestsMustBeDigests) {
  json report = fixture_json("trivy-image.json");
  report["Metadata"]["RepoDigests"][1] = "localhost:5000/team/app:1.4.2";
  EXPECT_EQ(refused(report.dump()), "Metadata.RepoDigests[1]: \"localhost:5000/team/app:1.4.2\" has no @digest");
  report["Metadata"]["RepoDigests"][1] = "localhost:5000/team/app@sha256:1234";
  EXPECT_TRUE(refused(report.dump()).starts_with("Metadata.RepoDigests[1]: \"sha256:1234\" is not a digest"));
}

TEST(Report, GrypeDigestFallbacks) {
  json report = fixture_json("grype-image.json");
  auto& target = report["source"]["target"];
  target.erase("manifestDigest");
  // One repo digest: that one.
  EXPECT_EQ(parsed(report.dump()).digest, alpine_index);
  // Several, all the same digest: still that one.
  target["repoDigests"].push_back("docker.io/library/alpine@" + alpine_index);
  EXPECT_EQ(parsed(report.dump()).digest, alpine_index);
  // Two different: refuse, list both, unless the override picks one.
  target["repoDigests"].push_back("mirror.example.com/alpine@" + alpine_manifest);
  const std::string error = refused(report.dump());
  EXPECT_TRUE(error.starts_with("source.target.repoDigests: the report names several")) << error;
  EXPECT_NE(error.find(alpine_index), std::string::npos);
  EXPECT_NE(error.find(alpine_manifest), std::string::npos);
  EXPECT_EQ(parsed(report.dump(), alpine_manifest).digest, alpine_manifest);
  // None: the override is needed. imageID is never used.
  target.erase("repoDigests");
  EXPECT_EQ(refused(report.dump()),
            "source.target.manifestDigest: the report names no manifest digest; give the digest to file it under");
  EXPECT_EQ(parsed(report.dump(), alpine_manifest).digest, alpine_manifest);
  // An empty manifestDigest counts as none.
  target["manifestDigest"] = "";
  refused(report.dump());
  target["manifestDigest"] = "sha256:nothex";
  EXPECT_TRUE(refused(report.dump()).starts_with("source.target.manifestDigest: \"sha256:nothex\" is not a digest"));
}

TEST(Report, GrypeDirectoryScanNeedsTheDigest) {
  json report = fixture_json("grype-image.json");
  report["source"] = {{"type", "directory"}, {"target", "/srv/rootfs"}};
  refused(report.dump());
  EXPECT_EQ(parsed(report.dump(), other_manifest).digest, other_manifest);
}

TEST(Report, SeveritiesAreCaseInsensitiveAndChecked) {
  json trivy = fixture_json("trivy-image.json");
  trivy["Results"][0]["Vulnerabilities"][0]["Severity"] = "critical";
  EXPECT_EQ(parsed(trivy.dump()).counts.at(Severity::critical), 2u);
  trivy["Results"][0]["Vulnerabilities"][0]["Severity"] = "SEVERE";
  EXPECT_EQ(refused(trivy.dump()), "Results[0].Vulnerabilities[0].Severity: unknown severity \"SEVERE\"");

  json grype = fixture_json("grype-image.json");
  grype["matches"][7]["vulnerability"]["severity"] = "NEGLIGIBLE";
  EXPECT_EQ(parsed(grype.dump()).counts.at(Severity::negligible), 1u);
  grype["matches"][7]["vulnerability"]["severity"] = "";
  EXPECT_EQ(refused(grype.dump()), "matches[7].vulnerability.severity: unknown severity \"\"");
}

TEST(Report, DuplicatesKeepTheGravestSeverityAndAKnownFix) {
  json report = fixture_json("grype-image.json");
  json match = report["matches"][6];  // CVE-2024-0727 libssl3, Low, wont-fix
  match["vulnerability"]["severity"] = "Critical";
  match["vulnerability"]["fix"] = {{"versions", {"3.1.4-r5"}}, {"state", "fixed"}};
  report["matches"].push_back(match);
  const ReportSummary summary = parsed(report.dump());
  EXPECT_EQ(summary.findings.size(), 8u);
  EXPECT_EQ(summary.counts, counts(1, 1, 0, 2, 2, 2));
  bool found = false;
  for (const auto& finding : summary.findings) {
    if (finding.id != "CVE-2024-0727") continue;
    found = true;
    EXPECT_EQ(finding.severity, Severity::critical);
    EXPECT_EQ(finding.fixed_version, "3.1.4-r5");
  }
  EXPECT_TRUE(found);
  // Same id and package but another installed version: a separate finding.
  match["artifact"]["version"] = "3.1.4-r0";
  report["matches"].push_back(match);
  EXPECT_EQ(parsed(report.dump()).findings.size(), 9u);
}

TEST(Report, DetectsTheFormatByShape) {
  EXPECT_EQ(refused("{}"),
            "document: not a Trivy report (SchemaVersion, Results) or a Grype report (matches, source)");
  refused(R"({"SchemaVersion": 2, "matches": []})");
  refused(R"({"bomFormat": "CycloneDX", "specVersion": "1.5"})");
  EXPECT_EQ(refused(R"({"SchemaVersion": 1, "Results": []})", app_manifest),
            "SchemaVersion: unsupported version 1 (this reader knows 2)");
  // The legacy Trivy output (a bare array of results) is not read.
  EXPECT_EQ(refused(R"([{"Target": "x", "Vulnerabilities": null}])"), "document: must be an object, not an array");
  // Minimal documents of each kind.
  EXPECT_EQ(parsed(R"({"SchemaVersion": 2})", app_manifest).scanner, "trivy");
  EXPECT_EQ(parsed(R"({"matches": []})", app_manifest).scanner, "grype");
}

TEST(Report, TimesMustBeRfc3339) {
  json trivy = fixture_json("trivy-image.json");
  trivy["CreatedAt"] = "2024-05-14 09:41:27";
  EXPECT_EQ(refused(trivy.dump()), "CreatedAt: must be an RFC 3339 time, not \"2024-05-14 09:41:27\"");
  trivy.erase("CreatedAt");
  EXPECT_FALSE(parsed(trivy.dump()).scanned_at);
  json grype = fixture_json("grype-image.json");
  grype["descriptor"]["timestamp"] = "yesterday";
  EXPECT_EQ(refused(grype.dump()), "descriptor.timestamp: must be an RFC 3339 time, not \"yesterday\"");
  grype["descriptor"]["name"] = "syft";
  EXPECT_EQ(refused(grype.dump()), "descriptor.name: expected \"grype\", not \"syft\"");
}

TEST(Report, TrivyVersionWhenTheReportSaysIt) {
  json report = fixture_json("trivy-image.json");
  report["Trivy"] = {{"Version", "0.56.2"}};
  EXPECT_EQ(parsed(report.dump()).scanner_version, "0.56.2");
}

TEST(ReportSummaryCodec, RoundTripsBothFixtures) {
  for (const std::string name : {"trivy-image.json", "grype-image.json"}) {
    const ReportSummary original = parsed(fixture(name));
    const std::string encoded = encode_summary(original);
    EXPECT_TRUE(json::parse(encoded).at("v") == 1);
    const auto decoded = decode_summary(encoded);
    ASSERT_TRUE(decoded) << name;
    EXPECT_EQ(decoded->scanner, original.scanner);
    EXPECT_EQ(decoded->scanner_version, original.scanner_version);
    EXPECT_EQ(decoded->digest, original.digest);
    EXPECT_EQ(decoded->scanned_at, original.scanned_at);
    EXPECT_EQ(decoded->counts, original.counts);
    EXPECT_EQ(rows(*decoded), rows(original));
    EXPECT_EQ(encode_summary(*decoded), encoded);
  }
}

TEST(ReportSummaryCodec, WithoutScanTime) {
  ReportSummary summary = parsed(R"({"matches": []})", app_manifest);
  EXPECT_FALSE(summary.scanned_at);
  const auto decoded = decode_summary(encode_summary(summary));
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(decoded->scanned_at);
  EXPECT_EQ(decoded->digest, app_manifest);
}

TEST(ReportSummaryCodec, RefusesWhatItDidNotWrite) {
  const json good = json::parse(encode_summary(parsed(fixture("grype-image.json"))));
  ASSERT_TRUE(decode_summary(good.dump()));
  auto changed = [&](auto edit) {
    json copy = good;
    edit(copy);
    return decode_summary(copy.dump());
  };
  EXPECT_FALSE(changed([](json& j) { j["v"] = 2; }));
  EXPECT_FALSE(changed([](json& j) { j["v"] = "1"; }));
  EXPECT_FALSE(changed([](json& j) { j.erase("v"); }));
  EXPECT_FALSE(changed([](json& j) { j["digest"] = "sha256:short"; }));
  EXPECT_FALSE(changed([](json& j) { j.erase("digest"); }));
  EXPECT_FALSE(changed([](json& j) { j["scanned_at"] = "soon"; }));
  EXPECT_FALSE(changed([](json& j) { j["counts"]["critical"] = 5; }));
  EXPECT_FALSE(changed([](json& j) { j["counts"]["critical"] = -1; }));
  EXPECT_FALSE(changed([](json& j) { j["counts"]["severe"] = 0; }));
  EXPECT_FALSE(changed([](json& j) { j["findings"][0]["severity"] = "bad"; }));
  EXPECT_FALSE(changed([](json& j) { j["findings"][0]["id"] = 7; }));
  EXPECT_FALSE(changed([](json& j) { j["findings"] = json::object(); }));
  EXPECT_FALSE(changed([](json& j) { j["findings"].erase(0); }));
  EXPECT_FALSE(decode_summary(""));
  EXPECT_FALSE(decode_summary("[]"));
  EXPECT_FALSE(decode_summary("{\"v\": 1"));
}

}  // namespace
}  // namespace pullgate::policy
