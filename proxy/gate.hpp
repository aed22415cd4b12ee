#pragma once
// The gate step: every manifest and blob request passes here after its reference
// was resolved to a digest. It combines the policy (rules on where the image comes
// from) with the digest's stored verdict, stores what it decided for the digest so
// that pulls by digest, child manifests and blobs follow the same decision, and
// writes every decision to the audit log.
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/meta_store.hpp"
#include "policy/policy.hpp"
#include "proxy/audit_log.hpp"

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
};

struct GateDecision {
  bool serve = true;
  policy::Decision decision = policy::Decision::allow;
  policy::Mode mode = policy::Mode::enforce;
  std::string source;
  std::vector<std::string> reasons;
  std::string policy_version;
  std::string exception_id;
};

class Gate {
 public:
  Gate(cache::MetaStore& meta, PolicyHolder& policy, AuditLog& audit) : meta_(meta), policy_(policy), audit_(audit) {}

  GateDecision check_manifest(const GateRequest& request);
  GateDecision check_blob(const GateRequest& request);

  // The decision for a manifest digest without a request (explain, blobs): stored
  // verdict, else an evaluation with no tag. Not audited.
  GateDecision decide(const std::string& upstream, const std::string& repository, const std::optional<std::string>& tag,
                      const registry::Digest& digest);

  std::uint64_t evaluations() const { return evaluations_; }

 private:
  // The stored verdict if it still counts: manual ones until they expire, computed
  // ones only under the current policy version.
  std::optional<policy::StoredVerdict> usable_verdict(const registry::Digest& digest, const policy::Policy& policy,
                                                      policy::TimePoint now);
  GateDecision decide_locked(const policy::Policy& policy, const policy::Subject& subject, policy::TimePoint now,
                             int depth);
  void audit(const GateRequest& request, const GateDecision& decision);

  cache::MetaStore& meta_;
  PolicyHolder& policy_;
  AuditLog& audit_;
  // Evaluation and storing of a digest's verdict happen under this lock, so
  // concurrent first pulls of one digest share one evaluation.
  std::mutex evaluate_mutex_;
  std::atomic<std::uint64_t> evaluations_{0};
};

}  // namespace pullgate::proxy
