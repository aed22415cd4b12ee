// scope_for and evaluate: which scope a request falls in, and what it gets there.
#include <optional>

#include "policy/patterns.hpp"
#include "policy/policy.hpp"
#include "policy/rfc3339.hpp"

namespace pullgate::policy {
namespace {

// What the decision was before exceptions: exceptions are applied on top of it, and it
// is kept in the reasons so the audit shows what an exception set aside.
struct Verdict {
  Decision decision;
  Source source;
  std::vector<std::string> reasons;
};

int severity(Decision decision) {
  switch (decision) {
    case Decision::allow: return 0;
    case Decision::warn: return 1;
    case Decision::deny: return 2;
  }
  return 2;
}

std::string_view verb(Decision decision) {
  switch (decision) {
    case Decision::allow: return "allows";
    case Decision::warn: return "warns on";
    case Decision::deny: return "denies";
  }
  return "denies";
}

bool unexpired(const std::optional<TimePoint>& expires, TimePoint now) { return !expires || now < *expires; }

std::string image_name(const Subject& subject) {
  if (subject.tag) return subject.repository + ":" + *subject.tag;
  return subject.repository + "@" + subject.digest.str();
}

bool rule_matches(const Rule& rule, const Subject& subject) {
  if (!rule.repository.empty() && !glob_match(rule.repository, subject.repository)) return false;
  // A pull by digest has no tag, so no tag rule can speak for it.
  if (!rule.tag.empty() && (!subject.tag || !glob_match(rule.tag, *subject.tag))) return false;
  if (rule.digest && *rule.digest != subject.digest) return false;
  return true;
}

struct RuleMatch {
  const Rule& rule;
  std::size_t number;  // from 1, as people count
};

std::optional<RuleMatch> first_matching_rule(const Scope& scope, const Subject& subject) {
  for (std::size_t i = 0; i < scope.rules.size(); ++i) {
    if (rule_matches(scope.rules[i], subject)) return RuleMatch{scope.rules[i], i + 1};
  }
  return std::nullopt;
}

std::string rule_reason(const RuleMatch& match, const Scope& scope, const Subject& subject) {
  std::string reason = "rule " + std::to_string(match.number) + " of scope " + scope.name + " " +
                       std::string(verb(match.rule.action)) + " " + image_name(subject);
  if (!match.rule.reason.empty()) reason += ": " + match.rule.reason;
  return reason;
}

std::vector<std::string> stored_reasons(const StoredVerdict& stored) {
  std::string joined;
  for (const std::string& reason : stored.reasons) joined += (joined.empty() ? "" : "; ") + reason;
  // Verdicts from an earlier evaluation already carry full reasons; a manual one
  // carries what the operator typed, which needs saying where it came from.
  if (!standing(stored.source) && !stored.reasons.empty()) return stored.reasons;
  std::string line = std::string(to_string(stored.source)) + " verdict: " + std::string(to_string(stored.decision));
  if (!joined.empty()) line += " (" + joined + ")";
  return {line};
}

Verdict decide_without_exceptions(const Scope& scope, const Subject& subject, const std::optional<StoredVerdict>& stored,
                                  TimePoint now) {
  const auto rule = first_matching_rule(scope, subject);
  Verdict verdict;
  if (stored && unexpired(stored->expires, now)) {
    verdict = {stored->decision, stored->source, stored_reasons(*stored)};
  } else if (scope.unknown == Unknown::evaluate) {
    if (rule) return {rule->rule.action, Source::rule, {rule_reason(*rule, scope, subject)}};
    return {scope.fallback, Source::default_,
            {"no rule of scope " + scope.name + " matches " + image_name(subject) + "; its fallback " +
             std::string(verb(scope.fallback)) + " it"}};
  } else {
    const Decision decision = scope.unknown == Unknown::allow  ? Decision::allow
                              : scope.unknown == Unknown::warn ? Decision::warn
                                                               : Decision::deny;
    verdict = {decision, Source::unknown,
               {"no verdict yet; scope " + scope.name + " " + std::string(verb(decision)) + " unknown images"}};
  }
  // Location rules always apply: a matching rule stricter than the verdict wins, so a
  // digest allowed elsewhere is still refused under a denied repository or tag.
  if (rule && severity(rule->rule.action) > severity(verdict.decision)) {
    return {rule->rule.action, Source::rule, {rule_reason(*rule, scope, subject)}};
  }
  return verdict;
}

bool exception_matches(const Exception& exception, const Subject& subject, TimePoint now) {
  if (exception.digest && *exception.digest != subject.digest) return false;
  if (!exception.repository.empty() && !glob_match(exception.repository, subject.repository)) return false;
  if (!exception.upstream.empty() && !glob_match(exception.upstream, subject.upstream)) return false;
  return unexpired(exception.expires, now);
}

std::string exception_reason(const Exception& exception) {
  std::string details = exception.who;
  const std::string until =
      exception.expires ? "until " + format_rfc3339(*exception.expires) : std::string("no expiry");
  details += (details.empty() ? "" : ", ") + until;
  std::string reason = "exception " + exception.id + " (" + details + ")";
  if (!exception.reason.empty()) reason += ": " + exception.reason;
  return reason;
}

// For a Policy built by hand without its catch-all scope: nothing matches, so this.
const Scope& catch_all_scope() {
  static const Scope scope = [] {
    Scope s;
    s.name = "default";
    return s;
  }();
  return scope;
}

}  // namespace

const Scope& scope_for(const Policy& policy, std::string_view upstream, std::string_view repository) {
  const Scope* best = nullptr;
  std::size_t best_specificity = 0;
  for (const Scope& scope : policy.scopes) {
    if (!glob_match(scope.upstream, upstream) || !glob_match(scope.repository, repository)) continue;
    const std::size_t specificity = detail::literal_count(scope.upstream) + detail::literal_count(scope.repository);
    if (!best || specificity > best_specificity || (specificity == best_specificity && scope.order < best->order)) {
      best = &scope;
      best_specificity = specificity;
    }
  }
  return best ? *best : catch_all_scope();
}

bool can_refuse(const Scope& scope) {
  if (scope.mode != Mode::enforce) return false;
  if (scope.vulnerabilities || scope.signatures || scope.sbom || scope.provenance) return true;
  if (scope.unknown == Unknown::deny) return true;
  if (scope.unknown == Unknown::evaluate && scope.fallback == Decision::deny) return true;
  for (const Rule& rule : scope.rules)
    if (rule.action == Decision::deny) return true;
  return false;
}

Outcome evaluate(const Policy& policy, const Subject& subject, const std::optional<StoredVerdict>& stored,
                 TimePoint now, std::span<const Exception> extra_exceptions) {
  const Scope& scope = scope_for(policy, subject.upstream, subject.repository);
  Outcome outcome;
  outcome.mode = scope.mode;
  outcome.scope = scope.name;
  outcome.policy_version = policy.version;

  Verdict verdict = decide_without_exceptions(scope, subject, stored, now);
  if (verdict.source == Source::upstream && verdict.decision == Decision::deny) {
    // The upstream gate refused it: nothing here can serve it (the bytes could only
    // come from the cache, which is what a parent's denial must not be answered from).
    outcome.decision = Decision::deny;
    outcome.source = Source::upstream;
    outcome.reasons = std::move(verdict.reasons);
    outcome.serve = false;
    return outcome;
  }
  const Exception* exception = nullptr;
  for (std::span<const Exception> list : {std::span<const Exception>(policy.exceptions), extra_exceptions}) {
    for (const Exception& candidate : list) {
      if (exception_matches(candidate, subject, now)) {
        exception = &candidate;
        break;
      }
    }
    if (exception) break;
  }
  if (exception) {
    outcome.decision = Decision::allow;
    outcome.source = Source::exception;
    outcome.exception_id = exception->id;
    outcome.reasons.push_back(exception_reason(*exception));
    if (verdict.decision != Decision::allow) {
      for (const std::string& reason : verdict.reasons) outcome.reasons.push_back("set aside: " + reason);
    }
  } else {
    outcome.decision = verdict.decision;
    outcome.source = verdict.source;
    outcome.reasons = std::move(verdict.reasons);
  }
  // Only enforce refuses; warn and audit report the deny and serve anyway.
  outcome.serve = scope.mode != Mode::enforce || outcome.decision != Decision::deny;
  return outcome;
}

}  // namespace pullgate::policy
