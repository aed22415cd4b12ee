// judge_report: a scope's vulnerability policy applied to a digest's report.
#include "policy/vulnerabilities.hpp"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>

#include "policy/rfc3339.hpp"
#include "policy/text.hpp"

namespace pullgate::policy {
namespace {

constexpr std::size_t listed_findings = 5;     // per reason line, then "and N more"
constexpr std::size_t max_field_length = 128;  // of report text quoted in a reason

std::string severity_name(Severity severity) {
  std::string name(to_string(severity));
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

// Report text is untrusted and reasons are printed on one line (policy/text.hpp).
std::string printable(std::string_view text) { return policy::printable(text, max_field_length); }

std::string duration_text(std::chrono::seconds duration) {
  const auto seconds = duration.count();
  if (seconds > 0 && seconds % 86400 == 0) return std::to_string(seconds / 86400) + "d";
  if (seconds > 0 && seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  if (seconds > 0 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

// "CVE-2024-1 in openssl 3.0.1, fixed in 3.0.2" / "... , no fix"
std::string describe(const Finding& finding) {
  std::string out = printable(finding.id);
  if (!finding.package.empty()) {
    out += " in " + printable(finding.package);
    if (!finding.installed_version.empty()) out += " " + printable(finding.installed_version);
  }
  out += finding.fixed() ? ", fixed in " + printable(finding.fixed_version) : ", no fix";
  return out;
}

std::string listing(const std::vector<const Finding*>& findings) {
  std::string out;
  for (std::size_t i = 0; i < findings.size() && i < listed_findings; ++i) {
    out += (i == 0 ? "" : "; ") + describe(*findings[i]);
  }
  if (findings.size() > listed_findings) out += "; and " + std::to_string(findings.size() - listed_findings) + " more";
  return " (" + out + ")";
}

// "2 CRITICAL findings" / "1 CRITICAL finding"
std::string counted(std::size_t count, Severity severity) {
  return std::to_string(count) + " " + severity_name(severity) + (count == 1 ? " finding" : " findings");
}

bool listed(const std::vector<Severity>& severities, Severity severity) {
  return std::find(severities.begin(), severities.end(), severity) != severities.end();
}

const CveException* exception_for(const Policy& policy, const Scope& scope, const Finding& finding, TimePoint now) {
  for (const CveException& exception : policy.cve_exceptions) {
    if (!equal_ignoring_case(exception.id, finding.id)) continue;
    if (!exception.package.empty() && exception.package != finding.package) continue;
    if (!exception.scope.empty() && exception.scope != scope.name) continue;
    if (now >= exception.expires) continue;
    return &exception;
  }
  return nullptr;
}

// "CVE-2024-1234 (openssl) excepted by alice until 2026-12-01T00:00:00Z: reason"
std::string excepted_line(const Finding& finding, const CveException& exception) {
  std::string line = printable(finding.id);
  if (!finding.package.empty()) line += " (" + printable(finding.package) + ")";
  line += " excepted";
  if (!exception.who.empty()) line += " by " + exception.who;
  line += " until " + format_rfc3339(exception.expires);
  if (!exception.reason.empty()) line += ": " + exception.reason;
  return line;
}

VulnerabilityJudgement unscanned_judgement(const VulnerabilityPolicy& rules, const Scope& scope, std::string why) {
  VulnerabilityJudgement judgement;
  judgement.unscanned = true;
  judgement.reasons.push_back(std::move(why));
  switch (rules.unscanned) {
    case Unscanned::deny:
      judgement.decision = Decision::deny;
      judgement.reasons.push_back("scope " + scope.name + " denies unscanned images");
      break;
    case Unscanned::allow:
      judgement.decision = Decision::allow;
      judgement.reasons.push_back("scope " + scope.name + " allows unscanned images");
      break;
    case Unscanned::warn:
      judgement.decision = Decision::warn;
      judgement.reasons.push_back("scope " + scope.name + " warns on unscanned images");
      break;
    case Unscanned::hold:
      // What applies once the hold runs out; the gate re-judges if a report arrives.
      judgement.decision = Decision::deny;
      judgement.hold = true;
      judgement.hold_for = rules.hold_for;
      judgement.reasons.push_back("scope " + scope.name + " holds the pull up to " + duration_text(rules.hold_for) +
                                  " for a report, then denies it");
      break;
  }
  return judgement;
}

}  // namespace

std::string_view to_string(Unscanned unscanned) {
  switch (unscanned) {
    case Unscanned::deny: return "deny";
    case Unscanned::allow: return "allow";
    case Unscanned::warn: return "warn";
    case Unscanned::hold: return "hold";
  }
  return "deny";
}

std::optional<VulnerabilityJudgement> judge_report(const Policy& policy, const Scope& scope,
                                                   const std::optional<ReportSummary>& report, TimePoint now,
                                                   std::span<const VexSource> vex) {
  if (!scope.vulnerabilities) return std::nullopt;
  const VulnerabilityPolicy& rules = *scope.vulnerabilities;

  if (!report) return unscanned_judgement(rules, scope, "no vulnerability report yet: the image is awaiting a scan");
  const std::string scanner = report->scanner.empty() ? std::string("an unnamed scanner") : printable(report->scanner);
  if (!report->scanned_at) {
    return unscanned_judgement(rules, scope, "report from " + scanner +
                                                 " has no scan time, so its age is unknown: the image counts as unscanned and is awaiting a scan");
  }
  const std::string scanned = "report from " + scanner + " at " + format_rfc3339(*report->scanned_at);
  if (now - *report->scanned_at > rules.max_report_age) {
    return unscanned_judgement(rules, scope, scanned + " is older than " + duration_text(rules.max_report_age) +
                                                 ": the image counts as unscanned and is awaiting a scan");
  }

  VulnerabilityJudgement judgement;
  std::map<Severity, std::vector<const Finding*>, std::greater<>> by_severity;  // worst first
  std::size_t unfixed_ignored = 0;
  std::size_t vex_set_aside = 0;
  if (!rules.vex) vex = {};
  for (const Finding& finding : report->findings) {
    std::optional<VexDecision> decision;
    if (rules.ignore_unfixed && !finding.fixed()) {
      ++unfixed_ignored;
    } else if (const CveException* exception = exception_for(policy, scope, finding, now)) {
      judgement.excepted.push_back(excepted_line(finding, *exception));
    } else if ((decision = vex_decision(vex, report->digest, finding)) && sets_aside(*decision)) {
      judgement.excepted.push_back(describe_vex(finding, *decision));
      ++vex_set_aside;
    } else {
      by_severity[finding.severity].push_back(&finding);
    }
  }

  std::vector<std::string> blocking;
  std::vector<std::string> warning;
  std::string logged;
  for (const auto& [severity, findings] : by_severity) {
    const std::size_t count = findings.size();
    const auto max = rules.max.find(severity);
    if (max != rules.max.end() && count > max->second) {
      blocking.push_back(counted(count, severity) + (count == 1 ? " exceeds" : " exceed") + " the maximum of " +
                         std::to_string(max->second) + listing(findings));
    } else if (max != rules.max.end() && listed(rules.block, severity)) {
      // A blocking severity held under its maximum is tolerated, but not silently.
      warning.push_back(counted(count, severity) + " within the maximum of " + std::to_string(max->second) +
                        listing(findings));
    } else if (listed(rules.block, severity)) {
      blocking.push_back(counted(count, severity) + (count == 1 ? " blocks" : " block") + listing(findings));
    } else if (listed(rules.warn, severity)) {
      warning.push_back(counted(count, severity) + (count == 1 ? " warns" : " warn") + listing(findings));
    } else {
      logged += (logged.empty() ? "" : ", ") + std::to_string(count) + " " + severity_name(severity);
    }
  }

  if (!blocking.empty()) {
    judgement.decision = Decision::deny;
  } else if (!warning.empty()) {
    judgement.decision = Decision::warn;
  } else {
    judgement.decision = Decision::allow;
    std::string notes;
    if (!logged.empty()) notes = "logged: " + logged;
    if (unfixed_ignored > 0) {
      notes += (notes.empty() ? "" : "; ") + std::to_string(unfixed_ignored) + " without a fix ignored";
    }
    if (const std::size_t excepted = judgement.excepted.size() - vex_set_aside; excepted > 0) {
      notes += (notes.empty() ? "" : "; ") + std::to_string(excepted) + " excepted";
    }
    if (vex_set_aside > 0) {
      notes += (notes.empty() ? "" : "; ") + std::to_string(vex_set_aside) + " set aside by VEX";
    }
    judgement.reasons.push_back(scanned + ": nothing blocks or warns" + (notes.empty() ? "" : " (" + notes + ")"));
  }
  for (std::string& line : blocking) judgement.reasons.push_back(std::move(line));
  for (std::string& line : warning) judgement.reasons.push_back(std::move(line));
  return judgement;
}

void combine(Outcome& outcome, const VulnerabilityJudgement& judgement) {
  auto rank = [](Decision d) { return d == Decision::deny ? 2 : d == Decision::warn ? 1 : 0; };
  if (rank(judgement.decision) > rank(outcome.decision)) {
    outcome.decision = judgement.decision;
    outcome.source = judgement.unscanned ? Source::unscanned : Source::report;
    outcome.reasons = judgement.reasons;
  } else {
    outcome.reasons.insert(outcome.reasons.end(), judgement.reasons.begin(), judgement.reasons.end());
  }
  for (auto& e : judgement.excepted) outcome.reasons.push_back("set aside: " + e);
  outcome.serve = outcome.mode != Mode::enforce || outcome.decision != Decision::deny;
}

}  // namespace pullgate::policy
