// Notary Project JWS signatures (policy/notation.hpp) over a test PKI made here with
// OpenSSL (tests/tools/x509_make.hpp, tests/tools/notation_forge.hpp): a root, an
// intermediate and code-signing leaves (RSA 2048 and P-256), a TSA, and a stranger's
// root. Each failing case breaks one thing in an otherwise good envelope. And real
// envelopes Notation made (tests/fixtures/notation).
#include <gtest/gtest.h>

#include <openssl/pem.h>

#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "policy/notation.hpp"
#include "policy/notation_policy.hpp"
#include "registry/base64.hpp"
#include "tests/tools/notation_forge.hpp"
#include "tests/tools/x509_make.hpp"
#include "tests/unit/fixtures.hpp"

namespace pullgate::policy::notation {
namespace {

using namespace testing_support::x509;
using testing_support::notation::Cose;
using testing_support::notation::envelope_of;
using testing_support::notation::Jws;
using testing_support::notation::to_be_signed;
namespace cbor = testing_support::notation::cbor;
using testing_support::notation::jws_sign;
using testing_support::notation::signing_input;
using testing_support::notation::timestamp_token;

TimePoint at(const char* text) { return *parse_rfc3339(text); }
std::time_t seconds_of(const char* text) { return Clock::to_time_t(at(text)); }

const registry::Digest manifest =
    *registry::Digest::parse("sha256:73c803930ea3ba1e54bc25c2bdc53edd0284c62ed651fe7b00369da519a3c333");
const TimePoint now = at("2026-06-01T00:00:00Z");
const Rdns release = {{"C", "US"}, {"ST", "WA"}, {"L", "Seattle"}, {"O", "acme"}, {"CN", "release"}};

const Extensions ca_extensions = {{NID_basic_constraints, "critical,CA:TRUE"},
                                  {NID_key_usage, "critical,keyCertSign,cRLSign"}};
const Extensions signer_extensions = {{NID_key_usage, "critical,digitalSignature"}, {NID_ext_key_usage, "codeSigning"}};

struct Identity {
  Pkey key;
  X509Ptr certificate;
};

Identity make(Pkey key, const Rdns& subject, const char* from, const char* to, const Extensions& extensions,
              const Identity* issuer, long serial) {
  X509Ptr certificate = make_named_certificate(key.get(), subject, seconds_of(from), seconds_of(to), extensions,
                                               issuer ? issuer->certificate.get() : nullptr,
                                               issuer ? issuer->key.get() : nullptr, serial);
  return Identity{std::move(key), std::move(certificate)};
}

Certificate certificate_of(const Identity& identity) {
  return std::get<Certificate>(Certificate::from_der(der_of(identity.certificate.get())));
}

struct Pki {
  Identity root = make(ec_key("P-256"), {{"C", "US"}, {"O", "acme"}, {"CN", "acme root"}}, "2025-01-01T00:00:00Z",
                       "2035-01-01T00:00:00Z", ca_extensions, nullptr, 1);
  Identity intermediate = make(ec_key("P-256"), {{"C", "US"}, {"O", "acme"}, {"CN", "acme signing"}},
                               "2025-01-01T00:00:00Z", "2030-01-01T00:00:00Z", ca_extensions, &root, 2);
  Identity rsa_leaf =
      make(rsa_key(2048), release, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", signer_extensions, &intermediate, 3);
  Identity ec_leaf = make(ec_key("P-256"), release, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", signer_extensions,
                          &intermediate, 4);
  // Expired before `now`, valid when the TSA stamped it.
  Identity old_leaf = make(ec_key("P-256"), release, "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", signer_extensions,
                           &intermediate, 5);
  Identity tsa_root = make(ec_key("P-256"), {{"C", "US"}, {"O", "tsa"}, {"CN", "tsa root"}}, "2024-01-01T00:00:00Z",
                           "2040-01-01T00:00:00Z", ca_extensions, nullptr, 6);
  Identity tsa =
      make(ec_key("P-256"), {{"C", "US"}, {"O", "tsa"}, {"CN", "tsa"}}, "2024-01-01T00:00:00Z", "2040-01-01T00:00:00Z",
           {{NID_key_usage, "critical,digitalSignature"}, {NID_ext_key_usage, "critical,timeStamping"}}, &tsa_root, 7);
  Identity stranger_root = make(ec_key("P-256"), {{"C", "US"}, {"O", "mallory"}, {"CN", "mallory root"}},
                                "2025-01-01T00:00:00Z", "2035-01-01T00:00:00Z", ca_extensions, nullptr, 8);
  Identity stranger = make(ec_key("P-256"), {{"C", "US"}, {"ST", "WA"}, {"O", "mallory"}, {"CN", "x"}},
                           "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", signer_extensions, &stranger_root, 9);
};

const Pki& pki() {
  static const Pki made;
  return made;
}

std::string payload_for(const std::string& digest) {
  return R"({"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + digest +
         R"(","size":16724,"annotations":{"io.wabbit-networks.buildId":"123"}}})";
}

std::string header_for(const std::string& alg, const std::string& extra = "",
                       const std::string& crit = R"(["io.cncf.notary.signingScheme"])") {
  return R"({"alg":")" + alg + R"(","cty":"application/vnd.cncf.notary.payload.v1+json",)" +
         R"("io.cncf.notary.signingScheme":"notary.x509","io.cncf.notary.signingTime":"2026-05-01T07:01:20Z",)" +
         extra + R"("crit":)" + crit + "}";
}

// A good envelope by `signer` (issued by the intermediate), signed as `alg`.
Jws signed_by(const Identity& signer, const std::string& alg, std::string header = "") {
  Jws jws;
  jws.protected_header = header.empty() ? header_for(alg) : std::move(header);
  jws.payload = payload_for(manifest.str());
  jws.x5c = {der_of(signer.certificate.get()), der_of(pki().intermediate.certificate.get()),
             der_of(pki().root.certificate.get())};
  jws.signature = jws_sign(signer.key.get(), alg, signing_input(jws));
  return jws;
}

// The test root, the release identity; no TSA store unless a case adds it.
NotationTrust trust(VerificationLevel level = VerificationLevel::strict) {
  NotationTrust out;
  out.ca_roots = {certificate_of(pki().root)};
  out.trusted_identities = {"x509.subject: C=US, ST=WA, O=acme, CN=release"};
  out.level = level;
  return out;
}

NotationTrust with_tsa(NotationTrust trust) {
  trust.tsa_roots = {certificate_of(pki().tsa_root)};
  return trust;
}

std::variant<NotationVerified, std::string> verify(const Jws& jws, const NotationTrust& with = trust(),
                                                   TimePoint when = now) {
  return verify_notation_signature(jws_media_type, envelope_of(jws), manifest, with, when);
}

NotationVerified expect_verified(const std::variant<NotationVerified, std::string>& result) {
  EXPECT_TRUE(std::holds_alternative<NotationVerified>(result)) << std::get<std::string>(result);
  return std::holds_alternative<NotationVerified>(result) ? std::get<NotationVerified>(result) : NotationVerified{};
}

void expect_refused(const std::variant<NotationVerified, std::string>& result, const std::string& words) {
  ASSERT_TRUE(std::holds_alternative<std::string>(result)) << "verified";
  EXPECT_NE(std::get<std::string>(result).find(words), std::string::npos) << std::get<std::string>(result);
}

TEST(NotationTest, RsaPssSignatureVerifies) {
  const NotationVerified verified = expect_verified(verify(signed_by(pki().rsa_leaf, "PS256")));
  EXPECT_EQ(verified.signer, "C=US, ST=WA, L=Seattle, O=acme, CN=release");
  EXPECT_EQ(verified.scheme, SigningScheme::x509);
  EXPECT_EQ(format_rfc3339(verified.signing_time), "2026-05-01T07:01:20Z");
  EXPECT_FALSE(verified.timestamped);
  EXPECT_EQ(verified.target.media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(verified.target.size, 16724);
  EXPECT_EQ(verified.signing_agent, "notation-forge/1.0");
  EXPECT_TRUE(verified.logged.empty());
  EXPECT_NE(verified.revocation.find("not checked"), std::string::npos);
}

TEST(NotationTest, EcdsaSignatureVerifies) { expect_verified(verify(signed_by(pki().ec_leaf, "ES256"))); }

TEST(NotationTest, EcdsaOnP384AndP521Verifies) {
  for (const auto& [curve, alg] : {std::pair<std::string, std::string>{"P-384", "ES384"}, {"P-521", "ES512"}}) {
    const Identity leaf = make(ec_key(curve), release, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z",
                               signer_extensions, &pki().intermediate, 10);
    expect_verified(verify(signed_by(leaf, alg)));
    expect_refused(verify(signed_by(leaf, "ES256", header_for("ES256"))),
                   "integrity: alg ES256 does not match the signing certificate's key, which requires " + alg);
  }
}

TEST(NotationTest, AlgorithmMustMatchTheKey) {
  expect_refused(verify(signed_by(pki().ec_leaf, "ES384", header_for("ES384"))),
                 "integrity: alg ES384 does not match the signing certificate's key, which requires ES256");
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256", header_for("HS256"))), "alg \"HS256\" is not one");
}

TEST(NotationTest, TamperedPayloadIsRefused) {
  Jws jws = signed_by(pki().ec_leaf, "ES256");
  jws.payload = payload_for("sha256:" + std::string(64, 'a'));
  expect_refused(verify(jws), "integrity: signature does not verify");
}

TEST(NotationTest, TamperedProtectedHeaderIsRefused) {
  Jws jws = signed_by(pki().rsa_leaf, "PS256");
  const std::string::size_type at = jws.protected_header.find("2026-05-01");
  jws.protected_header.replace(at, 4, "2025");
  expect_refused(verify(jws), "integrity: signature does not verify");
}

TEST(NotationTest, WrongDigestIsRefused) {
  Jws jws = signed_by(pki().ec_leaf, "ES256");
  jws.payload = payload_for("sha256:" + std::string(64, 'b'));
  jws.signature = jws_sign(pki().ec_leaf.key.get(), "ES256", signing_input(jws));
  expect_refused(verify(jws), "integrity: signed for sha256:bbbb" + std::string(60, 'b') + ", not " + manifest.str());
}

TEST(NotationTest, UnknownCriticalHeaderIsRefused) {
  const std::string header = header_for("ES256", R"("io.example.mustUnderstand":"1",)",
                                        R"(["io.cncf.notary.signingScheme","io.example.mustUnderstand"])");
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256", header)),
                 "integrity: unknown critical header \"io.example.mustUnderstand\"");
}

TEST(NotationTest, CritMustListTheSigningSchemeAndExpiry) {
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256", header_for("ES256", "", "[]"))),
                 "io.cncf.notary.signingScheme is not listed in crit");
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256",
                                  header_for("ES256", R"("io.cncf.notary.expiry":"2027-01-01T00:00:00Z",)"))),
                 "io.cncf.notary.expiry is not listed in crit");
  expect_refused(
      verify(signed_by(pki().ec_leaf, "ES256", header_for("ES256", "", R"(["io.cncf.notary.signingScheme","alg"])"))),
      "unknown critical header \"alg\"");
}

TEST(NotationTest, ChainToAnotherRootIsRefused) {
  Jws jws;
  jws.protected_header = header_for("ES256");
  jws.payload = payload_for(manifest.str());
  jws.x5c = {der_of(pki().stranger.certificate.get()), der_of(pki().stranger_root.certificate.get())};
  jws.signature = jws_sign(pki().stranger.key.get(), "ES256", signing_input(jws));
  expect_refused(verify(jws), "authenticity: certificate chain does not lead to the trust store");
}

TEST(NotationTest, ChainOutOfOrderIsRefused) {
  Jws jws = signed_by(pki().ec_leaf, "ES256");
  std::swap(jws.x5c[1], jws.x5c[2]);
  expect_refused(verify(jws), "authenticity: x5c is not a chain");
  jws.x5c.pop_back();
  jws.x5c.pop_back();
  expect_refused(verify(jws), "x5c does not end with a root certificate");
}

TEST(NotationTest, UntrustedIdentityIsRefused) {
  NotationTrust with = trust();
  with.trusted_identities = {"x509.subject: C=US, ST=WA, O=acme, CN=nightly"};
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256"), with),
                 "authenticity: the signer \"C=US, ST=WA, L=Seattle, O=acme, CN=release\" is not a trusted identity "
                 "(trusted: x509.subject: C=US, ST=WA, O=acme, CN=nightly)");
  with.trusted_identities = {"*"};
  expect_verified(verify(signed_by(pki().ec_leaf, "ES256"), with));
}

TEST(NotationTest, ExpiredCertificateIsRefusedAtNow) {
  expect_refused(verify(signed_by(pki().old_leaf, "ES256")),
                 "authentic timestamp: certificate \"C=US, ST=WA, L=Seattle, O=acme, CN=release\" (valid from "
                 "2025-01-01T00:00:00Z to 2026-01-01T00:00:00Z) is not valid at the verification time "
                 "2026-06-01T00:00:00Z");
}

TEST(NotationTest, TimestampSavesAnExpiredCertificate) {
  Jws jws = signed_by(pki().old_leaf, "ES256");
  jws.timestamp = timestamp_token(jws.signature, pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2025-06-01T00:00:00Z"));
  const NotationVerified verified = expect_verified(verify(jws, with_tsa(trust())));
  EXPECT_TRUE(verified.timestamped);
  EXPECT_EQ(format_rfc3339(verified.signing_time), "2025-06-01T00:00:00Z");
  // Without a TSA store the countersignature is not read, and `now` decides.
  expect_refused(verify(jws), "is not valid at the verification time");
}

TEST(NotationTest, ATsaStoreRequiresACountersignature) {
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256"), with_tsa(trust())),
                 "authentic timestamp: no timestamp countersignature was found in the signature envelope");
  const NotationVerified logged =
      expect_verified(verify(signed_by(pki().ec_leaf, "ES256"), with_tsa(trust(VerificationLevel::permissive))));
  ASSERT_EQ(logged.logged.size(), 1u);
  EXPECT_EQ(logged.logged[0].rfind("authentic timestamp: no timestamp countersignature", 0), 0u);
}

TEST(NotationTest, AfterCertExpiryReadsTheTimestampOnlyOnceTheChainHasExpired) {
  NotationTrust after_expiry = with_tsa(trust());
  after_expiry.verify_timestamp = VerifyTimestamp::after_cert_expiry;
  // Unexpired: no countersignature needed, and one that is there is not read.
  Jws jws = signed_by(pki().ec_leaf, "ES256");
  EXPECT_FALSE(expect_verified(verify(jws, after_expiry)).timestamped);
  jws.timestamp = timestamp_token("other bytes", pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2026-05-01T00:00:00Z"));
  EXPECT_FALSE(expect_verified(verify(jws, after_expiry)).timestamped);
  // Expired: the countersignature decides.
  Jws old = signed_by(pki().old_leaf, "ES256");
  expect_refused(verify(old, after_expiry), "no timestamp countersignature was found");
  old.timestamp = timestamp_token(old.signature, pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2025-06-01T00:00:00Z"));
  EXPECT_TRUE(expect_verified(verify(old, after_expiry)).timestamped);
}

TEST(NotationTest, TimestampOverOtherBytesOrByAStrangerIsRefused) {
  Jws jws = signed_by(pki().old_leaf, "ES256");
  jws.timestamp = timestamp_token("other bytes", pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2025-06-01T00:00:00Z"));
  expect_refused(verify(jws, with_tsa(trust())),
                 "authentic timestamp: timestamp countersignature: timestamp is not over the signature");
  NotationTrust other_tsa = trust();
  other_tsa.tsa_roots = {certificate_of(pki().stranger_root)};
  jws.timestamp = timestamp_token(jws.signature, pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2025-06-01T00:00:00Z"));
  expect_refused(verify(jws, other_tsa), "is not by a timestamp authority of the TSA trust store");
}

TEST(NotationTest, TimestampAfterTheCertificateExpiredIsRefused) {
  Jws jws = signed_by(pki().old_leaf, "ES256");
  jws.timestamp = timestamp_token(jws.signature, pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2026-02-01T00:00:00Z"));
  expect_refused(verify(jws, with_tsa(trust())), "is not valid at the timestamp's time 2026-02-01T00:00:00Z");
}

TEST(NotationTest, TheTimestampsAccuracyMustFitTheValidityToo) {
  // Stamped at the leaf's last second: the baseline policy's one-second accuracy
  // reaches past it (RFC 3161 section 2.4.2, trust-store-trust-policy.md).
  Jws jws = signed_by(pki().old_leaf, "ES256");
  jws.timestamp = timestamp_token(jws.signature, pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2026-01-01T00:00:00Z"));
  expect_refused(verify(jws, with_tsa(trust())), "is not valid at the timestamp's time 2026-01-01T00:00:00Z");
  jws.timestamp = timestamp_token(jws.signature, pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2025-12-31T23:59:59Z"));
  expect_verified(verify(jws, with_tsa(trust())));
}

TEST(NotationTest, ExpiredSignatureIsRefused) {
  const std::string header = header_for("ES256", R"("io.cncf.notary.expiry":"2026-05-15T00:00:00Z",)",
                                        R"(["io.cncf.notary.signingScheme","io.cncf.notary.expiry"])");
  const Jws jws = signed_by(pki().ec_leaf, "ES256", header);
  expect_refused(verify(jws), "expiry: signature expired at 2026-05-15T00:00:00Z");
  const NotationVerified before = expect_verified(verify(jws, trust(), at("2026-05-14T00:00:00Z")));
  EXPECT_EQ(format_rfc3339(*before.expiry), "2026-05-15T00:00:00Z");
}

TEST(NotationTest, PermissiveLogsExpiryAndTimestampButEnforcesAuthenticity) {
  const std::string header = header_for("ES256", R"("io.cncf.notary.expiry":"2026-05-15T00:00:00Z",)",
                                        R"(["io.cncf.notary.signingScheme","io.cncf.notary.expiry"])");
  const NotationVerified verified =
      expect_verified(verify(signed_by(pki().old_leaf, "ES256", header), trust(VerificationLevel::permissive)));
  ASSERT_EQ(verified.logged.size(), 2u);
  EXPECT_EQ(verified.logged[0], "expiry: signature expired at 2026-05-15T00:00:00Z");
  EXPECT_EQ(verified.logged[1].rfind("authentic timestamp: certificate", 0), 0u) << verified.logged[1];

  NotationTrust stranger = trust(VerificationLevel::permissive);
  stranger.trusted_identities = {"x509.subject: C=US, ST=WA, O=other"};
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256"), stranger), "authenticity: the signer");
}

TEST(NotationTest, AuditLogsAuthenticityButEnforcesIntegrity) {
  NotationTrust audit = trust(VerificationLevel::audit);
  audit.ca_roots = {certificate_of(pki().stranger_root)};
  const NotationVerified verified = expect_verified(verify(signed_by(pki().ec_leaf, "ES256"), audit));
  ASSERT_EQ(verified.logged.size(), 1u);
  EXPECT_EQ(verified.logged[0].rfind("authenticity: certificate chain does not lead to the trust store", 0), 0u);

  Jws tampered = signed_by(pki().ec_leaf, "ES256");
  tampered.payload = payload_for("sha256:" + std::string(64, 'c'));
  expect_refused(verify(tampered, audit), "integrity: signature does not verify");
}

TEST(NotationTest, SkipVerifiesNothing) {
  const auto result =
      verify_notation_signature(jws_media_type, "not an envelope", manifest, trust(VerificationLevel::skip), now);
  EXPECT_TRUE(expect_verified(result).skipped);
}

TEST(NotationTest, SigningAuthorityUsesItsStoreAndAuthenticTime) {
  const std::string header = R"({"alg":"ES256","cty":"application/vnd.cncf.notary.payload.v1+json",)"
                             R"("io.cncf.notary.signingScheme":"notary.x509.signingAuthority",)"
                             R"("io.cncf.notary.authenticSigningTime":"2025-06-01T00:00:00Z",)"
                             R"("crit":["io.cncf.notary.signingScheme","io.cncf.notary.authenticSigningTime"]})";
  const Jws jws = signed_by(pki().old_leaf, "ES256", header);
  expect_refused(verify(jws), "certificate chain does not lead to the trust store (signingAuthority, 0 certificates)");
  NotationTrust with = trust();
  with.signing_authority_roots = {certificate_of(pki().root)};
  const NotationVerified verified = expect_verified(verify(jws, with));
  EXPECT_EQ(verified.scheme, SigningScheme::x509_signing_authority);
  EXPECT_EQ(format_rfc3339(verified.signing_time), "2025-06-01T00:00:00Z");
}

TEST(NotationTest, MalformedEnvelopesGiveOneLine) {
  const auto refuse = [](const std::string& envelope, const std::string& words) {
    expect_refused(verify_notation_signature(jws_media_type, envelope, manifest, trust(), now), words);
  };
  refuse("{", "integrity: envelope is not JSON");
  refuse("[1]", "envelope is not a JSON object");
  refuse(R"({"payload":"e30","protected":"e30","signature":"AA","header":{},"extra":1})",
         "envelope has a member \"extra\"");
  refuse(R"({"payload":"e30=","protected":"e30","signature":"AA","header":{}})", "payload is not base64url");
  refuse(R"({"payload":"e30","protected":"e30","signature":"AA","header":{}})", "protected header has no alg");
  refuse(R"({"payload":"e30","protected":"MQ","signature":"AA","header":{}})", "protected header is not a JSON object");
  refuse(std::string(max_envelope_size + 1, ' '), "more than 4194304");
  Jws jws = signed_by(pki().ec_leaf, "ES256");
  jws.x5c.assign(11, jws.x5c[0]);
  refuse(envelope_of(jws), "x5c holds 11 certificates, more than 10");
  jws.x5c = {"not der"};
  refuse(envelope_of(jws), "x5c[0]: not a DER X.509 certificate");
  jws = signed_by(pki().ec_leaf, "ES256");
  jws.payload = R"({"targetArtifact":{"mediaType":"m","digest":"d","size":1e999}})";
  refuse(envelope_of(jws), "payload is not JSON");
  EXPECT_EQ(std::get<std::string>(verify_notation_signature("application/json", "{}", manifest, trust(), now)),
            "signature envelope media type \"application/json\" is neither application/jose+json nor "
            "application/cose");
}

// COSE_Sign1 envelopes (signature-envelope-cose.md): the same checks through the
// same core, with the protected header as a CBOR map.
using Entries = std::vector<std::pair<std::string, std::string>>;

std::string cose_header(std::int64_t alg, const Entries& extra = {},
                        const std::vector<std::string>& crit = {cbor::text("io.cncf.notary.signingScheme")}) {
  Entries entries = {
      {cbor::integer(1), cbor::integer(alg)},
      {cbor::integer(2), cbor::array(crit)},
      {cbor::integer(3), cbor::text("application/vnd.cncf.notary.payload.v1+json")},
      {cbor::text("io.cncf.notary.signingScheme"), cbor::text("notary.x509")},
      {cbor::text("io.cncf.notary.signingTime"), cbor::tag(1, cbor::integer(seconds_of("2026-05-01T07:01:20Z")))}};
  entries.insert(entries.end(), extra.begin(), extra.end());
  return cbor::map(entries);
}

Cose cose_by(const Identity& signer, const std::string& alg, std::string header) {
  Cose cose;
  cose.protected_header = std::move(header);
  cose.payload = payload_for(manifest.str());
  cose.x5chain = {der_of(signer.certificate.get()), der_of(pki().intermediate.certificate.get()),
                  der_of(pki().root.certificate.get())};
  cose.signature = jws_sign(signer.key.get(), alg, to_be_signed(cose));
  return cose;
}

std::variant<NotationVerified, std::string> verify(const Cose& cose, const NotationTrust& with = trust(),
                                                   TimePoint when = now) {
  return verify_notation_signature(cose_media_type, envelope_of(cose), manifest, with, when);
}

TEST(NotationCoseTest, EcdsaAndRsaPssSignaturesVerify) {
  const NotationVerified verified = expect_verified(verify(cose_by(pki().ec_leaf, "ES256", cose_header(-7))));
  EXPECT_EQ(verified.signer, "C=US, ST=WA, L=Seattle, O=acme, CN=release");
  EXPECT_EQ(format_rfc3339(verified.signing_time), "2026-05-01T07:01:20Z");
  EXPECT_EQ(verified.signing_agent, "notation-forge/1.0");
  expect_verified(verify(cose_by(pki().rsa_leaf, "PS256", cose_header(-37))));
}

TEST(NotationCoseTest, IntegrityAndHeaderChecksApply) {
  Cose tampered = cose_by(pki().ec_leaf, "ES256", cose_header(-7));
  tampered.payload = payload_for("sha256:" + std::string(64, 'd'));
  expect_refused(verify(tampered), "integrity: signature does not verify");
  expect_refused(verify(cose_by(pki().ec_leaf, "ES256", cose_header(-35))),
                 "alg ES384 does not match the signing certificate's key, which requires ES256");
  expect_refused(verify(cose_by(pki().ec_leaf, "ES256", cose_header(-8))), "alg \"COSE alg -8\" is not one");
  expect_refused(verify(cose_by(pki().ec_leaf, "ES256",
                                cose_header(-7, {{cbor::integer(100), cbor::text("x")}},
                                            {cbor::text("io.cncf.notary.signingScheme"), cbor::integer(100)}))),
                 "integrity: unknown critical header \"label 100\"");
  expect_refused(verify(cose_by(pki().ec_leaf, "ES256",
                                cose_header(-7, {}, {cbor::text("io.cncf.notary.signingScheme"), cbor::integer(3)}))),
                 "crit lists label 3, which COSE reserves (0 to 8)");
}

TEST(NotationCoseTest, ExpiryIsAnEpochTime) {
  const std::string expiring = cose_header(
      -7, {{cbor::text("io.cncf.notary.expiry"), cbor::tag(1, cbor::integer(seconds_of("2026-05-15T00:00:00Z")))}},
      {cbor::text("io.cncf.notary.signingScheme"), cbor::text("io.cncf.notary.expiry")});
  expect_refused(verify(cose_by(pki().ec_leaf, "ES256", expiring)),
                 "expiry: signature expired at 2026-05-15T00:00:00Z");
  const std::string as_text =
      cose_header(-7, {{cbor::text("io.cncf.notary.expiry"), cbor::text("2026-05-15T00:00:00Z")}},
                  {cbor::text("io.cncf.notary.signingScheme"), cbor::text("io.cncf.notary.expiry")});
  expect_refused(verify(cose_by(pki().ec_leaf, "ES256", as_text)),
                 "protected header io.cncf.notary.expiry is not an epoch date/time (tag 1, whole seconds)");
}

TEST(NotationCoseTest, TimestampSavesAnExpiredCertificate) {
  Cose cose = cose_by(pki().old_leaf, "ES256", cose_header(-7));
  expect_refused(verify(cose), "is not valid at the verification time");
  cose.timestamp = timestamp_token(cose.signature, pki().tsa.certificate.get(), pki().tsa.key.get(),
                                   seconds_of("2025-06-01T00:00:00Z"));
  const NotationVerified verified = expect_verified(verify(cose, with_tsa(trust())));
  EXPECT_TRUE(verified.timestamped);
}

TEST(NotationCoseTest, MalformedEnvelopesGiveOneLine) {
  const auto refuse = [](const std::string& envelope, const std::string& words) {
    expect_refused(verify_notation_signature(cose_media_type, envelope, manifest, trust(), now), words);
  };
  const Cose good = cose_by(pki().ec_leaf, "ES256", cose_header(-7));
  const std::string envelope = envelope_of(good);
  refuse(envelope.substr(0, envelope.size() - 1),
         "integrity: envelope is not CBOR: a string longer than what follows it");
  refuse(envelope + "x", "envelope is not CBOR: bytes after the data item");
  refuse(envelope.substr(1), "envelope is not a COSE_Sign1_Tagged message (tag 18)");
  refuse(cbor::tag(18, cbor::array({cbor::bytes(good.protected_header), cbor::map({}), std::string(1, '\xf6'),
                                    cbor::bytes(good.signature)})),
         "COSE_Sign1's payload is detached or not a byte string");
  refuse(cbor::tag(18, cbor::array({cbor::bytes(good.protected_header), cbor::map({}), cbor::bytes(good.payload),
                                    cbor::bytes(good.signature)})),
         "unprotected header has no x5chain (label 33)");
  refuse(cbor::tag(18, cbor::array({cbor::bytes("\x01"), cbor::map({}), cbor::bytes(good.payload),
                                    cbor::bytes(good.signature)})),
         "protected header is not a CBOR map");
}

TEST(TrustedIdentityTest, ParsesRdnsWithEscapes) {
  auto identity = parse_trusted_identity(R"(x509.subject: C=US, S=WA, O=acme\, inc., OU=\ tools\\, CN=a\;b)");
  ASSERT_TRUE(std::holds_alternative<TrustedIdentity>(identity)) << std::get<std::string>(identity);
  const auto& attributes = std::get<TrustedIdentity>(identity).attributes;
  ASSERT_EQ(attributes.size(), 5u);
  EXPECT_EQ(attributes[1], (std::pair<std::string, std::string>{"ST", "WA"}));
  EXPECT_EQ(attributes[2].second, "acme, inc.");
  EXPECT_EQ(attributes[3].second, " tools\\");
  EXPECT_EQ(attributes[4].second, "a;b");
  EXPECT_TRUE(std::get<TrustedIdentity>(parse_trusted_identity("*")).any);
}

TEST(TrustedIdentityTest, BadIdentitiesGiveOneLine) {
  const auto refused = [](const std::string& text) {
    auto identity = parse_trusted_identity(text);
    return std::holds_alternative<std::string>(identity) ? std::get<std::string>(identity) : "parsed";
  };
  EXPECT_EQ(refused("C=US, ST=WA, O=acme"), "a trusted identity is \"*\" or begins with x509.subject:");
  EXPECT_EQ(refused("x509.subject: C=US, O=acme"), "a trusted identity must name C, ST (or S) and O; it lacks ST");
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O=acme, O=other"), "RDN type O appears twice");
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O=acme, CN"), "RDN \"CN\" has no '='");
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O="), "RDN O has an empty value");
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O=a+CN=b"), "multi-valued RDNs ('+') are not supported");
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O=a;b"), "an unescaped ';' in a trusted identity (escape it as \\;)");
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O=a\\"), "a trusted identity ends with a lone backslash");
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O=a\\q"), "the escape \"\\q\" is not one a distinguished name allows");
  // What is quoted from the text stays on one line.
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O=a\\\n"), "the escape \"\\?\" is not one a distinguished name allows");
  EXPECT_EQ(refused("x509.subject: C=US, ST=WA, O r=a"), "RDN type \"O r\" is not an attribute name");
}

TEST(TrustedIdentityTest, AListMayNotOverlapOrMixTheWildcard) {
  const std::string acme = "x509.subject: C=US, ST=WA, O=acme";
  EXPECT_EQ(trusted_identities_refusal({acme, "x509.subject: C=US, ST=WA, O=other"}), std::nullopt);
  EXPECT_EQ(trusted_identities_refusal({acme, "x509.subject: C=US, ST=WA, O=acme, OU=builds"}),
            "trusted identities \"x509.subject: C=US, ST=WA, O=acme\" and \"x509.subject: C=US, ST=WA, O=acme, "
            "OU=builds\" overlap: a certificate could match both");
  // Neither is a subset of the other, yet "OU=a, CN=b" matches both.
  EXPECT_NE(trusted_identities_refusal({acme + ", OU=a", acme + ", CN=b"}), std::nullopt);
  EXPECT_EQ(trusted_identities_refusal({"*", acme}), "the trusted identity \"*\" cannot stand with others");
  EXPECT_EQ(trusted_identities_refusal({}), "the trust policy names no trusted identity");
  NotationTrust with = trust();
  with.trusted_identities = {acme, acme + ", CN=release"};
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256"), with), "authenticity: trusted identities");
}

TEST(TrustedIdentityTest, ABadIdentityInThePolicyRefusesWithItsReason) {
  NotationTrust with = trust();
  with.trusted_identities = {"x509.subject: O=acme"};
  expect_refused(verify(signed_by(pki().ec_leaf, "ES256"), with),
                 "authenticity: trusted identity \"x509.subject: O=acme\": a trusted identity must name C");
}

// Real envelopes (tests/fixtures/notation/README.md), as notation-go's
// TestAuthenticTimestamp verifies them: strict, any identity, GlobalSign's TSA root.
const registry::Digest alpine_manifest =
    *registry::Digest::parse("sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda");

Certificate fixture_certificate(const std::string& name) {
  auto certificate = Certificate::from_der(testing_support::fixture_text("notation", name));
  EXPECT_TRUE(std::holds_alternative<Certificate>(certificate)) << std::get<std::string>(certificate);
  return std::get<Certificate>(std::move(certificate));
}

NotationTrust notation_go_trust() {
  NotationTrust out;
  out.ca_roots = {fixture_certificate("TestTimestamp.der")};
  out.tsa_roots = {fixture_certificate("globalsignRoot.der")};
  out.trusted_identities = {"*"};
  return out;
}

// What the alpine leaf's envelopes say once verified, countersigned at `stamped`.
void expect_alpine(const NotationVerified& verified, const std::string& stamped) {
  EXPECT_EQ(verified.signer, "C=US, ST=WA, L=Seattle, O=Notary, CN=alpine");
  EXPECT_TRUE(verified.timestamped);
  EXPECT_EQ(format_rfc3339(verified.signing_time), stamped);
  EXPECT_EQ(verified.target.media_type, "application/vnd.docker.distribution.manifest.v2+json");
  EXPECT_EQ(verified.target.size, 528);
  EXPECT_TRUE(verified.logged.empty());
}

TEST(NotationFixtureTest, NotationsTimestampedEnvelopeVerifies) {
  const std::string envelope = testing_support::fixture_text("notation", "jwsWithTimestamp.sig");
  expect_alpine(
      expect_verified(verify_notation_signature(jws_media_type, envelope, alpine_manifest, notation_go_trust(), now)),
      "2024-06-18T06:29:37Z");
  // Named for another manifest, or trusted through another root, it is refused.
  expect_refused(verify_notation_signature(jws_media_type, envelope, manifest, notation_go_trust(), now),
                 "integrity: signed for sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda, not");
  NotationTrust other = notation_go_trust();
  other.ca_roots = {certificate_of(pki().root)};
  expect_refused(verify_notation_signature(jws_media_type, envelope, alpine_manifest, other, now),
                 "authenticity: certificate chain does not lead to the trust store");
}

// The ten-minute leaf both expired envelopes were signed with, from the JWS one's x5c.
Certificate expired_leaf(const std::string& jws_envelope) {
  std::string leaf;
  EXPECT_TRUE(
      registry::base64_decode(nlohmann::json::parse(jws_envelope)["header"]["x5c"][0].get<std::string>(), leaf));
  return std::get<Certificate>(Certificate::from_der(leaf));
}

TEST(NotationFixtureTest, NotationsEnvelopeByAnExpiredCertificateVerifiesByItsTimestamp) {
  const std::string envelope = testing_support::fixture_text("notation", "jwsExpiredWithTimestamp.sig");
  NotationTrust trust = notation_go_trust();
  trust.ca_roots = {expired_leaf(envelope)};
  const NotationVerified verified =
      expect_verified(verify_notation_signature(jws_media_type, envelope, alpine_manifest, trust, now));
  EXPECT_EQ(format_rfc3339(verified.signing_time), "2024-06-18T07:21:42Z");
  trust.tsa_roots.clear();
  expect_refused(verify_notation_signature(jws_media_type, envelope, alpine_manifest, trust, now),
                 "(valid from 2024-06-18T07:20:31Z to 2024-06-18T07:30:31Z) is not valid at the verification time");
}

TEST(NotationFixtureTest, NotationsCoseEnvelopesVerify) {
  const std::string envelope = testing_support::fixture_text("notation", "coseWithTimestamp.sig");
  expect_alpine(
      expect_verified(verify_notation_signature(cose_media_type, envelope, alpine_manifest, notation_go_trust(), now)),
      "2024-06-18T06:27:16Z");

  // Signed by the same ten-minute leaf as jwsExpiredWithTimestamp.sig.
  NotationTrust trust = notation_go_trust();
  trust.ca_roots = {expired_leaf(testing_support::fixture_text("notation", "jwsExpiredWithTimestamp.sig"))};
  const std::string expired = testing_support::fixture_text("notation", "coseExpiredWithTimestamp.sig");
  const NotationVerified saved =
      expect_verified(verify_notation_signature(cose_media_type, expired, alpine_manifest, trust, now));
  EXPECT_EQ(format_rfc3339(saved.signing_time), "2024-06-18T07:21:12Z");
}

// ---------------------------------------------------------------------------------
// When a verified result lapses by itself (NotationVerified::valid_until).

TEST(NotationValidUntilTest, AChainCheckedAtNowLapsesAtItsFirstNotAfter) {
  const NotationVerified verified = expect_verified(verify(signed_by(pki().ec_leaf, "ES256")));
  ASSERT_TRUE(verified.valid_until.has_value());
  EXPECT_EQ(format_rfc3339(*verified.valid_until), "2027-01-01T00:00:00Z");  // the leaf's, before its CAs'
}

TEST(NotationValidUntilTest, TheExpiryComesFirstWhenEarlier) {
  const std::string header = header_for("ES256", R"("io.cncf.notary.expiry":"2026-05-15T00:00:00Z",)",
                                        R"(["io.cncf.notary.signingScheme","io.cncf.notary.expiry"])");
  const NotationVerified verified =
      expect_verified(verify(signed_by(pki().ec_leaf, "ES256", header), trust(), at("2026-05-14T00:00:00Z")));
  ASSERT_TRUE(verified.valid_until.has_value());
  EXPECT_EQ(format_rfc3339(*verified.valid_until), "2026-05-15T00:00:00Z");
}

TEST(NotationValidUntilTest, ATimestampedSignatureAndALenientLevelDoNotLapse) {
  Jws jws = signed_by(pki().old_leaf, "ES256");
  jws.timestamp = timestamp_token(jws.signature, pki().tsa.certificate.get(), pki().tsa.key.get(),
                                  seconds_of("2025-06-01T00:00:00Z"));
  EXPECT_FALSE(expect_verified(verify(jws, with_tsa(trust()))).valid_until.has_value());
  // Permissive only logs expiry and the timestamp: time alone never refuses it.
  EXPECT_FALSE(
      expect_verified(verify(signed_by(pki().ec_leaf, "ES256"), trust(VerificationLevel::permissive))).valid_until);
}

// ---------------------------------------------------------------------------------
// The policy's trust stores and a scope's Notation statements
// (policy/notation_policy.hpp, "trust_stores" and signatures.notation).

std::string pem_of(const Identity& identity) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  need(bio && PEM_write_bio_X509(bio.get(), identity.certificate.get()) == 1, "write PEM");
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(length));
}

ParseResult parse_with(const nlohmann::json& trust_stores, const nlohmann::json& signatures) {
  nlohmann::json document = {{"trust_stores", trust_stores},
                             {"scopes", {{{"name", "prod"}, {"repository", "prod/**"}, {"signatures", signatures}}}}};
  return parse_policy(document.dump());
}

nlohmann::json acme_stores() {
  return {{"acme", {{"type", "ca"}, {"pem", pem_of(pki().root)}}},
          {"mallory", {{"type", "ca"}, {"pem", pem_of(pki().stranger_root)}}},
          {"tsa", {{"type", "tsa"}, {"pem", pem_of(pki().tsa_root)}}}};
}

const Scope& prod(const Policy& policy) { return scope_for(policy, "docker.io", "prod/app"); }

std::string errors_of(const ParseResult& result) {
  std::string out;
  for (const auto& e : result.errors) out += e + "\n";
  return out;
}

TEST(NotationPolicyTest, AStatementNamesStoresIdentitiesAndALevel) {
  const auto result = parse_with(acme_stores(), {{"notation",
                                                  {{{"trust_stores", {"acme", "tsa"}},
                                                    {"trusted_identities", {"x509.subject: C=US, ST=WA, O=acme"}},
                                                    {"level", "permissive"},
                                                    {"verify_timestamp", "afterCertExpiry"}}}}});
  ASSERT_TRUE(result.policy) << errors_of(result);
  const auto& signatures = *prod(*result.policy).signatures;
  ASSERT_EQ(signatures.notation.size(), 1u);
  EXPECT_TRUE(signatures.keys.empty());
  const NotationTrust trust = notation_trust(*result.policy, signatures.notation[0]);
  ASSERT_EQ(trust.ca_roots.size(), 1u);
  EXPECT_EQ(trust.ca_roots[0].der(), certificate_of(pki().root).der());
  ASSERT_EQ(trust.tsa_roots.size(), 1u);
  EXPECT_TRUE(trust.signing_authority_roots.empty());
  EXPECT_EQ(trust.level, VerificationLevel::permissive);
  EXPECT_EQ(trust.verify_timestamp, VerifyTimestamp::after_cert_expiry);
  EXPECT_EQ(trust.trusted_identities, std::vector<std::string>{"x509.subject: C=US, ST=WA, O=acme"});
}

TEST(NotationPolicyTest, MistakesGiveOneLineEach) {
  const auto statement = [](nlohmann::json fields) {
    nlohmann::json base = {{"trust_stores", {"acme"}}, {"trusted_identities", {"*"}}};
    for (auto& [k, v] : fields.items()) base[k] = v;
    return nlohmann::json{{"notation", {base}}};
  };
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {statement({{"trust_stores", {"nobody"}}}), "no trust store named \"nobody\""},
      {statement({{"trust_stores", {"tsa"}}}), "at least one trust store of type ca or signingAuthority"},
      {statement({{"trust_stores", {"acme", "acme"}}}), "duplicate trust store \"acme\""},
      {statement({{"trusted_identities", nlohmann::json::array()}}), "trusted_identities"},
      {statement({{"trusted_identities", {"*", "x509.subject: C=US, ST=WA, O=acme"}}}), "trusted_identities"},
      {statement({{"trusted_identities", {"CN=release"}}}), "x509.subject:"},
      {statement({{"level", "skip"}}), "skip verifies nothing"},
      {statement({{"level", "lenient"}}), "must be strict, permissive or audit"},
      {statement({{"verify_timestamp", "sometimes"}}), "must be always or afterCertExpiry"},
      {statement({{"registryScopes", {"*"}}}), "registryScopes"},
      {{{"notation", {{{"trusted_identities", {"*"}}}}}}, "trust_stores: is required"},
      {{{"notation", nlohmann::json::array()}}, "or Notation statement"},
  };
  for (const auto& [signatures, words] : cases) {
    const auto result = parse_with(acme_stores(), signatures);
    EXPECT_FALSE(result.policy) << signatures.dump();
    EXPECT_NE(errors_of(result).find(words), std::string::npos) << signatures.dump() << "\n" << errors_of(result);
  }
  const std::vector<std::pair<nlohmann::json, std::string>> stores = {
      {{{"x", {{"pem", pem_of(pki().root)}}}}, "trust_stores.x.type: is required"},
      {{{"x", {{"type", "x509"}, {"pem", pem_of(pki().root)}}}}, "must be ca, signingAuthority or tsa"},
      {{{"x", {{"type", "ca"}}}}, "give exactly one of file"},
      {{{"x", {{"type", "ca"}, {"pem", "not a certificate"}}}}, "holds no PEM certificate"},
      {{{"bad name", {{"type", "ca"}, {"pem", pem_of(pki().root)}}}}, "1 to 64 letters"},
  };
  for (const auto& [trust_stores, words] : stores) {
    const auto result = parse_policy(nlohmann::json{{"trust_stores", trust_stores}}.dump());
    EXPECT_FALSE(result.policy) << trust_stores.dump();
    EXPECT_NE(errors_of(result).find(words), std::string::npos) << trust_stores.dump() << "\n" << errors_of(result);
  }
}

TEST(NotationPolicyTest, TheFirstStatementThatAcceptsDecides) {
  const auto result = parse_with(
      acme_stores(), {{"notation",
                       {{{"trust_stores", {"mallory"}}, {"trusted_identities", {"x509.subject: C=US, ST=WA, O=acme"}}},
                        {{"trust_stores", {"acme"}}, {"trusted_identities", {"x509.subject: C=US, ST=WA, O=acme"}}}}}});
  ASSERT_TRUE(result.policy) << errors_of(result);
  const auto& signatures = *prod(*result.policy).signatures;
  const std::string envelope = envelope_of(signed_by(pki().ec_leaf, "ES256"));
  const NotationCheck good = verify_notation_for(*result.policy, signatures, jws_media_type, envelope, manifest, now);
  ASSERT_EQ(good.check.result, SignatureCheck::Result::valid) << good.check.detail;
  EXPECT_EQ(good.check.key, "notation C=US, ST=WA, L=Seattle, O=acme, CN=release");
  EXPECT_NE(good.check.detail.find("Notation signature by \"C=US, ST=WA, L=Seattle, O=acme, CN=release\" "
                                   "(notary.x509, trust stores acme), signed (by its own claim) 2026-05-01T07:01:20Z"),
            std::string::npos)
      << good.check.detail;
  EXPECT_NE(good.check.detail.find("revocation not checked"), std::string::npos);
  ASSERT_TRUE(good.valid_until.has_value());

  // Signed by mallory's signer: each statement says why it refused.
  Jws by_stranger = signed_by(pki().stranger, "ES256");
  by_stranger.x5c = {der_of(pki().stranger.certificate.get()), der_of(pki().stranger_root.certificate.get())};
  const std::string stranger = envelope_of(by_stranger);
  const NotationCheck refused = verify_notation_for(*result.policy, signatures, jws_media_type, stranger, manifest, now);
  EXPECT_EQ(refused.check.result, SignatureCheck::Result::wrong_key);
  EXPECT_NE(refused.check.detail.find("statement 1 (mallory): Notation signature refused: authenticity: the signer "
                                      "\"C=US, ST=WA, O=mallory, CN=x\" is not a trusted identity"),
            std::string::npos)
      << refused.check.detail;
  EXPECT_NE(refused.check.detail.find("statement 2 (acme): Notation signature refused: authenticity"),
            std::string::npos)
      << refused.check.detail;

  // Another image's signature fails integrity under every statement.
  const registry::Digest other =
      *registry::Digest::parse("sha256:0000000000000000000000000000000000000000000000000000000000000001");
  EXPECT_EQ(verify_notation_for(*result.policy, signatures, jws_media_type, envelope, other, now).check.result,
            SignatureCheck::Result::malformed);
}

}  // namespace
}  // namespace pullgate::policy::notation
