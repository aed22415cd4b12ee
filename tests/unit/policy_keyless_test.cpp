// Keyless signatures in the policy (policy/keyless.hpp): trusted roots and identities
// as the document names them, identities held up to what a verified certificate says,
// and cosign's legacy keyless annotations read as the bundle they stand for, verified
// with real Sigstore vectors (tests/fixtures/sigstore, from sigstore-conformance).
#include "policy/keyless.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "policy/policy.hpp"
#include "policy/text.hpp"
#include "policy/trusted_root.hpp"
#include "registry/base64.hpp"
#include "registry/digest.hpp"
#include "tests/unit/sigstore_fixtures.hpp"

namespace pullgate::policy {
namespace {

using nlohmann::json;
using testing_support::sigstore_fixture;
using testing_support::unbase64;

using testing_support::beacon;
using testing_support::github_actions;

// A policy with Sigstore's production root inline and one scope whose signatures are
// `signatures` (JSON).
std::string document_with(const json& signatures, const json& roots = json()) {
  json doc;
  doc["trusted_roots"] =
      roots.is_null() ? json{{"sigstore", {{"root", json::parse(sigstore_fixture("production_trusted_root.json"))}}}}
                      : roots;
  doc["scopes"] = json::array({{{"name", "signed"}, {"repository", "signed/**"}, {"signatures", signatures}}});
  return doc.dump();
}

Policy parsed(const std::string& document) {
  auto result = parse_policy(document);
  if (!result.policy) {
    ADD_FAILURE() << (result.errors.empty() ? std::string("no policy") : result.errors.front());
    return Policy{};
  }
  return std::move(*result.policy);
}

std::string first_error(const std::string& document) {
  auto result = parse_policy(document);
  EXPECT_FALSE(result.policy.has_value());
  if (result.errors.empty()) return {};
  EXPECT_EQ(result.errors.front().find('\n'), std::string::npos);
  return result.errors.front();
}

json beacon_identity() { return {{"issuer", github_actions}, {"subject", beacon}}; }

const Scope& signed_scope(const Policy& policy) { return scope_for(policy, "docker.io", "signed/app"); }

TEST(KeylessPolicyTest, TrustedRootsAndIdentitiesAreRead) {
  json identity = beacon_identity();
  identity["source_repository_ref"] = "refs/heads/main";
  const Policy policy = parsed(document_with({{"identities", {identity}}}));
  ASSERT_EQ(policy.trusted_roots.size(), 1u);
  ASSERT_NE(policy.trusted_roots.front().root, nullptr);
  EXPECT_EQ(policy.trusted_roots.front().root->tlogs().size(), 2u);
  const Scope& scope = signed_scope(policy);
  ASSERT_TRUE(scope.signatures.has_value());
  EXPECT_TRUE(scope.signatures->keys.empty());
  ASSERT_EQ(scope.signatures->identities.size(), 1u);
  const KeylessIdentity& read = scope.signatures->identities.front();
  EXPECT_EQ(read.trusted_root, "sigstore");  // the only root, by default
  EXPECT_EQ(read.issuer.text, github_actions);
  EXPECT_EQ(read.issuer.regex, nullptr);
  EXPECT_EQ(read.subject.text, beacon);
  ASSERT_EQ(read.extensions.size(), 1u);
  EXPECT_EQ(read.extensions.front().first, "source_repository_ref");
  EXPECT_TRUE(policy.needs_signals);

  // A root given as a file is left for the loader (parsing does no I/O).
  const Policy from_file = parsed(document_with({{"identities", {beacon_identity()}}},
                                                {{"sigstore", {{"file", "trusted_root.json"}}}}));
  EXPECT_EQ(from_file.trusted_roots.front().file, "trusted_root.json");
  EXPECT_EQ(from_file.trusted_roots.front().root, nullptr);
}

TEST(KeylessPolicyTest, MistakesAreOneLineNamingTheField) {
  const json production = json::parse(sigstore_fixture("production_trusted_root.json"));
  json regexp_identity = {{"issuer", github_actions}, {"subject_regexp", "https://github.com/(acme"}};
  json both = {{"issuer", github_actions}, {"subject", beacon}, {"subject_regexp", ".*"}};
  json neither = {{"issuer", github_actions}};
  json unknown_field = beacon_identity();
  unknown_field["workflow"] = "release.yml";
  json unknown_root = beacon_identity();
  unknown_root["trusted_root"] = "staging";
  json not_text = beacon_identity();
  not_text["source_repository_uri"] = 7;
  json deep = {{"issuer", github_actions}, {"subject_regexp", std::string(17, '(') + "a" + std::string(17, ')')}};
  json long_expression = {{"issuer_regexp", std::string(1025, 'a')}, {"subject", beacon}};
  const std::pair<std::string, std::string> cases[] = {
      {document_with({{"identities", {deep}}}),
       "identities[0].subject_regexp: an expression of at most 1024 characters and 16 nested groups"},
      {document_with({{"identities", {long_expression}}}), "identities[0].issuer_regexp: an expression of at most"},
      {document_with({{"identities", {regexp_identity}}}),
       "scopes[0].signatures.identities[0].subject_regexp: not a regular expression"},
      {document_with({{"identities", {both}}}),
       "scopes[0].signatures.identities[0]: give exactly one of subject (the exact text) or subject_regexp"},
      {document_with({{"identities", {neither}}}), "give exactly one of subject"},
      {document_with({{"identities", {unknown_field}}}), "identities[0].workflow: unknown field"},
      {document_with({{"identities", {unknown_root}}}), "identities[0].trusted_root: no trusted root named \"staging\""},
      {document_with({{"identities", {not_text}}}), "identities[0].source_repository_uri: must be a string"},
      {document_with({{"identities", json::array()}}), "must list at least one key name"},
      {document_with({{"identities", {beacon_identity()}}}, json::object()),
       "a keyless identity needs a trusted root: none in the top-level \"trusted_roots\""},
      {document_with({{"identities", {beacon_identity()}}},
                     {{"a", {{"root", production}}}, {"b", {{"root", production}}}}),
       "name one of the top-level \"trusted_roots\" (there are several)"},
      {document_with({{"identities", {beacon_identity()}}}, {{"sigstore", {{"root", {{"mediaType", "x"}}}}}}),
       "trusted_roots.sigstore.root: "},
      {document_with({{"identities", {beacon_identity()}}}, {{"sigstore", {{"root", production}, {"file", "f"}}}}),
       "trusted_roots.sigstore: give exactly one of file"},
      {document_with({{"identities", {beacon_identity()}}}, {{"bad name!", {{"file", "f"}}}}),
       "trusted_roots.bad name!: a trusted root's name"},
  };
  for (const auto& [document, words] : cases) {
    const std::string error = first_error(document);
    EXPECT_NE(error.find(words), std::string::npos) << error << "\nwanted: " << words;
  }
}

sigstore::FulcioIdentity signer(std::string subject, std::string issuer = github_actions) {
  sigstore::FulcioIdentity identity;
  identity.subject = std::move(subject);
  identity.issuer = std::move(issuer);
  return identity;
}

TEST(KeylessIdentityTest, IdentitiesMatchExactlyOrByWholeExpression) {
  json release = {{"issuer", github_actions},
                  {"subject_regexp", "https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/v.*"},
                  {"source_repository_uri", "https://github.com/acme/app"}};
  const Policy policy = parsed(document_with({{"identities", {beacon_identity(), release}}}));
  const auto& identities = signed_scope(policy).signatures->identities;
  std::string why;
  EXPECT_TRUE(identity_allowed(identities, "sigstore", signer(beacon), why)) << why;
  EXPECT_FALSE(identity_allowed(identities, "another-root", signer(beacon), why));
  EXPECT_NE(why.find("no identity of the scope trusts root another-root"), std::string::npos) << why;

  auto tagged = signer("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0");
  tagged.source_repository_uri = "https://github.com/acme/app";
  EXPECT_TRUE(identity_allowed(identities, "sigstore", tagged, why)) << why;
  EXPECT_EQ(extension_value(tagged, "source_repository_uri"), "https://github.com/acme/app");

  // The expression must match the whole subject, not a part of it.
  auto longer = tagged;
  longer.subject = "https://evil.example/https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1";
  EXPECT_FALSE(identity_allowed(identities, "sigstore", longer, why));
  EXPECT_NE(why.find("subject \"https://evil.example/"), std::string::npos) << why;

  // An extension pinned: the closest identity says which one differs.
  auto forked = tagged;
  forked.source_repository_uri = "https://github.com/mallory/app";
  EXPECT_FALSE(identity_allowed(identities, "sigstore", forked, why));
  EXPECT_EQ(why, "source_repository_uri is \"https://github.com/mallory/app\", not \"https://github.com/acme/app\"");
  forked.source_repository_uri.clear();
  EXPECT_FALSE(identity_allowed(identities, "sigstore", forked, why));
  EXPECT_EQ(why, "source_repository_uri is absent, not \"https://github.com/acme/app\"");

  EXPECT_FALSE(identity_allowed(identities, "sigstore", signer(beacon, "https://accounts.google.com"), why));
  EXPECT_NE(why.find("issuer \"https://accounts.google.com\" is not \"" + github_actions + "\""), std::string::npos)
      << why;
  EXPECT_EQ(describe_signer(signer(beacon)), "\"" + beacon + "\" (issuer \"" + github_actions + "\")");
}

// happy-path-v0.1, a real keyless signature of a.txt, as cosign's legacy annotations
// carry one: the leaf PEM, the signature, and the Rekor entry's SET and body.
struct LegacyVector {
  CosignKeylessAnnotations annotations;
  json rekor;  // the bundle annotation, as JSON
};

std::string pem_of(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(length));
  BIO_free(bio);
  X509_free(x);
  return pem;
}

LegacyVector legacy_vector() {
  const json bundle = json::parse(sigstore_fixture("happy-path-v0.1/bundle.sigstore.json"));
  const json& entry = bundle["verificationMaterial"]["tlogEntries"][0];
  LegacyVector v;
  v.rekor = {{"SignedEntryTimestamp", entry["inclusionPromise"]["signedEntryTimestamp"]},
             {"Payload",
              {{"body", entry["canonicalizedBody"]},
               {"integratedTime", std::stoll(entry["integratedTime"].get<std::string>())},
               {"logIndex", std::stoll(entry["logIndex"].get<std::string>())},
               {"logID", hex(unbase64(entry["logId"]["keyId"].get<std::string>()))}}}};
  v.annotations.signature_base64 = bundle["messageSignature"]["signature"].get<std::string>();
  v.annotations.certificate_pem =
      pem_of(unbase64(bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"]));
  v.annotations.bundle_json = v.rekor.dump();
  return v;
}

SignatureCheck check_legacy(const Policy& policy, const CosignKeylessAnnotations& annotations,
                            const std::string& payload) {
  auto bundle = bundle_of_cosign_annotations(annotations, payload);
  if (auto* error = std::get_if<std::string>(&bundle)) {
    ADD_FAILURE() << *error;
    return {};
  }
  const auto& scope = signed_scope(policy);
  auto check = verify_keyless_signature(policy, *scope.signatures, std::get<sigstore::Bundle>(bundle),
                                        "sha256:" + std::string(64, '0'), payload);
  EXPECT_EQ(check.detail.find('\n'), std::string::npos) << check.detail;
  return check;
}

TEST(CosignLegacyKeylessTest, ARealSignatureVerifiesAsTheBundleItStandsFor) {
  const Policy policy = parsed(document_with({{"identities", {beacon_identity()}}}));
  const LegacyVector v = legacy_vector();
  const std::string payload = sigstore_fixture("a.txt");
  const SignatureCheck check = check_legacy(policy, v.annotations, payload);
  EXPECT_EQ(check.result, SignatureCheck::Result::valid) << check.detail;
  EXPECT_EQ(check.key, "keyless \"" + beacon + "\" (issuer \"" + github_actions + "\")");
  EXPECT_NE(check.detail.find("at 2023-07-12T15:56:36Z, logged as entry 27246492 in https://rekor.sigstore.dev"),
            std::string::npos)
      << check.detail;
  EXPECT_NE(check.detail.find("(trusted root sigstore)"), std::string::npos) << check.detail;
}

TEST(CosignLegacyKeylessTest, EachCheckFailsOnItsOwn) {
  const Policy policy = parsed(document_with({{"identities", {beacon_identity()}}}));
  const std::string payload = sigstore_fixture("a.txt");

  // Another identity: verified, and refused naming who signed.
  json other = beacon_identity();
  other["subject"] = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
  const Policy strict = parsed(document_with({{"identities", {other}}}));
  auto check = check_legacy(strict, legacy_vector().annotations, payload);
  EXPECT_EQ(check.result, SignatureCheck::Result::wrong_key);
  EXPECT_NE(check.detail.find("signed keyless by \"" + beacon + "\""), std::string::npos) << check.detail;
  EXPECT_NE(check.detail.find("an identity the scope does not trust: subject"), std::string::npos) << check.detail;

  // Another payload: the log entry names another artifact.
  check = check_legacy(policy, legacy_vector().annotations, payload + "x");
  EXPECT_EQ(check.result, SignatureCheck::Result::wrong_key);
  EXPECT_NE(check.detail.find("keyless signature not verified: log entry 27246492: log entry's artifact digest"),
            std::string::npos)
      << check.detail;

  // The SET over another integrated time.
  LegacyVector later = legacy_vector();
  later.rekor["Payload"]["integratedTime"] = later.rekor["Payload"]["integratedTime"].get<std::int64_t>() + 1;
  later.annotations.bundle_json = later.rekor.dump();
  check = check_legacy(policy, later.annotations, payload);
  EXPECT_NE(check.detail.find("signed entry timestamp"), std::string::npos) << check.detail;

  // A log the root does not know.
  LegacyVector unknown_log = legacy_vector();
  unknown_log.rekor["Payload"]["logID"] = std::string(64, 'a');
  unknown_log.annotations.bundle_json = unknown_log.rekor.dump();
  check = check_legacy(policy, unknown_log.annotations, payload);
  EXPECT_NE(check.detail.find("no tlogs entry of the trusted root has log id"), std::string::npos) << check.detail;

  // The signature of another message.
  LegacyVector resigned = legacy_vector();
  std::string signature = unbase64(resigned.annotations.signature_base64);
  signature[signature.size() - 3] ^= 1;
  resigned.annotations.signature_base64 = registry::base64_encode(signature);
  check = check_legacy(policy, resigned.annotations, payload);
  EXPECT_EQ(check.result, SignatureCheck::Result::wrong_key);
  EXPECT_NE(check.detail.find("log entry's signature"), std::string::npos) << check.detail;

  // A scope that trusts only keys says so.
  json keys_only = json::parse(document_with({{"identities", {beacon_identity()}}}));
  const Policy no_identities = parsed(keys_only.dump());
  SignaturePolicy only_keys;
  only_keys.keys = {"release"};
  auto bundle = bundle_of_cosign_annotations(legacy_vector().annotations, payload);
  check = verify_keyless_signature(no_identities, only_keys, std::get<sigstore::Bundle>(bundle), "sha256:00", payload);
  EXPECT_EQ(check.detail, "a keyless signature, and the scope trusts no keyless identity (only keys)");
}

TEST(CosignLegacyKeylessTest, MalformedAnnotationsAreOneLineNamingTheAnnotation) {
  const std::string payload = sigstore_fixture("a.txt");
  auto error_of = [&](const CosignKeylessAnnotations& annotations) {
    auto bundle = bundle_of_cosign_annotations(annotations, payload);
    auto* error = std::get_if<std::string>(&bundle);
    if (!error) {
      ADD_FAILURE() << "read as a bundle";
      return std::string();
    }
    EXPECT_EQ(error->find('\n'), std::string::npos) << *error;
    return *error;
  };
  auto with = [&](auto change) {
    LegacyVector v = legacy_vector();
    change(v);
    if (v.annotations.bundle_json == legacy_vector().annotations.bundle_json) v.annotations.bundle_json = v.rekor.dump();
    return error_of(v.annotations);
  };
  const std::pair<std::string, std::string> cases[] = {
      {with([](LegacyVector& v) { v.annotations.certificate_pem = "not a certificate"; }),
       "the dev.sigstore.cosign/certificate annotation holds no PEM certificate"},
      {with([](LegacyVector& v) { v.annotations.certificate_pem += v.annotations.certificate_pem; }),
       "holds more than one certificate"},
      {with([](LegacyVector& v) { v.annotations.chain_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"; }),
       "the dev.sigstore.cosign/chain annotation holds no PEM certificate"},
      {with([](LegacyVector& v) {
         for (int i = 0; i < 11; ++i) v.annotations.chain_pem += v.annotations.certificate_pem;
       }),
       "the dev.sigstore.cosign/chain annotation holds more than 10 certificates"},
      {with([](LegacyVector& v) { v.annotations.bundle_json.clear(); }),
       "without its dev.sigstore.cosign/bundle annotation (no log entry)"},
      {with([](LegacyVector& v) { v.annotations.bundle_json = "[1]"; }), "bundle annotation is not a JSON object"},
      {with([](LegacyVector& v) { v.rekor.erase("SignedEntryTimestamp"); }), "has no SignedEntryTimestamp or Payload"},
      {with([](LegacyVector& v) { v.rekor["SignedEntryTimestamp"] = "!!"; }), "SignedEntryTimestamp is not base64"},
      {with([](LegacyVector& v) { v.rekor["Payload"]["body"] = 5; }), "Payload.body is missing or not base64"},
      {with([](LegacyVector& v) { v.rekor["Payload"]["body"] = registry::base64_encode("{}"); }),
       "Payload.body is not a Rekor entry"},
      {with([](LegacyVector& v) { v.rekor["Payload"]["logIndex"] = -1; }), "must be non-negative integers"},
      {with([](LegacyVector& v) { v.rekor["Payload"]["integratedTime"] = "1689177396"; }),
       "must be non-negative integers"},
      {with([](LegacyVector& v) { v.rekor["Payload"]["logID"] = "c0d23d"; }), "Payload.logID is not 64 hexadecimal"},
      {with([](LegacyVector& v) { v.rekor["Payload"]["logID"] = std::string(64, 'g'); }), "Payload.logID is not 64"},
      {with([](LegacyVector& v) { v.annotations.signature_base64 = "***"; }),
       "the signature annotation is empty or not base64"},
  };
  for (const auto& [error, words] : cases) EXPECT_NE(error.find(words), std::string::npos) << error << "\nwanted: " << words;
}

TEST(KeylessBundleTest, ADsseStatementMustBeAnImageSignatureOfTheDigest) {
  const Policy policy = parsed(document_with({{"identities", {beacon_identity()}}}));
  auto bundle = sigstore::Bundle::parse(sigstore_fixture("happy-path-intoto-in-dsse-v3/bundle.sigstore.json"));
  ASSERT_TRUE(std::holds_alternative<sigstore::Bundle>(bundle));
  const auto& signatures = *signed_scope(policy).signatures;
  const std::string subject = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf";
  // Verified for its subject, but a provenance statement is not an image signature.
  auto check = verify_keyless_signature(policy, signatures, std::get<sigstore::Bundle>(bundle), subject, std::nullopt);
  EXPECT_EQ(check.result, SignatureCheck::Result::wrong_type) << check.detail;
  EXPECT_EQ(check.predicate_type, "https://slsa.dev/provenance/v1");
  EXPECT_NE(check.detail.find("not an image signature"), std::string::npos) << check.detail;
  // For another image, the statement does not name it.
  check = verify_keyless_signature(policy, signatures, std::get<sigstore::Bundle>(bundle),
                                   "sha256:" + std::string(64, 'b'), std::nullopt);
  EXPECT_EQ(check.result, SignatureCheck::Result::wrong_key);
  EXPECT_NE(check.detail.find("names no subject of sha256:bbbb"), std::string::npos) << check.detail;
}

}  // namespace
}  // namespace pullgate::policy
