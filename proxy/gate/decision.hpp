#pragma once
// The gate's decision steps, in one place for the two that take them: the gate,
// which stores what it finds (a first verdict, an unscanned digest queued for
// scanners), and explain, which only looks. Both take the same steps, so explain
// says what the gate decides.
//
// A manifest: its stored verdict if it still counts (manual ones until they expire,
// computed ones only under the current policy version, in the scope they were
// computed in); else the policy's
// evaluation, then the scope's vulnerability policy on the digest's report and its
// signature and SBOM requirements on what the mirror found. A denied index denies
// its children: a child is refused when every index listing it is refused. A blob:
// served when one manifest referencing it is served. Only indexes and manifests seen
// in the request's upstream and repository count (MetaStore::seen_in).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/key_locks.hpp"
#include "cache/meta_store.hpp"
#include "policy/policy.hpp"

namespace pullgate::proxy {

struct GateDecision {
  bool serve = true;
  policy::Decision decision = policy::Decision::allow;
  policy::Mode mode = policy::Mode::enforce;
  std::string scope;  // the scope that decided
  std::string source;
  std::vector<std::string> reasons;
  std::string policy_version;
  std::string exception_id;
  bool bypass_suspected = false;
  // Not decided: the audit queue is full and the gate serves nothing it cannot
  // audit (503, not 403: the image may well be allowed).
  bool audit_unavailable = false;
  // A blob that no manifest seen in its repository lists (refused where the scope
  // could refuse something; the mirror tells a blob that does not exist apart).
  bool unreferenced = false;
  // A hold: the digest awaits a scan and the scope says to wait this long for the
  // report before denying (the mirror waits; the decision is not remembered).
  std::chrono::seconds hold_for{0};
  // When the stored verdict it came from expires: remembering the decision must not
  // make the verdict outlive its expiry.
  std::optional<policy::TimePoint> valid_until;
  // A served decision other than allow: the value of the manifest response's
  // Warning header (299 pullgate "<reasons>"), rendered once. Empty otherwise.
  std::string warning;
  // The decision's audit fields, rendered once ("decision":..,"reasons":[..],...)
  // and reused while the decision is remembered.
  std::string audit_fields;
};

inline bool allows(const GateDecision& d) { return d.serve && d.decision != policy::Decision::deny; }

// How many manifests known to reference a digest are looked at.
inline constexpr std::size_t index_parent_limit = 32;  // indexes listing a manifest
inline constexpr std::size_t blob_parent_limit = 64;   // manifests referencing a blob

struct DecisionContext {
  cache::MetaStore& meta;
  const policy::Policy& policy;
  std::span<const policy::Exception> extra;  // run-time exceptions (LMDB)
  policy::TimePoint now;
  // The gate's side of a decision; explain leaves it off. When on, a first
  // evaluation is stored as the digest's verdict (and `on_evaluation` called), and
  // an unscanned digest is queued for scanners.
  bool store = false;
  std::function<void()> on_evaluation;
  // The gate's: holds a digest while its stored verdict is read and, when none
  // counts, its evaluation stored, so that concurrent first decisions of one digest
  // make one evaluation while other digests' run side by side. Unset: nothing is held.
  std::function<cache::KeyLocks::Held(const registry::Digest&)> hold;
  // The fleet store (cache/fleet.hpp), the gate's side. `store_down`: true while LMDB
  // may lack what the fleet decided (etcd out of reach, or not caught up) and
  // fleet.on_store_down is fail_closed: a digest with no verdict of any kind here is
  // refused, not evaluated (its verdict may be one this replica cannot see), and
  // nothing is stored. `queued`: told of each digest queued for scanners.
  std::function<bool()> store_down;
  std::function<void(const registry::Digest&)> queued;
};

// The stored verdict if it still counts for a subject in `scope`: manual ones
// until they expire, computed ones only under the current policy version and in
// the scope they were computed in. Else why not (empty when there is none).
struct UsableVerdict {
  std::optional<policy::StoredVerdict> stored;
  std::string why_not;
};
UsableVerdict usable_verdict(const std::optional<cache::VerdictRecord>& record, const policy::Policy& policy,
                             std::string_view scope, policy::TimePoint now);

// The digest's verdict for `scope`: its manual one while that counts, else the one
// computed in the scope (the record shown, and whether and why it counts).
struct ChosenVerdict {
  std::optional<cache::VerdictRecord> record;
  UsableVerdict usable;
};
ChosenVerdict verdict_for(cache::MetaStore& meta, const registry::Digest& digest, const policy::Policy& policy,
                          std::string_view scope, policy::TimePoint now);

GateDecision decide_manifest(const DecisionContext& c, const policy::Subject& subject);
// `parents`: the manifests seen in (upstream, repository) that reference the blob
// (meta.referenced_by_in, at most blob_parent_limit).
GateDecision decide_blob(const DecisionContext& c, std::string_view upstream, std::string_view repository,
                         const std::vector<registry::Digest>& parents, const registry::Digest& digest);

}  // namespace pullgate::proxy
