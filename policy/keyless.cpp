#include "policy/keyless.hpp"

#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "policy/provenance.hpp"
#include "policy/text.hpp"
#include "registry/base64.hpp"

namespace pullgate::policy {

using nlohmann::json;
using sigstore::FulcioIdentity;

bool TextMatch::matches(std::string_view value) const {
  if (!regex) return value == text;
  return std::regex_match(value.begin(), value.end(), *regex);
}

std::string TextMatch::describe() const {
  return (regex ? "matching \"" : "\"") + printable(text, 200) + "\"";
}

namespace {

using Field = std::string FulcioIdentity::*;

Field field_of(std::string_view name) {
  static const std::array<std::pair<std::string_view, Field>, keyless_extension_names.size()> fields{{
      {"build_signer_uri", &FulcioIdentity::build_signer_uri},
      {"build_signer_digest", &FulcioIdentity::build_signer_digest},
      {"runner_environment", &FulcioIdentity::runner_environment},
      {"source_repository_uri", &FulcioIdentity::source_repository_uri},
      {"source_repository_digest", &FulcioIdentity::source_repository_digest},
      {"source_repository_ref", &FulcioIdentity::source_repository_ref},
      {"source_repository_identifier", &FulcioIdentity::source_repository_identifier},
      {"source_repository_owner_uri", &FulcioIdentity::source_repository_owner_uri},
      {"source_repository_owner_identifier", &FulcioIdentity::source_repository_owner_identifier},
      {"build_config_uri", &FulcioIdentity::build_config_uri},
      {"build_config_digest", &FulcioIdentity::build_config_digest},
      {"build_trigger", &FulcioIdentity::build_trigger},
      {"run_invocation_uri", &FulcioIdentity::run_invocation_uri},
      {"source_repository_visibility", &FulcioIdentity::source_repository_visibility},
      {"deployment_environment", &FulcioIdentity::deployment_environment},
      {"github_workflow_trigger", &FulcioIdentity::github_workflow_trigger},
      {"github_workflow_sha", &FulcioIdentity::github_workflow_sha},
      {"github_workflow_name", &FulcioIdentity::github_workflow_name},
      {"github_workflow_repository", &FulcioIdentity::github_workflow_repository},
      {"github_workflow_ref", &FulcioIdentity::github_workflow_ref},
  }};
  for (const auto& [field_name, field] : fields)
    if (field_name == name) return field;
  return nullptr;
}

std::string in_quotes(std::string_view text) { return "\"" + printable(text, 200) + "\""; }

// How far `identity` is from `allowed`: the first thing that differs, or "".
std::string difference(const KeylessIdentity& allowed, const FulcioIdentity& identity) {
  if (!allowed.issuer.matches(identity.issuer))
    return "issuer " + in_quotes(identity.issuer) + " is not " + allowed.issuer.describe();
  if (!allowed.subject.matches(identity.subject))
    return "subject " + in_quotes(identity.subject) + " is not " + allowed.subject.describe();
  for (const auto& [name, value] : allowed.extensions) {
    const std::string& found = extension_value(identity, name);
    if (found != value)
      return name + " is " + (found.empty() ? std::string("absent") : in_quotes(found)) + ", not " + in_quotes(value);
  }
  return {};
}

std::optional<std::string> hex_bytes(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    int value = 0;
    for (char c : text.substr(i, 2)) {
      value <<= 4;
      if (c >= '0' && c <= '9') value |= c - '0';
      else if (c >= 'a' && c <= 'f') value |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') value |= c - 'A' + 10;
      else return std::nullopt;
    }
    out += static_cast<char>(value);
  }
  return out;
}

std::optional<std::uint64_t> unsigned_at(const json& object, std::string_view key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  const auto value = it->get<std::int64_t>();
  if (value < 0) return std::nullopt;
  return static_cast<std::uint64_t>(value);
}

const std::string* string_at(const json& object, std::string_view key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

std::string sha256(std::string_view bytes) {
  auto digest = registry::digest_of(registry::DigestAlgorithm::sha256, bytes);
  return *hex_bytes(digest.hex());
}

}  // namespace

const std::string& extension_value(const FulcioIdentity& identity, std::string_view name) {
  static const std::string none;
  const Field field = field_of(name);
  return field ? identity.*field : none;
}

std::string describe_signer(const FulcioIdentity& identity) {
  return in_quotes(identity.subject) + " (issuer " + in_quotes(identity.issuer) + ")";
}

bool identity_allowed(std::span<const KeylessIdentity> identities, std::string_view root_name,
                      const FulcioIdentity& identity, std::string& why) {
  why.clear();
  for (const auto& allowed : identities) {
    if (allowed.trusted_root != root_name) continue;
    std::string differs = difference(allowed, identity);
    if (differs.empty()) return true;
    // The first identity's difference, unless a later one matches on issuer and
    // subject and differs only in an extension (closer).
    const bool closer = allowed.issuer.matches(identity.issuer) && allowed.subject.matches(identity.subject);
    if (why.empty() || closer) why = std::move(differs);
  }
  if (why.empty()) why = "no identity of the scope trusts root " + std::string(root_name);
  return false;
}

std::variant<sigstore::Bundle, std::string> bundle_of_cosign_annotations(const CosignKeylessAnnotations& annotations,
                                                                         std::string_view payload) {
  sigstore::Bundle bundle;
  bundle.minor_version = 1;
  auto leaf = certificates_of_pem(annotations.certificate_pem, "the dev.sigstore.cosign/certificate annotation", 10);
  if (auto* error = std::get_if<std::string>(&leaf)) return *error;
  auto& leaves = std::get<std::vector<Certificate>>(leaf);
  if (leaves.size() != 1) return std::string("the dev.sigstore.cosign/certificate annotation holds more than one certificate");
  bundle.certificates.push_back(leaves.front());
  if (!annotations.chain_pem.empty()) {
    auto chain = certificates_of_pem(annotations.chain_pem, "the dev.sigstore.cosign/chain annotation", 10);
    if (auto* error = std::get_if<std::string>(&chain)) return *error;
    for (auto& c : std::get<std::vector<Certificate>>(chain)) bundle.certificates.push_back(std::move(c));
  }

  if (annotations.bundle_json.empty())
    return std::string("a keyless signature without its dev.sigstore.cosign/bundle annotation (no log entry)");
  const json rekor = json::parse(annotations.bundle_json, nullptr, false);
  const std::string what = "the dev.sigstore.cosign/bundle annotation";
  if (rekor.is_discarded() || !rekor.is_object()) return what + " is not a JSON object";
  const std::string* set = string_at(rekor, "SignedEntryTimestamp");
  auto payload_it = rekor.find("Payload");
  if (!set || payload_it == rekor.end() || !payload_it->is_object())
    return what + " has no SignedEntryTimestamp or Payload";
  const json& logged = *payload_it;
  sigstore::TlogEntry entry;
  std::string set_bytes;
  if (!registry::base64_decode(*set, set_bytes) || set_bytes.empty()) return what + ": SignedEntryTimestamp is not base64";
  entry.signed_entry_timestamp = std::move(set_bytes);
  const std::string* body = string_at(logged, "body");
  if (!body || !registry::base64_decode(*body, entry.canonicalized_body) || entry.canonicalized_body.empty())
    return what + ": Payload.body is missing or not base64";
  auto integrated = unsigned_at(logged, "integratedTime");
  auto index = unsigned_at(logged, "logIndex");
  const std::string* log_id = string_at(logged, "logID");
  if (!integrated || !index) return what + ": Payload.integratedTime and logIndex must be non-negative integers";
  auto id = log_id ? hex_bytes(*log_id) : std::nullopt;
  if (!id || id->size() != 32) return what + ": Payload.logID is not 64 hexadecimal digits";
  entry.integrated_time = *integrated;
  entry.log_index = *index;
  entry.log_id = std::move(*id);
  // The kind the body says it is: the SET covers the body, and the body check holds
  // it to the signature and certificate.
  const json parsed_body = json::parse(entry.canonicalized_body, nullptr, false);
  const std::string* kind = parsed_body.is_object() ? string_at(parsed_body, "kind") : nullptr;
  const std::string* version = parsed_body.is_object() ? string_at(parsed_body, "apiVersion") : nullptr;
  if (!kind || !version) return what + ": Payload.body is not a Rekor entry (no kind and apiVersion)";
  entry.kind = *kind;
  entry.version = *version;
  bundle.tlog_entries.push_back(std::move(entry));

  sigstore::MessageSignature message;
  if (!registry::base64_decode(annotations.signature_base64, message.signature) || message.signature.empty())
    return std::string("the signature annotation is empty or not base64");
  message.digest = sha256(payload);
  bundle.message_signature = std::move(message);
  return bundle;
}

SignatureCheck verify_keyless_signature(const Policy& policy, const SignaturePolicy& signatures,
                                        const sigstore::Bundle& bundle, std::string_view digest,
                                        std::optional<std::string_view> payload, Statement statement) {
  SignatureCheck check;
  if (signatures.identities.empty()) {
    check.result = SignatureCheck::Result::wrong_key;
    check.detail = "a keyless signature, and the scope trusts no keyless identity (only keys)";
    return check;
  }
  sigstore::Artifact artifact;
  if (payload) {
    artifact = sigstore::Artifact::of_bytes(std::string(*payload));
  } else {
    auto of_digest = sigstore::Artifact::of_digest(digest);
    if (auto* error = std::get_if<std::string>(&of_digest)) {
      check.detail = *error;
      return check;
    }
    artifact = std::get<sigstore::Artifact>(std::move(of_digest));
  }
  const sigstore::ExpectedIdentity anyone{sigstore::IdentityMatch::pattern("[\\s\\S]*"),
                                          sigstore::IdentityMatch::pattern("[\\s\\S]*")};
  std::set<std::string> tried;
  std::vector<std::string> refusals;
  for (const auto& identity : signatures.identities) {
    if (!tried.insert(identity.trusted_root).second) continue;
    const TrustedRootRef* ref = policy.trusted_root_named(identity.trusted_root);
    if (!ref || !ref->root) {
      refusals.push_back("trusted root " + identity.trusted_root + " is not loaded");
      continue;
    }
    const auto verdict = sigstore::verify_keyless(bundle, artifact, *ref->root, anyone);
    if (!verdict) {
      refusals.push_back((tried.size() > 1 || signatures.identities.size() > 1 ? "root " + ref->name + ": " : "") +
                         verdict.reason);
      continue;
    }
    std::string why;
    const std::string signer = describe_signer(verdict.identity);
    if (!identity_allowed(signatures.identities, ref->name, verdict.identity, why)) {
      check.result = SignatureCheck::Result::wrong_key;
      check.key = "keyless " + signer;
      check.detail = "signed keyless by " + signer + ", an identity the scope does not trust: " + why;
      return check;
    }
    if (bundle.dsse_envelope) {
      const json document = json::parse(bundle.dsse_envelope->payload, nullptr, false);
      const std::string* predicate = document.is_object() ? string_at(document, "predicateType") : nullptr;
      check.predicate_type = predicate ? *predicate : std::string();
      const bool wanted = statement == Statement::provenance ? is_provenance_predicate(check.predicate_type)
                                                             : check.predicate_type == cosign_sign_predicate;
      if (!wanted) {
        check.result = SignatureCheck::Result::wrong_type;
        check.key = "keyless " + signer;
        check.detail = "signed keyless by " + signer + ", but the statement's predicate is " +
                       in_quotes(check.predicate_type) + ", not " +
                       (statement == Statement::provenance ? "SLSA provenance" : "an image signature");
        return check;
      }
    }
    check.result = SignatureCheck::Result::valid;
    check.key = "keyless " + signer;
    check.detail = "signed keyless by " + signer + " at " + format_rfc3339(verdict.signed_at) + ", logged as entry " +
                   std::to_string(verdict.log_index) + " in " + verdict.log_base_url + " (trusted root " + ref->name +
                   ")";
    return check;
  }
  check.result = SignatureCheck::Result::wrong_key;
  std::string joined;
  for (const auto& r : refusals) joined += (joined.empty() ? "" : "; ") + r;
  check.detail = "keyless signature not verified: " + joined;
  return check;
}

}  // namespace pullgate::policy
