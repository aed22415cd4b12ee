#include "proxy/explain.hpp"

#include "policy/report.hpp"
#include "policy/vulnerabilities.hpp"
#include "proxy/signals.hpp"

#include <chrono>
#include <ctime>

#include "registry/names.hpp"

namespace pullgate::proxy {

using nlohmann::json;
using policy::Decision;
using policy::Source;

namespace {

constexpr std::size_t parent_limit_manifest = 32;  // as Gate::decide_locked
constexpr std::size_t parent_limit_blob = 64;      // as Gate::check_blob

std::int64_t to_ms(policy::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

using policy::format_ms;

// What one decision step found; mirrors GateDecision plus the scope name.
struct Found {
  Decision decision = Decision::allow;
  bool serve = true;
  policy::Mode mode = policy::Mode::enforce;
  std::string scope;
  std::string source;
  std::vector<std::string> reasons;
  std::string exception_id;
};

bool allows(const Found& f) { return f.serve && f.decision != Decision::deny; }

// Whether the stored verdict still counts, and why not; the rule of
// Gate::usable_verdict: manual ones until they expire, computed ones only under the
// current policy version.
struct Usable {
  std::optional<policy::StoredVerdict> stored;
  std::string why_not;  // empty when stored is set or there is no record
};

Usable usable_verdict(const std::optional<cache::VerdictRecord>& record, const policy::Policy& policy,
                      policy::TimePoint now) {
  if (!record) return {};
  if (record->expires_at_ms && *record->expires_at_ms <= to_ms(now))
    return {std::nullopt, "expired at " + format_ms(*record->expires_at_ms)};
  auto decision = policy::parse_decision(record->decision);
  auto source = policy::parse_source(record->source);
  if (!decision || !source) return {std::nullopt, "unknown source \"" + record->source + "\""};
  if (*source != Source::manual && record->policy_version != policy.version)
    return {std::nullopt, "computed under policy " + record->policy_version + ", not the current " + policy.version};
  policy::StoredVerdict stored;
  stored.decision = *decision;
  stored.source = *source;
  stored.reasons = record->reasons;
  if (record->expires_at_ms) stored.expires = policy::TimePoint(std::chrono::milliseconds(*record->expires_at_ms));
  return {stored, ""};
}

struct Context {
  cache::MetaStore& meta;
  const policy::Policy& policy;
  std::span<const policy::Exception> extra;
  policy::TimePoint now;
};

// Gate::decide_locked without storing: the gate stores exactly what evaluate returns
// here when there is no usable verdict, so the decision is the same.
Found decide_manifest(Context& c, const policy::Subject& subject, int depth) {
  auto digest = *registry::Digest::parse(subject.digest);
  auto usable = usable_verdict(c.meta.get_verdict(digest), c.policy, c.now);
  auto outcome = policy::evaluate(c.policy, subject, usable.stored, c.now, c.extra);
  // As the gate: a scope with a vulnerability policy judges the digest's report
  // when no stored verdict counts (explain queues nothing and waits for nothing).
  const auto& scope = policy::scope_for(c.policy, subject.upstream, subject.repository);
  if (!usable.stored && outcome.source != policy::Source::exception && outcome.source != policy::Source::manual &&
      scope.vulnerabilities) {
    std::optional<policy::ReportSummary> report;
    if (auto record = c.meta.get_report(digest)) report = policy::decode_summary(record->summary_json);
    if (auto judgement = policy::judge_report(c.policy, scope, report, c.now)) policy::combine(outcome, *judgement);
  }
  // And its signature and SBOM requirements, from what the mirror found when it
  // last looked (explain itself never asks the upstream).
  if (!usable.stored && outcome.source != policy::Source::exception && outcome.source != policy::Source::manual)
    judge_signals(c.meta, c.policy, scope, digest, outcome, to_ms(c.now));
  Found found{outcome.decision,
              outcome.serve,
              outcome.mode,
              outcome.scope,
              std::string(policy::to_string(outcome.source)),
              outcome.reasons,
              outcome.exception_id};
  if (!allows(found) || depth > 0) return found;

  // A denied index denies its children: refused when every index known to list it is denied.
  auto parents = c.meta.referenced_by(digest, parent_limit_manifest);
  if (parents.empty()) return found;
  std::vector<std::string> parent_reasons;
  for (auto& parent : parents) {
    policy::Subject parent_subject{subject.upstream, subject.repository, std::nullopt, parent.str()};
    auto parent_found = decide_manifest(c, parent_subject, depth + 1);
    if (allows(parent_found)) return found;
    for (auto& r : parent_found.reasons) parent_reasons.push_back("index " + parent.str() + ": " + r);
  }
  found.decision = Decision::deny;
  found.serve = found.mode != policy::Mode::enforce;
  found.source = "index";
  found.reasons = std::move(parent_reasons);
  found.exception_id.clear();
  return found;
}

// Gate::check_blob: served when one manifest that references it is served.
Found decide_blob(Context& c, const std::string& upstream, const std::string& repository,
                  const std::vector<registry::Digest>& parents, const registry::Digest& digest) {
  const auto& scope = policy::scope_for(c.policy, upstream, repository);
  Found found;
  found.mode = scope.mode;
  found.scope = scope.name;
  found.source = "manifest";
  if (parents.empty()) {
    found.decision = Decision::deny;
    found.serve = scope.mode != policy::Mode::enforce;
    found.reasons.push_back("blob " + digest.str() +
                            " belongs to no manifest this mirror has seen; pull the image by its tag or manifest "
                            "digest first");
    return found;
  }
  std::vector<std::string> denials;
  for (auto& parent : parents) {
    auto parent_found = decide_manifest(c, policy::Subject{upstream, repository, std::nullopt, parent.str()}, 0);
    if (allows(parent_found)) {
      found.decision = parent_found.decision;
      found.reasons = {"referenced by manifest " + parent.str() + ", which is served"};
      found.serve = true;
      return found;
    }
    for (auto& r : parent_found.reasons) denials.push_back("manifest " + parent.str() + ": " + r);
  }
  found.decision = Decision::deny;
  found.serve = scope.mode != policy::Mode::enforce;
  found.reasons = std::move(denials);
  return found;
}

json exception_json(const Context& c, const std::string& id) {
  if (id.empty()) return nullptr;
  auto describe = [](const policy::Exception& e, const char* origin) {
    json j = {{"id", e.id},     {"origin", origin}, {"digest", e.digest}, {"repository", e.repository},
              {"upstream", e.upstream}, {"reason", e.reason}, {"who", e.who}};
    j["expires"] = e.expires ? json(format_ms(to_ms(*e.expires))) : json(nullptr);
    return j;
  };
  // The policy's own exceptions are consulted first, as in policy::evaluate.
  for (auto& e : c.policy.exceptions)
    if (e.id == id) return describe(e, "policy");
  for (auto& e : c.extra)
    if (e.id == id) return describe(e, "runtime");
  return json{{"id", id}};
}

json stored_json(const std::optional<cache::VerdictRecord>& record, const Usable& usable) {
  if (!record) return nullptr;
  json j = {{"decision", record->decision},
            {"source", record->source},
            {"reasons", record->reasons},
            {"policy_version", record->policy_version},
            {"evaluated_at", format_ms(record->evaluated_at_ms)},
            {"counts", usable.stored.has_value()}};
  if (!record->set_by.empty()) j["set_by"] = record->set_by;
  j["expires_at"] = record->expires_at_ms ? json(format_ms(*record->expires_at_ms)) : json(nullptr);
  if (!usable.why_not.empty()) j["why_not"] = usable.why_not;
  return j;
}

}  // namespace

ParsedExplainQuery parse_explain_query(std::string_view text, const std::vector<UpstreamName>& upstreams,
                                       std::string_view digest_upstream, std::string_view digest_repository) {
  ParsedExplainQuery out;
  auto fail = [&](std::string message) {
    out.error = std::move(message);
    return out;
  };
  if (text.empty()) return fail("empty image reference");
  ExplainQuery q;
  q.image = std::string(text);

  if (auto digest = registry::Digest::parse(text)) {
    q.digest = *digest;
    q.upstream = std::string(digest_upstream);
    q.repository = std::string(digest_repository);
    if (!q.repository.empty() && !registry::Repository::parse(q.repository))
      return fail("not a repository name: " + q.repository);
    out.query = std::move(q);
    return out;
  }

  // The longest configured name (or alias) followed by '/'.
  const UpstreamName* match = nullptr;
  std::size_t match_length = 0;
  for (auto& u : upstreams) {
    std::vector<std::string_view> names{u.name};
    for (auto& a : u.aliases) names.push_back(a);
    for (auto name : names) {
      if (!name.empty() && text.size() > name.size() && text.starts_with(name) && text[name.size()] == '/' &&
          name.size() > match_length) {
        match = &u;
        match_length = name.size();
      }
    }
  }
  if (!match) {
    std::string known;
    for (auto& u : upstreams) known += (known.empty() ? "" : ", ") + u.name;
    return fail("\"" + std::string(text.substr(0, 200)) +
                "\" does not start with a configured upstream name and '/' (configured: " +
                (known.empty() ? std::string("none") : known) + "), nor is it a digest");
  }
  q.upstream = match->name;
  std::string_view rest = text.substr(match_length + 1);

  std::string_view repository = rest;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    repository = rest.substr(0, at);
    auto digest = registry::Digest::parse(rest.substr(at + 1));
    if (!digest) return fail("not a digest: " + std::string(rest.substr(at + 1, 200)) + " (sha256:<64 hex>)");
    q.digest = *digest;
  } else {
    auto slash = rest.rfind('/');
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || (slash != std::string_view::npos && colon < slash))
      return fail("name a tag (:TAG) or a digest (@sha256:...) in " + std::string(text.substr(0, 200)));
    repository = rest.substr(0, colon);
    auto tag = registry::Tag::parse(rest.substr(colon + 1));
    if (!tag) return fail("not a tag: " + std::string(rest.substr(colon + 1, 200)));
    q.tag = tag->str();
  }
  auto repo = registry::Repository::parse(repository);
  if (!repo) return fail("not a repository name: " + std::string(repository.substr(0, 200)));
  // As the mirror names Docker Hub repositories: "nginx" is "library/nginx".
  q.repository = match->docker_hub && repo->components() == 1 ? "library/" + repo->str() : repo->str();
  out.query = std::move(q);
  return out;
}

std::vector<policy::Exception> to_policy_exceptions(const std::vector<cache::ExceptionRecord>& records) {
  std::vector<policy::Exception> out;
  out.reserve(records.size());
  for (auto& r : records) {
    policy::Exception e;
    e.id = r.id;
    e.digest = r.digest;
    e.repository = r.repository;
    e.upstream = r.upstream;
    e.reason = r.reason;
    e.who = r.who;
    if (r.expires_at_ms) e.expires = policy::TimePoint(std::chrono::milliseconds(*r.expires_at_ms));
    out.push_back(std::move(e));
  }
  return out;
}

json explain(cache::MetaStore& meta, const policy::Policy& policy, std::span<const policy::Exception> extra,
             const ExplainQuery& query, policy::TimePoint now) {
  Context c{meta, policy, extra, now};
  json out = {{"image", query.image}};
  const std::string where = query.upstream + "/" + query.repository;

  json resolved = nullptr;
  std::optional<registry::Digest> resolved_digest;
  if (query.tag) {
    auto tag = meta.get_tag(query.upstream, query.repository, *query.tag);
    if (!tag) {
      out["error"] = "tag not cached: " + where + ":" + *query.tag +
                     " (explain reads only this mirror's cache and never asks the upstream; pull it once first)";
      return out;
    }
    resolved_digest = tag->digest;
    resolved = {{"tag", *query.tag},
                {"digest", tag->digest.str()},
                {"media_type", tag->media_type},
                {"fetched_at", format_ms(tag->fetched_at_ms)}};
  } else if (query.digest) {
    resolved_digest = *query.digest;
  } else {
    out["error"] = "nothing to explain: neither a tag nor a digest";
    return out;
  }
  const registry::Digest& digest = *resolved_digest;

  auto record = meta.get_verdict(digest);
  auto parents = meta.referenced_by(digest, parent_limit_blob);
  bool manifest = query.tag || meta.get_manifest(digest) || record;
  bool blob = !manifest && (meta.get_blob(digest) || !parents.empty());
  if (!manifest && !blob) {
    out["error"] = "digest " + digest.str() + " is unknown to this mirror (no manifest, blob, verdict or reference)";
    return out;
  }

  Found found = manifest ? decide_manifest(c, policy::Subject{query.upstream, query.repository, query.tag, digest.str()}, 0)
                         : decide_blob(c, query.upstream, query.repository, parents, digest);
  auto usable = usable_verdict(record, policy, now);

  out["kind"] = manifest ? "manifest" : "blob";
  out["digest"] = digest.str();
  out["upstream"] = query.upstream;
  out["repository"] = query.repository;
  out["resolved"] = resolved;
  out["decision"] = policy::to_string(found.decision);
  out["served"] = found.serve;
  out["mode"] = policy::to_string(found.mode);
  out["scope"] = found.scope;
  out["source"] = found.source;
  out["reasons"] = found.reasons;
  out["exception"] = exception_json(c, found.exception_id);
  out["policy_version"] = policy.version;
  out["stored_verdict"] = stored_json(record, usable);
  if (auto signals = meta.get_signals(digest)) {
    json j = {{"checked_at", format_ms(signals->checked_at_ms)}, {"policy_version", signals->policy_version}};
    if (signals->artifact) j["artifact"] = true;
    if (!signals->signature.empty())
      j["signature"] = {{"state", signals->signature}, {"key", signals->key}, {"detail", signals->signature_detail}};
    if (!signals->sbom.empty()) j["sbom"] = {{"state", signals->sbom}, {"detail", signals->sbom_detail}};
    out["signals"] = j;
  }
  json refs = json::array();
  for (auto& p : parents) refs.push_back(p.str());
  out["referenced_by"] = refs;
  return out;
}

}  // namespace pullgate::proxy
