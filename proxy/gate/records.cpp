#include "proxy/gate/records.hpp"

namespace pullgate::proxy {

using policy::format_ms;

nlohmann::json verdict_json(const registry::Digest& digest, const cache::VerdictRecord& v) {
  nlohmann::json j = {{"digest", digest.str()},
                      {"decision", v.decision},
                      {"source", v.source},
                      {"reasons", v.reasons},
                      {"policy_version", v.policy_version},
                      {"set_by", v.set_by},
                      {"scope", v.scope},
                      {"evaluated_at", format_ms(v.evaluated_at_ms)},
                      {"evaluated_at_ms", v.evaluated_at_ms}};
  j["expires_at"] = v.expires_at_ms ? nlohmann::json(format_ms(*v.expires_at_ms)) : nlohmann::json(nullptr);
  j["expires_at_ms"] = v.expires_at_ms ? nlohmann::json(*v.expires_at_ms) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json exception_json(const cache::ExceptionRecord& r, std::int64_t now) {
  nlohmann::json j = {{"id", r.id},         {"digest", r.digest}, {"repository", r.repository},
                      {"upstream", r.upstream}, {"reason", r.reason}, {"who", r.who},
                      {"created_at", format_ms(r.created_at_ms)}};
  j["expires_at"] = r.expires_at_ms ? nlohmann::json(format_ms(*r.expires_at_ms)) : nlohmann::json(nullptr);
  j["expired"] = r.expires_at_ms && *r.expires_at_ms <= now;
  return j;
}

CheckedException check_exception(const nlohmann::json& fields, std::string_view field_prefix) {
  nlohmann::json document = {{"exceptions", nlohmann::json::array({fields})}};
  auto parsed = policy::parse_policy(document.dump());
  CheckedException out;
  if (!parsed.policy) {
    for (auto& e : parsed.errors) {
      const std::string prefix = "exceptions[0].";
      out.errors.push_back(e.rfind(prefix, 0) == 0 ? std::string(field_prefix) + e.substr(prefix.size()) : e);
    }
    return out;
  }
  out.expires = parsed.policy->exceptions.at(0).expires;
  return out;
}

nlohmann::json pending_json(const std::string& digest, const cache::PendingRecord& record) {
  return {{"digest", digest},
          {"references", record.references},
          {"first_seen", format_ms(record.first_seen_ms)},
          {"last_seen", format_ms(record.last_seen_ms)},
          {"requests", record.requests}};
}

}  // namespace pullgate::proxy
