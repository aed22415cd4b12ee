// RFC 3161 timestamps (policy/timestamp.hpp) with the real timestamps of the
// sigstore-conformance corpus (tests/fixtures/sigstore), each failing case for its own
// reason, and real timestamps altered here one byte or one input at a time.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "policy/rfc3339.hpp"
#include "policy/sigstore_bundle.hpp"
#include "policy/timestamp.hpp"
#include "registry/base64.hpp"
#include "tests/unit/sigstore_fixtures.hpp"

namespace pullgate::policy::sigstore {
namespace {

using json = nlohmann::json;
using testing_support::has_sigstore_fixture;
using testing_support::sigstore_fixture;

const std::string sigstage_tsa = "https://timestamp.sigstage.dev/api/v1/timestamp";

std::string decoded(std::string text) {
  std::erase(text, '\n');
  std::string out;
  EXPECT_TRUE(registry::base64_decode(text, out)) << text.substr(0, 40);
  return out;
}

// A case's bundle, or the one it shares with rekor2-happy-path.
json bundle_of(const std::string& name) {
  const std::string own = name + "/bundle.sigstore.json";
  return json::parse(sigstore_fixture(has_sigstore_fixture(own) ? own : "rekor2-happy-path/bundle.sigstore.json"));
}

// A case's trusted root, or the one it shares (the conformance test's shared_files).
TrustedRoot root_of(const std::string& name) {
  std::string file = name + "/trusted_root.json";
  if (name == "rekor2-timestamp-with-expired-cert-chain") {
    file = "rekor2-timestamp-outside-tsa-cert-validity_fail/trusted_root.json";
  } else if (!has_sigstore_fixture(file)) {
    file = "rekor2-happy-path/trusted_root.json";
  }
  auto root = TrustedRoot::parse(sigstore_fixture(file));
  EXPECT_TRUE(std::holds_alternative<TrustedRoot>(root)) << std::get<std::string>(root);
  return std::get<TrustedRoot>(std::move(root));
}

struct Vector {
  std::string timestamp;  // DER TimeStampResp
  std::string signature;  // what it stamps
  TrustedRoot root;
};

Vector vector_of(const std::string& name) {
  const json bundle = bundle_of(name);
  const json& signature = bundle.contains("messageSignature") ? bundle["messageSignature"]["signature"]
                                                              : bundle["dsseEnvelope"]["signatures"][0]["sig"];
  return Vector{
      decoded(bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"]),
      decoded(signature), root_of(name)};
}

std::variant<VerifiedTimestamp, std::string> verify(const Vector& vector) {
  return verify_rfc3161_timestamp(vector.timestamp, vector.signature, vector.root);
}

void expect_time(const Vector& vector, const std::string& time, const std::string& authority) {
  auto result = verify(vector);
  ASSERT_TRUE(std::holds_alternative<VerifiedTimestamp>(result)) << std::get<std::string>(result);
  EXPECT_EQ(format_rfc3339(std::get<VerifiedTimestamp>(result).time), time);
  EXPECT_EQ(std::get<VerifiedTimestamp>(result).authority, authority);
}

void expect_refused(const Vector& vector, const std::string& words) {
  auto result = verify(vector);
  ASSERT_TRUE(std::holds_alternative<std::string>(result)) << "verified";
  const std::string& reason = std::get<std::string>(result);
  EXPECT_EQ(reason.find('\n'), std::string::npos) << reason;
  EXPECT_NE(reason.find(words), std::string::npos) << reason;
}

TEST(Rfc3161TimestampTest, RealTimestampsVerifyAtTheirGenTime) {
  expect_time(vector_of("rekor2-happy-path"), "2025-06-12T12:02:20Z", sigstage_tsa);
  expect_time(vector_of("rekor2-timestamp-with-embedded-cert"), "2025-08-06T18:51:36Z", sigstage_tsa);
  expect_time(vector_of("rekor2-timestamp-without-embedded-cert"), "2025-08-06T19:03:51Z", sigstage_tsa);
  expect_time(vector_of("rekor2-dsse-happy-path"), "2026-05-13T19:23:33Z", sigstage_tsa);
  // The authority's chain has expired since, but held at genTime.
  expect_time(vector_of("rekor2-timestamp-with-expired-cert-chain"), "2025-08-07T15:32:26Z",
              "https://localhost:3000/api/v1/timestamp");
  // validFor's end is genTime itself: closed at both ends.
  expect_time(vector_of("trust-root-tsa-validity-end-inclusive"), "2025-06-12T12:02:20Z", sigstage_tsa);
  expect_time(vector_of("intoto-with-custom-trust-root"), "2023-02-01T00:00:00Z", "http://localhost:8000");
}

TEST(Rfc3161TimestampTest, EachBrokenCaseFailsForItsOwnReason) {
  expect_refused(vector_of("rekor2-timestamp-payload-mismatch_fail"),
                 "timestamp is not over the bundle's signature: its SHA-256 imprint is 0a4976ff286d81ce..., the "
                 "signature's afefa772b9aeffce...");
  // Another TSA's certificate in the token, with the name of no authority of the root.
  expect_refused(vector_of("rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail"),
                 "timestamp of 2025-08-06T19:38:49Z is not by a timestamp authority of the trusted root: "
                 "https://timestamp.sigstage.dev/api/v1/timestamp: the certificate the timestamp embeds for its signer "
                 "(ST=Bayern,C=DE,L=Wuerzburg,");
  expect_refused(vector_of("rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail"),
                 "https://timestamp.sigstage.dev/api/v1/timestamp: timestamp is not signed by the authority's TSA "
                 "certificate CN=sigstore-tsa,O=sigstore.dev");
  expect_refused(vector_of("rekor2-timestamp-outside-trust-root-tsa-validity_fail"),
                 "the timestamp's time 2025-06-12T12:02:20Z is outside the authority's validFor (from "
                 "2025-04-09T00:00:00Z to 2025-06-01T00:00:00Z)");
  // The authority's whole chain lived ten minutes, over before genTime.
  expect_refused(vector_of("rekor2-timestamp-outside-tsa-cert-validity_fail"),
                 "TSA certificate does not chain to the authority at the timestamp's time 2025-08-07T15:38:32Z: "
                 "certificate has expired (CN=Test TSA Root,O=local)");
}

TEST(Rfc3161TimestampTest, AlteredTimestampsAreRefused) {
  const Vector good = vector_of("rekor2-happy-path");

  Vector other_imprint = good;
  other_imprint.signature[10] ^= 1;
  expect_refused(other_imprint,
                 "timestamp is not over the bundle's signature: its SHA-256 imprint is 6ddf31609e2a6c81...");

  // A byte of the stamped TSTInfo (its serial number) flipped: the TSA did not sign that.
  Vector flipped = good;
  const std::string serial("\x55\x97\x42\xc7\x1e\xda\xe5\xb6", 8);
  const std::size_t at = flipped.timestamp.find(serial);
  ASSERT_NE(at, std::string::npos);
  flipped.timestamp[at + 3] ^= 0x01;
  expect_refused(flipped, "timestamp's signature does not verify with TSA certificate CN=sigstore-tsa,O=sigstore.dev");

  // The imprint's algorithm made SHA-384 (one byte of its OID, the second SHA-256 of
  // the token: the first is SignedData's digestAlgorithms): the imprint is then
  // compared as the SHA-384 it claims to be, and is not.
  Vector sha384 = good;
  const std::string sha256_oid("\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01", 11);
  const std::size_t oid = sha384.timestamp.find(sha256_oid, sha384.timestamp.find(sha256_oid) + 1);
  ASSERT_NE(oid, std::string::npos);
  sha384.timestamp[oid + sha256_oid.size() - 1] = 0x02;
  expect_refused(sha384, "its SHA-384 imprint is");

  Vector trailing = good;
  trailing.timestamp += '\0';
  expect_refused(trailing, "timestamp has bytes after its TimeStampResp");

  // PKIStatus granted (0) made grantedWithMods (1), which digitorus/timestamp refuses.
  Vector modified = good;
  const std::string granted("\x30\x03\x02\x01\x00", 5);
  ASSERT_EQ(modified.timestamp.find(granted), 4u);
  modified.timestamp[8] = 0x01;
  expect_refused(modified, "timestamp response's status is 1, not granted (0)");
  // Rejection (2) with a token is not a TimeStampResp at all (RFC 3161 2.4.2).
  Vector rejected = good;
  rejected.timestamp[8] = 0x02;
  expect_refused(rejected, "timestamp is not a DER TimeStampResp");

  expect_refused(Vector{good.signature, good.signature, good.root}, "timestamp is not a DER TimeStampResp");

  // Another trusted root's authority (the production one) did not sign it.
  expect_refused(
      Vector{good.timestamp, good.signature, root_of("bundle-with-sct-with-extensions")},
      "is not by a timestamp authority of the trusted root: https://timestamp.sigstore.dev/api/v1/timestamp: ");
}

// verify_keyless: every timestamp verified, the certificate held at each time.
TEST(Rfc3161TimestampTest, KeylessVerificationChecksTheCertificateAtEveryTime) {
  // intoto-tsa-timestamp-outside-cert-validity_fail: its SET time is within the
  // certificate's ten minutes, its timestamp's is not.
  const std::string name = "intoto-tsa-timestamp-outside-cert-validity_fail";
  auto bundle = Bundle::parse(sigstore_fixture(name + "/bundle.sigstore.json"));
  ASSERT_TRUE(std::holds_alternative<Bundle>(bundle));
  const TrustedRoot root = root_of("intoto-with-custom-trust-root");
  const Artifact artifact = Artifact::of_bytes(sigstore_fixture("intoto-expired-certificate_fail/artifact"));
  const ExpectedIdentity anyone{IdentityMatch::pattern(".*"), IdentityMatch::pattern(".*")};
  const KeylessVerdict refused = verify_keyless(std::get<Bundle>(bundle), artifact, root, anyone);
  EXPECT_FALSE(refused);
  EXPECT_NE(refused.reason.find("signing certificate: certificate had expired at the signing time "
                                "2023-02-02T00:00:00Z: it was valid from 2023-02-01T00:00:00Z to 2023-02-01T00:10:00Z"),
            std::string::npos)
      << refused.reason;

  auto good = Bundle::parse(sigstore_fixture("intoto-with-custom-trust-root/bundle.sigstore.json"));
  ASSERT_TRUE(std::holds_alternative<Bundle>(good));
  const KeylessVerdict verdict = verify_keyless(std::get<Bundle>(good), artifact, root, anyone);
  ASSERT_TRUE(verdict) << verdict.reason;
  ASSERT_EQ(verdict.timestamps.size(), 1u);
  EXPECT_EQ(verdict.timestamps[0].authority, "http://localhost:8000");

  // A second timestamp that does not verify fails the bundle, however good the first.
  Bundle twice = std::get<Bundle>(good);
  twice.rfc3161_timestamps.push_back(twice.rfc3161_timestamps.front() + std::string(1, '\0'));
  const KeylessVerdict second = verify_keyless(twice, artifact, root, anyone);
  EXPECT_FALSE(second);
  EXPECT_NE(second.reason.find("RFC 3161 timestamp 1: timestamp has bytes after its TimeStampResp"), std::string::npos)
      << second.reason;
}

}  // namespace
}  // namespace pullgate::policy::sigstore
