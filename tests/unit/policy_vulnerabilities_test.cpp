// The "vulnerabilities" scope setting, "cve_exceptions", and judge_report.
#include <gtest/gtest.h>

#include <string>

#include "policy/policy.hpp"
#include "policy/report.hpp"
#include "policy/vulnerabilities.hpp"

namespace pullgate::policy {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

bool has_line(const std::vector<std::string>& lines, const std::string& line) {
  for (const auto& candidate : lines) {
    if (candidate == line) return true;
  }
  return false;
}

bool has_prefix(const std::vector<std::string>& lines, const std::string& prefix) {
  for (const auto& candidate : lines) {
    if (candidate.starts_with(prefix)) return true;
  }
  return false;
}

TimePoint at(const char* text) { return *parse_rfc3339(text); }

const TimePoint now = at("2026-11-05T00:00:00Z");

Policy parsed(const std::string& document) {
  const auto result = parse_policy(document);
  EXPECT_TRUE(result.policy) << joined(result.errors);
  return result.policy ? *result.policy : Policy{};
}

// A policy whose catch-all scope has the given "vulnerabilities" object.
Policy with_default(const std::string& vulnerabilities, const std::string& rest = "") {
  return parsed(R"({"default": {"vulnerabilities": )" + vulnerabilities + "}" + rest + "}");
}

Finding finding(std::string id, Severity severity, std::string package = "openssl", std::string fixed = "3.0.2") {
  Finding out;
  out.id = std::move(id);
  out.package = std::move(package);
  out.installed_version = "3.0.1";
  out.fixed_version = std::move(fixed);
  out.severity = severity;
  return out;
}

ReportSummary report(std::vector<Finding> findings, TimePoint scanned_at = at("2026-11-04T00:00:00Z")) {
  ReportSummary out;
  out.scanner = "trivy";
  out.digest = "sha256:" + std::string(64, 'a');
  out.scanned_at = scanned_at;
  for (const Finding& f : findings) ++out.counts[f.severity];
  out.findings = std::move(findings);
  return out;
}

VulnerabilityJudgement judged(const Policy& policy, const std::optional<ReportSummary>& summary,
                              TimePoint when = now, const std::string& scope_name = "default") {
  for (const Scope& scope : policy.scopes) {
    if (scope.name == scope_name) {
      auto judgement = judge_report(policy, scope, summary, when);
      EXPECT_TRUE(judgement) << "scope " << scope_name << " has no vulnerability policy";
      if (judgement) return *judgement;
    }
  }
  ADD_FAILURE() << "no scope " << scope_name;
  return {};
}

// ---- parsing ----

TEST(VulnerabilityPolicy, AnEmptyObjectGivesTheDefaults) {
  const Policy policy = with_default("{}");
  const Scope& scope = policy.scopes.back();
  ASSERT_TRUE(scope.vulnerabilities);
  const VulnerabilityPolicy& v = *scope.vulnerabilities;
  EXPECT_EQ(v.block, (std::vector<Severity>{Severity::critical, Severity::high}));
  EXPECT_EQ(v.warn, (std::vector<Severity>{Severity::medium}));
  EXPECT_TRUE(v.max.empty());
  EXPECT_FALSE(v.ignore_unfixed);
  EXPECT_EQ(v.max_report_age, hours(7 * 24));
  EXPECT_EQ(v.unscanned, Unscanned::deny);
  EXPECT_EQ(v.hold_for, seconds(30));
}

TEST(VulnerabilityPolicy, ReadsEveryFieldInScopesAndDefault) {
  const auto result = parse_policy(R"({
    "default": {"vulnerabilities": {"unscanned": "allow"}},
    "scopes": [{"name": "prod", "repository": "prod/**",
                "vulnerabilities": {"block": ["CRITICAL"], "warn": ["HIGH", "MEDIUM"], "max": {"HIGH": 3, "LOW": 0},
                                    "ignore_unfixed": true, "max_report_age": "12h", "unscanned": "hold",
                                    "hold_s": 45}},
               {"name": "plain"}],
    "cve_exceptions": [
      {"id": "CVE-2024-1234", "package": "openssl", "scope": "prod", "reason": "not reachable",
       "who": "alice", "expires": "2026-12-01T00:00:00Z"},
      {"id": "GHSA-jfh8-c2jp-5v3q", "expires": "2027-01-01T00:00:00+01:00"}
    ]})");
  ASSERT_TRUE(result.policy) << joined(result.errors);
  EXPECT_TRUE(result.warnings.empty()) << joined(result.warnings);
  const Policy& policy = *result.policy;
  ASSERT_EQ(policy.scopes.size(), 3u);

  ASSERT_TRUE(policy.scopes[0].vulnerabilities);
  const VulnerabilityPolicy& prod = *policy.scopes[0].vulnerabilities;
  EXPECT_EQ(prod.block, (std::vector<Severity>{Severity::critical}));
  EXPECT_EQ(prod.warn, (std::vector<Severity>{Severity::high, Severity::medium}));
  EXPECT_EQ(prod.max, (std::map<Severity, std::uint32_t>{{Severity::high, 3}, {Severity::low, 0}}));
  EXPECT_TRUE(prod.ignore_unfixed);
  EXPECT_EQ(prod.max_report_age, hours(12));
  EXPECT_EQ(prod.unscanned, Unscanned::hold);
  EXPECT_EQ(prod.hold_for, seconds(45));

  EXPECT_FALSE(policy.scopes[1].vulnerabilities);
  ASSERT_TRUE(policy.scopes[2].vulnerabilities);
  EXPECT_EQ(policy.scopes[2].vulnerabilities->unscanned, Unscanned::allow);

  ASSERT_EQ(policy.cve_exceptions.size(), 2u);
  const CveException& first = policy.cve_exceptions[0];
  EXPECT_EQ(first.id, "CVE-2024-1234");
  EXPECT_EQ(first.package, "openssl");
  EXPECT_EQ(first.scope, "prod");
  EXPECT_EQ(first.reason, "not reachable");
  EXPECT_EQ(first.who, "alice");
  EXPECT_EQ(first.expires, at("2026-12-01T00:00:00Z"));
  const CveException& second = policy.cve_exceptions[1];
  EXPECT_EQ(second.id, "GHSA-jfh8-c2jp-5v3q");
  EXPECT_TRUE(second.package.empty());
  EXPECT_TRUE(second.scope.empty());
  EXPECT_EQ(second.expires, at("2026-12-31T23:00:00Z"));
}

TEST(VulnerabilityPolicy, DurationsInEveryUnit) {
  for (const auto& [text, expected] : std::vector<std::pair<std::string, seconds>>{
           {"90s", seconds(90)}, {"30m", seconds(1800)}, {"12h", hours(12)}, {"7d", hours(168)}, {"3650d", hours(87600)}}) {
    const Policy policy = with_default(R"({"max_report_age": ")" + text + R"("})");
    ASSERT_TRUE(!policy.scopes.empty() && policy.scopes.back().vulnerabilities) << text;
    EXPECT_EQ(policy.scopes.back().vulnerabilities->max_report_age, expected) << text;
  }
}

TEST(VulnerabilityPolicy, OneListWrittenGivesWayInTheOthersDefaults) {
  // MEDIUM moved to block: it no longer also warns.
  const Policy a = with_default(R"({"block": ["CRITICAL", "HIGH", "MEDIUM"]})");
  ASSERT_TRUE(a.scopes.back().vulnerabilities);
  EXPECT_EQ(a.scopes.back().vulnerabilities->warn, std::vector<Severity>{});
  // HIGH moved to warn: it no longer blocks.
  const Policy b = with_default(R"({"warn": ["HIGH", "MEDIUM"]})");
  ASSERT_TRUE(b.scopes.back().vulnerabilities);
  EXPECT_EQ(b.scopes.back().vulnerabilities->block, std::vector<Severity>{Severity::critical});
  // Empty lists are allowed: nothing blocks.
  const Policy c = with_default(R"({"block": [], "warn": []})");
  ASSERT_TRUE(c.scopes.back().vulnerabilities);
  EXPECT_TRUE(c.scopes.back().vulnerabilities->block.empty());
  EXPECT_TRUE(c.scopes.back().vulnerabilities->warn.empty());
}

TEST(VulnerabilityPolicy, HoldSecondsWithoutHoldWarns) {
  const auto result = parse_policy(R"({"default": {"vulnerabilities": {"hold_s": 10}}})");
  ASSERT_TRUE(result.policy) << joined(result.errors);
  EXPECT_TRUE(has_line(result.warnings, "default.vulnerabilities.hold_s: has no effect unless \"unscanned\" is \"hold\""))
      << joined(result.warnings);
}

TEST(VulnerabilityPolicy, ParseErrorsForEveryField) {
  struct Case {
    std::string vulnerabilities;
    std::string error;  // expected prefix
  };
  const std::vector<Case> cases = {
      {R"([])", "scopes[0].vulnerabilities: must be an object"},
      {R"({"blocks": []})", "scopes[0].vulnerabilities.blocks: unknown field; expected one of block, warn, max,"},
      {R"({"block": "CRITICAL"})", "scopes[0].vulnerabilities.block: must be an array"},
      {R"({"block": ["SEVERE"]})", "scopes[0].vulnerabilities.block[0]: must be CRITICAL, HIGH, MEDIUM, LOW,"},
      {R"({"block": ["critical"]})", "scopes[0].vulnerabilities.block[0]: must be CRITICAL, HIGH,"},
      {R"({"block": [5]})", "scopes[0].vulnerabilities.block[0]: must be CRITICAL"},
      {R"({"block": ["HIGH", "HIGH"]})", "scopes[0].vulnerabilities.block[1]: duplicate severity HIGH"},
      {R"({"warn": {"MEDIUM": true}})", "scopes[0].vulnerabilities.warn: must be an array"},
      {R"({"warn": ["MEDIUM", "medium"]})", "scopes[0].vulnerabilities.warn[1]: must be CRITICAL"},
      {R"({"block": ["HIGH"], "warn": ["HIGH"]})",
       "scopes[0].vulnerabilities.warn: severity HIGH is also in block; list it in one only"},
      {R"({"max": 3})", "scopes[0].vulnerabilities.max: must be an object"},
      {R"({"max": {"HUGE": 3}})", "scopes[0].vulnerabilities.max.HUGE: unknown severity"},
      {R"({"max": {"HIGH": -1}})", "scopes[0].vulnerabilities.max.HIGH: must be a whole number from 0 to 4294967295"},
      {R"({"max": {"HIGH": 1.5}})", "scopes[0].vulnerabilities.max.HIGH: must be a whole number"},
      {R"({"max": {"HIGH": "3"}})", "scopes[0].vulnerabilities.max.HIGH: must be a whole number"},
      {R"({"max": {"HIGH": 4294967296}})", "scopes[0].vulnerabilities.max.HIGH: must be a whole number"},
      {R"({"ignore_unfixed": "yes"})", "scopes[0].vulnerabilities.ignore_unfixed: must be true or false"},
      {R"({"ignore_unfixed": 1})", "scopes[0].vulnerabilities.ignore_unfixed: must be true or false"},
      {R"({"max_report_age": "7"})", "scopes[0].vulnerabilities.max_report_age: must be a duration"},
      {R"({"max_report_age": "0d"})", "scopes[0].vulnerabilities.max_report_age: must be a duration"},
      {R"({"max_report_age": "1w"})", "scopes[0].vulnerabilities.max_report_age: must be a duration"},
      {R"({"max_report_age": "-1d"})", "scopes[0].vulnerabilities.max_report_age: must be a duration"},
      {R"({"max_report_age": "3651d"})", "scopes[0].vulnerabilities.max_report_age: must be a duration"},
      {R"({"max_report_age": "99999999999d"})", "scopes[0].vulnerabilities.max_report_age: must be a duration"},
      {R"({"max_report_age": "1.5h"})", "scopes[0].vulnerabilities.max_report_age: must be a duration"},
      {R"({"max_report_age": 86400})", "scopes[0].vulnerabilities.max_report_age: must be a duration"},
      {R"({"unscanned": "block"})", "scopes[0].vulnerabilities.unscanned: must be deny, allow, warn or hold"},
      {R"({"unscanned": true})", "scopes[0].vulnerabilities.unscanned: must be deny, allow, warn or hold"},
      {R"({"unscanned": "hold", "hold_s": 0})", "scopes[0].vulnerabilities.hold_s: must be a whole number of seconds from 1 to 600"},
      {R"({"unscanned": "hold", "hold_s": 601})", "scopes[0].vulnerabilities.hold_s: must be a whole number"},
      {R"({"unscanned": "hold", "hold_s": -5})", "scopes[0].vulnerabilities.hold_s: must be a whole number"},
      {R"({"unscanned": "hold", "hold_s": 2.5})", "scopes[0].vulnerabilities.hold_s: must be a whole number"},
      {R"({"unscanned": "hold", "hold_s": "30"})", "scopes[0].vulnerabilities.hold_s: must be a whole number"},
  };
  for (const Case& c : cases) {
    const auto result = parse_policy(R"({"scopes": [{"name": "s", "vulnerabilities": )" + c.vulnerabilities + "}]}");
    EXPECT_FALSE(result.policy) << c.vulnerabilities;
    EXPECT_TRUE(has_prefix(result.errors, c.error)) << c.vulnerabilities << "\n" << joined(result.errors);
    EXPECT_EQ(result.errors.size(), 1u) << c.vulnerabilities << "\n" << joined(result.errors);
  }
  // The catch-all scope reads the same field under its own path.
  const auto result = parse_policy(R"({"default": {"vulnerabilities": {"unscanned": "later"}}})");
  EXPECT_TRUE(has_line(result.errors, "default.vulnerabilities.unscanned: must be deny, allow, warn or hold"))
      << joined(result.errors);
}

TEST(CveExceptions, ParseErrors) {
  const std::string expires = R"("expires": "2026-12-01T00:00:00Z")";
  struct Case {
    std::string exceptions;
    std::string error;
  };
  const std::vector<Case> cases = {
      {R"({})", "cve_exceptions: must be an array"},
      {R"(["CVE-2024-1234"])", "cve_exceptions[0]: must be an object"},
      {R"([{"id": "CVE-2024-1234", "until": "x", )" + expires + "}]",
       "cve_exceptions[0].until: unknown field; expected one of id, package, scope, reason, who, expires"},
      {"[{" + expires + "}]", "cve_exceptions[0].id: missing"},
      {R"([{"id": "", )" + expires + "}]", "cve_exceptions[0].id: must be a vulnerability id"},
      {R"([{"id": "CVE-24-1", )" + expires + "}]", "cve_exceptions[0].id: must be a vulnerability id"},
      {R"([{"id": "CVE-2024-12", )" + expires + "}]", "cve_exceptions[0].id: must be a vulnerability id"},
      {R"([{"id": "CVE 2024 1234", )" + expires + "}]", "cve_exceptions[0].id: must be a vulnerability id"},
      {R"([{"id": "1234", )" + expires + "}]", "cve_exceptions[0].id: must be a vulnerability id"},
      {R"([{"id": 1234, )" + expires + "}]", "cve_exceptions[0].id: must be a string"},
      {R"([{"id": "CVE-2024-1\u0007", )" + expires + "}]", "cve_exceptions[0].id: must not contain control characters"},
      {R"([{"id": "CVE-2024-1234", "package": "", )" + expires + "}]", "cve_exceptions[0].package: must not be empty"},
      {R"([{"id": "CVE-2024-1234", "package": ["openssl"], )" + expires + "}]",
       "cve_exceptions[0].package: must be a string"},
      {R"([{"id": "CVE-2024-1234", "scope": "nope", )" + expires + "}]",
       "cve_exceptions[0].scope: names no scope: \"nope\""},
      {R"([{"id": "CVE-2024-1234", "who": 7, )" + expires + "}]", "cve_exceptions[0].who: must be a string"},
      {R"([{"id": "CVE-2024-1234", "reason": "a\nb", )" + expires + "}]",
       "cve_exceptions[0].reason: must not contain control characters"},
      {R"([{"id": "CVE-2024-1234"}])", "cve_exceptions[0].expires: missing; a cve exception must expire"},
      {R"([{"id": "CVE-2024-1234", "expires": "2026-12-01"}])", "cve_exceptions[0].expires: must be an RFC 3339 time"},
      {R"([{"id": "CVE-2024-1234", "expires": "2026-02-30T00:00:00Z"}])",
       "cve_exceptions[0].expires: must be an RFC 3339 time"},
      {R"([{"id": "CVE-2024-1234", "expires": 1796083200}])", "cve_exceptions[0].expires: must be a string"},
      {R"([{"id": "CVE-2024-1234", )" + expires + R"(}, {"id": "cve-2024-1234", )" + expires + "}]",
       "cve_exceptions[1]: duplicate cve exception for cve-2024-1234 (first at cve_exceptions[0])"},
      {R"([{"id": "CVE-2024-1234", "package": "a", "scope": "s", )" + expires + R"(},
           {"id": "CVE-2024-1234", "package": "a", "scope": "s", "reason": "again", )" + expires + "}]",
       "cve_exceptions[1]: duplicate cve exception for CVE-2024-1234 in package \"a\" in scope \"s\" (first at "
       "cve_exceptions[0])"},
  };
  for (const Case& c : cases) {
    const auto result = parse_policy(R"({"scopes": [{"name": "s"}], "cve_exceptions": )" + c.exceptions + "}");
    EXPECT_FALSE(result.policy) << c.exceptions;
    EXPECT_TRUE(has_prefix(result.errors, c.error)) << c.exceptions << "\n" << joined(result.errors);
    EXPECT_EQ(result.errors.size(), 1u) << c.exceptions << "\n" << joined(result.errors);
  }
}

TEST(CveExceptions, SameIdWithOtherPackageOrScopeIsNoDuplicate) {
  const auto result = parse_policy(R"({"scopes": [{"name": "s"}], "cve_exceptions": [
      {"id": "CVE-2024-1234", "expires": "2026-12-01T00:00:00Z"},
      {"id": "CVE-2024-1234", "package": "openssl", "expires": "2026-12-01T00:00:00Z"},
      {"id": "CVE-2024-1234", "scope": "s", "expires": "2026-12-01T00:00:00Z"},
      {"id": "CVE-2024-1234", "scope": "default", "expires": "2026-12-01T00:00:00Z"},
      {"id": "CVE-2024-1234", "package": "openssl", "scope": "s", "expires": "2026-12-01T00:00:00Z"},
      {"id": "CVE-2024-12345678", "expires": "2026-12-01T00:00:00Z"},
      {"id": "GO-2022-0001", "expires": "2026-12-01T00:00:00Z"},
      {"id": "RUSTSEC-2021-0001", "expires": "2026-12-01T00:00:00Z"},
      {"id": "DLA-3200-1", "expires": "2026-12-01T00:00:00Z"}]})");
  ASSERT_TRUE(result.policy) << joined(result.errors);
  EXPECT_EQ(result.policy->cve_exceptions.size(), 9u);
}

// ---- judging ----

TEST(JudgeReport, AScopeWithoutTheBlockDoesNotLookAtReports) {
  const Policy policy = parsed(R"({"scopes": [{"name": "plain", "repository": "plain/**"}],
                                   "default": {"vulnerabilities": {}}})");
  const Scope& plain = scope_for(policy, "docker.io", "plain/app");
  ASSERT_EQ(plain.name, "plain");
  EXPECT_FALSE(judge_report(policy, plain, report({finding("CVE-2024-1", Severity::critical)}), now));
  EXPECT_FALSE(judge_report(policy, plain, std::nullopt, now));
  // And a policy without the block anywhere.
  const Policy bare = parsed("{}");
  EXPECT_FALSE(judge_report(bare, bare.scopes.back(), std::nullopt, now));
}

TEST(JudgeReport, DefaultsBlockCriticalAndHigh) {
  const Policy policy = with_default("{}");
  const auto critical = judged(policy, report({finding("CVE-2024-1", Severity::critical),
                                               finding("CVE-2024-2", Severity::critical, "zlib", "")}));
  EXPECT_EQ(critical.decision, Decision::deny);
  EXPECT_FALSE(critical.unscanned);
  EXPECT_EQ(critical.reasons, std::vector<std::string>{
                                  "2 CRITICAL findings block (CVE-2024-1 in openssl 3.0.1, fixed in 3.0.2; "
                                  "CVE-2024-2 in zlib 3.0.1, no fix)"});

  const auto high = judged(policy, report({finding("CVE-2024-3", Severity::high)}));
  EXPECT_EQ(high.decision, Decision::deny);
  EXPECT_EQ(high.reasons,
            std::vector<std::string>{"1 HIGH finding blocks (CVE-2024-3 in openssl 3.0.1, fixed in 3.0.2)"});
}

TEST(JudgeReport, DefaultsWarnOnMediumAndLogLow) {
  const Policy policy = with_default("{}");
  const auto medium = judged(policy, report({finding("CVE-2024-4", Severity::medium),
                                             finding("CVE-2024-5", Severity::low)}));
  EXPECT_EQ(medium.decision, Decision::warn);
  EXPECT_EQ(medium.reasons,
            std::vector<std::string>{"1 MEDIUM finding warns (CVE-2024-4 in openssl 3.0.1, fixed in 3.0.2)"});

  const auto low = judged(policy, report({finding("CVE-2024-5", Severity::low), finding("CVE-2024-6", Severity::low),
                                          finding("CVE-2024-7", Severity::negligible),
                                          finding("CVE-2024-8", Severity::unknown)}));
  EXPECT_EQ(low.decision, Decision::allow);
  EXPECT_EQ(low.reasons, std::vector<std::string>{"report from trivy at 2026-11-04T00:00:00Z: nothing blocks or warns "
                                                  "(logged: 2 LOW, 1 NEGLIGIBLE, 1 UNKNOWN)"});

  const auto clean = judged(policy, report({}));
  EXPECT_EQ(clean.decision, Decision::allow);
  EXPECT_EQ(clean.reasons,
            std::vector<std::string>{"report from trivy at 2026-11-04T00:00:00Z: nothing blocks or warns"});
}

TEST(JudgeReport, BlockingAndWarningReasonsTogether) {
  const Policy policy = with_default("{}");
  const auto judgement = judged(policy, report({finding("CVE-2024-4", Severity::medium),
                                                finding("CVE-2024-3", Severity::high),
                                                finding("CVE-2024-1", Severity::critical)}));
  EXPECT_EQ(judgement.decision, Decision::deny);
  ASSERT_EQ(judgement.reasons.size(), 3u) << joined(judgement.reasons);
  EXPECT_TRUE(judgement.reasons[0].starts_with("1 CRITICAL finding blocks")) << joined(judgement.reasons);
  EXPECT_TRUE(judgement.reasons[1].starts_with("1 HIGH finding blocks")) << joined(judgement.reasons);
  EXPECT_TRUE(judgement.reasons[2].starts_with("1 MEDIUM finding warns")) << joined(judgement.reasons);
}

TEST(JudgeReport, EachSeveritySettingIsHonoured) {
  // LOW blocks, CRITICAL only warns, HIGH and MEDIUM are only logged.
  const Policy policy = with_default(R"({"block": ["LOW", "NEGLIGIBLE"], "warn": ["CRITICAL"]})");
  const auto low = judged(policy, report({finding("CVE-2024-5", Severity::low)}));
  EXPECT_EQ(low.decision, Decision::deny);
  EXPECT_TRUE(has_prefix(low.reasons, "1 LOW finding blocks")) << joined(low.reasons);
  const auto negligible = judged(policy, report({finding("CVE-2024-5", Severity::negligible)}));
  EXPECT_EQ(negligible.decision, Decision::deny);
  const auto critical = judged(policy, report({finding("CVE-2024-1", Severity::critical)}));
  EXPECT_EQ(critical.decision, Decision::warn);
  EXPECT_TRUE(has_prefix(critical.reasons, "1 CRITICAL finding warns")) << joined(critical.reasons);
  const auto high = judged(policy, report({finding("CVE-2024-3", Severity::high), finding("CVE-2024-4", Severity::medium)}));
  EXPECT_EQ(high.decision, Decision::allow);
  EXPECT_TRUE(has_prefix(high.reasons, "report from trivy at 2026-11-04T00:00:00Z: nothing blocks or warns (logged: 1 HIGH, 1 MEDIUM)"))
      << joined(high.reasons);
  const auto unknown = judged(with_default(R"({"block": ["UNKNOWN"]})"), report({finding("X-1", Severity::unknown)}));
  EXPECT_EQ(unknown.decision, Decision::deny);
}

TEST(JudgeReport, ListsAtMostFiveFindingsPerLine) {
  std::vector<Finding> findings;
  for (int i = 1; i <= 8; ++i) findings.push_back(finding("CVE-2024-000" + std::to_string(i), Severity::critical, "p", ""));
  const auto judgement = judged(with_default("{}"), report(findings));
  EXPECT_EQ(judgement.reasons,
            std::vector<std::string>{"8 CRITICAL findings block (CVE-2024-0001 in p 3.0.1, no fix; "
                                     "CVE-2024-0002 in p 3.0.1, no fix; CVE-2024-0003 in p 3.0.1, no fix; "
                                     "CVE-2024-0004 in p 3.0.1, no fix; CVE-2024-0005 in p 3.0.1, no fix; and 3 more)"});
}

TEST(JudgeReport, MaxCountsBlockOnlyAboveTheMaximum) {
  const Policy policy = with_default(R"({"max": {"HIGH": 3, "LOW": 1, "MEDIUM": 0}})");
  std::vector<Finding> highs;
  for (int i = 1; i <= 3; ++i) highs.push_back(finding("CVE-2024-100" + std::to_string(i), Severity::high));

  const auto three = judged(policy, report(highs));
  EXPECT_EQ(three.decision, Decision::warn);
  ASSERT_EQ(three.reasons.size(), 1u);
  EXPECT_TRUE(three.reasons[0].starts_with("3 HIGH findings within the maximum of 3 (CVE-2024-1001")) << three.reasons[0];

  highs.push_back(finding("CVE-2024-1004", Severity::high));
  const auto four = judged(policy, report(highs));
  EXPECT_EQ(four.decision, Decision::deny);
  ASSERT_EQ(four.reasons.size(), 1u);
  EXPECT_TRUE(four.reasons[0].starts_with("4 HIGH findings exceed the maximum of 3 (CVE-2024-1001")) << four.reasons[0];

  // A logged severity with a maximum blocks above it, and is still only logged below.
  const auto one_low = judged(policy, report({finding("CVE-2024-5", Severity::low)}));
  EXPECT_EQ(one_low.decision, Decision::allow);
  const auto two_low = judged(policy, report({finding("CVE-2024-5", Severity::low), finding("CVE-2024-6", Severity::low)}));
  EXPECT_EQ(two_low.decision, Decision::deny);
  EXPECT_TRUE(has_prefix(two_low.reasons, "2 LOW findings exceed the maximum of 1")) << joined(two_low.reasons);
  // A warning severity with a maximum of 0 blocks at the first finding.
  const auto medium = judged(policy, report({finding("CVE-2024-4", Severity::medium)}));
  EXPECT_EQ(medium.decision, Decision::deny);
  EXPECT_TRUE(has_prefix(medium.reasons, "1 MEDIUM finding exceeds the maximum of 0")) << joined(medium.reasons);
  // CRITICAL has no maximum: still blocks at the first.
  EXPECT_EQ(judged(policy, report({finding("CVE-2024-1", Severity::critical)})).decision, Decision::deny);
}

TEST(JudgeReport, IgnoreUnfixedDropsFindingsWithoutAFix) {
  const Policy policy = with_default(R"({"ignore_unfixed": true})");
  const auto unfixed = judged(policy, report({finding("CVE-2024-1", Severity::critical, "openssl", ""),
                                              finding("CVE-2024-2", Severity::high, "zlib", "")}));
  EXPECT_EQ(unfixed.decision, Decision::allow);
  EXPECT_EQ(unfixed.reasons, std::vector<std::string>{"report from trivy at 2026-11-04T00:00:00Z: nothing blocks or "
                                                      "warns (2 without a fix ignored)"});
  const auto fixed = judged(policy, report({finding("CVE-2024-1", Severity::critical, "openssl", ""),
                                            finding("CVE-2024-3", Severity::critical, "curl", "8.0")}));
  EXPECT_EQ(fixed.decision, Decision::deny);
  EXPECT_EQ(fixed.reasons,
            std::vector<std::string>{"1 CRITICAL finding blocks (CVE-2024-3 in curl 3.0.1, fixed in 8.0)"});
  // Without the setting, unfixed findings count.
  EXPECT_EQ(judged(with_default("{}"), report({finding("CVE-2024-1", Severity::critical, "openssl", "")})).decision,
            Decision::deny);
}

TEST(JudgeReport, AnOldReportCountsAsUnscanned) {
  const Policy policy = with_default("{}");
  const TimePoint scanned = at("2026-11-01T00:00:00Z");
  const auto clean_report = report({}, scanned);
  // Exactly the maximum age is still fresh.
  const auto fresh = judged(policy, clean_report, scanned + hours(7 * 24));
  EXPECT_EQ(fresh.decision, Decision::allow);
  EXPECT_FALSE(fresh.unscanned);

  const auto stale = judged(policy, clean_report, scanned + hours(7 * 24) + seconds(1));
  EXPECT_EQ(stale.decision, Decision::deny);
  EXPECT_TRUE(stale.unscanned);
  EXPECT_FALSE(stale.hold);
  EXPECT_EQ(stale.reasons, (std::vector<std::string>{"report from trivy at 2026-11-01T00:00:00Z is older than 7d: the "
                                                     "image counts as unscanned and is awaiting a scan",
                                                     "scope default denies unscanned images"}));

  const Policy hourly = with_default(R"({"max_report_age": "12h"})");
  const auto twelve = judged(hourly, clean_report, scanned + hours(13));
  EXPECT_TRUE(twelve.unscanned);
  EXPECT_TRUE(has_prefix(twelve.reasons, "report from trivy at 2026-11-01T00:00:00Z is older than 12h"))
      << joined(twelve.reasons);
  const Policy short_age = with_default(R"({"max_report_age": "90s"})");
  EXPECT_TRUE(has_prefix(judged(short_age, clean_report, scanned + seconds(91)).reasons,
                         "report from trivy at 2026-11-01T00:00:00Z is older than 90s"));
  // A scan time in the future (clock skew) is fresh, not an error.
  EXPECT_EQ(judged(policy, clean_report, scanned - hours(1)).decision, Decision::allow);
}

TEST(JudgeReport, AReportWithoutAScanTimeCountsAsUnscanned) {
  ReportSummary summary = report({});
  summary.scanner = "grype";
  summary.scanned_at.reset();
  const auto judgement = judged(with_default("{}"), summary);
  EXPECT_TRUE(judgement.unscanned);
  EXPECT_EQ(judgement.decision, Decision::deny);
  EXPECT_TRUE(has_line(judgement.reasons,
                       "report from grype has no scan time, so its age is unknown: the image counts as unscanned "
                                         "and is awaiting a scan"))
      << joined(judgement.reasons);
}

TEST(JudgeReport, EachUnscannedSetting) {
  const std::string awaiting = "no vulnerability report yet: the image is awaiting a scan";

  const auto deny = judged(with_default(R"({"unscanned": "deny"})"), std::nullopt);
  EXPECT_EQ(deny.decision, Decision::deny);
  EXPECT_TRUE(deny.unscanned);
  EXPECT_FALSE(deny.hold);
  EXPECT_EQ(deny.reasons, (std::vector<std::string>{awaiting, "scope default denies unscanned images"}));

  const auto allow = judged(with_default(R"({"unscanned": "allow"})"), std::nullopt);
  EXPECT_EQ(allow.decision, Decision::allow);
  EXPECT_TRUE(allow.unscanned);
  EXPECT_EQ(allow.reasons, (std::vector<std::string>{awaiting, "scope default allows unscanned images"}));

  const auto warn = judged(with_default(R"({"unscanned": "warn"})"), std::nullopt);
  EXPECT_EQ(warn.decision, Decision::warn);
  EXPECT_TRUE(warn.unscanned);
  EXPECT_EQ(warn.reasons, (std::vector<std::string>{awaiting, "scope default warns on unscanned images"}));

  const auto hold = judged(with_default(R"({"unscanned": "hold", "hold_s": 45})"), std::nullopt);
  EXPECT_EQ(hold.decision, Decision::deny);
  EXPECT_TRUE(hold.unscanned);
  EXPECT_TRUE(hold.hold);
  EXPECT_EQ(hold.hold_for, seconds(45));
  EXPECT_EQ(hold.reasons,
            (std::vector<std::string>{awaiting, "scope default holds the pull up to 45s for a report, then denies it"}));

  const auto hold_default = judged(with_default(R"({"unscanned": "hold"})"), std::nullopt);
  EXPECT_EQ(hold_default.hold_for, seconds(30));

  // A stale report under "hold" holds too; a fresh one is judged and never holds.
  const Policy holding = with_default(R"({"unscanned": "hold"})");
  const auto stale = judged(holding, report({}, at("2026-10-01T00:00:00Z")));
  EXPECT_TRUE(stale.hold);
  const auto fresh = judged(holding, report({finding("CVE-2024-1", Severity::critical)}));
  EXPECT_FALSE(fresh.hold);
  EXPECT_FALSE(fresh.unscanned);
  EXPECT_EQ(fresh.hold_for, seconds(0));
  EXPECT_EQ(fresh.decision, Decision::deny);
}

TEST(JudgeReport, ACveExceptionSetsAFindingAsideUntilItExpires) {
  const Policy policy = with_default("{}", R"(, "cve_exceptions": [
      {"id": "CVE-2024-1234", "reason": "not reachable", "who": "alice", "expires": "2026-12-01T00:00:00Z"}])");
  const auto summary = report({finding("CVE-2024-1234", Severity::critical)});

  const auto excepted = judged(policy, summary);
  EXPECT_EQ(excepted.decision, Decision::allow);
  EXPECT_EQ(excepted.excepted, std::vector<std::string>{
                                   "CVE-2024-1234 (openssl) excepted by alice until 2026-12-01T00:00:00Z: not reachable"});
  EXPECT_EQ(excepted.reasons, std::vector<std::string>{"report from trivy at 2026-11-04T00:00:00Z: nothing blocks or "
                                                       "warns (1 excepted)"});

  // At the expiry instant it no longer applies.
  const TimePoint expiry = at("2026-12-01T00:00:00Z");
  const auto expired = judged(policy, report({finding("CVE-2024-1234", Severity::critical)}, expiry - hours(1)), expiry);
  EXPECT_EQ(expired.decision, Decision::deny);
  EXPECT_TRUE(expired.excepted.empty());
  const auto just_before = judged(policy, report({finding("CVE-2024-1234", Severity::critical)}, expiry - hours(1)),
                                  expiry - seconds(1));
  EXPECT_EQ(just_before.decision, Decision::allow);

  // Only that id: another critical still blocks, and is the only one counted.
  const auto other = judged(policy, report({finding("CVE-2024-1234", Severity::critical),
                                            finding("CVE-2024-9999", Severity::critical)}));
  EXPECT_EQ(other.decision, Decision::deny);
  EXPECT_EQ(other.reasons,
            std::vector<std::string>{"1 CRITICAL finding blocks (CVE-2024-9999 in openssl 3.0.1, fixed in 3.0.2)"});
  EXPECT_EQ(other.excepted.size(), 1u);

  // Ids match regardless of case.
  EXPECT_EQ(judged(policy, report({finding("cve-2024-1234", Severity::critical)})).decision, Decision::allow);
}

TEST(JudgeReport, ACveExceptionByPackage) {
  const Policy policy = with_default("{}", R"(, "cve_exceptions": [
      {"id": "CVE-2024-1234", "package": "openssl", "expires": "2026-12-01T00:00:00Z"}])");
  const auto judgement = judged(policy, report({finding("CVE-2024-1234", Severity::high, "openssl"),
                                                finding("CVE-2024-1234", Severity::high, "libssl3")}));
  EXPECT_EQ(judgement.decision, Decision::deny);
  EXPECT_EQ(judgement.excepted,
            std::vector<std::string>{"CVE-2024-1234 (openssl) excepted until 2026-12-01T00:00:00Z"});
  EXPECT_EQ(judgement.reasons,
            std::vector<std::string>{"1 HIGH finding blocks (CVE-2024-1234 in libssl3 3.0.1, fixed in 3.0.2)"});
}

TEST(JudgeReport, ACveExceptionByScope) {
  const Policy policy = parsed(R"({
      "default": {"vulnerabilities": {}},
      "scopes": [{"name": "dev", "repository": "dev/**", "vulnerabilities": {}}],
      "cve_exceptions": [{"id": "CVE-2024-1234", "scope": "dev", "who": "bob", "expires": "2026-12-01T00:00:00Z"}]})");
  const auto summary = report({finding("CVE-2024-1234", Severity::critical)});
  const auto dev = judged(policy, summary, now, "dev");
  EXPECT_EQ(dev.decision, Decision::allow);
  EXPECT_EQ(dev.excepted.size(), 1u);
  const auto elsewhere = judged(policy, summary, now, "default");
  EXPECT_EQ(elsewhere.decision, Decision::deny);
  EXPECT_TRUE(elsewhere.excepted.empty());
}

TEST(JudgeReport, IgnoredUnfixedFindingsAreNotListedAsExcepted) {
  const Policy policy = with_default(R"({"ignore_unfixed": true})", R"(, "cve_exceptions": [
      {"id": "CVE-2024-1234", "expires": "2026-12-01T00:00:00Z"}])");
  const auto judgement = judged(policy, report({finding("CVE-2024-1234", Severity::critical, "openssl", "")}));
  EXPECT_EQ(judgement.decision, Decision::allow);
  EXPECT_TRUE(judgement.excepted.empty());
}

TEST(JudgeReport, ReportTextCannotBreakTheOneLineReasons) {
  ReportSummary summary = report({finding("CVE-2024-1\nINJECTED", Severity::critical, "open\rssl", "1\x7f")});
  summary.scanner = "trivy\n";
  summary.findings.push_back(finding(std::string(1000, 'A'), Severity::critical, std::string(1000, 'p')));
  const auto judgement = judged(with_default("{}"), summary);
  ASSERT_EQ(judgement.reasons.size(), 1u);
  const std::string& reason = judgement.reasons[0];
  EXPECT_EQ(reason.find('\n'), std::string::npos) << reason;
  EXPECT_EQ(reason.find('\r'), std::string::npos) << reason;
  EXPECT_EQ(reason.find('\x7f'), std::string::npos) << reason;
  EXPECT_TRUE(reason.starts_with("2 CRITICAL findings block (CVE-2024-1?INJECTED in open?ssl 3.0.1, fixed in 1?; "))
      << reason;
  EXPECT_LT(reason.size(), 600u) << reason;

  summary.scanned_at = at("2020-01-01T00:00:00Z");
  const auto stale = judged(with_default("{}"), summary);
  for (const std::string& line : stale.reasons) EXPECT_EQ(line.find('\n'), std::string::npos) << line;
}

TEST(JudgeReport, UnscannedToString) {
  EXPECT_EQ(to_string(Unscanned::deny), "deny");
  EXPECT_EQ(to_string(Unscanned::allow), "allow");
  EXPECT_EQ(to_string(Unscanned::warn), "warn");
  EXPECT_EQ(to_string(Unscanned::hold), "hold");
}

}  // namespace
}  // namespace pullgate::policy
