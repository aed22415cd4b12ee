#pragma once
// Explain: what the gate decides now for an image or a digest, and why, from the
// LMDB environment alone (never contacts an upstream, stores nothing). Used by
// `pullgate explain` and the admin API. It takes the gate's own decision steps
// (proxy/decision.hpp) without their effects, so both give the same decision.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/meta_store.hpp"
#include "policy/policy.hpp"

namespace pullgate::proxy {

// A configured upstream as explain needs it: the name the gate and the tag records
// use, the other names it answers to, and whether one-segment repositories get
// "library/" (Docker Hub).
struct UpstreamName {
  std::string name;
  std::vector<std::string> aliases;
  bool docker_hub = false;
};

struct ExplainQuery {
  std::string image;                       // as given, for the answer
  std::string upstream;                    // canonical name; empty: no context (bare digest)
  std::string repository;                  // empty: no context (bare digest)
  std::optional<std::string> tag;          // exactly one of tag and digest is set
  std::optional<registry::Digest> digest;
  // Who would pull it (an identity name or "anonymous"): the policy's access section
  // is decided for it too, before the gate, as the mirror does.
  std::optional<std::string> identity;
};

struct ParsedExplainQuery {
  std::optional<ExplainQuery> query;
  std::string error;  // one line, when query is empty
};

// "<upstream>/<repo>:<tag>", "<upstream>/<repo>@<digest>" (the upstream is the
// longest configured name or alias the text starts with, followed by '/'), or a
// bare digest, for which upstream and repository come from the caller (either may
// be empty).
ParsedExplainQuery parse_explain_query(std::string_view text, const std::vector<UpstreamName>& upstreams,
                                       std::string_view digest_upstream = {}, std::string_view digest_repository = {});

// Run-time exceptions (cache::ExceptionRecord) as the policy evaluates them. The
// gate passes the same list to policy::evaluate.
std::vector<policy::Exception> to_policy_exceptions(const std::vector<cache::ExceptionRecord>& records);

// {"image", "kind", "digest", "resolved", "decision", "served", "mode", "scope",
//  "source", "reasons", "exception", "policy_version", "stored_verdict",
//  "referenced_by"}, with the query's identity also "access": {"identity", "may_pull",
//  "by"} (not served when it may not); or {"image", "error"} when the tag is not cached or the
// digest is unknown to this mirror.
nlohmann::json explain(cache::MetaStore& meta, const policy::Policy& policy, std::span<const policy::Exception> extra,
                       const ExplainQuery& query, policy::TimePoint now);

}  // namespace pullgate::proxy
