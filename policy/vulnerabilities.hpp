#pragma once
// Judges a digest by its vulnerability report under a scope's vulnerability policy.
// Pure: `now` is a parameter; the gate looks the report up and acts on the judgement
// (including the waiting a hold asks for).
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.hpp"
#include "policy/report.hpp"
#include "policy/vex.hpp"

namespace pullgate::policy {

std::string_view to_string(Unscanned);

struct VulnerabilityJudgement {
  Decision decision = Decision::deny;  // set by judge_report; deny if anything forgot to
  bool unscanned = false;              // no report, or one older than max_report_age
  bool hold = false;                   // unscanned under "hold": wait up to hold_for, then deny
  std::chrono::seconds hold_for{0};
  std::vector<std::string> reasons;    // one line each: what blocks, what warns, or why nothing does
  std::vector<std::string> excepted;   // one line per finding a CVE exception or a VEX statement set aside
};

// Folds a judgement into an evaluation's outcome: the stricter decision wins (its
// reasons, source report or unscanned), the other's reasons are kept, excepted
// findings are listed as "set aside", and `serve` follows the mode again. Used by
// the gate and by explain, so both decide alike.
void combine(Outcome& outcome, const VulnerabilityJudgement& judgement);

// nullopt when the scope has no vulnerability policy (it does not look at reports).
// Findings are counted from report->findings (not report->counts), after dropping
// unfixed ones when ignore_unfixed is set and excepted ones; the policy's
// cve_exceptions apply when unexpired at `now` and their package and scope match.
// Then VEX, when the scope's vulnerability policy has `vex` (else `vex` is ignored):
// a finding whose deciding statement (vex_decision, about the report's digest) says
// not_affected or fixed is set aside too, with describe_vex's line. `vex`: the
// documents the scope's VexTrust believes, as the caller found them.
std::optional<VulnerabilityJudgement> judge_report(const Policy& policy, const Scope& scope,
                                                   const std::optional<ReportSummary>& report, TimePoint now,
                                                   std::span<const VexSource> vex = {});

}  // namespace pullgate::policy
