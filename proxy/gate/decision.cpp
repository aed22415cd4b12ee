#include "proxy/gate/decision.hpp"

#include "policy/report.hpp"
#include "policy/vex.hpp"
#include "policy/vulnerabilities.hpp"
#include "proxy/gate/signal_findings.hpp"

namespace pullgate::proxy {

using policy::Decision;
using policy::Source;

namespace {

GateDecision from_outcome(const policy::Outcome& o) {
  GateDecision d;
  d.serve = o.serve;
  d.decision = o.decision;
  d.mode = o.mode;
  d.scope = o.scope;
  d.source = std::string(policy::to_string(o.source));
  d.reasons = o.reasons;
  d.policy_version = o.policy_version;
  d.exception_id = o.exception_id;
  return d;
}

std::optional<policy::TimePoint> earlier(std::optional<policy::TimePoint> a, std::optional<policy::TimePoint> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// What the scope's signals add to an outcome: until when a verdict made from them
// counts (report age, CVE exception expiry, a negative finding's recheck), and
// whether it is a hold (not to be stored).
struct Judged {
  std::optional<std::int64_t> valid_until_ms;
  std::chrono::seconds hold_for{0};
};

// The scope's vulnerability policy on the digest's report.
Judged judge_report(const DecisionContext& c, const policy::Scope& scope, const policy::Subject& subject,
                    const registry::Digest& digest, policy::Outcome& outcome) {
  Judged judged;
  if (!scope.vulnerabilities || policy::standing(outcome.source)) return judged;
  std::optional<policy::ReportSummary> report;
  if (auto record = c.meta.get_report(digest)) report = policy::decode_summary(record->summary_json);
  // The VEX documents the scope believes: those imported for the digest (pullgate vex
  // import), when it trusts imported ones.
  std::vector<policy::VexDocument> documents;
  std::vector<std::string> origins;
  if (report && scope.vulnerabilities->vex && scope.vulnerabilities->vex->imported) {
    for (const auto& record : c.meta.vex_for(digest)) {
      auto document = policy::decode_vex(record.document_json);
      if (!document) continue;
      documents.push_back(std::move(*document));
      origins.push_back(record.by.empty() ? "imported" : "imported by " + record.by);
    }
  }
  std::vector<policy::VexSource> vex;
  for (std::size_t i = 0; i < documents.size(); ++i) vex.push_back({&documents[i], origins[i]});
  auto judgement = policy::judge_report(c.policy, scope, report, c.now, vex);
  if (!judgement) return judged;

  if (judgement->unscanned && c.store) {
    std::string reference = subject.upstream + "/" + subject.repository +
                            (subject.tag ? ":" + *subject.tag : "@" + subject.digest.str());
    c.meta.add_pending(digest, reference, policy::ms_of(c.now));
    if (c.queued) c.queued(digest);
    for (auto& r : judgement->reasons)
      if (r.find("awaiting a scan") != std::string::npos) r += " (queued for scanners: GET /v1/pending)";
  }
  if (judgement->hold && scope.mode == policy::Mode::enforce && outcome.decision != Decision::deny)
    judged.hold_for = judgement->hold_for;
  policy::combine(outcome, *judgement);

  // A verdict made from a report stops counting when the report gets too old, or
  // when a CVE exception that set a finding aside expires.
  if (report && report->scanned_at && !judgement->unscanned)
    judged.valid_until_ms = policy::ms_of(*report->scanned_at + scope.vulnerabilities->max_report_age);
  if (!judgement->excepted.empty()) {
    for (auto& exception : c.policy.cve_exceptions)
      if (exception.expires > c.now && (!judged.valid_until_ms || policy::ms_of(exception.expires) < *judged.valid_until_ms))
        judged.valid_until_ms = policy::ms_of(exception.expires);
  }
  return judged;
}

// The report, then signatures and SBOMs as the mirror found them before it asked
// (proxy/signals.hpp).
Judged judge(const DecisionContext& c, const policy::Subject& subject, const registry::Digest& digest,
             policy::Outcome& outcome) {
  const auto& scope = policy::scope_for(c.policy, subject.upstream, subject.repository);
  auto judged = judge_report(c, scope, subject, digest, outcome);
  if (auto until = judge_signals(c.meta, c.policy, scope, digest, outcome, policy::ms_of(c.now)))
    if (!judged.valid_until_ms || *until < *judged.valid_until_ms) judged.valid_until_ms = until;
  return judged;
}

GateDecision decide_manifest_at(const DecisionContext& c, const policy::Subject& subject, int depth) {
  const auto& digest = subject.digest;
  const auto& scope = policy::scope_for(c.policy, subject.upstream, subject.repository);
  // Held until this digest's own verdict is settled, not while its indexes are decided.
  cache::KeyLocks::Held held;
  if (c.hold) held = c.hold(digest);
  const auto chosen = verdict_for(c.meta, digest, c.policy, scope.name, c.now);
  const auto& stored = chosen.usable.stored;
  auto outcome = policy::evaluate(c.policy, subject, stored, c.now, c.extra);
  // No stored verdict counts and no exception settled it: the policy decides now.
  const bool evaluated = !stored && outcome.source != Source::exception;
  if (evaluated && !chosen.record && c.store_down && c.store_down()) {
    // Never decided here, and the fleet may have decided it where this replica
    // cannot see (fleet.on_store_down: fail_closed). Refused, not stored: decided
    // normally once the store is back.
    auto decision = from_outcome(outcome);
    decision.decision = Decision::deny;
    decision.serve = decision.mode != policy::Mode::enforce;
    decision.source = "fleet";
    decision.exception_id.clear();
    decision.reasons = {"the fleet store (etcd) is out of reach or this replica has not caught up with it, and this "
                        "replica has never decided this digest: refused until the store is back "
                        "(fleet.on_store_down: fail_closed)"};
    return decision;
  }
  Judged judged;
  if (evaluated) judged = judge(c, subject, digest, outcome);
  if (judged.hold_for.count() > 0) {
    auto decision = from_outcome(outcome);
    decision.hold_for = judged.hold_for;
    return decision;
  }
  if (evaluated && c.store) {
    // First decision for this digest under this policy: store it, so that pulls by
    // digest, child manifests and blobs in this scope follow it.
    if (c.on_evaluation) c.on_evaluation();
    cache::VerdictRecord record;
    record.decision = std::string(policy::to_string(outcome.decision));
    record.source = std::string(policy::to_string(outcome.source));
    record.reasons = outcome.reasons;
    record.policy_version = c.policy.version;
    record.evaluated_at_ms = policy::ms_of(c.now);
    record.expires_at_ms = judged.valid_until_ms;
    record.scope = scope.name;
    c.meta.put_verdict(digest, record);
  }
  held = {};
  auto decision = from_outcome(outcome);
  if (stored && stored->expires) decision.valid_until = stored->expires;
  if (!allows(decision) || depth > 0) return decision;

  // A denied index denies its children: a child is refused when every index seen in
  // this repository listing it is refused.
  auto parents = c.meta.referenced_by_in(digest, subject.upstream, subject.repository, index_parent_limit);
  if (parents.empty()) return decision;
  std::vector<std::string> parent_reasons;
  for (auto& parent : parents) {
    policy::Subject parent_subject{subject.upstream, subject.repository, std::nullopt, parent};
    auto parent_decision = decide_manifest_at(c, parent_subject, depth + 1);
    if (allows(parent_decision)) {
      // Served through this index: remembered no longer than the index's verdict.
      decision.valid_until = earlier(decision.valid_until, parent_decision.valid_until);
      return decision;
    }
    for (auto& r : parent_decision.reasons) parent_reasons.push_back("index " + parent.str() + ": " + r);
  }
  decision.decision = Decision::deny;
  decision.serve = decision.mode != policy::Mode::enforce;
  decision.source = "index";
  decision.reasons = std::move(parent_reasons);
  decision.exception_id.clear();
  return decision;
}

}  // namespace

UsableVerdict usable_verdict(const std::optional<cache::VerdictRecord>& record, const policy::Policy& policy,
                             std::string_view scope, policy::TimePoint now) {
  if (!record) return {};
  if (record->expires_at_ms && *record->expires_at_ms <= policy::ms_of(now))
    return {std::nullopt, "expired at " + policy::format_ms(*record->expires_at_ms)};
  auto decision = policy::parse_decision(record->decision);
  auto source = policy::parse_source(record->source);
  if (!decision || !source) return {std::nullopt, "unknown source \"" + record->source + "\""};
  // Computed verdicts count only under the policy they were computed with.
  if (!policy::standing(*source) && record->policy_version != policy.version)
    return {std::nullopt, "computed under policy " + record->policy_version + ", not the current " + policy.version};
  // A verdict computed in one scope says nothing about another: its rules, its
  // `unknown` setting and its vulnerability, signature and SBOM requirements differ
  // (a record written before verdicts were kept per scope has none).
  if (!policy::standing(*source) && record->scope != scope)
    return {std::nullopt,
            "computed in scope \"" + record->scope + "\", not in this request's scope \"" + std::string(scope) + "\""};
  policy::StoredVerdict stored;
  stored.decision = *decision;
  stored.source = *source;
  stored.reasons = record->reasons;
  if (record->expires_at_ms) stored.expires = policy::time_from_ms(*record->expires_at_ms);
  return {std::move(stored), ""};
}

ChosenVerdict verdict_for(cache::MetaStore& meta, const registry::Digest& digest, const policy::Policy& policy,
                          std::string_view scope, policy::TimePoint now) {
  auto records = meta.get_verdicts_in(digest, scope);
  ChosenVerdict manual{records.manual, usable_verdict(records.manual, policy, scope, now)};
  if (manual.usable.stored || !records.computed) return manual;
  return {records.computed, usable_verdict(records.computed, policy, scope, now)};
}

GateDecision decide_manifest(const DecisionContext& c, const policy::Subject& subject) {
  return decide_manifest_at(c, subject, 0);
}

GateDecision decide_blob(const DecisionContext& c, std::string_view upstream, std::string_view repository,
                         const std::vector<registry::Digest>& parents, const registry::Digest& digest) {
  const auto& scope = policy::scope_for(c.policy, upstream, repository);
  GateDecision decision;
  decision.mode = scope.mode;
  decision.scope = scope.name;
  decision.policy_version = c.policy.version;
  decision.source = "manifest";
  if (parents.empty()) {
    decision.unreferenced = true;
    const std::string where = std::string(upstream) + "/" + std::string(repository);
    if (!policy::can_refuse(scope)) {
      // Nothing in force could refuse the image it belongs to: served, as a registry
      // serves any blob it has.
      decision.reasons.push_back("blob " + digest.str() + " belongs to no manifest this mirror has seen in " + where +
                                 "; scope " + scope.name + " refuses nothing, so it is served");
      return decision;
    }
    decision.decision = Decision::deny;
    decision.serve = scope.mode != policy::Mode::enforce;
    decision.reasons.push_back("blob " + digest.str() + " belongs to no manifest this mirror has seen in " + where +
                               "; pull the image from this repository by its tag or manifest digest first");
    return decision;
  }
  std::vector<std::string> denials;
  for (auto& parent : parents) {
    policy::Subject subject{std::string(upstream), std::string(repository), std::nullopt, parent};
    auto parent_decision = decide_manifest_at(c, subject, 0);
    if (allows(parent_decision)) {
      decision.decision = parent_decision.decision;
      decision.reasons = {"referenced by manifest " + parent.str() + ", which is served"};
      decision.serve = true;
      decision.valid_until = parent_decision.valid_until;
      return decision;
    }
    for (auto& r : parent_decision.reasons) denials.push_back("manifest " + parent.str() + ": " + r);
  }
  decision.decision = Decision::deny;
  decision.serve = scope.mode != policy::Mode::enforce;
  decision.reasons = std::move(denials);
  return decision;
}

}  // namespace pullgate::proxy
