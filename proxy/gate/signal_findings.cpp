#include "proxy/gate/signal_findings.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace pullgate::proxy {

using registry::Digest;

namespace {

std::int64_t seconds_ms(std::chrono::seconds s) { return static_cast<std::int64_t>(s.count()) * 1000; }

}  // namespace

bool signals_current(const cache::SignalRecord& record, const policy::Policy& policy, const policy::Scope& scope,
                     std::int64_t now) {
  if (record.policy_version != policy.version) return false;
  if (record.artifact) return true;
  if (scope.signatures) {
    if (record.signature.empty()) return false;
    if (record.signature != "valid" && now >= record.checked_at_ms + seconds_ms(scope.signatures->recheck)) return false;
    if (record.signature == "valid" && record.signature_valid_until_ms != 0 && now >= record.signature_valid_until_ms)
      return false;
  }
  if (scope.sbom) {
    if (record.sbom.empty()) return false;
    if (record.sbom != "found" && now >= record.checked_at_ms + seconds_ms(scope.sbom->recheck)) return false;
  }
  if (scope.provenance) {
    if (record.provenance.empty()) return false;
    if (record.provenance != "valid" && now >= record.checked_at_ms + seconds_ms(scope.provenance->signers.recheck))
      return false;
  }
  return true;
}

std::optional<std::int64_t> judge_signals(cache::MetaStore& meta, const policy::Policy& policy,
                                          const policy::Scope& scope, const Digest& digest, policy::Outcome& outcome,
                                          std::int64_t now) {
  if (!scope.signatures && !scope.sbom && !scope.provenance) return std::nullopt;
  auto own = meta.get_signals(digest, scope.name);
  if (own && !signals_current(*own, policy, scope, now)) own.reset();
  // The indexes that list this digest, with current records: their signature and
  // SBOM cover it.
  std::vector<std::pair<Digest, cache::SignalRecord>> parents;
  for (auto& parent : meta.referenced_by(digest, max_signal_parents)) {
    auto record = meta.get_signals(parent, scope.name);
    if (record && signals_current(*record, policy, scope, now)) parents.emplace_back(parent, std::move(*record));
  }
  std::optional<std::int64_t> valid_until;
  auto until = [&](std::int64_t t) {
    if (!valid_until || t < *valid_until) valid_until = t;
  };
  std::vector<std::string> denials;
  policy::Source source = policy::Source::signature;
  std::vector<std::string> notes;

  if (scope.signatures) {
    const cache::SignalRecord* by = own && signature_ok(*own) ? &*own : nullptr;
    std::string through;
    for (auto& [parent, record] : parents)
      if (!by && signature_ok(record) && !record.artifact) {
        by = &record;
        through = " (through index " + parent.str() + ")";
      }
    if (by && by->artifact) {
      notes.push_back("a signature or SBOM artifact: not itself required to be signed");
    } else if (by) {
      notes.push_back(by->key.starts_with("keyless ") || by->key.starts_with("notation ")
                          ? by->signature_detail + through
                          : "signed by key " + by->key + through + ": " + by->signature_detail);
      if (by->signature_valid_until_ms != 0) until(by->signature_valid_until_ms);
    } else if (!own) {
      denials.push_back("the signature of " + digest.str() + " has not been checked yet");
      until(now);
    } else {
      denials.push_back(own->signature_detail);
      until(own->checked_at_ms + seconds_ms(scope.signatures->recheck));
    }
  }
  if (scope.sbom) {
    const cache::SignalRecord* by = own && sbom_ok(*own) ? &*own : nullptr;
    for (auto& [parent, record] : parents)
      if (!by && sbom_ok(record) && !record.artifact) by = &record;
    if (by && !by->artifact) {
      notes.push_back(by->sbom_detail);
    } else if (!by && !own) {
      if (denials.empty()) source = policy::Source::sbom;
      denials.push_back("whether " + digest.str() + " has an SBOM has not been checked yet");
      until(now);
    } else if (!by) {
      if (denials.empty()) source = policy::Source::sbom;
      denials.push_back(own->sbom_detail);
      until(own->checked_at_ms + seconds_ms(scope.sbom->recheck));
    }
  }
  if (scope.provenance) {
    const cache::SignalRecord* by = own && provenance_ok(*own) ? &*own : nullptr;
    for (auto& [parent, record] : parents)
      if (!by && provenance_ok(record) && !record.artifact) by = &record;
    if (by && !by->artifact) {
      notes.push_back(by->provenance_detail);
    } else if (!by && !own) {
      if (denials.empty()) source = policy::Source::provenance;
      denials.push_back("the provenance of " + digest.str() + " has not been checked yet");
      until(now);
    } else if (!by) {
      if (denials.empty()) source = policy::Source::provenance;
      denials.push_back(own->provenance_detail);
      until(own->checked_at_ms + seconds_ms(scope.provenance->signers.recheck));
    }
  }
  if (!denials.empty()) {
    if (outcome.decision != policy::Decision::deny) {
      outcome.decision = policy::Decision::deny;
      outcome.source = source;
      outcome.reasons = denials;
    } else {
      outcome.reasons.insert(outcome.reasons.end(), denials.begin(), denials.end());
    }
    outcome.serve = outcome.mode != policy::Mode::enforce;
  } else {
    // Served because the evidence checks out: say so, unless a rule or a report
    // decided on its own account.
    if (outcome.decision != policy::Decision::deny &&
        (outcome.source == policy::Source::default_ || outcome.source == policy::Source::unknown))
      outcome.source = scope.signatures ? policy::Source::signature
                       : scope.sbom     ? policy::Source::sbom
                                        : policy::Source::provenance;
    outcome.reasons.insert(outcome.reasons.end(), notes.begin(), notes.end());
  }
  return valid_until;
}

}  // namespace pullgate::proxy
