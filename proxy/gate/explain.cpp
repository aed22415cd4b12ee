#include "proxy/gate/explain.hpp"

#include <chrono>

#include "policy/access.hpp"
#include "proxy/gate/decision.hpp"
#include "proxy/telemetry/kinds.hpp"
#include "registry/names.hpp"

namespace pullgate::proxy {

using nlohmann::json;

namespace {

using policy::format_ms;

json exception_json(const DecisionContext& c, const std::string& id) {
  if (id.empty()) return nullptr;
  auto describe = [](const policy::Exception& e, const char* origin) {
    json j = {{"id", e.id},     {"origin", origin}, {"digest", e.digest ? e.digest->str() : ""}, {"repository", e.repository},
              {"upstream", e.upstream}, {"reason", e.reason}, {"who", e.who}};
    j["expires"] = e.expires ? json(format_ms(policy::ms_of(*e.expires))) : json(nullptr);
    return j;
  };
  // The policy's own exceptions are consulted first, as in policy::evaluate.
  for (auto& e : c.policy.exceptions)
    if (e.id == id) return describe(e, "policy");
  for (auto& e : c.extra)
    if (e.id == id) return describe(e, "runtime");
  return json{{"id", id}};
}

json stored_json(const std::optional<cache::VerdictRecord>& record, const UsableVerdict& usable) {
  if (!record) return nullptr;
  json j = {{"decision", record->decision},
            {"source", record->source},
            {"reasons", record->reasons},
            {"policy_version", record->policy_version},
            {"scope", record->scope},
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
    if (!r.digest.empty()) {
      // A record whose digest does not read applies to nothing: read as "any digest"
      // it would let everything in its repositories through.
      e.digest = registry::Digest::parse(r.digest);
      if (!e.digest) continue;
    }
    e.repository = r.repository;
    e.upstream = r.upstream;
    e.reason = r.reason;
    e.who = r.who;
    if (r.expires_at_ms) e.expires = policy::time_from_ms(*r.expires_at_ms);
    out.push_back(std::move(e));
  }
  return out;
}

json explain(cache::MetaStore& meta, const policy::Policy& policy, std::span<const policy::Exception> extra,
             const ExplainQuery& query, policy::TimePoint now) {
  const DecisionContext c{meta, policy, extra, now, false, nullptr, nullptr, nullptr, nullptr};  // looks only: stores, queues, holds nothing
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

  const auto& scope_name = policy::scope_for(policy, query.upstream, query.repository).name;
  auto chosen = verdict_for(meta, digest, policy, scope_name, now);
  const auto& record = chosen.record;
  // What decides a blob: the manifests seen in this repository that reference it.
  auto parents = meta.referenced_by_in(digest, query.upstream, query.repository, blob_parent_limit);
  bool manifest = query.tag || meta.get_manifest(digest) || record;
  bool blob = !manifest && (meta.get_blob(digest) || !meta.referenced_by(digest, 1).empty());
  if (!manifest && !blob) {
    out["error"] = "digest " + digest.str() + " is unknown to this mirror (no manifest, blob, verdict or reference)";
    return out;
  }

  GateDecision found = manifest ? decide_manifest(c, policy::Subject{query.upstream, query.repository, query.tag, digest})
                                : decide_blob(c, query.upstream, query.repository, parents, digest);
  const auto& usable = chosen.usable;

  out["kind"] = to_string(manifest ? ArtifactKind::manifest : ArtifactKind::blob);
  out["digest"] = digest.str();
  out["upstream"] = query.upstream;
  out["repository"] = query.repository;
  out["resolved"] = resolved;
  out["decision"] = policy::to_string(found.decision);
  out["served"] = found.serve;
  if (query.identity) {
    auto access = policy.access ? policy::may_pull(*policy.access, *query.identity, query.upstream, query.repository)
                                : policy::AccessDecision{true, "the policy has no access section"};
    out["access"] = {{"identity", *query.identity}, {"may_pull", access.allowed}, {"by", access.by}};
    if (!access.allowed) out["served"] = false;
  }
  out["mode"] = policy::to_string(found.mode);
  out["scope"] = found.scope;
  out["source"] = found.source;
  out["reasons"] = found.reasons;
  out["exception"] = exception_json(c, found.exception_id);
  out["policy_version"] = policy.version;
  out["stored_verdict"] = stored_json(record, usable);
  if (auto signals = meta.get_signals(digest, scope_name)) {
    json j = {{"checked_at", format_ms(signals->checked_at_ms)}, {"policy_version", signals->policy_version}};
    if (signals->artifact) j["artifact"] = true;
    if (!signals->signature.empty())
      j["signature"] = {{"state", signals->signature}, {"key", signals->key}, {"detail", signals->signature_detail}};
    if (!signals->sbom.empty()) j["sbom"] = {{"state", signals->sbom}, {"detail", signals->sbom_detail}};
    if (!signals->provenance.empty())
      j["provenance"] = {{"state", signals->provenance}, {"detail", signals->provenance_detail}};
    out["signals"] = j;
  }
  json refs = json::array();
  for (auto& p : parents) refs.push_back(p.str());
  out["referenced_by"] = refs;
  return out;
}

}  // namespace pullgate::proxy
