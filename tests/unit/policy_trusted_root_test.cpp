// Trusted roots and Fulcio certificates (policy/trusted_root.hpp, policy/fulcio.hpp):
// the real roots and leaves of the Sigstore conformance corpus
// (tests/fixtures/sigstore/README.md), and a certificate authority, CT log and leaves
// made here with OpenSSL so that each refusal happens on its own.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "policy/fulcio.hpp"
#include "policy/trusted_root.hpp"
#include "registry/base64.hpp"
#include "tests/tools/x509_make.hpp"
#include "tests/unit/sigstore_fixtures.hpp"

namespace pullgate::policy::sigstore {
namespace {

using json = nlohmann::json;
using registry::base64_encode;
using testing_support::expect_failure;
using testing_support::expect_passed;
using testing_support::sigstore_fixture;
using testing_support::unbase64;
using namespace std::chrono_literals;

// The conformance suite's identity and issuer where a case names none (its README).
using testing_support::beacon;
using testing_support::github_actions;

TimePoint at(const char* rfc3339) {
  const std::optional<TimePoint> time = parse_rfc3339(rfc3339);
  EXPECT_TRUE(time.has_value()) << rfc3339;
  return time.value_or(TimePoint{});
}

TimePoint unix_seconds(std::int64_t seconds) { return TimePoint(std::chrono::seconds(seconds)); }

void expect_reason(const std::string& reason, const std::string& words) {
  EXPECT_NE(reason.find(words), std::string::npos) << reason;
  EXPECT_EQ(reason.find('\n'), std::string::npos) << reason;
}

// --- trusted roots ------------------------------------------------------------------

TrustedRoot parsed_root(const std::string& text) {
  auto root = TrustedRoot::parse(text);
  if (auto* error = std::get_if<std::string>(&root)) {
    ADD_FAILURE() << *error;
    return TrustedRoot{};
  }
  return std::get<TrustedRoot>(std::move(root));
}

TrustedRoot root_of(const std::string& name) { return parsed_root(sigstore_fixture(name)); }

std::string root_error(const std::string& text) {
  auto root = TrustedRoot::parse(text);
  if (auto* error = std::get_if<std::string>(&root)) return *error;
  ADD_FAILURE() << "parsed: " << text.substr(0, 200);
  return {};
}

const TrustedRoot& production() {
  static const TrustedRoot root = root_of("production_trusted_root.json");
  return root;
}
const TrustedRoot& staging() {
  static const TrustedRoot root = root_of("rekor2-happy-path/trusted_root.json");
  return root;
}

json production_json() { return json::parse(sigstore_fixture("production_trusted_root.json")); }

// --- conformance leaves -------------------------------------------------------------

Certificate certificate_of(const std::string& der) {
  auto certificate = Certificate::from_der(der);
  if (auto* error = std::get_if<std::string>(&certificate)) ADD_FAILURE() << *error;
  return std::get<Certificate>(std::move(certificate));
}

json bundle_of(const std::string& name) { return json::parse(sigstore_fixture(name + "/bundle.sigstore.json")); }

// The signing certificate: v0.3's certificate, or the first of v0.1's and v0.2's chain.
Certificate leaf_of(const std::string& name) {
  const json bundle = bundle_of(name);
  const json& material = bundle.at("verificationMaterial");
  if (material.contains("certificate")) {
    return certificate_of(unbase64(material.at("certificate").at("rawBytes").get<std::string>()));
  }
  return certificate_of(
      unbase64(material.at("x509CertificateChain").at("certificates").at(0).at("rawBytes").get<std::string>()));
}

TimePoint time_of(const ASN1_TIME* time) {
  std::tm tm{};
  EXPECT_EQ(ASN1_TIME_to_tm(time, &tm), 1);
  return unix_seconds(timegm(&tm));
}

// When the bundle was signed: the tlog entry's integratedTime (Rekor v1), else the
// genTime of its RFC 3161 timestamp (Rekor v2 has no time of its own). Read, not
// verified: these tests check certificates at a time, not the time's proof.
TimePoint signing_time_of(const std::string& name) {
  const json bundle = bundle_of(name);
  const json& material = bundle.at("verificationMaterial");
  const json& entry = material.at("tlogEntries").at(0);
  if (entry.contains("integratedTime")) return unix_seconds(std::stoll(entry.at("integratedTime").get<std::string>()));
  const std::string der = unbase64(
      material.at("timestampVerificationData").at("rfc3161Timestamps").at(0).at("signedTimestamp").get<std::string>());
  const auto* bytes = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<TS_RESP, decltype(&TS_RESP_free)> response(d2i_TS_RESP(nullptr, &bytes, long(der.size())),
                                                             TS_RESP_free);
  if (!response) {
    ADD_FAILURE() << name << ": no timestamp response";
    return {};
  }
  return time_of(TS_TST_INFO_get_time(TS_RESP_get_tst_info(response.get())));
}

CertificateChain chain_of(const Certificate& leaf, const TrustedRoot& root, TimePoint time) {
  auto chain = verify_fulcio_chain(leaf, root, time);
  if (auto* error = std::get_if<std::string>(&chain)) {
    ADD_FAILURE() << *error;
    return {};
  }
  return std::get<CertificateChain>(std::move(chain));
}

std::string chain_error(const Certificate& leaf, const TrustedRoot& root, TimePoint time) {
  auto chain = verify_fulcio_chain(leaf, root, time);
  if (auto* error = std::get_if<std::string>(&chain)) return *error;
  ADD_FAILURE() << "chained";
  return {};
}

FulcioIdentity identity_of(const Certificate& leaf) {
  auto identity = read_fulcio_identity(leaf);
  if (auto* error = std::get_if<std::string>(&identity)) {
    ADD_FAILURE() << *error;
    return {};
  }
  return std::get<FulcioIdentity>(std::move(identity));
}

std::string identity_error(const Certificate& leaf) {
  auto identity = read_fulcio_identity(leaf);
  if (auto* error = std::get_if<std::string>(&identity)) return *error;
  ADD_FAILURE() << "read an identity: " << std::get<FulcioIdentity>(identity).subject;
  return {};
}

// A conformance case whose leaf chains to its trusted root (the production root when
// it has none of its own).
struct Case {
  const char* name;
  const char* trusted_root;
  const char* anchor;  // the subject of the trust anchor it chains to
};

const Case chaining[] = {
    {"happy-path-v0.1", "production_trusted_root.json", "CN=sigstore,O=sigstore.dev"},
    {"happy-path-v0.2", "production_trusted_root.json", "CN=sigstore,O=sigstore.dev"},
    {"happy-path-v0.3", "production_trusted_root.json", "CN=sigstore,O=sigstore.dev"},
    {"bundle-with-root-cert_fail", "production_trusted_root.json", "CN=sigstore,O=sigstore.dev"},
    {"intoto-with-custom-trust-root", "intoto-with-custom-trust-root/trusted_root.json", "O=sigstore.mock,CN=sigstore"},
    {"bundle-with-sct-with-extensions", "bundle-with-sct-with-extensions/trusted_root.json",
     "CN=fulcio.test,O=Sigstore,ST=Some-State,C=US"},
    {"rekor2-happy-path", "rekor2-happy-path/trusted_root.json", "CN=sigstore,O=sigstore.dev"},
    {"rekor2-dsse-happy-path", "rekor2-dsse-happy-path/trusted_root.json", "CN=sigstore,O=sigstore.dev"},
};

// --- a PKI made here ------------------------------------------------------------------

using namespace testing_support::x509;

void set_time(ASN1_TIME* field, TimePoint time) {
  ASN1_TIME_set(field,
                static_cast<std::time_t>(std::chrono::floor<std::chrono::seconds>(time.time_since_epoch()).count()));
}

// A certificate with `subject` (a CN; empty for none, as Fulcio's leaves) and the
// extensions given in OpenSSL's configuration syntax, signed by `issuer` (itself when
// null).
X509Ptr make_certificate(EVP_PKEY* key, const std::string& subject, TimePoint from, TimePoint to,
                         const std::vector<std::pair<int, std::string>>& extensions, X509* issuer, EVP_PKEY* issuer_key,
                         long serial) {
  X509Ptr certificate(X509_new());
  X509_set_version(certificate.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), serial);
  X509_NAME* name = X509_get_subject_name(certificate.get());
  if (!subject.empty()) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("pullgate.test"), -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(subject.c_str()), -1,
                               -1, 0);
  }
  X509_set_issuer_name(certificate.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  set_time(X509_getm_notBefore(certificate.get()), from);
  set_time(X509_getm_notAfter(certificate.get()), to);
  X509_set_pubkey(certificate.get(), key);
  for (const auto& [nid, value] : extensions) add_extension(certificate.get(), nid, value, issuer);
  EXPECT_GT(X509_sign(certificate.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()), 0);
  return certificate;
}

const TimePoint ca_from = at("2023-01-01T00:00:00Z");
const TimePoint ca_to = at("2033-01-01T00:00:00Z");
const TimePoint leaf_from = at("2024-03-01T12:00:00Z");
const TimePoint leaf_to = at("2024-03-01T12:10:00Z");
const TimePoint signed_at = at("2024-03-01T12:05:00Z");
const std::string workflow = "https://github.com/octo/app/.github/workflows/release.yml@refs/tags/v1.0.0";

const std::vector<std::pair<int, std::string>> ca_extensions = {
    {NID_basic_constraints, "critical,CA:TRUE"},
    {NID_key_usage, "critical,keyCertSign,cRLSign"},
    {NID_subject_key_identifier, "hash"},
};

// A certificate authority: a root, and an intermediate that issues code-signing
// certificates, as Fulcio's; and a CT log.
struct Authority {
  Pkey root_key = p256();
  X509Ptr root;
  Pkey intermediate_key = p256();
  X509Ptr intermediate;

  explicit Authority(const std::string& name, const std::string& intermediate_usage = "codeSigning",
                     TimePoint intermediate_to = ca_to) {
    root = make_certificate(root_key.get(), name + " root", ca_from, ca_to, ca_extensions, nullptr, nullptr, 1);
    std::vector<std::pair<int, std::string>> extensions = ca_extensions;
    extensions.emplace_back(NID_authority_key_identifier, "keyid:always");
    extensions.emplace_back(NID_ext_key_usage, intermediate_usage);
    intermediate = make_certificate(intermediate_key.get(), name + " intermediate", ca_from, intermediate_to,
                                    extensions, root.get(), root_key.get(), 2);
  }
};

struct CtLogKey {
  Pkey key = p256();
  std::string log_id = sha256_of(spki_of(key.get()));
};

const Authority& fulcio_ca() {
  static const Authority authority("fulcio");
  return authority;
}
const CtLogKey& ct_log() {
  static const CtLogKey log;
  return log;
}

// A trusted root of one certificate authority (`chain`: intermediates first, the anchor
// last) and the test's CT log, trusted from 2023 on unless told otherwise.
std::string trusted_root_json(const std::vector<X509*>& chain, const char* ca_start = "2023-01-01T00:00:00Z",
                              const char* ca_end = nullptr) {
  json certificates = json::array();
  for (X509* certificate : chain) certificates.push_back({{"rawBytes", base64_encode(der_of(certificate))}});
  json authority = {{"uri", "https://fulcio.test"},
                    {"certChain", {{"certificates", certificates}}},
                    {"validFor", {{"start", ca_start}}}};
  if (ca_end != nullptr) authority["validFor"]["end"] = ca_end;
  const json ctlog = {
      {"baseUrl", "https://ct.test/2024"},
      {"hashAlgorithm", "SHA2_256"},
      {"publicKey",
       {{"rawBytes", base64_encode(spki_of(ct_log().key.get()))},
        {"keyDetails", "PKIX_ECDSA_P256_SHA_256"},
        {"validFor", {{"start", "2023-06-01T00:00:00Z"}}}}},
      {"logId", {{"keyId", base64_encode(ct_log().log_id)}}},
  };
  return json{{"mediaType", "application/vnd.dev.sigstore.trustedroot.v0.2+json"},
              {"certificateAuthorities", json::array({authority})},
              {"ctlogs", json::array({ctlog})}}
      .dump();
}

const TrustedRoot& test_root() {
  static const TrustedRoot root =
      parsed_root(trusted_root_json({fulcio_ca().intermediate.get(), fulcio_ca().root.get()}));
  return root;
}

// An SCT of a made leaf.
enum class Sct {
  good,
  unknown_log,        // signed by a log the root does not know
  other_certificate,  // the test's log, over another precertificate
  other_issuer,       // the test's log, over this precertificate but the root's key as issuer
  before_log,         // the test's log, at a time before the root trusts it
  version_2,          // a version this code does not know
  rsa_signature,      // says RSA with SHA-256, though the log's key is ECDSA
};

struct Leaf {
  std::vector<std::pair<int, std::string>> extensions = {
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "codeSigning"},
      {NID_subject_alt_name, "critical,URI:" + workflow},
  };
  std::vector<std::pair<std::string, std::string>> fulcio = {
      {"1.3.6.1.4.1.57264.1.1", github_actions},
      {"1.3.6.1.4.1.57264.1.8", utf8_string(github_actions)},
      {"1.3.6.1.4.1.57264.1.12", utf8_string("https://github.com/octo/app")},
      {"1.3.6.1.4.1.57264.1.14", utf8_string("refs/tags/v1.0.0")},
  };
  TimePoint from = leaf_from;
  TimePoint to = leaf_to;
  std::vector<Sct> scts = {Sct::good};  // none: no SCT list extension
  const Authority* issuer = &fulcio_ca();

  // Without the one extension of `nid`.
  Leaf& without(int nid) {
    std::erase_if(extensions, [nid](const auto& extension) { return extension.first == nid; });
    return *this;
  }
  Leaf& with(int nid, const std::string& value) {
    without(nid);
    extensions.emplace_back(nid, value);
    return *this;
  }
};

std::uint64_t milliseconds_of(TimePoint time) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count());
}

// One SCT of `kind` in TLS encoding (RFC 6962 section 3.2), written here by hand, for
// the precertificate `tbs` of a leaf `issuer` signs.
std::string sct_of(Sct kind, std::string tbs, const Authority& issuer, TimePoint from) {
  std::uint64_t timestamp = milliseconds_of(from);
  EVP_PKEY* issuer_key = issuer.intermediate_key.get();
  Pkey unknown;
  EVP_PKEY* log_key = ct_log().key.get();
  std::string log_id = ct_log().log_id;
  std::string version(1, '\0');
  std::string algorithm = "\x04\x03";  // SHA-256, ECDSA
  switch (kind) {
    case Sct::unknown_log:
      unknown = p256();
      log_key = unknown.get();
      log_id = sha256_of(spki_of(log_key));
      break;
    case Sct::other_certificate:
      tbs[tbs.size() - 1] ^= 0x01;
      break;
    case Sct::other_issuer:
      issuer_key = issuer.root_key.get();
      break;
    case Sct::before_log:
      timestamp = milliseconds_of(at("2023-05-31T23:59:59.999Z"));
      break;
    case Sct::version_2:
      version[0] = '\x01';
      break;
    case Sct::rsa_signature:
      algorithm = "\x04\x01";
      break;
    case Sct::good:
      break;
  }
  const std::string signature = ecdsa_sha256(log_key, precert_signed_data(timestamp, issuer_key, tbs));
  return version + log_id + big_endian(timestamp, 8) + big_endian(0, 2) + algorithm + big_endian(signature.size(), 2) +
         signature;
}

// A Fulcio-like leaf: signed once as the precertificate the log sees, then again with
// the SCT list added (an OCTET STRING of the TLS SignedCertificateTimestampList, RFC
// 6962 section 3.3), as Fulcio issues them.
Certificate make_leaf(const Leaf& spec) {
  Pkey key = p256();
  const Authority& issuer = *spec.issuer;
  X509Ptr leaf = make_certificate(key.get(), "", spec.from, spec.to, spec.extensions, issuer.intermediate.get(),
                                  issuer.intermediate_key.get(), 1000);
  for (const auto& [oid, value] : spec.fulcio) add_raw_extension(leaf.get(), oid, value);
  EXPECT_GT(X509_sign(leaf.get(), issuer.intermediate_key.get(), EVP_sha256()), 0);
  if (!spec.scts.empty()) {
    const std::string tbs = tbs_of(leaf.get());
    std::string list;
    for (const Sct kind : spec.scts) {
      const std::string sct = sct_of(kind, tbs, issuer, spec.from);
      list += big_endian(sct.size(), 2) + sct;
    }
    add_raw_extension(leaf.get(), "1.3.6.1.4.1.11129.2.4.2", der(0x04, big_endian(list.size(), 2) + list));
    EXPECT_GT(X509_sign(leaf.get(), issuer.intermediate_key.get(), EVP_sha256()), 0);
  }
  return certificate_of(der_of(leaf.get()));
}

// ===================================================================================
// Trusted roots
// ===================================================================================

TEST(TrustedRootParseTest, RealRootsParseWithTheirLogsAndAuthorities) {
  struct Expected {
    const char* file;
    std::size_t tlogs, ctlogs, cas, tsas, warnings;
  };
  // The staging roots' PKCS#1 RSA CT key (expired 2022) is the only entry left out.
  const Expected roots[] = {
      {"production_trusted_root.json", 2, 2, 2, 1, 0},
      {"rekor2-happy-path/trusted_root.json", 2, 2, 1, 1, 1},
      {"rekor2-dsse-happy-path/trusted_root.json", 4, 3, 1, 1, 1},
      {"bundle-with-sct-with-extensions/trusted_root.json", 1, 1, 1, 1, 0},
      {"intoto-with-custom-trust-root/trusted_root.json", 1, 1, 1, 1, 0},
      {"invalid-ct-key_fail/trusted_root.json", 1, 2, 2, 1, 1},
      {"trust-root-tlog-validity-end-inclusive/trusted_root.json", 2, 2, 2, 1, 0},
  };
  for (const Expected& expected : roots) {
    SCOPED_TRACE(expected.file);
    const TrustedRoot root = root_of(expected.file);
    EXPECT_EQ(root.tlogs().size(), expected.tlogs);
    EXPECT_EQ(root.ctlogs().size(), expected.ctlogs);
    EXPECT_EQ(root.certificate_authorities().size(), expected.cas);
    EXPECT_EQ(root.timestamp_authorities().size(), expected.tsas);
    EXPECT_EQ(root.warnings().size(), expected.warnings);
    EXPECT_EQ(root.media_type(), "application/vnd.dev.sigstore.trustedroot+json;version=0.1");
  }
}

TEST(TrustedRootParseTest, LogIdsNamesAndPeriodsAreTheDocumentsOwn) {
  for (const char* file :
       {"production_trusted_root.json", "rekor2-dsse-happy-path/trusted_root.json",
        "bundle-with-sct-with-extensions/trusted_root.json", "intoto-with-custom-trust-root/trusted_root.json"}) {
    SCOPED_TRACE(file);
    const json document = json::parse(sigstore_fixture(file));
    const TrustedRoot root = root_of(file);
    std::size_t i = 0;
    for (const json& tlog : document.at("tlogs")) {
      ASSERT_LT(i, root.tlogs().size());
      const TransparencyLog& log = root.tlogs()[i++];
      EXPECT_EQ(base64_encode(log.key.log_id()), tlog.at("logId").at("keyId").get<std::string>());
      EXPECT_EQ(log.base_url, tlog.at("baseUrl").get<std::string>());
      EXPECT_EQ(log.valid_for.start, at(tlog.at("publicKey").at("validFor").at("start").get<std::string>().c_str()));
    }
    i = 0;
    for (const json& ctlog : document.at("ctlogs")) {
      if (ctlog.at("publicKey").at("keyDetails") != "PKIX_ECDSA_P256_SHA_256") continue;
      ASSERT_LT(i, root.ctlogs().size());
      const TransparencyLog& log = root.ctlogs()[i++];
      EXPECT_EQ(base64_encode(log.key.log_id()), ctlog.at("logId").at("keyId").get<std::string>());
      EXPECT_EQ(log.base_url, ctlog.at("baseUrl").get<std::string>());
    }
  }
  const TrustedRoot& root = production();
  EXPECT_EQ(root.tlogs()[0].key.name(), "rekor.sigstore.dev");
  EXPECT_EQ(root.tlogs()[0].key.key_hint(), 0xc0d23d6au);
  EXPECT_EQ(root.tlogs()[1].key.name(), "log2025-1.rekor.sigstore.dev");
  EXPECT_EQ(root.tlogs()[1].key.key().algorithm(), "ed25519");
  EXPECT_FALSE(root.tlogs()[0].valid_for.end.has_value());
  EXPECT_EQ(root.ctlogs()[0].valid_for.end, at("2022-10-31T23:59:59.999Z"));
  EXPECT_EQ(root.ctlogs()[0].valid_for.text(), "from 2021-03-14T00:00:00Z to 2022-10-31T23:59:59.999Z");
  EXPECT_EQ(root.tlogs()[0].valid_for.text(), "from 2021-01-12T11:53:27Z on");
  EXPECT_EQ(root_of("bundle-with-sct-with-extensions/trusted_root.json").tlogs()[0].key.name(), "rekor-local");
}

TEST(TrustedRootParseTest, CertificateAuthoritiesHoldTheirChainsAnchorLast) {
  const TrustedRoot& root = production();
  ASSERT_EQ(root.certificate_authorities().size(), 2u);
  const CertificateAuthority& old_ca = root.certificate_authorities()[0];
  const CertificateAuthority& current = root.certificate_authorities()[1];
  EXPECT_EQ(old_ca.uri, "https://fulcio.sigstore.dev");
  EXPECT_EQ(old_ca.chain.size(), 1u);
  EXPECT_EQ(old_ca.valid_for.end, at("2022-12-31T23:59:59.999Z"));
  ASSERT_EQ(current.chain.size(), 2u);
  EXPECT_EQ(current.chain[0].subject(), "CN=sigstore-intermediate,O=sigstore.dev");
  EXPECT_EQ(current.anchor().subject(), "CN=sigstore,O=sigstore.dev");
  EXPECT_EQ(current.valid_for.start, at("2022-04-13T20:06:15Z"));
  EXPECT_EQ(current.anchor().not_after(), at("2031-10-05T13:56:58Z"));
  const CertificateAuthority& tsa = root.timestamp_authorities().at(0);
  EXPECT_EQ(tsa.uri, "https://timestamp.sigstore.dev/api/v1/timestamp");
  EXPECT_EQ(tsa.chain.size(), 2u);
  // A timestamp authority without a uri (invalid-ct-key_fail's GitHub TSA) is one still.
  EXPECT_EQ(root_of("invalid-ct-key_fail/trusted_root.json").timestamp_authorities().at(0).chain.size(), 3u);
}

TEST(TrustedRootParseTest, UnusableKeysAreLeftOutWithAWarningLine) {
  const TrustedRoot& root = staging();
  ASSERT_EQ(root.warnings().size(), 1u);
  expect_reason(root.warnings()[0],
                "trusted root's ctlogs[0] (https://ctfe.sigstage.dev/test), trusted from 2021-03-14T00:00:00Z to "
                "2022-07-31T00:00:00Z, is left out: its key is \"PKCS1_RSA_PKCS1V5\", and pullgate checks ctlogs "
                "with PKIX_ECDSA_P256_SHA_256 keys");
  // Made here: a P-384 tlog, an RSA ctlog, a log of another hash, a key kind of the future.
  json document = production_json();
  document["tlogs"][0]["publicKey"]["keyDetails"] = "PKIX_ECDSA_P384_SHA_384";
  document["tlogs"][1]["hashAlgorithm"] = "SHA2_384";
  document["ctlogs"][0]["publicKey"]["keyDetails"] = "PKIX_RSA_PKCS1V15_2048_SHA256";
  document["ctlogs"][1]["publicKey"]["keyDetails"] = "ML_DSA_87";
  const TrustedRoot left_out = parsed_root(document.dump());
  EXPECT_TRUE(left_out.tlogs().empty());
  EXPECT_TRUE(left_out.ctlogs().empty());
  ASSERT_EQ(left_out.warnings().size(), 4u);
  expect_reason(left_out.warnings()[0],
                "tlogs[0] (https://rekor.sigstore.dev), trusted from 2021-01-12T11:53:27Z on, "
                "is left out: its key is \"PKIX_ECDSA_P384_SHA_384\", and pullgate checks "
                "tlogs with PKIX_ECDSA_P256_SHA_256 or PKIX_ED25519 keys");
  expect_reason(left_out.warnings()[1],
                "tlogs[1] (https://log2025-1.rekor.sigstore.dev) is left out: its "
                "hashAlgorithm is \"SHA2_384\", not SHA2_256");
  expect_reason(left_out.warnings()[2], "\"PKIX_RSA_PKCS1V15_2048_SHA256\"");
  expect_reason(left_out.warnings()[3], "\"ML_DSA_87\"");
  EXPECT_EQ(left_out.certificate_authorities().size(), 2u);  // the rest is there
}

TEST(TrustedRootParseTest, AllThreeMediaTypesAreAccepted) {
  json document = production_json();
  for (const char* media_type :
       {"application/vnd.dev.sigstore.trustedroot.v0.2+json", "application/vnd.dev.sigstore.trustedroot.v0.1+json",
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}) {
    document["mediaType"] = media_type;
    EXPECT_EQ(parsed_root(document.dump()).media_type(), media_type);
  }
  for (const char* media_type :
       {"application/vnd.dev.sigstore.trustedroot.v0.3+json", "application/vnd.dev.sigstore.bundle.v0.3+json", ""}) {
    document["mediaType"] = media_type;
    const std::string error = root_error(document.dump());
    expect_reason(error, "trusted root's mediaType");
  }
  document["mediaType"] = "application/vnd.dev.sigstore.trustedroot+json;version=0.2";
  expect_reason(root_error(document.dump()),
                "trusted root's mediaType \"application/vnd.dev.sigstore.trustedroot+json;version=0.2\" is not a "
                "trusted root's");
}

TEST(TrustedRootParseTest, NullIsAbsentAndV02FieldsAreRead) {
  // The conformance root writes "end": null, "checkpointKeyId": null and "operator": null.
  const TrustedRoot root = root_of("trust-root-tlog-validity-end-inclusive/trusted_root.json");
  EXPECT_EQ(root.tlogs()[0].valid_for.end, at("2023-07-12T15:56:36Z"));
  EXPECT_FALSE(root.tlogs()[1].valid_for.end.has_value());
  EXPECT_EQ(root.ctlogs()[0].valid_for.end, at("2022-10-31T23:59:59.999Z"));  // written .999000Z
  // A v0.2 checkpointKeyId: 4 bytes (the proto's comment) or all 32 (Rekor v2's).
  json document = production_json();
  const std::string id = unbase64(document["tlogs"][1]["logId"]["keyId"].get<std::string>());
  document["mediaType"] = "application/vnd.dev.sigstore.trustedroot.v0.2+json";
  document["tlogs"][1]["checkpointKeyId"] = {{"keyId", base64_encode(id.substr(0, 4))}};
  document["tlogs"][1]["operator"] = "sigstore.dev";
  EXPECT_EQ(parsed_root(document.dump()).tlogs().size(), 2u);
  document["tlogs"][1]["checkpointKeyId"] = {{"keyId", base64_encode(id)}};
  EXPECT_EQ(parsed_root(document.dump()).tlogs().size(), 2u);
}

// Found by fuzz_sigstore_bundle: nlohmann reports a number too large for a double as
// out_of_range, not parse_error, and it escaped (a reload would have ended the server).
TEST(TrustedRootParseTest, ANumberTooLargeIsNotJsonNotACrash) {
  const std::string error = root_error(R"({"mediaType": 8E6666666666666666666666666666666666666666})");
  EXPECT_NE(error.find("trusted root is not JSON: "), std::string::npos) << error;
  EXPECT_NE(error.find("number overflow"), std::string::npos) << error;
}

TEST(TrustedRootParseTest, TheConformanceRootWithoutAStartIsRefused) {
  const std::string error =
      root_error(sigstore_fixture("trust-root-tlog-missing-validity-start_fail/trusted_root.json"));
  EXPECT_EQ(error,
            "trusted root's tlogs[1] (https://log2025-alpha1.rekor.sigstage.dev): publicKey.validFor.start is "
            "missing");
}

TEST(TrustedRootParseTest, AMalformedRootIsOneLineNamingTheField) {
  const std::string ed25519_spki = production_json()["tlogs"][1]["publicKey"]["rawBytes"].get<std::string>();
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& d) { d.erase("mediaType"); }, "trusted root's mediaType is missing"},
      {[](json& d) { d["mediaType"] = 2; }, "trusted root's mediaType is not a string"},
      {[](json& d) { d["tlogs"] = json::object(); }, "trusted root's tlogs is not a list"},
      {[](json& d) { d["tlogs"][0] = "rekor"; }, "trusted root's tlogs[0] is not an object"},
      {[](json& d) { d["tlogs"][0].erase("baseUrl"); }, "trusted root's tlogs[0]: baseUrl is missing"},
      {[](json& d) { d["tlogs"][0]["baseUrl"] = "https://"; }, "tlogs[0] (https://): baseUrl is refused: log name"},
      {[](json& d) { d["ctlogs"][0]["baseUrl"] = "https://ctfe.sigstore.dev/\ntest"; },
       "trusted root's ctlogs[0]: baseUrl has a control character"},
      {[](json& d) { d["certificateAuthorities"][0]["uri"] = "https://fulcio\x7f.sigstore.dev"; },
       "trusted root's certificateAuthorities[0]: uri has a control character"},
      {[](json& d) { d["tlogs"][0].erase("hashAlgorithm"); },
       "tlogs[0] (https://rekor.sigstore.dev): hashAlgorithm is missing"},
      {[](json& d) { d["tlogs"][0].erase("publicKey"); },
       "tlogs[0] (https://rekor.sigstore.dev): publicKey is missing"},
      {[](json& d) { d["tlogs"][0]["publicKey"] = "key"; }, "publicKey is not an object"},
      {[](json& d) { d["tlogs"][0]["publicKey"].erase("keyDetails"); }, "publicKey.keyDetails is missing"},
      {[](json& d) { d["tlogs"][0]["publicKey"]["rawBytes"] = "not base64!"; }, "publicKey.rawBytes is not base64"},
      {[](json& d) { d["tlogs"][0]["publicKey"]["rawBytes"] = "AAAA"; },
       "publicKey.rawBytes is refused: key https://rekor.sigstore.dev is not a DER SubjectPublicKeyInfo"},
      {[&](json& d) { d["tlogs"][0]["publicKey"]["rawBytes"] = ed25519_spki; },
       "publicKey.rawBytes holds an ed25519 key, not the PKIX_ECDSA_P256_SHA_256 its keyDetails names"},
      {[&](json& d) { d["ctlogs"][1]["publicKey"]["rawBytes"] = ed25519_spki; },
       "ctlogs[1] (https://ctfe.sigstore.dev/2022): publicKey.rawBytes holds an ed25519 key"},
      {[](json& d) { d["tlogs"][0]["publicKey"].erase("validFor"); }, "publicKey.validFor is missing"},
      {[](json& d) { d["tlogs"][0]["publicKey"]["validFor"]["start"] = nullptr; },
       "publicKey.validFor.start is missing"},
      {[](json& d) { d["tlogs"][0]["publicKey"]["validFor"]["start"] = "2021-01-12"; },
       "publicKey.validFor.start \"2021-01-12\" is not an RFC 3339 time"},
      {[](json& d) { d["tlogs"][0]["publicKey"]["validFor"]["end"] = "2020-01-01T00:00:00Z"; },
       "publicKey.validFor ends before it starts"},
      {[](json& d) { d["tlogs"][0].erase("logId"); }, "tlogs[0] (https://rekor.sigstore.dev): logId is missing"},
      {[](json& d) { d["tlogs"][0]["logId"] = json::object(); }, "logId.keyId is missing"},
      {[&](json& d) { d["tlogs"][0]["logId"]["keyId"] = d["ctlogs"][1]["logId"]["keyId"]; },
       "tlogs[0] (https://rekor.sigstore.dev): logId.keyId 3T0wasbHETJjGR4cmWc3AqJKXrjePK3/h4pygC8p7o4= is not its "
       "key's log id wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="},
      {[&](json& d) { d["ctlogs"][1]["logId"]["keyId"] = d["tlogs"][0]["logId"]["keyId"]; },
       "ctlogs[1] (https://ctfe.sigstore.dev/2022): logId.keyId wNI9"},
      {[](json& d) {
         d["tlogs"][1]["checkpointKeyId"] = {{"keyId", "AAAAAA=="}};
       },
       "tlogs[1] (https://log2025-1.rekor.sigstore.dev): checkpointKeyId.keyId AAAAAA== is not the start of its log "
       "id"},
      {[](json& d) {
         d["tlogs"][1]["checkpointKeyId"] = {{"keyId", "zxE="}};
       },
       "checkpointKeyId.keyId zxE= is not"},
      {[](json& d) { d["certificateAuthorities"][0] = 7; },
       "trusted root's certificateAuthorities[0] is not an object"},
      {[](json& d) { d["certificateAuthorities"][1].erase("certChain"); },
       "certificateAuthorities[1] (https://fulcio.sigstore.dev): certChain is missing"},
      {[](json& d) { d["certificateAuthorities"][1]["certChain"]["certificates"] = json::array(); },
       "certChain.certificates is not a list of one or more certificates"},
      {[](json& d) { d["certificateAuthorities"][1]["certChain"]["certificates"][1]["rawBytes"] = "AAAA"; },
       "certificateAuthorities[1] (https://fulcio.sigstore.dev): certChain.certificates[1].rawBytes is not a DER "
       "X.509 certificate"},
      {[&](json& d) {
         d["certificateAuthorities"][1]["certChain"]["certificates"][0]["rawBytes"] = base64_encode(
             unbase64(d["certificateAuthorities"][1]["certChain"]["certificates"][0]["rawBytes"].get<std::string>()) +
             "x");
       },
       "certChain.certificates[0].rawBytes is a DER X.509 certificate with bytes after it"},
      {[](json& d) { d["certificateAuthorities"][1].erase("validFor"); },
       "certificateAuthorities[1] (https://fulcio.sigstore.dev): validFor is missing"},
      {[](json& d) { d["certificateAuthorities"][1]["validFor"].erase("start"); }, "): validFor.start is missing"},
      {[](json& d) {
         d["timestampAuthorities"][0]["certChain"]["certificates"][0] = {{"rawBytes", "bm90IGEgY2VydA=="}};
       },
       "trusted root's timestampAuthorities[0] (https://timestamp.sigstore.dev/api/v1/timestamp): "
       "certChain.certificates[0].rawBytes is not a DER X.509 certificate"},
  };
  for (const auto& [edit, words] : cases) {
    json document = production_json();
    edit(document);
    SCOPED_TRACE(words);
    expect_reason(root_error(document.dump()), words);
  }
  expect_reason(root_error("{\"mediaType\": "), "trusted root is not JSON: ");
  expect_reason(root_error("[1, 2]"), "trusted root is not a JSON object");
  expect_reason(root_error(""), "trusted root is not JSON");
}

TEST(TrustedRootParseTest, BaseUrlsWithoutASchemeOrWithAPortNameTheirHost) {
  json document = production_json();
  document["tlogs"][0]["baseUrl"] = "rekor.sigstore.dev";
  document["tlogs"][1]["baseUrl"] = "https://log2025-1.rekor.sigstore.dev:443/api/v2";
  document["tlogs"][1]["logId"]["keyId"] = production_json()["tlogs"][1]["logId"]["keyId"];
  const TrustedRoot root = parsed_root(document.dump());
  ASSERT_EQ(root.tlogs().size(), 2u);
  EXPECT_EQ(root.tlogs()[0].key.name(), "rekor.sigstore.dev");
  EXPECT_EQ(root.tlogs()[1].key.name(), "log2025-1.rekor.sigstore.dev");
  // The Ed25519 log id mixes in the name: another host is another id, which the
  // document's logId then is not.
  document["tlogs"][1]["baseUrl"] = "https://log2025-2.rekor.sigstore.dev";
  expect_reason(root_error(document.dump()),
                "logId.keyId zxGZFVvd0FEmjR8WrFwMdcAJ9vtaY/QXf44Y1wUeP6A= is not its key's log id");
}

// --- look-ups ----------------------------------------------------------------------

TEST(TrustedRootLookupTest, TheTlogOfALogIdAtATime) {
  const TrustedRoot& root = production();
  const std::string rekor = unbase64("wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=");
  const FoundLog found = root.tlog(rekor, unix_seconds(1689177396));
  ASSERT_TRUE(found) << found.reason;
  EXPECT_EQ(found.log->key.name(), "rekor.sigstore.dev");
  EXPECT_TRUE(found.reason.empty());
  const FoundLog early = root.tlog(rekor, at("2021-01-12T11:53:26.999Z"));
  EXPECT_FALSE(early);
  EXPECT_EQ(early.reason,
            "tlogs entry https://rekor.sigstore.dev (log id wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=) is trusted "
            "from 2021-01-12T11:53:27Z on, not at 2021-01-12T11:53:26.999Z");
  EXPECT_TRUE(root.tlog(rekor, at("2021-01-12T11:53:27Z")));  // the start is in
  const FoundLog unknown = root.tlog(std::string(32, '\x01'), unix_seconds(1689177396));
  EXPECT_EQ(unknown.reason,
            "no tlogs entry of the trusted root has log id AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
  // Rekor v2 of production, from 2025-09-23; a ctlog's id is not a tlog's.
  EXPECT_TRUE(root.tlog(unbase64("zxGZFVvd0FEmjR8WrFwMdcAJ9vtaY/QXf44Y1wUeP6A="), at("2025-09-23T00:00:00Z")));
  EXPECT_FALSE(root.tlog(root.ctlogs()[1].key.log_id(), unix_seconds(1689177396)));
}

TEST(TrustedRootLookupTest, ValidForIsClosedAtItsEnd) {
  // trust-root-tlog-validity-end-inclusive: Rekor's key trusted up to the very second
  // its happy-path-v0.1 entry was integrated, 1689177396.
  const TrustedRoot root = root_of("trust-root-tlog-validity-end-inclusive/trusted_root.json");
  const std::string rekor = unbase64("wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=");
  EXPECT_TRUE(root.tlog(rekor, unix_seconds(1689177396)));
  const FoundLog after = root.tlog(rekor, unix_seconds(1689177396) + 1ns);
  EXPECT_FALSE(after);
  expect_reason(after.reason,
                "(log id wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=) is trusted from "
                "2021-01-12T11:53:27Z to 2023-07-12T15:56:36Z, not at 2023-07-12T15:56:36.000000001Z");
}

TEST(TrustedRootLookupTest, TheCtlogOfALogIdAtATime) {
  const TrustedRoot& root = production();
  const std::string test_log = unbase64("CGCS8ChS/2hF0dFrJ4ScRWcYrBY9wzjSbea8IgY2b3I=");
  const std::string log_2022 = unbase64("3T0wasbHETJjGR4cmWc3AqJKXrjePK3/h4pygC8p7o4=");
  const FoundLog last = root.ctlog(test_log, at("2022-10-31T23:59:59.999Z"));
  ASSERT_TRUE(last);
  EXPECT_EQ(last.log->base_url, "https://ctfe.sigstore.dev/test");
  expect_reason(root.ctlog(test_log, at("2022-11-01T00:00:00Z")).reason,
                "ctlogs entry https://ctfe.sigstore.dev/test (log id CGCS8ChS/2hF0dFrJ4ScRWcYrBY9wzjSbea8IgY2b3I=) is "
                "trusted from 2021-03-14T00:00:00Z to 2022-10-31T23:59:59.999Z, not at 2022-11-01T00:00:00Z");
  EXPECT_EQ(root.ctlog(log_2022, unix_seconds(1689177396)).log->base_url, "https://ctfe.sigstore.dev/2022");
  // A log id of an entry left out says why it was.
  const std::string rsa_log = unbase64("G3wUKk6ZK6ffHh/FdCRUE2wVekyzHEEIpSG4savnv0w=");
  expect_reason(staging().ctlog(rsa_log, at("2022-01-01T00:00:00Z")).reason,
                "trusted root's ctlogs[0] (https://ctfe.sigstage.dev/test), trusted from");
  EXPECT_FALSE(staging().ctlog(log_2022, unix_seconds(1689177396)));
}

TEST(TrustedRootLookupTest, TheCertificateAuthoritiesAtATime) {
  const TrustedRoot& root = production();
  const auto count_at = [&root](const char* time) { return root.certificate_authorities_at(at(time)).size(); };
  EXPECT_EQ(count_at("2021-03-07T03:20:28Z"), 0u);
  EXPECT_EQ(count_at("2021-03-07T03:20:29Z"), 1u);
  EXPECT_EQ(count_at("2022-06-01T00:00:00Z"), 2u);  // the rotation's overlap
  EXPECT_EQ(count_at("2022-12-31T23:59:59.999Z"), 2u);
  EXPECT_EQ(count_at("2023-01-01T00:00:00Z"), 1u);
  EXPECT_EQ(root.certificate_authorities_at(at("2023-07-12T15:56:36Z"))[0]->chain.size(), 2u);
  EXPECT_EQ(count_at("2100-01-01T00:00:00Z"), 1u);  // no end
}

// ===================================================================================
// Fulcio certificates: the conformance corpus
// ===================================================================================

TEST(FulcioChainTest, ConformanceLeavesChainToTheirRootsAtTheirSigningTime) {
  for (const Case& c : chaining) {
    SCOPED_TRACE(c.name);
    const CertificateChain chain = chain_of(leaf_of(c.name), root_of(c.trusted_root), signing_time_of(c.name));
    ASSERT_GE(chain.size(), 2u);
    EXPECT_EQ(chain.front().der(), leaf_of(c.name).der());
    EXPECT_EQ(chain.back().subject(), c.anchor);
  }
  // The production chain: leaf, intermediate, root.
  const CertificateChain chain = chain_of(leaf_of("happy-path-v0.3"), production(), unix_seconds(1710869186));
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[1].subject(), "CN=sigstore-intermediate,O=sigstore.dev");
}

TEST(FulcioChainTest, AStagingLeafDoesNotChainToProduction) {
  // bundle-from-wrong-instance_fail: a real staging certificate.
  const std::string error = chain_error(leaf_of("bundle-from-wrong-instance_fail"), production(),
                                        signing_time_of("bundle-from-wrong-instance_fail"));
  EXPECT_EQ(error,
            "certificate does not chain to a certificate authority of the trusted root at the signing time "
            "2023-07-12T17:35:19Z: https://fulcio.sigstore.dev: unable to get local issuer certificate (the signing "
            "certificate)");
  expect_reason(chain_error(leaf_of("rekor2-happy-path"), production(), signing_time_of("rekor2-happy-path")),
                "unable to get local issuer certificate");
  // And the other way round.
  expect_reason(chain_error(leaf_of("happy-path-v0.3"), staging(), unix_seconds(1710869186)),
                "https://fulcio.sigstage.dev: unable to get local issuer certificate");
}

TEST(FulcioChainTest, ConformanceLeavesUsedOutsideTheirValidityAreRefused) {
  // integrated-time-in-future_fail: logged six minutes after the certificate expired.
  EXPECT_EQ(chain_error(leaf_of("integrated-time-in-future_fail"), production(),
                        signing_time_of("integrated-time-in-future_fail")),
            "certificate had expired at the signing time 2026-05-07T15:34:11Z: it was valid from "
            "2026-05-07T15:18:10Z to 2026-05-07T15:28:10Z");
  const TrustedRoot custom = root_of("intoto-with-custom-trust-root/trusted_root.json");
  // intoto-set-outside-signing-cert-validity_fail: logged a day after.
  expect_reason(chain_error(leaf_of("intoto-set-outside-signing-cert-validity_fail"), custom,
                            signing_time_of("intoto-set-outside-signing-cert-validity_fail")),
                "certificate had expired at the signing time 2023-02-02T00:00:00Z");
  // intoto-expired-certificate_fail: a certificate of 2030 in an entry of 2023.
  EXPECT_EQ(chain_error(leaf_of("intoto-expired-certificate_fail"), custom,
                        signing_time_of("intoto-expired-certificate_fail")),
            "certificate was not yet valid at the signing time 2023-02-01T00:00:00Z: it is valid from "
            "2030-01-01T00:00:00Z to 2030-01-01T00:10:00Z");
  // A good leaf at the edges of its period: both ends are in.
  const Certificate leaf = leaf_of("happy-path-v0.3");
  chain_of(leaf, production(), leaf.not_before());
  chain_of(leaf, production(), leaf.not_after());
  expect_reason(chain_error(leaf, production(), leaf.not_after() + 1ms), "had expired");
}

TEST(FulcioChainTest, TheLeafAloneIsChecked) {
  // bundle-with-root-cert_fail carries, after its production leaf, staging's root and
  // intermediate: only the trusted root supplies issuers, and the leaf chains through
  // production's (FulcioChainTest.ConformanceLeavesChainToTheirRootsAtTheirSigningTime).
  const json material = bundle_of("bundle-with-root-cert_fail").at("verificationMaterial");
  const json& certificates = material.at("x509CertificateChain").at("certificates");
  ASSERT_EQ(certificates.size(), 3u);
  const Certificate bundled_root = certificate_of(unbase64(certificates.at(1).at("rawBytes").get<std::string>()));
  EXPECT_EQ(bundled_root.der(), staging().certificate_authorities()[0].anchor().der());
  // A CA's certificate is no signing certificate, even one of the trusted root itself.
  const Certificate& production_root = production().certificate_authorities()[1].anchor();
  for (const Certificate* ca : {&bundled_root, &production_root}) {
    SCOPED_TRACE(ca->subject());
    EXPECT_EQ(chain_error(*ca, production(), unix_seconds(1683317662)),
              "certificate is a CA's, not one that signs artifacts");
  }
}

TEST(FulcioSctTest, ConformanceLeavesCarryAnSctOfTheirRootsCtLog) {
  // Production's 2022 log, the custom root's (whose CT key is also its Rekor key), the
  // local TesseraCT with SCT extensions and an RSA issuer, staging's 2022-2 and 2026 logs.
  for (const Case& c : chaining) {
    SCOPED_TRACE(c.name);
    const TrustedRoot root = root_of(c.trusted_root);
    expect_passed(verify_embedded_sct(chain_of(leaf_of(c.name), root, signing_time_of(c.name)), root));
  }
}

TEST(FulcioSctTest, ConformanceSctFailuresFail) {
  // invalid-ct-key_fail: production's leaf and CAs, but staging's CT logs.
  const TrustedRoot root = root_of("invalid-ct-key_fail/trusted_root.json");
  const CertificateChain chain = chain_of(leaf_of("invalid-ct-key_fail"), root, unix_seconds(1689177396));
  EXPECT_EQ(verify_embedded_sct(chain, root).reason,
            "certificate's embedded SCT does not verify: no ctlogs entry of the trusted root has log id "
            "3T0wasbHETJjGR4cmWc3AqJKXrjePK3/h4pygC8p7o4=");
  // A real SCT checked against the wrong issuer key: the root's, not the intermediate's.
  const CertificateChain real = chain_of(leaf_of("happy-path-v0.2"), production(), unix_seconds(1689177396));
  ASSERT_EQ(real.size(), 3u);
  expect_failure(verify_embedded_sct({real[0], real[2]}, production()),
                 "log https://ctfe.sigstore.dev/2022's signature is not over this certificate and its issuer's key");
  // Without the issuer there is nothing to check it with.
  expect_failure(verify_embedded_sct({real[0]}, production()), "the chain has none");
  // A root whose 2022 CT log starts after the SCT was made.
  json document = production_json();
  document["ctlogs"][1]["publicKey"]["validFor"]["start"] = "2023-07-13T00:00:00Z";
  expect_failure(verify_embedded_sct(real, parsed_root(document.dump())),
                 "ctlogs entry https://ctfe.sigstore.dev/2022 (log id 3T0wasbHETJjGR4cmWc3AqJKXrjePK3/h4pygC8p7o4=) "
                 "is trusted from 2023-07-13T00:00:00Z on, not at 2023-07-12T15:56:35.979Z");
}

TEST(FulcioIdentityTest, ConformanceLeavesNameTheirSigners) {
  // Each case's identity and issuer files, or the suite's defaults.
  const char* cases[] = {"happy-path-v0.1",
                         "happy-path-v0.2",
                         "happy-path-v0.3",
                         "intoto-with-custom-trust-root",
                         "bundle-with-sct-with-extensions",
                         "rekor2-happy-path",
                         "rekor2-dsse-happy-path",
                         "integrated-time-in-future_fail",
                         "intoto-expired-certificate_fail"};
  const auto line = [](std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
  };
  for (const char* name : cases) {
    SCOPED_TRACE(name);
    const std::string dir(name);
    const bool own = testing_support::has_sigstore_fixture(dir + "/identity");
    const FulcioIdentity identity = identity_of(leaf_of(name));
    EXPECT_EQ(identity.subject, own ? line(sigstore_fixture(dir + "/identity")) : beacon);
    EXPECT_EQ(identity.issuer, own ? line(sigstore_fixture(dir + "/issuer")) : github_actions);
  }
  const FulcioIdentity google = identity_of(leaf_of("integrated-time-in-future_fail"));
  EXPECT_EQ(google.kind, FulcioIdentity::Kind::email);
  EXPECT_EQ(google.subject, "untrusted-sa@sigstore-conformance.iam.gserviceaccount.com");
  EXPECT_EQ(google.issuer, "https://accounts.google.com");
  const FulcioIdentity email = identity_of(leaf_of("bundle-with-root-cert_fail"));
  EXPECT_EQ(email.kind, FulcioIdentity::Kind::email);
  EXPECT_EQ(email.subject, "a@tny.town");
  EXPECT_EQ(email.issuer, "https://github.com/login/oauth");
  EXPECT_TRUE(email.source_repository_uri.empty());
}

TEST(FulcioIdentityTest, AGitHubActionsLeafCarriesItsWorkflow) {
  const FulcioIdentity id = identity_of(leaf_of("happy-path-v0.3"));
  const std::string repository = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon";
  EXPECT_EQ(id.kind, FulcioIdentity::Kind::uri);
  EXPECT_EQ(id.subject, beacon);
  EXPECT_EQ(id.issuer, github_actions);
  EXPECT_EQ(id.build_signer_uri, beacon);  // a 148-byte UTF8String: DER's long form
  EXPECT_EQ(id.build_signer_digest, "c7b3dfb335f051e1c86bda4c716fac97df62ad81");
  EXPECT_EQ(id.runner_environment, "github-hosted");
  EXPECT_EQ(id.source_repository_uri, repository);
  EXPECT_EQ(id.source_repository_digest, "c7b3dfb335f051e1c86bda4c716fac97df62ad81");
  EXPECT_EQ(id.source_repository_ref, "refs/heads/main");
  EXPECT_EQ(id.source_repository_identifier, "632596897");
  EXPECT_EQ(id.source_repository_owner_uri, "https://github.com/sigstore-conformance");
  EXPECT_EQ(id.source_repository_owner_identifier, "131804563");
  EXPECT_EQ(id.build_config_uri, beacon);
  EXPECT_EQ(id.build_config_digest, "c7b3dfb335f051e1c86bda4c716fac97df62ad81");
  EXPECT_EQ(id.build_trigger, "workflow_dispatch");
  EXPECT_EQ(id.run_invocation_uri, repository + "/actions/runs/8347481628/attempts/1");
  EXPECT_EQ(id.source_repository_visibility, "public");
  EXPECT_TRUE(id.deployment_environment.empty());
  EXPECT_TRUE(id.token_subject.empty());
  // The deprecated GitHub extensions, raw.
  EXPECT_EQ(id.github_workflow_trigger, "workflow_dispatch");
  EXPECT_EQ(id.github_workflow_sha, "c7b3dfb335f051e1c86bda4c716fac97df62ad81");
  EXPECT_EQ(id.github_workflow_name, "Extremely dangerous OIDC beacon");
  EXPECT_EQ(id.github_workflow_repository, "sigstore-conformance/extremely-dangerous-public-oidc-beacon");
  EXPECT_EQ(id.github_workflow_ref, "refs/heads/main");
}

// ===================================================================================
// Fulcio certificates made here
// ===================================================================================

TEST(FulcioMadeHereTest, AGoodLeafChainsCarriesItsSctAndNamesItsSigner) {
  const Certificate leaf = make_leaf(Leaf{});
  const CertificateChain chain = chain_of(leaf, test_root(), signed_at);
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[1].subject(), "CN=fulcio intermediate,O=pullgate.test");
  EXPECT_EQ(chain[2].subject(), "CN=fulcio root,O=pullgate.test");
  expect_passed(verify_embedded_sct(chain, test_root()));
  const FulcioIdentity identity = identity_of(leaf);
  EXPECT_EQ(identity.subject, workflow);
  EXPECT_EQ(identity.issuer, github_actions);
  EXPECT_EQ(identity.source_repository_uri, "https://github.com/octo/app");
  EXPECT_EQ(identity.source_repository_ref, "refs/tags/v1.0.0");
  // The anchor may be the intermediate itself (trustroot.proto).
  const TrustedRoot intermediate_only = parsed_root(trusted_root_json({fulcio_ca().intermediate.get()}));
  const CertificateChain partial = chain_of(leaf, intermediate_only, signed_at);
  EXPECT_EQ(partial.size(), 2u);
  expect_passed(verify_embedded_sct(partial, intermediate_only));
}

TEST(FulcioMadeHereTest, ALeafOfAnotherAuthorityDoesNotChain) {
  static const Authority other("other");
  Leaf spec;
  spec.issuer = &other;
  const Certificate leaf = make_leaf(spec);
  EXPECT_EQ(chain_error(leaf, test_root(), signed_at),
            "certificate does not chain to a certificate authority of the trusted root at the signing time "
            "2024-03-01T12:05:00Z: https://fulcio.test: unable to get local issuer certificate (the signing "
            "certificate)");
  // An impostor of the same names: its intermediate claims to be the trusted one.
  static const Authority impostor("fulcio");
  spec.issuer = &impostor;
  expect_reason(chain_error(make_leaf(spec), test_root(), signed_at), "does not chain to a certificate authority");
}

TEST(FulcioMadeHereTest, TheAuthorityMustBeTrustedAtTheSigningTime) {
  // The root trusts the CA until 2024-03-01T12:04:59Z: a minute too early.
  const TrustedRoot ended = parsed_root(trusted_root_json({fulcio_ca().intermediate.get(), fulcio_ca().root.get()},
                                                          "2023-01-01T00:00:00Z", "2024-03-01T12:04:59Z"));
  const Certificate leaf = make_leaf(Leaf{});
  EXPECT_EQ(chain_error(leaf, ended, signed_at),
            "no certificate authority of the trusted root is trusted at the signing time 2024-03-01T12:05:00Z "
            "(https://fulcio.test from 2023-01-01T00:00:00Z to 2024-03-01T12:04:59Z)");
  const TrustedRoot later = parsed_root(
      trusted_root_json({fulcio_ca().intermediate.get(), fulcio_ca().root.get()}, "2024-03-01T12:05:00.001Z"));
  expect_reason(chain_error(leaf, later, signed_at), "no certificate authority of the trusted root is trusted");
  chain_of(leaf,
           parsed_root(trusted_root_json({fulcio_ca().intermediate.get(), fulcio_ca().root.get()},
                                         "2023-01-01T00:00:00Z", "2024-03-01T12:05:00Z")),
           signed_at);
}

TEST(FulcioMadeHereTest, EveryCertificateOfTheChainMustBeValidThen) {
  // Up to the second its intermediate expires (RFC 5280's closed period, which OpenSSL
  // alone would not grant), not a second more.
  static const Authority edge("edge", "codeSigning", signed_at);
  Leaf at_edge;
  at_edge.issuer = &edge;
  const Certificate edge_leaf = make_leaf(at_edge);
  const TrustedRoot edge_root = parsed_root(trusted_root_json({edge.intermediate.get(), edge.root.get()}));
  chain_of(edge_leaf, edge_root, signed_at);
  expect_reason(chain_error(edge_leaf, edge_root, signed_at + 1s),
                "https://fulcio.test: certificate has expired (CN=edge intermediate,O=pullgate.test)");
  // The root trusts the CA, but its intermediate expired a month before the signing.
  static const Authority expired("expiring", "codeSigning", at("2024-02-01T00:00:00Z"));
  Leaf spec;
  spec.issuer = &expired;
  const TrustedRoot root = parsed_root(trusted_root_json({expired.intermediate.get(), expired.root.get()}));
  expect_reason(chain_error(make_leaf(spec), root, signed_at),
                "https://fulcio.test: certificate has expired (CN=expiring intermediate,O=pullgate.test)");
}

TEST(FulcioMadeHereTest, TheSigningTimeMustBeInTheLeafsPeriod) {
  const Certificate leaf = make_leaf(Leaf{});
  EXPECT_EQ(chain_error(leaf, test_root(), leaf_to + 1s),
            "certificate had expired at the signing time 2024-03-01T12:10:01Z: it was valid from 2024-03-01T12:00:00Z "
            "to 2024-03-01T12:10:00Z");
  EXPECT_EQ(chain_error(leaf, test_root(), leaf_from - 1ms),
            "certificate was not yet valid at the signing time 2024-03-01T11:59:59.999Z: it is valid from "
            "2024-03-01T12:00:00Z to 2024-03-01T12:10:00Z");
  chain_of(leaf, test_root(), leaf_from);
  chain_of(leaf, test_root(), leaf_to);
}

TEST(FulcioMadeHereTest, TheLeafMustBeForCodeSigning) {
  Leaf server;
  server.with(NID_ext_key_usage, "serverAuth,clientAuth");
  EXPECT_EQ(chain_error(make_leaf(server), test_root(), signed_at),
            "certificate's extended key usage does not include code signing");
  Leaf none;
  none.without(NID_ext_key_usage);
  EXPECT_EQ(chain_error(make_leaf(none), test_root(), signed_at),
            "certificate has no extended key usage; code signing is needed");
  // A CA's certificate, even for code signing, signs certificates, not artifacts:
  // basicConstraints says so (though its key usage lacks keyCertSign), or its key
  // usage does.
  Leaf ca;
  ca.extensions.emplace_back(NID_basic_constraints, "critical,CA:TRUE");
  EXPECT_EQ(chain_error(make_leaf(ca), test_root(), signed_at), "certificate is a CA's, not one that signs artifacts");
  Leaf signs_certificates;
  signs_certificates.with(NID_key_usage, "critical,digitalSignature,keyCertSign");
  EXPECT_EQ(chain_error(make_leaf(signs_certificates), test_root(), signed_at),
            "certificate is a CA's, not one that signs artifacts");
}

TEST(FulcioMadeHereTest, AnIssuerThatRestrictsItsUsagesMustAllowCodeSigning) {
  static const Authority web("web", "serverAuth");
  Leaf spec;
  spec.issuer = &web;
  const TrustedRoot root = parsed_root(trusted_root_json({web.intermediate.get(), web.root.get()}));
  EXPECT_EQ(chain_error(make_leaf(spec), root, signed_at),
            "issuer CN=web intermediate,O=pullgate.test may not issue code-signing certificates (its extended key "
            "usage)");
  // Any usage allows it.
  static const Authority any("any", "anyExtendedKeyUsage");
  spec.issuer = &any;
  chain_of(make_leaf(spec), parsed_root(trusted_root_json({any.intermediate.get(), any.root.get()})), signed_at);
}

TEST(FulcioMadeHereTest, EachSctFailureSaysWhy) {
  const auto sct_check = [](std::vector<Sct> scts) {
    Leaf spec;
    spec.scts = std::move(scts);
    const Certificate leaf = make_leaf(spec);
    return verify_embedded_sct(chain_of(leaf, test_root(), signed_at), test_root());
  };
  expect_passed(sct_check({Sct::good}));
  EXPECT_EQ(sct_check({}).reason,
            "certificate has no embedded SCT (extension 1.3.6.1.4.1.11129.2.4.2): no CT log vouches for it");
  expect_failure(sct_check({Sct::unknown_log}),
                 "certificate's embedded SCT does not verify: no ctlogs entry of the trusted root has log id ");
  EXPECT_EQ(sct_check({Sct::other_certificate}).reason,
            "certificate's embedded SCT does not verify: log https://ct.test/2024's signature is not over this "
            "certificate and its issuer's key");
  expect_failure(sct_check({Sct::other_issuer}), "log https://ct.test/2024's signature is not over this certificate");
  const Check early = sct_check({Sct::before_log});
  expect_failure(early, "certificate's embedded SCT does not verify: ctlogs entry https://ct.test/2024 (log id ");
  expect_failure(early, ") is trusted from 2023-06-01T00:00:00Z on, not at 2023-05-31T23:59:59.999Z");
  EXPECT_EQ(sct_check({Sct::version_2}).reason,
            "certificate's embedded SCT does not verify: it is not an SCT of version 1");
  EXPECT_EQ(sct_check({Sct::rsa_signature}).reason,
            "certificate's embedded SCT does not verify: log https://ct.test/2024 signed it with another algorithm "
            "than ECDSA with SHA-256");
}

TEST(FulcioMadeHereTest, OneGoodSctOfSeveralSuffices) {
  // sigstore-go's threshold of one: SCTs of logs the root does not know are passed over.
  const auto sct_check = [](std::vector<Sct> scts) {
    Leaf spec;
    spec.scts = std::move(scts);
    return verify_embedded_sct(chain_of(make_leaf(spec), test_root(), signed_at), test_root());
  };
  expect_passed(sct_check({Sct::unknown_log, Sct::good}));
  expect_passed(sct_check({Sct::good, Sct::other_certificate}));
  const Check none = sct_check({Sct::unknown_log, Sct::other_issuer});
  expect_failure(none,
                 "none of the certificate's 2 embedded SCTs verifies: SCT 1: no ctlogs entry of the trusted "
                 "root has log id ");
  expect_failure(none, "; SCT 2: log https://ct.test/2024's signature is not over this certificate");
}

TEST(FulcioMadeHereTest, AnSctSurvivesOnlyOnItsOwnCertificate) {
  // Another leaf's valid SCT list copied into this one: the log never saw this TBS.
  const Certificate donor = make_leaf(Leaf{});
  X509* donor_x509 = donor.x509();
  const int at_sct = X509_get_ext_by_NID(donor_x509, NID_ct_precert_scts, -1);
  ASSERT_GE(at_sct, 0);
  const ASN1_OCTET_STRING* list = X509_EXTENSION_get_data(X509_get_ext(donor_x509, at_sct));
  Leaf spec;
  spec.scts = {};
  const Certificate bare = make_leaf(spec);
  X509Ptr copy(X509_dup(bare.x509()));
  add_raw_extension(
      copy.get(), "1.3.6.1.4.1.11129.2.4.2",
      std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(list)), std::size_t(ASN1_STRING_length(list))));
  ASSERT_GT(X509_sign(copy.get(), fulcio_ca().intermediate_key.get(), EVP_sha256()), 0);
  const Certificate transplanted = certificate_of(der_of(copy.get()));
  expect_failure(verify_embedded_sct(chain_of(transplanted, test_root(), signed_at), test_root()),
                 "log https://ct.test/2024's signature is not over this certificate");
}

TEST(FulcioMadeHereTest, SubjectAlternativeNamesFulcioGives) {
  Leaf email;
  email.with(NID_subject_alt_name, "critical,email:signer@example.com");
  const FulcioIdentity by_email = identity_of(make_leaf(email));
  EXPECT_EQ(by_email.kind, FulcioIdentity::Kind::email);
  EXPECT_EQ(by_email.subject, "signer@example.com");
  Leaf username;
  username.with(NID_subject_alt_name, "critical,otherName:1.3.6.1.4.1.57264.1.7;UTF8:octocat");
  const FulcioIdentity by_name = identity_of(make_leaf(username));
  EXPECT_EQ(by_name.kind, FulcioIdentity::Kind::username);
  EXPECT_EQ(by_name.subject, "octocat");
  Leaf spiffe;
  spiffe.with(NID_subject_alt_name, "critical,URI:spiffe://example.org/ns/ci/sa/builder");
  EXPECT_EQ(identity_of(make_leaf(spiffe)).subject, "spiffe://example.org/ns/ci/sa/builder");
}

TEST(FulcioMadeHereTest, ALeafWithoutOneFulcioNameNamesNoSigner) {
  Leaf none;
  none.without(NID_subject_alt_name);
  EXPECT_EQ(identity_error(make_leaf(none)), "certificate has no subject alternative name, so it names no signer");
  Leaf two;
  two.with(NID_subject_alt_name, "critical,URI:" + workflow + ",email:other@example.com");
  EXPECT_EQ(identity_error(make_leaf(two)),
            "certificate has 2 subject alternative names; a Fulcio certificate names one signer");
  Leaf dns;
  dns.with(NID_subject_alt_name, "critical,DNS:builder.example.com");
  expect_reason(identity_error(make_leaf(dns)),
                "certificate's subject alternative name is not a URI, an email address or a username");
  Leaf other;
  other.with(NID_subject_alt_name, "critical,otherName:1.2.3.4;UTF8:octocat");
  expect_reason(identity_error(make_leaf(other)),
                "certificate's subject alternative name is an otherName of type \"1.2.3.4\", not a Fulcio username");
  // A leaf without a name still chains: the identity, not the chain, is what it lacks.
  chain_of(make_leaf(none), test_root(), signed_at);
}

TEST(FulcioMadeHereTest, TheIssuerIsReadFromEitherExtension) {
  const auto issuer_of = [](std::vector<std::pair<std::string, std::string>> fulcio) {
    Leaf spec;
    spec.fulcio = std::move(fulcio);
    return read_fulcio_identity(make_leaf(spec));
  };
  auto legacy = issuer_of({{"1.3.6.1.4.1.57264.1.1", "https://accounts.example.com"}});
  ASSERT_TRUE(std::holds_alternative<FulcioIdentity>(legacy));
  EXPECT_EQ(std::get<FulcioIdentity>(legacy).issuer, "https://accounts.example.com");
  auto v2 = issuer_of({{"1.3.6.1.4.1.57264.1.8", utf8_string("https://accounts.example.com")}});
  ASSERT_TRUE(std::holds_alternative<FulcioIdentity>(v2));
  EXPECT_EQ(std::get<FulcioIdentity>(v2).issuer, "https://accounts.example.com");
  // Refused: none, two that disagree, .8 not a UTF8String (the raw form of .1), an
  // extension twice, a UTF8String with bytes after it.
  const std::vector<std::pair<std::vector<std::pair<std::string, std::string>>, std::string>> refused = {
      {{}, "certificate names no OIDC issuer (extension 1.3.6.1.4.1.57264.1.8 or .1.1)"},
      {{{"1.3.6.1.4.1.57264.1.1", "https://a.example"}, {"1.3.6.1.4.1.57264.1.8", utf8_string("https://b.example")}},
       "certificate names two OIDC issuers, \"https://a.example\" and \"https://b.example\""},
      {{{"1.3.6.1.4.1.57264.1.8", "https://a.example"}},
       "certificate's extension 1.3.6.1.4.1.57264.1.8 is not a DER UTF8String, as Fulcio writes it"},
      {{{"1.3.6.1.4.1.57264.1.8", utf8_string("https://a.example")},
        {"1.3.6.1.4.1.57264.1.12", utf8_string("https://github.com/octo/app")},
        {"1.3.6.1.4.1.57264.1.12", utf8_string("https://github.com/evil/app")}},
       "certificate has extension 1.3.6.1.4.1.57264.1.12 twice"},
      {{{"1.3.6.1.4.1.57264.1.8", utf8_string("https://a.example") + "x"}}, "is not a DER UTF8String"},
      {{{"1.3.6.1.4.1.57264.1.8", der(0x13, "https://a.example")}}, "is not a DER UTF8String"},  // PrintableString
  };
  for (const auto& [fulcio, words] : refused) {
    SCOPED_TRACE(words);
    auto identity = issuer_of(fulcio);
    ASSERT_TRUE(std::holds_alternative<std::string>(identity));
    expect_reason(std::get<std::string>(identity), words);
  }
  // The same issuer in both, and extensions this code does not know, are fine.
  auto both = issuer_of({{"1.3.6.1.4.1.57264.1.1", "https://a.example"},
                         {"1.3.6.1.4.1.57264.1.8", utf8_string("https://a.example")},
                         {"1.3.6.1.4.1.57264.1.99", "anything"},
                         {"1.3.6.1.4.1.57264.2", "anything"}});
  ASSERT_TRUE(std::holds_alternative<FulcioIdentity>(both));
  EXPECT_EQ(std::get<FulcioIdentity>(both).issuer, "https://a.example");
}

TEST(FulcioMadeHereTest, EveryCiExtensionIsReadIntoItsField) {
  const std::vector<std::pair<int, std::string FulcioIdentity::*>> fields = {
      {9, &FulcioIdentity::build_signer_uri},
      {10, &FulcioIdentity::build_signer_digest},
      {11, &FulcioIdentity::runner_environment},
      {12, &FulcioIdentity::source_repository_uri},
      {13, &FulcioIdentity::source_repository_digest},
      {14, &FulcioIdentity::source_repository_ref},
      {15, &FulcioIdentity::source_repository_identifier},
      {16, &FulcioIdentity::source_repository_owner_uri},
      {17, &FulcioIdentity::source_repository_owner_identifier},
      {18, &FulcioIdentity::build_config_uri},
      {19, &FulcioIdentity::build_config_digest},
      {20, &FulcioIdentity::build_trigger},
      {21, &FulcioIdentity::run_invocation_uri},
      {22, &FulcioIdentity::source_repository_visibility},
      {23, &FulcioIdentity::deployment_environment},
      {24, &FulcioIdentity::token_subject},
  };
  Leaf spec;
  spec.fulcio = {{"1.3.6.1.4.1.57264.1.8", utf8_string(github_actions)}};
  for (const auto& [arc, field] : fields) {
    spec.fulcio.emplace_back("1.3.6.1.4.1.57264.1." + std::to_string(arc), utf8_string("value " + std::to_string(arc)));
  }
  const FulcioIdentity identity = identity_of(make_leaf(spec));
  for (const auto& [arc, field] : fields) EXPECT_EQ(identity.*field, "value " + std::to_string(arc)) << arc;
  EXPECT_TRUE(identity.github_workflow_ref.empty());
}

}  // namespace
}  // namespace pullgate::policy::sigstore
