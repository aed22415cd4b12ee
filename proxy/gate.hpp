#pragma once
// The gate step: every manifest and blob request passes here after its reference
// was resolved to a digest. It combines the policy (rules on where the image comes
// from) with the digest's stored verdict, stores what it decided for the digest so
// that pulls by digest, child manifests and blobs follow the same decision, and
// writes every decision to the audit log.
#include <atomic>
#include <chrono>
#include <unordered_map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/meta_store.hpp"
#include "policy/policy.hpp"
#include "proxy/audit_log.hpp"
#include "proxy/metrics.hpp"

namespace pullgate::proxy {

// The policy in force; replaced whole on reload.
class PolicyHolder {
 public:
  explicit PolicyHolder(policy::Policy initial) : current_(std::make_shared<const policy::Policy>(std::move(initial))) {}
  std::shared_ptr<const policy::Policy> get() const {
    std::lock_guard lock(mutex_);
    return current_;
  }
  void set(policy::Policy next) {
    auto p = std::make_shared<const policy::Policy>(std::move(next));
    std::lock_guard lock(mutex_);
    current_ = std::move(p);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const policy::Policy> current_;
};

// The policy used when the config names no policy file: everything is allowed and
// audited.
policy::Policy default_policy();

struct GateRequest {
  std::string kind;        // "manifest" | "blob"
  std::string upstream;
  std::string repository;
  std::optional<std::string> tag;
  registry::Digest digest;
  std::string client;
  std::string request_id;
  std::string method;
  bool via_ns = false;  // containerd's mirror form (?ns=): the client has other hosts to try
};

struct GateDecision {
  bool serve = true;
  policy::Decision decision = policy::Decision::allow;
  policy::Mode mode = policy::Mode::enforce;
  std::string source;
  std::vector<std::string> reasons;
  std::string policy_version;
  std::string exception_id;
  bool bypass_suspected = false;
  // A hold: the digest awaits a scan and the scope says to wait this long for the
  // report before denying (the mirror waits; the decision is not remembered).
  std::chrono::seconds hold_for{0};
  // The decision's audit fields, rendered once ("decision":..,"reasons":[..],...)
  // and reused while the decision is remembered.
  std::string audit_fields;
};

using SharedDecision = std::shared_ptr<const GateDecision>;

class Gate {
 public:
  Gate(cache::MetaStore& meta, PolicyHolder& policy, AuditLog& audit, PullgateMetrics& metrics)
      : meta_(meta), policy_(policy), audit_(audit), metrics_(metrics) {}

  SharedDecision check_manifest(const GateRequest& request);
  SharedDecision check_blob(const GateRequest& request);
  // A scanner's pull (admin listener, scanner token): served past the gate, audited
  // with source "scanner" so the audit log shows every byte that left.
  SharedDecision pass_scanner(const GateRequest& request);

  // The decision for a manifest digest without a request (explain, blobs): stored
  // verdict, else an evaluation with no tag. Not audited.
  GateDecision decide(const std::string& upstream, const std::string& repository, const std::optional<std::string>& tag,
                      const registry::Digest& digest);

  std::uint64_t evaluations() const { return evaluations_; }
  std::uint64_t bypass_suspected() const { return bypass_suspected_; }

 private:
  // The stored verdict if it still counts: manual ones until they expire, computed
  // ones only under the current policy version.
  std::optional<policy::StoredVerdict> usable_verdict(const registry::Digest& digest, const policy::Policy& policy,
                                                      policy::TimePoint now);
  using Exceptions = std::shared_ptr<const std::vector<policy::Exception>>;
  GateDecision decide_locked(const policy::Policy& policy, const Exceptions& extra, const policy::Subject& subject,
                             policy::TimePoint now, int depth);
  // The scope's vulnerability policy applied to the digest's report (if the scope
  // has one): combined into `outcome`; queues unscanned digests as pending.
  // Returns when the stored verdict made from it stops counting (report age, CVE
  // exception expiry), and whether it is a hold (not to be stored).
  struct Judged {
    std::optional<std::int64_t> valid_until_ms;
    std::chrono::seconds hold_for{0};
  };
  Judged judge(const policy::Policy& policy, const policy::Subject& subject, const registry::Digest& digest,
               policy::Outcome& outcome, policy::TimePoint now);
  // Run-time exceptions (LMDB), re-read only when the store's generation moved.
  Exceptions runtime_exceptions();
  GateDecision decide_blob(const GateRequest& request, const std::shared_ptr<const policy::Policy>& policy);
  // Writes the audit record and counts the decision.
  void record(const GateRequest& request, const GateDecision& decision, std::chrono::steady_clock::time_point started);

  cache::MetaStore& meta_;
  PolicyHolder& policy_;
  AuditLog& audit_;
  PullgateMetrics& metrics_;
  // Evaluation and storing of a digest's verdict happen under this lock, so
  // concurrent first pulls of one digest share one evaluation.
  std::mutex evaluate_mutex_;
  std::atomic<std::uint64_t> evaluations_{0};
  std::atomic<std::uint64_t> bypass_suspected_{0};
  // Manifests refused lately, by digest, with who asked and when: a refused blob of
  // one of them, asked for by the same client through ?ns=, means the client took
  // the manifest from the upstream behind the mirror's back.
  struct RecentDenial {
    std::string client_host;
    std::chrono::steady_clock::time_point at;
  };
  // Decisions of the last second, by request shape. An entry counts while the store
  // has not been written (by any process: a verdict or exception set from the CLI
  // applies to the next pull) and the policy is the same; the one-second life bounds
  // how late a time-based change (an expiry) can take effect.
  struct Memo {
    SharedDecision decision;
    std::uint64_t generation;
    std::shared_ptr<const policy::Policy> policy;
    std::chrono::steady_clock::time_point until;
  };
  SharedDecision memo_get(const std::string& key, std::uint64_t generation,
                          const std::shared_ptr<const policy::Policy>& policy);
  void memo_put(std::string key, SharedDecision decision, std::uint64_t generation,
                std::shared_ptr<const policy::Policy> policy);
  static SharedDecision finish(GateDecision decision);  // renders audit_fields
  static std::string memo_key(const GateRequest& request);
  std::mutex memo_mutex_;
  std::unordered_map<std::string, Memo> memo_;

  std::mutex exceptions_mutex_;
  std::uint64_t exceptions_generation_ = ~std::uint64_t{0};
  Exceptions exceptions_ = std::make_shared<const std::vector<policy::Exception>>();
  std::mutex recent_mutex_;
  std::unordered_map<std::string, RecentDenial> recent_denials_;
  void remember_denial(const GateRequest& request);
  bool denied_lately(const std::vector<registry::Digest>& manifests, const std::string& client_host);
};

}  // namespace pullgate::proxy
