#pragma once
// The gate step: every manifest and blob request passes here after its reference
// was resolved to a digest. It combines the policy (rules on where the image comes
// from) with the digest's stored verdict, stores what it decided for the digest so
// that pulls by digest, child manifests and blobs follow the same decision, and
// writes every decision to the audit log.
#include <atomic>
#include <chrono>
#include <functional>
#include <unordered_map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/key_locks.hpp"
#include "cache/meta_store.hpp"
#include "proxy/gate/decision.hpp"
#include "proxy/gate/recent_decisions.hpp"
#include "policy/policy.hpp"
#include "proxy/telemetry/audit_log.hpp"
#include "proxy/telemetry/kinds.hpp"
#include "registry/clock.hpp"
#include "proxy/telemetry/metrics.hpp"

namespace pullgate::proxy {

// The policy in force; replaced whole on reload.
class PolicyHolder {
 public:
  explicit PolicyHolder(policy::Policy initial) { set(std::move(initial)); }
  std::shared_ptr<const policy::Policy> get() const {
    std::lock_guard lock(mutex_);
    return current_;
  }
  // The policy in force, to compare with one held (never to dereference: it may be
  // replaced at any moment; whoever holds the old one keeps it, and so its address).
  const policy::Policy* current() const { return raw_.load(std::memory_order_acquire); }
  // Whether the policy in force requires signatures or SBOMs anywhere.
  bool needs_signals() const { return needs_signals_.load(std::memory_order_acquire); }
  // Whether the policy in force has an access section (who may pull what).
  bool restricts_access() const { return restricts_access_.load(std::memory_order_acquire); }
  // When the policy in force was put in force (ms since the epoch), for the status page.
  std::int64_t loaded_at_ms() const { return loaded_at_ms_.load(std::memory_order_relaxed); }
  void set(policy::Policy next) {
    auto p = std::make_shared<const policy::Policy>(std::move(next));
    loaded_at_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count(),
                        std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    needs_signals_.store(p->needs_signals, std::memory_order_release);
    restricts_access_.store(p->access.has_value(), std::memory_order_release);
    raw_.store(p.get(), std::memory_order_release);
    current_ = std::move(p);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const policy::Policy> current_;
  std::atomic<const policy::Policy*> raw_{nullptr};
  std::atomic<bool> needs_signals_{false};
  std::atomic<bool> restricts_access_{false};
  std::atomic<std::int64_t> loaded_at_ms_{0};
};

// The policy used when the config names no policy file: everything is allowed and
// audited.
policy::Policy default_policy();

// What the gate is asked, as views into the request being served (valid for the
// call): nothing is copied on the path every request takes.
struct GateRequest {
  ArtifactKind kind;
  std::string_view upstream;
  std::string_view repository;
  std::optional<std::string_view> tag;
  const registry::Digest& digest;
  std::string_view client;
  std::string_view request_id;
  std::string_view method;
  bool via_ns = false;  // containerd's mirror form (?ns=): the client has other hosts to try
  std::string_view identity;  // who the client is (proxy/access): in the audit line when set
};

// A pull refused before the gate by who the client is (proxy/access): no credential
// or a wrong one (401), or an identity the policy's access section does not let pull
// there (403).
struct AccessRefusal {
  std::string_view kind;  // manifest, blob, tags, referrers
  std::string_view method, upstream, repository, reference, client, identity, request_id;
  unsigned status = 0;
  std::string_view reason;
};

using SharedDecision = std::shared_ptr<const GateDecision>;

class Gate {
 public:
  // serve_unaudited: when the audit log refuses a line (its queue is full), serve the
  // decision anyway and count the line as dropped; otherwise the request is refused
  // with a decision whose audit_unavailable is set. `clock`: the time decisions are
  // made at (expiries, the memo's life, audit times); tests pass their own.
  using Clock = WallClock;
  Gate(cache::MetaStore& meta, PolicyHolder& policy, AuditLog& audit, PullgateMetrics& metrics,
       bool serve_unaudited = false, Clock clock = system_wall_clock());

  SharedDecision check_manifest(const GateRequest& request);
  SharedDecision check_blob(const GateRequest& request);
  // A scanner's pull (admin listener, scanner token): served past the gate, audited
  // with source "scanner" so the audit log shows every byte that left.
  SharedDecision pass_scanner(const GateRequest& request);
  // Audits an access refusal (source "access", decision deny) and counts it as a
  // denial. False when the audit queue refused the line.
  bool audit_access_refusal(const AccessRefusal& refusal);

  // Whether check_manifest would answer `request` from a decision it remembers (made
  // within the second, nothing stored since, same policy): the signatures and SBOMs
  // it was made with need no second look.
  bool remembers(const GateRequest& request);

  // The decision for a manifest digest under the policy in force, as check_manifest
  // makes it (stored verdict, else an evaluation, stored), without a request: not
  // audited, not remembered.
  GateDecision decide(const std::string& upstream, const std::string& repository, const std::optional<std::string>& tag,
                      const registry::Digest& digest) {
    return decide(*policy_.get(), upstream, repository, tag, digest);
  }

  // The replica's id (fleet.replica_id), in every audit line so that a fleet's logs
  // can be merged. Set before serving.
  void set_replica(std::string_view id);

  // With the fleet store (DecisionContext::store_down and queued). Set before serving.
  void set_fleet_hooks(std::function<bool()> store_down, std::function<void(const registry::Digest&)> queued) {
    store_down_ = std::move(store_down);
    queued_ = std::move(queued);
  }

  std::uint64_t evaluations() const { return evaluations_; }
  std::uint64_t bypass_suspected() const { return bypass_suspected_; }
  // The last refusals and warnings (the status page's), fed as they are audited.
  const RecentDecisions& recent() const { return recent_; }

 private:
  using Exceptions = std::shared_ptr<const std::vector<policy::Exception>>;
  GateDecision decide(const policy::Policy& policy, const std::string& upstream, const std::string& repository,
                      const std::optional<std::string>& tag, const registry::Digest& digest);
  // The decision steps (proxy/decision.hpp) as the gate takes them: storing first
  // verdicts and counting them, queueing unscanned digests.
  DecisionContext context(const policy::Policy& policy, const Exceptions& extra, policy::TimePoint now);
  // Run-time exceptions (LMDB), re-read only when the store's generation moved.
  Exceptions runtime_exceptions();
  GateDecision decide_blob(const GateRequest& request, const std::shared_ptr<const policy::Policy>& policy);

  cache::MetaStore& meta_;
  PolicyHolder& policy_;
  AuditLog& audit_;
  PullgateMetrics& metrics_;
  const bool serve_unaudited_;
  const Clock clock_;
  // A digest's verdict is read and its first evaluation stored while the digest is
  // held here (DecisionContext::hold), so concurrent first pulls of one digest share
  // one evaluation and first pulls of different digests do not wait for each other.
  cache::KeyLocks evaluating_;
  std::string replica_field_;  // ,"replica":"<id>" or empty
  std::function<bool()> store_down_;
  std::function<void(const registry::Digest&)> queued_;
  std::atomic<std::uint64_t> evaluations_{0};
  std::atomic<std::uint64_t> bypass_suspected_{0};
  RecentDecisions recent_;
  void note_notable(const GateRequest& request, const GateDecision& decision,
                    std::chrono::system_clock::time_point started);
  // Manifests refused lately, by digest, with who asked and when: a refused blob of
  // one of them, asked for by the same client through ?ns=, means the client took
  // the manifest from the upstream behind the mirror's back.
  struct RecentDenial {
    std::string client_host;
    std::chrono::steady_clock::time_point at;
  };
  // Decisions of the last second, by request shape, per thread (no lock on the
  // path every pull takes). An entry counts while the store has not been written
  // (by any process: a verdict or exception set from the CLI applies to the next
  // pull) and the policy is the same; the one-second life bounds how late a
  // time-based change (an expiry) can take effect. With the decision, an entry keeps
  // what recording it needs: the audit line's fixed middle and the metric children.
  struct Memo {
    // The request shape it answers (compared field by field: no key is built).
    ArtifactKind kind = ArtifactKind::manifest;
    std::string method, upstream, repository, digest;
    std::optional<std::string> tag;
    SharedDecision decision;
    std::uint64_t generation = 0;
    std::shared_ptr<const policy::Policy> policy;
    // Counts from `made` until `until` (wall clock: a step backwards ends it too).
    std::chrono::system_clock::time_point made, until;
    std::string audit_middle;       // "kind":..,...,"policy_version":.. (no braces)
    Counter* decisions = nullptr;   // gate_decisions{kind,decision,mode,source}
    Counter* denials = nullptr;     // gate_denials{kind,upstream}, when refused
    bool answers(const GateRequest& r) const;
  };
  struct MemoTable;
  MemoTable& memo_table();
  // The entry for `request` if it still counts, else nullptr.
  Memo* memo_find(MemoTable& table, const GateRequest& request, std::uint64_t generation,
                  const policy::Policy* policy, std::chrono::system_clock::time_point now);
  Memo& memo_put(MemoTable& table, SharedDecision decision, const GateRequest& request, std::uint64_t generation,
                 std::shared_ptr<const policy::Policy> policy, std::chrono::system_clock::time_point now);
  Memo prepare(SharedDecision decision, const GateRequest& request);
  // Writes the audit record (its time is `started`) and counts the decision. Returns
  // the decision to answer with: the memo's, or, when the audit queue is full and
  // unaudited decisions are not served, one refusing the request.
  SharedDecision record(const GateRequest& request, const Memo& memo, std::chrono::system_clock::time_point started);
  static SharedDecision finish(GateDecision decision);  // renders audit_fields
  const std::uint64_t id_;  // tells this gate's per-thread memo entries from another gate's

  std::mutex exceptions_mutex_;
  std::uint64_t exceptions_generation_ = ~std::uint64_t{0};
  Exceptions exceptions_ = std::make_shared<const std::vector<policy::Exception>>();
  std::mutex recent_mutex_;
  std::unordered_map<std::string, RecentDenial> recent_denials_;
  void remember_denial(const GateRequest& request);
  bool denied_lately(const std::vector<registry::Digest>& manifests, const std::string& client_host);
};

}  // namespace pullgate::proxy
