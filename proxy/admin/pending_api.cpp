// GET /v1/pending and scanners' claims on its entries (cache/scan_claims.hpp):
//
//   GET    /v1/pending[?limit=N]                      oldest first, each with claimed_by when claimed
//   POST   /v1/pending/claims                         {"digest","holder","ttl_s"} -> 201 {"claim","ttl_s"}
//   POST   /v1/pending/claims/<digest>/renew          {"claim"} -> 200 {"ttl_s"}
//   DELETE /v1/pending/claims/<digest>?claim=<id>     -> 200 {"released":true}
//
// A digest claimed by another scanner is 409 with its holder; a claim that is gone
// (expired, released) is 404 on renew and release, so its scanner knows that another
// may be scanning the digest by now. With the fleet store the claims are etcd's and
// these calls wait on it (off the I/O threads; 503 when etcd does not answer).
#include <nlohmann/json.hpp>

#include "proxy/admin/admin.hpp"
#include "proxy/admin/request_parts.hpp"
#include "proxy/gate/records.hpp"
#include "proxy/telemetry/log.hpp"
#include "registry/names.hpp"

namespace pullgate::proxy {

using nlohmann::json;
using admin_parts::error_json;
using admin_parts::object_body;
using admin_parts::parse_query;

namespace {

// How a scanner names a pending digest on the pull API of this listener: the
// repository, behind the upstream's path prefix unless it is the default upstream.
// Upstream names with a port cannot be a path component of a reference, so an
// alias that can is needed for those.
std::optional<std::string> scan_reference(const Config& config, const std::string& digest,
                                          const std::vector<std::string>& references) {
  for (const auto& reference : references) {
    auto slash = reference.find('/');
    if (slash == std::string::npos) continue;
    auto upstream = reference.substr(0, slash);
    auto rest = reference.substr(slash + 1);
    auto repository = rest.substr(0, rest.find_first_of(":@"));
    for (const auto& u : config.upstreams) {
      if (u.settings.name != upstream) continue;
      if (u.is_default && registry::Repository::parse(repository)) return repository + "@" + digest;
      std::vector<std::string> prefixes{u.settings.name};
      prefixes.insert(prefixes.end(), u.aliases.begin(), u.aliases.end());
      for (const auto& prefix : prefixes)
        if (registry::Repository::parse(prefix + "/" + repository)) return prefix + "/" + repository + "@" + digest;
    }
  }
  return std::nullopt;
}

constexpr std::int64_t default_claim_ttl_s = 60;

}  // namespace

AdminApi::Reply AdminApi::pending(const Request& request, const std::string& rest, const RequestContext& context) {
  auto method = request.method();
  std::string_view target = request.target();
  auto q = target.find('?');
  auto query = parse_query(target.substr(q == std::string_view::npos ? target.size() : q + 1));
  if (!query) return {400, error_json("malformed query string").dump()};
  if (rest.empty()) {
    if (method != http::verb::get) return {405, error_json("use GET").dump()};
    std::size_t limit = 1000;
    if (auto it = query->find("limit"); it != query->end()) {
      char* end = nullptr;
      limit = std::strtoul(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end || limit == 0) return {400, error_json("limit must be a positive number").dump()};
    }
    auto claimed = claims_.held();
    json list = json::array();
    for (auto& [digest, record] : meta_.list_pending(limit)) {
      auto entry = pending_json(digest.str(), record);
      if (auto ref = scan_reference(config_, digest.str(), record.references)) entry["scan_reference"] = *ref;
      if (auto it = claimed.find(digest.str()); it != claimed.end()) entry["claimed_by"] = it->second;
      list.push_back(std::move(entry));
    }
    return {200, json{{"pending", list}, {"count", meta_.pending_count()}}.dump()};
  }
  if (rest == "/claims") {
    if (method != http::verb::post) return {405, error_json("use POST").dump()};
    std::string body_error;
    auto body = object_body(context.body, body_error);
    if (!body) return {400, error_json(body_error).dump()};
    auto digest_field = body->find("digest");
    auto digest = digest_field != body->end() && digest_field->is_string()
                      ? registry::Digest::parse(digest_field->get<std::string>())
                      : std::nullopt;
    if (!digest) return {400, error_json("digest must be a digest (sha256:...)").dump()};
    auto holder_field = body->find("holder");
    if (holder_field == body->end() || !holder_field->is_string() ||
        !cache::valid_claim_holder(holder_field->get<std::string>()))
      return {400, error_json("holder must be 1 to 128 printable ASCII characters (no quotes or backslash)").dump()};
    std::int64_t ttl_s = default_claim_ttl_s;
    if (auto it = body->find("ttl_s"); it != body->end()) {
      if (!it->is_number_integer() || it->get<std::int64_t>() < cache::min_claim_ttl_s ||
          it->get<std::int64_t>() > cache::max_claim_ttl_s)
        return {400, error_json("ttl_s must be a whole number of seconds from " + std::to_string(cache::min_claim_ttl_s) +
                                " to " + std::to_string(cache::max_claim_ttl_s))
                         .dump()};
      ttl_s = it->get<std::int64_t>();
    }
    if (!meta_.get_pending(*digest))
      return {404, error_json(digest->str() + " is not pending here (scanned already, or never queued)").dump()};
    auto holder = holder_field->get<std::string>();
    auto answer = claims_.claim(*digest, std::chrono::seconds(ttl_s), holder);
    if (auto* other = std::get_if<cache::ClaimedElsewhere>(&answer)) {
      return {409, json{{"error", digest->str() + " is claimed by " + other->holder}, {"claimed_by", other->holder}}
                       .dump()};
    }
    if (std::holds_alternative<cache::NotPending>(answer))
      return {404, error_json(digest->str() + " is no longer pending in the fleet (its report was filed)").dump()};
    auto& claim = std::get<cache::ScanClaim>(answer);
    log_event("info", "scan claimed", {{"digest", digest->str()}, {"holder", holder}, {"ttl_s", ttl_s},
                                        {"client", context.client}});
    return {201, json{{"digest", digest->str()}, {"claim", claim.id}, {"holder", holder},
                      {"ttl_s", claim.ttl.count()}}.dump()};
  }
  // /claims/<digest>/renew or /claims/<digest>
  constexpr std::string_view claims_dir = "/claims/";
  if (!rest.starts_with(claims_dir)) return {404, error_json("no such endpoint").dump()};
  std::string subject = rest.substr(claims_dir.size());
  constexpr std::string_view renew = "/renew";
  bool renewing = subject.ends_with(renew);
  if (renewing) subject.resize(subject.size() - renew.size());
  auto digest = registry::Digest::parse(subject);
  if (!digest) return {400, error_json("not a digest: " + subject.substr(0, 200)).dump()};
  std::string id;
  if (renewing) {
    if (method != http::verb::post) return {405, error_json("use POST").dump()};
    std::string body_error;
    auto body = object_body(context.body, body_error);
    if (!body) return {400, error_json(body_error).dump()};
    if (auto it = body->find("claim"); it != body->end() && it->is_string()) id = it->get<std::string>();
  } else {
    if (method != http::verb::delete_) return {405, error_json("use DELETE").dump()};
    if (auto it = query->find("claim"); it != query->end()) id = it->second;
  }
  if (id.empty() || id.size() > 64) return {400, error_json("the claim id is required (as the claim answered it)").dump()};
  const std::string gone = "no claim " + id + " on " + digest->str() + " (expired, released, or another scanner's)";
  if (renewing) {
    auto ttl = claims_.keep_alive(*digest, id);
    if (!ttl) return {404, error_json(gone).dump()};
    return {200, json{{"digest", digest->str()}, {"claim", id}, {"ttl_s", ttl->count()}}.dump()};
  }
  if (!claims_.release(*digest, id)) return {404, error_json(gone).dump()};
  return {200, json{{"digest", digest->str()}, {"released", true}}.dump()};
}

}  // namespace pullgate::proxy
