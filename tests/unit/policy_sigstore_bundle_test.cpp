// Sigstore bundles verified keyless or with a key (policy/sigstore_bundle.hpp): every
// case of the sigstore-conformance corpus in tests/fixtures/sigstore with the identity,
// issuer, key, artifact and trusted root its files give, and real bundles altered here
// one field at a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "policy/sigstore_bundle.hpp"
#include "policy/text.hpp"
#include "registry/base64.hpp"
#include "registry/keys.hpp"
#include "tests/unit/sigstore_fixtures.hpp"

namespace pullgate::policy::sigstore {
namespace {

using json = nlohmann::json;
using testing_support::has_sigstore_fixture;
using testing_support::sigstore_fixture;

// The conformance suite's identity and issuer where a case names none (its README).
using testing_support::beacon;
using testing_support::github_actions;

// Files a case shares byte for byte with another are kept once (the fixtures' README).
const std::map<std::string, std::string> shared_files = {
    {"intoto-expired-certificate_fail/trusted_root.json", "intoto-with-custom-trust-root/trusted_root.json"},
    {"intoto-log-entry-mismatch_fail/artifact", "intoto-expired-certificate_fail/artifact"},
    {"intoto-log-entry-mismatch_fail/trusted_root.json", "intoto-with-custom-trust-root/trusted_root.json"},
    {"intoto-missing-inclusion-proof_fail/artifact", "intoto-expired-certificate_fail/artifact"},
    {"intoto-missing-inclusion-proof_fail/trusted_root.json", "intoto-with-custom-trust-root/trusted_root.json"},
    {"intoto-set-outside-signing-cert-validity_fail/artifact", "intoto-expired-certificate_fail/artifact"},
    {"intoto-set-outside-signing-cert-validity_fail/trusted_root.json",
     "intoto-with-custom-trust-root/trusted_root.json"},
    {"intoto-tsa-timestamp-outside-cert-validity_fail/artifact", "intoto-expired-certificate_fail/artifact"},
    {"intoto-tsa-timestamp-outside-cert-validity_fail/trusted_root.json",
     "intoto-with-custom-trust-root/trusted_root.json"},
    {"intoto-with-custom-trust-root/artifact", "intoto-expired-certificate_fail/artifact"},
    {"managed-key-happy-path/key.pub", "managed-key-and-trusted-root/key.pub"},
    {"managed-key-no-key_fail/bundle.sigstore.json", "managed-key-happy-path/bundle.sigstore.json"},
    {"managed-key-wrong-key_fail/bundle.sigstore.json", "managed-key-happy-path/bundle.sigstore.json"},
    {"rekor2-checkpoint-cosigned/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-missing-log-signature_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-missing-origin_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-missing-root-hash_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-missing-size_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-multiple-cosigs/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-no-matching-signature_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-origin-not-first/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-two-sigs-cosigned/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-checkpoint-two-sigs-from-origin/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-dsse-invalid-sig_fail/trusted_root.json", "rekor2-dsse-happy-path/trusted_root.json"},
    {"rekor2-dsse-mismatch-envelope_fail/trusted_root.json", "rekor2-dsse-happy-path/trusted_root.json"},
    {"rekor2-dsse-mismatch-sig_fail/trusted_root.json", "rekor2-dsse-happy-path/trusted_root.json"},
    {"rekor2-no-inclusion-proof_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-no-timestamp_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-timestamp-outside-trust-root-tsa-validity_fail/bundle.sigstore.json",
     "rekor2-happy-path/bundle.sigstore.json"},
    {"rekor2-timestamp-payload-mismatch_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail/trusted_root.json",
     "rekor2-happy-path/trusted_root.json"},
    {"rekor2-timestamp-with-embedded-cert/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-timestamp-with-expired-cert-chain/trusted_root.json",
     "rekor2-timestamp-outside-tsa-cert-validity_fail/trusted_root.json"},
    {"rekor2-timestamp-with-incorrect-time_fail/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"rekor2-timestamp-without-embedded-cert/trusted_root.json", "rekor2-happy-path/trusted_root.json"},
    {"trust-root-tlog-missing-validity-start_fail/bundle.sigstore.json", "rekor2-happy-path/bundle.sigstore.json"},
    {"trust-root-tlog-validity-end-inclusive/bundle.sigstore.json", "happy-path-v0.1/bundle.sigstore.json"},
    {"trust-root-tsa-validity-end-inclusive/bundle.sigstore.json", "rekor2-happy-path/bundle.sigstore.json"},
    {"wrong-material_fail/bundle.sigstore.json", "happy-path-v0.1/bundle.sigstore.json"},
};

// A case's file: its own, the one it shares, or none.
std::optional<std::string> case_file(const std::string& name, const std::string& file) {
  const std::string own = name + "/" + file;
  if (has_sigstore_fixture(own)) return sigstore_fixture(own);
  const auto shared = shared_files.find(own);
  if (shared != shared_files.end()) return sigstore_fixture(shared->second);
  return std::nullopt;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

// How a case verifies, with what the conformance harness would pass (memo section 5.1):
// the parse error, the trusted root's error, the key's error, or the verdict of
// verify_with_key (a case with a key.pub, as the harness passes --key) or of
// verify_keyless.
struct Outcome {
  bool verified = false;
  std::string reason;
};

Outcome run_case(const std::string& name) {
  const std::optional<std::string> bundle_text = case_file(name, "bundle.sigstore.json");
  if (!bundle_text) return {false, "no bundle"};
  const std::string root_text =
      case_file(name, "trusted_root.json").value_or(sigstore_fixture("production_trusted_root.json"));
  auto root = TrustedRoot::parse(root_text);
  if (auto* error = std::get_if<std::string>(&root)) return {false, "trusted root: " + *error};
  auto bundle = Bundle::parse(*bundle_text);
  if (auto* error = std::get_if<std::string>(&bundle)) return {false, *error};
  const Artifact artifact = Artifact::of_bytes(case_file(name, "artifact").value_or(sigstore_fixture("a.txt")));
  if (const auto key_text = case_file(name, "key.pub")) {
    auto key = registry::PublicKey::from_pem("key.pub", *key_text);
    if (auto* error = std::get_if<std::string>(&key)) return {false, *error};
    const BundleVerdict verdict = verify_with_key(std::get<Bundle>(bundle), artifact, std::get<TrustedRoot>(root),
                                                  std::get<registry::PublicKey>(key));
    EXPECT_EQ(verdict.reason.find('\n'), std::string::npos) << verdict.reason;
    return {verdict.verified, verdict.reason};
  }
  const ExpectedIdentity expected{IdentityMatch::exact(trimmed(case_file(name, "issuer").value_or(github_actions))),
                                  IdentityMatch::exact(trimmed(case_file(name, "identity").value_or(beacon)))};
  const KeylessVerdict verdict =
      verify_keyless(std::get<Bundle>(bundle), artifact, std::get<TrustedRoot>(root), expected);
  EXPECT_EQ(verdict.reason.find('\n'), std::string::npos) << verdict.reason;
  return {verdict.verified, verdict.reason};
}

// Every case of sigstore-conformance a73de49's test/assets/bundle-verify, and the words
// of the reason it fails with (empty: it passes).
struct Expected {
  const char* name;
  const char* words;
};

const Expected conformance[] = {
    {"bundle-empty-certificate-chain_fail", "x509CertificateChain.certificates is empty"},
    {"bundle-from-wrong-instance_fail", "no tlogs entry of the trusted root has log id"},
    {"bundle-invalid-base64-signature_fail", "messageSignature.signature is not base64"},
    {"bundle-malformed-json_fail", "bundle is not JSON"},
    {"bundle-negative-log-index_fail", "logIndex is negative"},
    {"bundle-unknown-version_fail", "is not a bundle version pullgate reads"},
    {"bundle-with-root-cert_fail", "which a bundle must not carry"},
    {"bundle-with-sct-with-extensions", ""},
    {"checkpoint-bad-keyhint_fail", "checkpoint has no signature of log rekor.sigstore.dev (key c0d23d6a)"},
    {"checkpoint-wrong-roothash_fail",
     "checkpoint: inclusion proof's root 75aba195e60ae18c... is not the checkpoint's"},
    {"dsse-invalid-sig_fail", "log entry holds no signature that is the envelope's"},
    {"dsse-mismatch-envelope_fail", "log entry's payload hash is sha256:d6b209ba"},
    {"dsse-mismatch-sig_fail", "log entry holds no signature that is the envelope's"},
    {"happy-path-intoto-in-dsse-v3", ""},
    {"happy-path-v0.1", ""},
    {"happy-path-v0.2", ""},
    {"happy-path-v0.3", ""},
    {"happy-path-v0.3-new-mediaType", ""},
    {"inclusion-proof-corrupted-hash_fail", "inclusion proof: inclusion proof of entry 75408392 leads to root"},
    {"incorrect-public-key_fail", "signed entry timestamp does not verify with the key of log rekor.sigstore.dev"},
    {"integrated-time-in-future_fail", "signing certificate: certificate had expired at the signing time"},
    {"intoto-expired-certificate_fail", "certificate was not yet valid at the signing time 2023-02-01T00:00:00Z"},
    {"intoto-log-entry-mismatch_fail", "log entry holds no signature that is the envelope's"},
    {"intoto-missing-inclusion-proof_fail", "has no inclusionProof, which v0.2 and later require"},
    {"intoto-set-outside-signing-cert-validity_fail",
     "certificate had expired at the signing time 2023-02-02T00:00:00Z"},
    {"intoto-tsa-timestamp-outside-cert-validity_fail",
     "signing certificate: certificate had expired at the signing time 2023-02-02T00:00:00Z"},
    {"intoto-with-custom-trust-root", ""},
    {"invalid-checkpoint-signature_fail",
     "checkpoint signature of log rekor.sigstore.dev (key c0d23d6a) does not verify"},
    {"invalid-ct-key_fail", "signing certificate's SCT: certificate's embedded SCT does not verify: no ctlogs entry"},
    {"invalid-inclusion-proof_fail",
     "bundle's verificationMaterial.tlogEntries[0].inclusionProof.checkpoint is missing"},
    {"managed-key-and-trusted-root", ""},
    {"managed-key-happy-path", ""},
    {"managed-key-no-key_fail", "bundle is signed with a public key, not a Fulcio certificate"},
    {"managed-key-wrong-key_fail", "key key.pub is not a readable PEM public key"},
    {"message-digest-mismatch_fail", "bundle's messageDigest is sha256:a1cfc712"},
    {"rekor2-checkpoint-cosigned", ""},
    {"rekor2-checkpoint-missing-log-signature_fail", "log entry 735: checkpoint: checkpoint has no signature lines"},
    {"rekor2-checkpoint-missing-origin_fail", "checkpoint has 2 lines above its signatures"},
    {"rekor2-checkpoint-missing-root-hash_fail", "checkpoint has 2 lines above its signatures"},
    {"rekor2-checkpoint-missing-size_fail", "checkpoint has 2 lines above its signatures"},
    {"rekor2-checkpoint-multiple-cosigs", ""},
    {"rekor2-checkpoint-no-matching-signature_fail",
     "checkpoint origin \"log2025-alpha1.rekor.github.dev\" is not the log's name"},
    {"rekor2-checkpoint-origin-not-first", ""},
    {"rekor2-checkpoint-two-sigs-cosigned", ""},
    {"rekor2-checkpoint-two-sigs-from-origin", ""},
    {"rekor2-dsse-happy-path", ""},
    {"rekor2-dsse-invalid-sig_fail", "log entry 4026478: log entry's signature is not the bundle's"},
    {"rekor2-dsse-mismatch-envelope_fail", "log entry's digest is sha256:57f2135c"},
    {"rekor2-dsse-mismatch-sig_fail", "log entry 4026478: log entry's signature is not the bundle's"},
    {"rekor2-happy-path", ""},
    {"rekor2-no-inclusion-proof_fail", "has no inclusionProof, which v0.2 and later require"},
    {"rekor2-no-timestamp_fail",
     "a Rekor v2 entry has no time of its own, and the bundle carries no RFC 3161 timestamp"},
    {"rekor2-timestamp-outside-trust-root-tsa-validity_fail",
     "2025-06-12T12:02:20Z is outside the authority's validFor"},
    {"rekor2-timestamp-outside-tsa-cert-validity_fail",
     "TSA certificate does not chain to the authority at the timestamp's time 2025-08-07T15:38:32Z: certificate has "
     "expired"},
    {"rekor2-timestamp-payload-mismatch_fail", "RFC 3161 timestamp 0: timestamp is not over the bundle's signature"},
    {"rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail", "is not the authority's TSA certificate"},
    {"rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail",
     "timestamp is not signed by the authority's TSA certificate CN=sigstore-tsa"},
    {"rekor2-timestamp-with-embedded-cert", ""},
    {"rekor2-timestamp-with-expired-cert-chain", ""},
    {"rekor2-timestamp-with-incorrect-time_fail", "certificate had expired at the signing time 2025-07-15T10:33:31Z"},
    {"rekor2-timestamp-without-embedded-cert", ""},
    {"set-invalid-signature_fail", "signed entry timestamp does not verify with the key of log rekor.sigstore.dev"},
    {"signature-mismatch_fail", "log entry's signature is not the bundle's"},
    {"trust-root-tlog-missing-validity-start_fail", "publicKey.validFor.start is missing"},
    {"trust-root-tlog-validity-end-inclusive", ""},
    {"trust-root-tsa-validity-end-inclusive", ""},
    {"wrong-hashedrekord-artifact_fail", "log entry's artifact digest is sha256:d40ec3ee"},
    {"wrong-hashedrekord-cert-and-sig_fail", "log entry's signature is not the bundle's"},
    {"wrong-hashedrekord-entry_fail", "log entry's artifact digest is sha256:9d92fa52"},
    {"wrong-material_fail", "the artifact's is sha256:1fa70528"},
};

bool should_fail(const std::string& name) { return name.ends_with("_fail"); }

TEST(SigstoreConformanceTest, EveryCaseIsListedOnce) {
  std::set<std::string> listed;
  for (const Expected& expected : conformance) EXPECT_TRUE(listed.insert(expected.name).second) << expected.name;
  EXPECT_EQ(listed.size(), 70u);  // the corpus at a73de49
  const auto fixtures = std::filesystem::path(PULLGATE_SOURCE_DIR) / "tests" / "fixtures" / "sigstore";
  for (const auto& entry : std::filesystem::directory_iterator(fixtures)) {
    if (entry.is_directory()) {
      EXPECT_TRUE(listed.contains(entry.path().filename().string())) << entry.path();
    }
  }
  for (const std::string& name : listed) {
    EXPECT_TRUE(case_file(name, "bundle.sigstore.json").has_value()) << name;
  }
}

TEST(SigstoreConformanceTest, CasesPassOrFailAsNamed) {
  for (const Expected& expected : conformance) {
    SCOPED_TRACE(expected.name);
    const Outcome outcome = run_case(expected.name);
    if (should_fail(expected.name)) {
      EXPECT_FALSE(outcome.verified);
      EXPECT_NE(outcome.reason.find(expected.words), std::string::npos) << outcome.reason;
    } else {
      EXPECT_STREQ(expected.words, "");
      EXPECT_TRUE(outcome.verified) << outcome.reason;
    }
  }
}

// --- real bundles, altered here -------------------------------------------------------

json bundle_json(const std::string& name) { return json::parse(sigstore_fixture(name + "/bundle.sigstore.json")); }

const TrustedRoot& production() {
  static const TrustedRoot root =
      std::get<TrustedRoot>(TrustedRoot::parse(sigstore_fixture("production_trusted_root.json")));
  return root;
}

std::string parse_error(const json& document) {
  auto bundle = Bundle::parse(document.dump());
  if (auto* error = std::get_if<std::string>(&bundle)) {
    EXPECT_EQ(error->find('\n'), std::string::npos) << *error;
    return *error;
  }
  ADD_FAILURE() << "parsed: " << document.dump().substr(0, 200);
  return {};
}

Bundle parsed(const json& document) {
  auto bundle = Bundle::parse(document.dump());
  if (auto* error = std::get_if<std::string>(&bundle)) {
    ADD_FAILURE() << *error;
    return Bundle{};
  }
  return std::get<Bundle>(std::move(bundle));
}

const ExpectedIdentity beacon_identity{IdentityMatch::exact(github_actions), IdentityMatch::exact(beacon)};

KeylessVerdict verify(const json& document, const Artifact& artifact,
                      const ExpectedIdentity& expected = beacon_identity) {
  const KeylessVerdict verdict = verify_keyless(parsed(document), artifact, production(), expected);
  EXPECT_EQ(verdict.reason.find('\n'), std::string::npos) << verdict.reason;
  EXPECT_EQ(verdict.verified, verdict.reason.empty()) << verdict.reason;
  return verdict;
}

Artifact a_txt() { return Artifact::of_bytes(sigstore_fixture("a.txt")); }

void expect_refused(const BundleVerdict& verdict, const std::string& words) {
  EXPECT_FALSE(verdict.verified);
  EXPECT_NE(verdict.reason.find(words), std::string::npos) << verdict.reason;
}

TEST(SigstoreBundleParseTest, ReadsEveryVersionIntoItsFields) {
  const Bundle v1 = parsed(bundle_json("happy-path-v0.1"));
  EXPECT_EQ(v1.minor_version, 1);
  ASSERT_EQ(v1.certificates.size(), 1u);
  ASSERT_EQ(v1.tlog_entries.size(), 1u);
  const TlogEntry& entry = v1.tlog_entries[0];
  EXPECT_EQ(entry.log_index, 27246492u);
  EXPECT_EQ(entry.integrated_time, 1689177396u);
  EXPECT_EQ(entry.kind, "hashedrekord");
  EXPECT_EQ(entry.version, "0.0.1");
  EXPECT_EQ(entry.log_id.size(), 32u);
  ASSERT_TRUE(entry.signed_entry_timestamp.has_value());
  ASSERT_TRUE(entry.inclusion_proof.has_value());
  EXPECT_EQ(entry.inclusion_proof->log_index, 23083061u);  // shard-local
  EXPECT_FALSE(entry.inclusion_proof->hashes.empty());
  EXPECT_TRUE(entry.inclusion_proof->checkpoint.starts_with("rekor.sigstore.dev - "));
  EXPECT_TRUE(entry.canonicalized_body.starts_with("{\"apiVersion\":\"0.0.1\",\"kind\":\"hashedrekord\""));
  ASSERT_TRUE(v1.message_signature.has_value());
  EXPECT_EQ(v1.message_signature->digest, a_txt().sha256);
  EXPECT_FALSE(v1.dsse_envelope.has_value());

  EXPECT_EQ(parsed(bundle_json("happy-path-v0.2")).minor_version, 2);
  for (const char* media_type :
       {"application/vnd.dev.sigstore.bundle+json;version=0.3", "application/vnd.dev.sigstore.bundle.v0.3+json"}) {
    json document = bundle_json("happy-path-v0.3");
    document["mediaType"] = media_type;
    EXPECT_EQ(parsed(document).minor_version, 3) << media_type;
  }
  const Bundle dsse = parsed(bundle_json("happy-path-intoto-in-dsse-v3"));
  ASSERT_TRUE(dsse.dsse_envelope.has_value());
  EXPECT_EQ(dsse.dsse_envelope->payload_type, "application/vnd.in-toto+json");
  EXPECT_TRUE(dsse.dsse_envelope->payload.starts_with("{"));
  const Bundle keyed = parsed(bundle_json("managed-key-happy-path"));
  EXPECT_TRUE(keyed.certificates.empty());
  EXPECT_TRUE(keyed.public_key_hint.has_value());
  EXPECT_EQ(keyed.rfc3161_timestamps.size(), 1u);
}

TEST(SigstoreBundleParseTest, EachMistakeIsOneLineNamingItsField) {
  struct Mistake {
    const char* bundle;
    std::function<void(json&)> change;
    const char* error;
  };
  const std::string entry = "/verificationMaterial/tlogEntries/0";
  auto erase = [](const std::string& pointer) {
    return [pointer](json& document) {
      const json::json_pointer at(pointer);
      document.at(at.parent_pointer()).erase(at.back());
    };
  };
  auto set = [](const std::string& pointer, json value) {
    return [pointer, value](json& document) { document[json::json_pointer(pointer)] = value; };
  };
  const std::vector<Mistake> mistakes = {
      {"happy-path-v0.3", set("/mediaType", "application/vnd.dev.sigstore.bundle.v0.4+json"),
       "bundle's mediaType \"application/vnd.dev.sigstore.bundle.v0.4+json\" is not a bundle version pullgate reads"},
      {"happy-path-v0.3", erase("/mediaType"), "bundle's mediaType is missing"},
      {"happy-path-v0.3", erase("/verificationMaterial/certificate"),
       "bundle's verificationMaterial must hold exactly one of x509CertificateChain, certificate and publicKey"},
      {"happy-path-v0.3", set("/verificationMaterial/publicKey", json{{"hint", "k"}}),
       "bundle's verificationMaterial must hold exactly one of x509CertificateChain, certificate and publicKey"},
      {"happy-path-v0.3", set("/verificationMaterial/certificate/rawBytes", "AAAA"),
       "bundle's verificationMaterial.certificate.rawBytes is not a certificate: "},
      {"happy-path-v0.2", set("/mediaType", "application/vnd.dev.sigstore.bundle.v0.3+json"),
       "bundle's verificationMaterial.x509CertificateChain is not allowed in v0.3 (a single certificate is)"},
      {"happy-path-v0.1", erase(entry + "/inclusionPromise"),
       "bundle's verificationMaterial.tlogEntries[0] has no inclusionPromise, which v0.1 requires"},
      {"happy-path-v0.3", erase(entry + "/inclusionProof"),
       "bundle's verificationMaterial.tlogEntries[0] has no inclusionProof, which v0.2 and later require"},
      {"happy-path-v0.3", erase(entry + "/inclusionProof/rootHash"),
       "bundle's verificationMaterial.tlogEntries[0].inclusionProof.rootHash is missing"},
      {"happy-path-v0.3", set(entry + "/inclusionProof/rootHash", "AAAA"),
       "bundle's verificationMaterial.tlogEntries[0].inclusionProof.rootHash is 3 bytes, not a SHA-256 hash's 32"},
      {"happy-path-v0.3", set(entry + "/inclusionProof/checkpoint/envelope", ""),
       "bundle's verificationMaterial.tlogEntries[0].inclusionProof.checkpoint.envelope is empty"},
      {"happy-path-v0.3", set(entry + "/logIndex", "12a"),
       "bundle's verificationMaterial.tlogEntries[0].logIndex is not a decimal count (\"12a\")"},
      {"happy-path-v0.3", set(entry + "/logIndex", -1),
       "bundle's verificationMaterial.tlogEntries[0].logIndex is negative"},
      {"happy-path-v0.3", set(entry + "/integratedTime", "-5"),
       "bundle's verificationMaterial.tlogEntries[0].integratedTime is negative (\"-5\")"},
      {"happy-path-v0.3", set(entry + "/kindVersion/kind", 7),
       "bundle's verificationMaterial.tlogEntries[0].kindVersion.kind is not a string"},
      {"happy-path-v0.3", set(entry + "/canonicalizedBody", "%%"),
       "bundle's verificationMaterial.tlogEntries[0].canonicalizedBody is not base64"},
      {"happy-path-v0.3", set("/messageSignature/messageDigest/algorithm", "SHA2_512"),
       "bundle's messageSignature.messageDigest.algorithm \"SHA2_512\" is not SHA2_256"},
      {"happy-path-v0.3", set("/dsseEnvelope", json::parse(R"({"payload":"","payloadType":"x","signatures":[]})")),
       "bundle's content must be exactly one of messageSignature and dsseEnvelope"},
      {"happy-path-v0.3", erase("/messageSignature"),
       "bundle's content must be exactly one of messageSignature and dsseEnvelope"},
      {"happy-path-intoto-in-dsse-v3",
       [](json& document) {
         json& signatures = document["dsseEnvelope"]["signatures"];
         signatures.push_back(signatures[0]);
       },
       "bundle's dsseEnvelope.signatures must hold exactly one signature"},
  };
  for (const Mistake& mistake : mistakes) {
    SCOPED_TRACE(mistake.error);
    json document = bundle_json(mistake.bundle);
    mistake.change(document);
    const std::string error = parse_error(document);
    EXPECT_TRUE(error.starts_with(mistake.error)) << error;
  }
  EXPECT_EQ(std::get<std::string>(Bundle::parse("[1]")), "bundle's document is not a JSON object");
  EXPECT_EQ(std::get<std::string>(Bundle::parse("{")), "bundle is not JSON");
}

TEST(SigstoreBundleParseTest, Base64MayBreakLinesAsGoReadsIt) {
  json document = bundle_json("happy-path-v0.3");
  std::string signature = document["messageSignature"]["signature"];
  signature.insert(20, "\n");
  document["messageSignature"]["signature"] = signature;
  EXPECT_TRUE(verify(document, a_txt())) << signature;
}

TEST(SigstoreKeylessTest, GivesTheIdentityTimeAndLog) {
  const KeylessVerdict verdict = verify(bundle_json("happy-path-v0.3"), a_txt());
  ASSERT_TRUE(verdict);
  EXPECT_EQ(verdict.identity.subject, beacon);
  EXPECT_EQ(verdict.identity.issuer, github_actions);
  EXPECT_EQ(verdict.signed_at, TimePoint(std::chrono::seconds(1710869186)));
  EXPECT_EQ(verdict.log_base_url, "https://rekor.sigstore.dev");
  EXPECT_EQ(verdict.log_index, 79571823u);
}

TEST(SigstoreKeylessTest, AnArtifactMayBeGivenByItsDigest) {
  auto artifact = Artifact::of_digest("sha256:" + hex(a_txt().sha256));
  ASSERT_TRUE(std::holds_alternative<Artifact>(artifact));
  EXPECT_TRUE(verify(bundle_json("happy-path-v0.1"), std::get<Artifact>(artifact)));
  EXPECT_TRUE(verify(bundle_json("happy-path-intoto-in-dsse-v3"), std::get<Artifact>(artifact)));
  auto other = Artifact::of_digest("sha256:" + std::string(64, 'a'));
  expect_refused(verify(bundle_json("happy-path-v0.1"), std::get<Artifact>(other)), "log entry's artifact digest is");
  expect_refused(verify(bundle_json("happy-path-intoto-in-dsse-v3"), std::get<Artifact>(other)),
                 "in-toto statement names no subject of sha256:aaaa");
  for (const char* wrong :
       {"sha256:abc", "sha512:aa", "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf",
        "sha256:g0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"}) {
    auto refused = Artifact::of_digest(wrong);
    ASSERT_TRUE(std::holds_alternative<std::string>(refused)) << wrong;
    EXPECT_NE(std::get<std::string>(refused).find("is not sha256:<64 hex digits>"), std::string::npos);
  }
}

TEST(SigstoreKeylessTest, IdentityIsMatchedExactlyOrByAWholeExpression) {
  const json document = bundle_json("happy-path-v0.3");
  auto with = [](IdentityMatch issuer, IdentityMatch subject) {
    return ExpectedIdentity{std::move(issuer), std::move(subject)};
  };
  EXPECT_TRUE(verify(document, a_txt(),
                     with(IdentityMatch::pattern("https://token\\.actions\\.githubusercontent\\.com"),
                          IdentityMatch::pattern("https://github\\.com/sigstore-conformance/.*@refs/heads/main"))));
  // Part of the name is not the name: a pattern must match all of it.
  expect_refused(verify(document, a_txt(),
                        with(IdentityMatch::exact(github_actions), IdentityMatch::pattern("sigstore-conformance"))),
                 "signed by \"" + beacon + "\", not one matching \"sigstore-conformance\"");
  expect_refused(
      verify(document, a_txt(), with(IdentityMatch::exact(github_actions), IdentityMatch::exact(beacon + "x"))),
      "signed by \"" + beacon + "\", not \"" + beacon + "x\"");
  expect_refused(verify(document, a_txt(),
                        with(IdentityMatch::exact("https://accounts.google.com"), IdentityMatch::exact(beacon))),
                 "signed by issuer \"" + github_actions + "\", not \"https://accounts.google.com\"");
  expect_refused(verify(document, a_txt(), with(IdentityMatch::exact(github_actions), IdentityMatch::pattern("("))),
                 "not one matching \"(\"");
}

TEST(SigstoreKeylessTest, OnlyASignedEntryTimestampGivesATime) {
  json document = bundle_json("happy-path-v0.3");
  document["verificationMaterial"]["tlogEntries"][0].erase("inclusionPromise");
  expect_refused(verify(document, a_txt()),
                 "log entry 79571823: no signed entry timestamp vouches for its integrated time, and the bundle "
                 "carries no RFC 3161 timestamp: nothing says when it was signed");
  document["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
      json::array({{{"signedTimestamp", "MAA="}}});
  expect_refused(verify(document, a_txt()), "RFC 3161 timestamp 0: timestamp is not a DER TimeStampResp");
  document["verificationMaterial"].erase("timestampVerificationData");
  document["verificationMaterial"]["tlogEntries"] = json::array();
  expect_refused(verify(document, a_txt()), "bundle has no transparency log entry");
}

TEST(SigstoreKeylessTest, OneVerifiedEntrySuffices) {
  json document = bundle_json("happy-path-v0.3");
  json& entries = document["verificationMaterial"]["tlogEntries"];
  json altered = entries[0];
  altered["integratedTime"] = "1710869187";
  entries.insert(entries.begin(), altered);
  EXPECT_TRUE(verify(document, a_txt()));
  entries.erase(entries.begin() + 1);
  expect_refused(verify(document, a_txt()), "signed entry timestamp does not verify");
}

TEST(SigstoreKeylessTest, TheMessageDigestIsOnlyAHint) {
  json document = bundle_json("happy-path-v0.3");
  document["messageSignature"].erase("messageDigest");
  EXPECT_TRUE(verify(document, a_txt()));
  expect_refused(verify(document, Artifact::of_bytes("another artifact")), "log entry's artifact digest is");
}

TEST(SigstoreKeylessTest, ARekorV1CheckpointIsChosenByItsKeyHintNotItsName) {
  // intoto-with-custom-trust-root's log serves on localhost:8000 and signs its
  // checkpoints as that, while the trusted root names it "localhost"; without its RFC
  // 3161 timestamp the bundle verifies by its signed entry timestamp.
  json document = bundle_json("intoto-with-custom-trust-root");
  document["verificationMaterial"].erase("timestampVerificationData");
  const std::string checkpoint =
      document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"];
  EXPECT_NE(checkpoint.find("\n\u2014 localhost:8000 "), std::string::npos) << checkpoint;
  const TrustedRoot root =
      std::get<TrustedRoot>(TrustedRoot::parse(sigstore_fixture("intoto-with-custom-trust-root/trusted_root.json")));
  const KeylessVerdict verdict =
      verify_keyless(parsed(document), Artifact::of_bytes(*case_file("intoto-with-custom-trust-root", "artifact")),
                     root, beacon_identity);
  EXPECT_TRUE(verdict) << verdict.reason;
  EXPECT_EQ(verdict.log_base_url, "http://localhost:8000");
}

TEST(SigstoreKeylessTest, ARekorV2EntryIsTimedByItsTimestamps) {
  const TrustedRoot root =
      std::get<TrustedRoot>(TrustedRoot::parse(sigstore_fixture("rekor2-happy-path/trusted_root.json")));
  json document = bundle_json("rekor2-happy-path");
  const KeylessVerdict verdict = verify_keyless(parsed(document), a_txt(), root, beacon_identity);
  ASSERT_TRUE(verdict) << verdict.reason;
  EXPECT_EQ(format_rfc3339(verdict.signed_at), "2025-06-12T12:02:20Z");
  EXPECT_FALSE(verdict.logged_time);
  ASSERT_EQ(verdict.timestamps.size(), 1u);
  EXPECT_EQ(verdict.timestamps[0].authority, "https://timestamp.sigstage.dev/api/v1/timestamp");
  EXPECT_EQ(verdict.log_base_url, "https://log2025-alpha1.rekor.sigstage.dev");
  EXPECT_EQ(verdict.log_index, 735u);

  // A Rekor v2 entry makes no promise: one that carries a SET is not what Rekor v2 writes.
  json promised = document;
  promised["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"] = {{"signedEntryTimestamp", "AAAA"}};
  const KeylessVerdict refused = verify_keyless(parsed(promised), a_txt(), root, beacon_identity);
  EXPECT_FALSE(refused);
  EXPECT_NE(refused.reason.find("log entry 735: a Rekor v2 entry carries a signed entry timestamp"), std::string::npos)
      << refused.reason;

  // Another artifact: the logged digest is not its digest.
  const KeylessVerdict other = verify_keyless(parsed(document), Artifact::of_bytes("another"), root, beacon_identity);
  EXPECT_FALSE(other);
  EXPECT_NE(other.reason.find("log entry 735: log entry's artifact digest is sha256:a0cfc712"), std::string::npos)
      << other.reason;

  // The production root trusts neither the staging timestamp authority nor its log;
  // the timestamps are checked first.
  const KeylessVerdict elsewhere = verify_keyless(parsed(document), a_txt(), production(), beacon_identity);
  EXPECT_FALSE(elsewhere);
  EXPECT_NE(elsewhere.reason.find("RFC 3161 timestamp 0: timestamp of 2025-06-12T12:02:20Z is not by a timestamp "
                                  "authority of the trusted root: https://timestamp.sigstore.dev/api/v1/timestamp: "),
            std::string::npos)
      << elsewhere.reason;
}

TEST(SigstoreKeylessTest, AKeyBasedBundleIsNotKeyless) {
  expect_refused(verify(bundle_json("managed-key-happy-path"), a_txt()),
                 "bundle is signed with a public key, not a Fulcio certificate: verify it with its key");
}

// --- key-based bundles ------------------------------------------------------------

registry::PublicKey managed_key() {
  return std::get<registry::PublicKey>(
      registry::PublicKey::from_pem("key.pub", sigstore_fixture("managed-key-and-trusted-root/key.pub")));
}

// A valid key that did not sign the managed-key bundles: the production log's own.
registry::PublicKey another_key() {
  const json root = json::parse(sigstore_fixture("production_trusted_root.json"));
  std::string der;
  EXPECT_TRUE(registry::base64_decode(root["tlogs"][0]["publicKey"]["rawBytes"].get<std::string>(), der));
  return std::get<registry::PublicKey>(registry::PublicKey::from_der("rekor", der));
}

BundleVerdict verify_keyed(const json& document, const Artifact& artifact, const registry::PublicKey& key) {
  const BundleVerdict verdict = verify_with_key(parsed(document), artifact, production(), key);
  EXPECT_EQ(verdict.reason.find('\n'), std::string::npos) << verdict.reason;
  EXPECT_EQ(verdict.verified, verdict.reason.empty()) << verdict.reason;
  return verdict;
}

TEST(SigstoreKeyedTest, GivesTheTimesAndLog) {
  const json document = bundle_json("managed-key-happy-path");
  const json& entry = document["verificationMaterial"]["tlogEntries"][0];
  const BundleVerdict verdict = verify_keyed(document, a_txt(), managed_key());
  ASSERT_TRUE(verdict) << verdict.reason;
  EXPECT_TRUE(verdict.logged_time);
  EXPECT_EQ(verdict.signed_at, TimePoint(std::chrono::seconds(std::stoll(entry["integratedTime"].get<std::string>()))));
  EXPECT_EQ(verdict.timestamps.size(), 1u);
  EXPECT_EQ(verdict.log_base_url, "https://rekor.sigstore.dev");
  EXPECT_EQ(verdict.log_index, std::stoull(entry["logIndex"].get<std::string>()));
  // By digest: the key is ECDSA P-256, so the SHA-256 alone verifies.
  auto digest = Artifact::of_digest("sha256:" + hex(a_txt().sha256));
  ASSERT_TRUE(std::holds_alternative<Artifact>(digest));
  EXPECT_TRUE(verify_keyed(document, std::get<Artifact>(digest), managed_key()));
}

TEST(SigstoreKeyedTest, AnotherKeyAnotherArtifactOrAKeylessBundleIsRefused) {
  const json document = bundle_json("managed-key-happy-path");
  expect_refused(verify_keyed(document, a_txt(), another_key()), "log entry's public key is not the given key");
  expect_refused(verify_keyed(document, Artifact::of_bytes("another artifact"), managed_key()),
                 "log entry's artifact digest is");
  expect_refused(verify_keyed(bundle_json("happy-path-v0.3"), a_txt(), managed_key()),
                 "bundle is signed with a Fulcio certificate, not a public key: verify it keyless");
  json tampered = document;
  tampered["verificationMaterial"].erase("timestampVerificationData");  // it stamps the signature
  tampered["messageSignature"]["signature"] = "MEUCIQ" + std::string(90, 'A');
  expect_refused(verify_keyed(tampered, a_txt(), managed_key()), "log entry's signature is not the bundle's");
}

TEST(SigstoreKeyedTest, ATimeMustBeVouchedFor) {
  json document = bundle_json("managed-key-happy-path");
  document["verificationMaterial"]["tlogEntries"][0].erase("inclusionPromise");
  const BundleVerdict stamped = verify_keyed(document, a_txt(), managed_key());
  ASSERT_TRUE(stamped) << stamped.reason;  // its RFC 3161 timestamp still gives one
  EXPECT_FALSE(stamped.logged_time);
  EXPECT_EQ(stamped.signed_at, stamped.timestamps.at(0).time);
  document["verificationMaterial"].erase("timestampVerificationData");
  expect_refused(verify_keyed(document, a_txt(), managed_key()),
                 "no signed entry timestamp vouches for its integrated time, and the bundle carries no RFC 3161 "
                 "timestamp: nothing says when it was signed");
}

}  // namespace
}  // namespace pullgate::policy::sigstore
