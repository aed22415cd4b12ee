#include "policy/notation_policy.hpp"

#include <string>

namespace pullgate::policy {

notation::NotationTrust notation_trust(const Policy& policy, const NotationStatement& statement) {
  notation::NotationTrust trust;
  for (const auto& name : statement.trust_stores) {
    const NotationTrustStore* store = policy.trust_store_named(name);
    if (!store || !store->certificates) continue;
    auto& into = store->type == NotationTrustStore::Type::ca                  ? trust.ca_roots
                 : store->type == NotationTrustStore::Type::signing_authority ? trust.signing_authority_roots
                                                                               : trust.tsa_roots;
    into.insert(into.end(), store->certificates->begin(), store->certificates->end());
  }
  trust.trusted_identities = statement.trusted_identities;
  trust.level = statement.level;
  trust.verify_timestamp = statement.verify_timestamp;
  return trust;
}

namespace {

std::string stores_of(const NotationStatement& statement) {
  std::string out;
  for (const auto& name : statement.trust_stores) out += (out.empty() ? "" : ", ") + name;
  return out;
}

std::string describe(const notation::NotationVerified& verified, const NotationStatement& statement) {
  std::string out = "Notation signature by \"" + verified.signer + "\" (" +
                    (verified.scheme == notation::SigningScheme::x509 ? "notary.x509" : "notary.x509.signingAuthority") +
                    ", trust stores " + stores_of(statement) + ")";
  out += verified.timestamped ? ", timestamped " : ", signed (by its own claim) ";
  out += format_rfc3339(verified.signing_time);
  if (verified.expiry) out += ", expires " + format_rfc3339(*verified.expiry);
  for (const auto& line : verified.logged) out += "; logged, not enforced at this level: " + line;
  out += "; " + verified.revocation;
  return out;
}

}  // namespace

NotationCheck verify_notation_for(const Policy& policy, const SignaturePolicy& signatures, std::string_view media_type,
                                  std::string_view envelope, const registry::Digest& manifest, TimePoint now) {
  NotationCheck out;
  std::string refusals;
  bool integrity = false;
  for (std::size_t i = 0; i < signatures.notation.size(); ++i) {
    const auto& statement = signatures.notation[i];
    auto verified =
        notation::verify_notation_signature(media_type, envelope, manifest, notation_trust(policy, statement), now);
    if (auto* accepted = std::get_if<notation::NotationVerified>(&verified)) {
      out.check.result = SignatureCheck::Result::valid;
      out.check.key = "notation " + accepted->signer;
      out.check.detail = describe(*accepted, statement);
      out.valid_until = accepted->valid_until;
      return out;
    }
    const auto& refusal = std::get<std::string>(verified);
    integrity = integrity || refusal.starts_with("integrity:");
    if (signatures.notation.size() > 1) refusals += (refusals.empty() ? "" : "; ") + std::string("statement ") +
                                                    std::to_string(i + 1) + " (" + stores_of(statement) + "): ";
    refusals += "Notation signature refused: " + refusal;
  }
  out.check.result = integrity ? SignatureCheck::Result::malformed : SignatureCheck::Result::wrong_key;
  out.check.detail = signatures.notation.empty() ? "the scope trusts no Notation signer" : refusals;
  return out;
}

}  // namespace pullgate::policy
