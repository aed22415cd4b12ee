// Notary Project signature envelopes, JWS and COSE (policy/notation.hpp, policy/cbor.hpp),
// verified against the trust stores of Notation's own envelopes (tests/fixtures/notation):
// the alpine leaf as the ca store, GlobalSign's root as the TSA store. Input: one byte,
// then the envelope (or a trusted identity):
//   bit 0: the envelope is COSE (else JWS);
//   bits 1-2: the level: strict, permissive, audit; 3 reads the rest as a trusted identity;
//   bit 3: the policy trusts "x509.subject: C=US, ST=WA, O=Notary" (else "*").
#include <fstream>
#include <sstream>
#include <variant>

#include "policy/notation.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::policy;
using namespace pullgate::policy::notation;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;

namespace {

Certificate fixture_certificate(const char* name) {
  std::ifstream in(std::string(PULLGATE_SOURCE_DIR) + "/tests/fixtures/notation/" + name, std::ios::binary);
  require(static_cast<bool>(in), "a fixture", name);
  std::stringstream der;
  der << in.rdbuf();
  auto certificate = Certificate::from_der(der.str());
  require(std::holds_alternative<Certificate>(certificate), "a fixture certificate reads", name);
  return std::get<Certificate>(std::move(certificate));
}

const pullgate::registry::Digest& alpine() {
  static const auto digest =
      *pullgate::registry::Digest::parse("sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda");
  return digest;
}

const TimePoint now = Clock::from_time_t(1796688000);  // 2026-12-08

void check_identity(std::string_view text) {
  auto identity = parse_trusted_identity(text);
  if (auto* error = std::get_if<std::string>(&identity)) {
    require(one_line(*error) && !error->empty(), "a one-line identity refusal", *error);
    return;
  }
  const TrustedIdentity& parsed = std::get<TrustedIdentity>(identity);
  if (parsed.any) return;
  for (const char* required : {"C", "ST", "O"}) {
    std::size_t count = 0;
    for (const auto& [type, value] : parsed.attributes) count += type == required ? 1 : 0;
    require(count == 1, "an identity names C, ST and O once each", text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto text = pullgate::fuzz::as_text(data + 1, size - 1);
  const unsigned level = (data[0] >> 1) & 3;
  if (level == 3) {
    check_identity(text);
    return 0;
  }
  static const Certificate ca = fixture_certificate("TestTimestamp.der");
  static const Certificate tsa = fixture_certificate("globalsignRoot.der");
  NotationTrust trust;
  trust.ca_roots = {ca};
  trust.tsa_roots = {tsa};
  trust.trusted_identities = {(data[0] & 8) != 0 ? "x509.subject: C=US, ST=WA, O=Notary" : "*"};
  trust.level = level == 0   ? VerificationLevel::strict
                : level == 1 ? VerificationLevel::permissive
                             : VerificationLevel::audit;
  const auto media_type = (data[0] & 1) != 0 ? cose_media_type : jws_media_type;
  auto result = verify_notation_signature(media_type, text, alpine(), trust, now);
  if (auto* refusal = std::get_if<std::string>(&result)) {
    require(one_line(*refusal) && !refusal->empty(), "a one-line refusal", *refusal);
    return 0;
  }
  const NotationVerified& verified = std::get<NotationVerified>(result);
  require(verified.target.digest == alpine().str(), "a verified envelope names the manifest", verified.target.digest);
  require(!verified.signer.empty(), "a verified envelope names its signer");
  for (const std::string& line : verified.logged) {
    require(one_line(line), "a one-line logged failure", line);
    require(trust.level != VerificationLevel::strict, "strict logs nothing", line);
    require(trust.level == VerificationLevel::audit || line.rfind("authenticity", 0) != 0,
            "only audit logs authenticity", line);
  }
  return 0;
}
