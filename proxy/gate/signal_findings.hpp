#pragma once
// What the signal look-up found about a digest (its signatures and SBOM, and those
// of the indexes that list it), judged against a scope's requirements: the gate's
// side of signals, reading LMDB only. Finding the artifacts is the mirror's
// (proxy/mirror/signals.hpp).
#include <cstddef>
#include <cstdint>
#include <optional>

#include "cache/meta_store.hpp"
#include "policy/policy.hpp"

namespace pullgate::proxy {

// How many indexes listing a digest are looked at for their findings.
inline constexpr std::size_t max_signal_parents = 8;

// Whether a finding is good for the signature (resp. SBOM) requirement by itself: a
// valid signature (an SBOM found), or the manifest is itself an artifact.
inline bool signature_ok(const cache::SignalRecord& r) { return r.artifact || r.signature == "valid"; }
inline bool sbom_ok(const cache::SignalRecord& r) { return r.artifact || r.sbom == "found"; }
inline bool provenance_ok(const cache::SignalRecord& r) { return r.artifact || r.provenance == "valid"; }

// Whether the record answers every requirement of the scope under this policy now:
// checked under the policy's version, and a negative finding not older than the
// scope's recheck interval.
bool signals_current(const cache::SignalRecord& record, const policy::Policy& policy, const policy::Scope& scope,
                     std::int64_t now_ms);

// The scope's signature and SBOM requirements applied to a manifest digest's record
// (and its indexes' records), combined into `outcome` (source signature or sbom on a
// denial). Returns when a verdict made from this stops counting (a negative finding
// is looked at again after recheck_s), or nullopt when it never does by itself.
std::optional<std::int64_t> judge_signals(cache::MetaStore& meta, const policy::Policy& policy,
                                          const policy::Scope& scope, const registry::Digest& digest,
                                          policy::Outcome& outcome, std::int64_t now_ms);

}  // namespace pullgate::proxy
