#include "proxy/gate.hpp"

#include <chrono>

namespace pullgate::proxy {

using policy::Decision;
using policy::Source;

namespace {

std::int64_t to_ms(policy::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::optional<Source> parse_source(std::string_view s) {
  for (auto source : {Source::rule, Source::default_, Source::manual, Source::exception, Source::unknown})
    if (policy::to_string(source) == s) return source;
  return std::nullopt;
}

GateDecision from_outcome(const policy::Outcome& o) {
  GateDecision d;
  d.serve = o.serve;
  d.decision = o.decision;
  d.mode = o.mode;
  d.source = std::string(policy::to_string(o.source));
  d.reasons = o.reasons;
  d.policy_version = o.policy_version;
  d.exception_id = o.exception_id;
  return d;
}

bool allows(const GateDecision& d) { return d.serve && d.decision != Decision::deny; }

}  // namespace

policy::Policy default_policy() {
  auto parsed = policy::parse_policy(R"({"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}})");
  return std::move(*parsed.policy);
}

std::optional<policy::StoredVerdict> Gate::usable_verdict(const registry::Digest& digest, const policy::Policy& policy,
                                                          policy::TimePoint now) {
  auto record = meta_.get_verdict(digest);
  if (!record) return std::nullopt;
  if (record->expires_at_ms && *record->expires_at_ms <= to_ms(now)) return std::nullopt;
  auto decision = policy::parse_decision(record->decision);
  auto source = parse_source(record->source);
  if (!decision || !source) return std::nullopt;
  // Computed verdicts count only under the policy they were computed with.
  if (*source != Source::manual && record->policy_version != policy.version) return std::nullopt;
  policy::StoredVerdict stored;
  stored.decision = *decision;
  stored.source = *source;
  stored.reasons = record->reasons;
  if (record->expires_at_ms)
    stored.expires = policy::TimePoint(std::chrono::milliseconds(*record->expires_at_ms));
  return stored;
}

GateDecision Gate::decide_locked(const policy::Policy& policy, const policy::Subject& subject, policy::TimePoint now,
                                 int depth) {
  auto digest = *registry::Digest::parse(subject.digest);
  auto stored = usable_verdict(digest, policy, now);
  auto outcome = policy::evaluate(policy, subject, stored, now);
  if (!stored && outcome.source != Source::exception) {
    // First decision for this digest under this policy: store it, so that pulls by
    // digest, child manifests and blobs follow it.
    ++evaluations_;
    cache::VerdictRecord record;
    record.decision = std::string(policy::to_string(outcome.decision));
    record.source = std::string(policy::to_string(outcome.source));
    record.reasons = outcome.reasons;
    record.policy_version = policy.version;
    record.evaluated_at_ms = to_ms(now);
    meta_.put_verdict(digest, record);
  }
  auto decision = from_outcome(outcome);
  if (!allows(decision) || depth > 0) return decision;

  // A denied index denies its children: a child is refused when every index known
  // to list it is denied.
  auto parents = meta_.referenced_by(digest, 32);
  if (parents.empty()) return decision;
  std::vector<std::string> parent_reasons;
  for (auto& parent : parents) {
    policy::Subject parent_subject{subject.upstream, subject.repository, std::nullopt, parent.str()};
    auto parent_decision = decide_locked(policy, parent_subject, now, depth + 1);
    if (allows(parent_decision)) return decision;
    for (auto& r : parent_decision.reasons) parent_reasons.push_back("index " + parent.str() + ": " + r);
  }
  decision.decision = Decision::deny;
  decision.serve = decision.mode != policy::Mode::enforce;
  decision.source = "index";
  decision.reasons = std::move(parent_reasons);
  return decision;
}

GateDecision Gate::decide(const std::string& upstream, const std::string& repository,
                          const std::optional<std::string>& tag, const registry::Digest& digest) {
  auto policy = policy_.get();
  std::lock_guard lock(evaluate_mutex_);
  return decide_locked(*policy, policy::Subject{upstream, repository, tag, digest.str()}, policy::Clock::now(), 0);
}

GateDecision Gate::check_manifest(const GateRequest& request) {
  auto decision = decide(request.upstream, request.repository, request.tag, request.digest);
  audit(request, decision);
  return decision;
}

GateDecision Gate::check_blob(const GateRequest& request) {
  auto policy = policy_.get();
  auto now = policy::Clock::now();
  const auto& scope = policy::scope_for(*policy, request.upstream, request.repository);
  GateDecision decision;
  decision.mode = scope.mode;
  decision.policy_version = policy->version;
  decision.source = "manifest";
  auto parents = meta_.referenced_by(request.digest, 64);
  if (parents.empty()) {
    decision.decision = Decision::deny;
    decision.serve = scope.mode != policy::Mode::enforce;
    decision.reasons.push_back("blob " + request.digest.str() +
                               " belongs to no manifest this mirror has seen; pull the image by its tag or manifest "
                               "digest first");
    audit(request, decision);
    return decision;
  }
  std::vector<std::string> denials;
  {
    std::lock_guard lock(evaluate_mutex_);
    for (auto& parent : parents) {
      policy::Subject subject{request.upstream, request.repository, std::nullopt, parent.str()};
      auto parent_decision = decide_locked(*policy, subject, now, 0);
      if (allows(parent_decision)) {
        decision.decision = parent_decision.decision;
        decision.reasons = {"referenced by manifest " + parent.str() + ", which is served"};
        decision.serve = true;
        break;
      }
      for (auto& r : parent_decision.reasons) denials.push_back("manifest " + parent.str() + ": " + r);
    }
  }
  if (decision.reasons.empty()) {
    decision.decision = Decision::deny;
    decision.serve = scope.mode != policy::Mode::enforce;
    decision.reasons = std::move(denials);
  }
  audit(request, decision);
  return decision;
}

void Gate::audit(const GateRequest& request, const GateDecision& decision) {
  nlohmann::json record = {
      {"kind", request.kind},
      {"client", request.client},
      {"method", request.method},
      {"upstream", request.upstream},
      {"repository", request.repository},
      {"digest", request.digest.str()},
      {"decision", policy::to_string(decision.decision)},
      {"served", decision.serve},
      {"mode", policy::to_string(decision.mode)},
      {"source", decision.source},
      {"reasons", decision.reasons},
      {"policy_version", decision.policy_version},
      {"request_id", request.request_id},
  };
  if (request.tag) record["tag"] = *request.tag;
  if (!decision.exception_id.empty()) record["exception"] = decision.exception_id;
  audit_.write(std::move(record));
}

}  // namespace pullgate::proxy
