#include "proxy/gate/vex_import.hpp"

#include <algorithm>
#include <set>

#include "policy/policy.hpp"
#include "policy/rfc3339.hpp"
#include "policy/vex.hpp"
#include "registry/digest.hpp"

namespace pullgate::proxy {

namespace {

constexpr std::size_t max_name_bytes = 256;
constexpr std::size_t max_digests = 64;  // one document filed under at most this many images

// Every "sha256:<64 hex>" (or "sha256%3A<64 hex>", a purl's escaped colon) in `text`.
void digests_in(std::string_view text, std::set<std::string>& out) {
  for (std::string_view marker : {std::string_view("sha256:"), std::string_view("sha256%3A"),
                                  std::string_view("sha256%3a")}) {
    for (auto at = text.find(marker); at != std::string_view::npos; at = text.find(marker, at + 1)) {
      auto hex = text.substr(at + marker.size(), 64);
      if (auto digest = registry::Digest::parse("sha256:" + std::string(hex))) out.insert(digest->str());
    }
  }
}

std::string statuses(const policy::VexDocument& document) {
  std::size_t counts[4] = {};
  for (const auto& s : document.statements) ++counts[static_cast<int>(s.status)];
  std::string out;
  for (auto status : {policy::VexStatus::not_affected, policy::VexStatus::fixed, policy::VexStatus::affected,
                      policy::VexStatus::under_investigation})
    if (auto n = counts[static_cast<int>(status)])
      out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + std::string(policy::to_string(status));
  return out;
}

}  // namespace

VexImportResult import_vex(DecisionWrites& writes, std::string_view document, std::string_view digest_override,
                           std::string_view by, std::int64_t now_ms) {
  VexImportResult result;
  if (writes.shared()) {
    result.error = "imported VEX documents are not shared through the fleet store yet: import them on a mirror "
                   "without fleet, or attach them to the image as signed attestations";
    return result;
  }
  auto parsed = policy::parse_vex(document);
  if (!parsed.document) {
    result.error = parsed.error;
    return result;
  }
  const auto& vex = *parsed.document;
  // The images its statements name, each checked the way the gate will match it.
  std::set<std::string> named;
  if (!digest_override.empty()) {
    auto digest = registry::Digest::parse(digest_override);
    if (!digest) {
      result.error = "--digest: not a digest: " + std::string(digest_override.substr(0, 200));
      return result;
    }
    named.insert(digest->str());
  } else {
    for (const auto& statement : vex.statements)
      for (const auto& product : statement.products)
        for (const auto& name : product.names) digests_in(name, named);
    for (const auto& subject : vex.subjects) digests_in(subject, named);
  }
  std::vector<std::string> digests;
  for (const auto& digest : named)
    if (std::any_of(vex.statements.begin(), vex.statements.end(),
                    [&](const auto& s) { return policy::vex_names_image(s, vex, digest); }))
      digests.push_back(digest);
  if (digests.empty()) {
    result.error = digest_override.empty()
                       ? "no statement names an image by digest: pullgate matches products by digest "
                         "(pkg:oci/NAME@sha256:..., REFERENCE@sha256:..., or the digest); give --digest for an "
                         "in-toto statement's subject"
                       : "no statement names " + *named.begin() +
                             " (by product, or as an in-toto statement's subject): it would set nothing aside";
    return result;
  }
  if (digests.size() > max_digests) {
    result.error = "the document names " + std::to_string(digests.size()) + " images; import it per image with "
                   "--digest (at most " + std::to_string(max_digests) + " at once)";
    return result;
  }
  cache::VexRecord record;
  record.name = !vex.id.empty() && vex.id.size() <= max_name_bytes && vex.id.find('\0') == std::string::npos
                    ? vex.id
                    : policy::content_version(document);
  record.document_json = policy::encode_vex(vex);
  record.imported_at_ms = now_ms;
  record.by = std::string(by);
  for (const auto& digest : digests) {
    if (writes.put_vex(*registry::Digest::parse(digest), record)) result.replaced_verdict = true;
  }
  result.ok = true;
  result.name = record.name;
  result.digests = digests;
  result.statements = vex.statements.size();
  result.statuses = statuses(vex);
  return result;
}

nlohmann::json vex_json(const std::string& digest, const std::vector<cache::VexRecord>& records) {
  nlohmann::json documents = nlohmann::json::array();
  for (const auto& record : records) {
    nlohmann::json d = {{"name", record.name},
                        {"imported_at", policy::format_ms(record.imported_at_ms)},
                        {"by", record.by}};
    if (auto vex = policy::decode_vex(record.document_json)) {
      d["format"] = policy::to_string(vex->format);
      d["author"] = vex->author;
      d["statuses"] = statuses(*vex);
      nlohmann::json statements = nlohmann::json::array();
      for (const auto& s : vex->statements) {
        if (!policy::vex_names_image(s, *vex, digest)) continue;
        nlohmann::json j = {{"vulnerability", s.vulnerability}, {"status", policy::to_string(s.status)}};
        if (!s.aliases.empty()) j["aliases"] = s.aliases;
        if (!s.justification.empty()) j["justification"] = s.justification;
        if (!s.impact_statement.empty()) j["impact_statement"] = s.impact_statement;
        if (!s.action_statement.empty()) j["action_statement"] = s.action_statement;
        if (s.timestamp) j["timestamp"] = policy::format_rfc3339(*s.timestamp);
        statements.push_back(std::move(j));
      }
      d["statements"] = std::move(statements);
    } else {
      d["error"] = "the stored document does not decode";
    }
    documents.push_back(std::move(d));
  }
  return {{"digest", digest}, {"documents", std::move(documents)}};
}

}  // namespace pullgate::proxy
