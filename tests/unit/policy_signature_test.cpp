// Cosign simple signing, DSSE envelopes, Sigstore bundles, artifact manifests, base64
// and the SBOM helpers. Keys are generated here and payloads signed in code, laid out
// exactly as docs (notes/signatures-contract.md) describe them.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "policy/signature.hpp"
#include "registry/base64.hpp"

namespace pullgate::policy {
namespace {

using pullgate::registry::base64_encode;

using Result = SignatureCheck::Result;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string public_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), key), 1);
  return bio_text(bio.get());
}

std::string private_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  return bio_text(bio.get());
}

// A self-signed certificate for `key`: what users paste when they mean its public key.
std::string certificate_pem(EVP_PKEY* key) {
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("signer"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_X509(bio.get(), cert.get()), 1);
  return bio_text(bio.get());
}

std::string sign_with(EVP_PKEY* key, const EVP_MD* md, std::string_view message, bool pss = false) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* key_ctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), &key_ctx, md, nullptr, key), 1);
  if (pss) {
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(key_ctx, RSA_PKCS1_PSS_PADDING), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(key_ctx, RSA_PSS_SALTLEN_DIGEST), 1);
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(message.data());
  std::size_t size = 0;
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &size, bytes, message.size()), 1);
  std::string signature(size, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size, bytes, message.size()),
            1);
  signature.resize(size);
  return signature;
}

PublicKey loaded(const std::string& name, const std::string& pem) {
  auto parsed = PublicKey::from_pem(name, pem);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    ADD_FAILURE() << name << ": " << *error;
    return PublicKey{};
  }
  return std::get<PublicKey>(std::move(parsed));
}

std::string from_pem_error(const std::string& pem) {
  auto parsed = PublicKey::from_pem("k", pem);
  if (auto* error = std::get_if<std::string>(&parsed)) return *error;
  ADD_FAILURE() << "accepted: " << pem;
  return {};
}

// A private key with the matching policy key and the digest its algorithm signs with.
struct Signer {
  Pkey key;
  const EVP_MD* md;
  PublicKey public_key;
  std::string sign(std::string_view message) const { return sign_with(key.get(), md, message); }
};

Signer make_signer(const std::string& name, EVP_PKEY* key, const EVP_MD* md) {
  return Signer{Pkey(key), md, loaded(name, public_pem(key))};
}

// Generated once: RSA key generation is slow.
struct Keys {
  Signer p256 = make_signer("release", EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_sha256());
  Signer p384 = make_signer("p384", EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"), EVP_sha384());
  Signer rsa = make_signer("rsa", EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048)),
                           EVP_sha256());
  Signer ed25519 = make_signer("ci", EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), nullptr);
  Signer stranger = make_signer("stranger", EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_sha256());
};

const Keys& keys() {
  static const Keys generated;
  return generated;
}

std::vector<const Signer*> every_key_type() {
  return {&keys().p256, &keys().p384, &keys().rsa, &keys().ed25519};
}

// The policy's keys in most tests: release (P-256) and ci (Ed25519).
std::vector<PublicKey> policy_keys() { return {keys().p256.public_key, keys().ed25519.public_key}; }

const std::string hex_a(64, 'a');
const std::string hex_b(64, 'b');
const std::string digest_a = "sha256:" + hex_a;
const std::string digest_b = "sha256:" + hex_b;

std::string simple_payload(const std::string& digest, const std::string& type = std::string(cosign_signature_type),
                           const std::string& digest_key = "docker-manifest-digest") {
  return R"({"critical":{"identity":{"docker-reference":"registry.test/app"},"image":{")" + digest_key + R"(":")" +
         digest + R"("},"type":")" + type + R"("},"optional":null})";
}

std::string statement(const std::string& hex, const std::string& predicate = std::string(cosign_sign_predicate)) {
  return R"({"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"registry.test/app","digest":{"sha256":")" +
         hex + R"("}}],"predicateType":")" + predicate + R"(","predicate":{}})";
}

std::string pae(const std::string& type, const std::string& body) {
  return "DSSEv1 " + std::to_string(type.size()) + " " + type + " " + std::to_string(body.size()) + " " + body;
}

std::string envelope(const std::string& body, const std::vector<std::string>& signatures,
                     const std::string& payload_type = std::string(in_toto_payload_type)) {
  std::string entries;
  for (const std::string& signature : signatures) {
    entries += (entries.empty() ? "" : ",") + std::string(R"({"sig":")") + base64_encode(signature) + R"(","keyid":""})";
  }
  return R"({"payload":")" + base64_encode(body) + R"(","payloadType":")" + payload_type + R"(","signatures":[)" +
         entries + "]}";
}

std::string signed_envelope(const Signer& signer, const std::string& body) {
  return envelope(body, {signer.sign(pae(std::string(in_toto_payload_type), body))});
}

std::string bundle(const std::string& dsse, const std::string& hint) {
  return R"({"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":")" +
         hint + R"("}},"dsseEnvelope":)" + dsse + "}";
}

void expect_one_line(const SignatureCheck& check) {
  EXPECT_FALSE(check.detail.empty());
  EXPECT_EQ(check.detail.find('\n'), std::string::npos) << check.detail;
}

// --- keys -------------------------------------------------------------------------

TEST(SignatureKeyTest, AcceptsEachKeyTypeAndNamesItsAlgorithm) {
  EXPECT_EQ(keys().p256.public_key.algorithm(), "ecdsa-p256");
  EXPECT_EQ(keys().p384.public_key.algorithm(), "ecdsa-p384");
  EXPECT_EQ(keys().rsa.public_key.algorithm(), "rsa");
  EXPECT_EQ(keys().ed25519.public_key.algorithm(), "ed25519");
  EXPECT_EQ(keys().p256.public_key.name(), "release");
}

TEST(SignatureKeyTest, FingerprintIsSha256OfDerPublicKey) {
  for (const Signer* signer : every_key_type()) {
    unsigned char* der = nullptr;
    const int length = i2d_PUBKEY(signer->key.get(), &der);
    ASSERT_GT(length, 0);
    unsigned char sum[32];
    std::size_t sum_length = 0;
    ASSERT_EQ(EVP_Q_digest(nullptr, "SHA256", nullptr, der, static_cast<std::size_t>(length), sum, &sum_length), 1);
    OPENSSL_free(der);
    std::string expected;
    for (std::size_t i = 0; i < sum_length; ++i) {
      static constexpr char digits[] = "0123456789abcdef";
      expected += digits[sum[i] >> 4];
      expected += digits[sum[i] & 0xf];
    }
    EXPECT_EQ(signer->public_key.fingerprint(), expected) << signer->public_key.algorithm();
  }
}

TEST(SignatureKeyTest, PrivateKeyAsksForThePublicKey) {
  const std::string error = from_pem_error(private_pem(keys().p256.key.get()));
  EXPECT_NE(error.find("private key"), std::string::npos) << error;
  EXPECT_NE(error.find("public key is needed"), std::string::npos) << error;
}

TEST(SignatureKeyTest, CertificateAsksForThePublicKey) {
  const std::string error = from_pem_error(certificate_pem(keys().p256.key.get()));
  EXPECT_NE(error.find("openssl x509 -pubkey -noout"), std::string::npos) << error;
}

TEST(SignatureKeyTest, RejectsShortRsa) {
  Pkey short_rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(1024)));
  const std::string error = from_pem_error(public_pem(short_rsa.get()));
  EXPECT_NE(error.find("1024 bits"), std::string::npos) << error;
  EXPECT_NE(error.find("2048"), std::string::npos) << error;
}

TEST(SignatureKeyTest, RejectsOtherCurves) {
  for (const char* curve : {"P-521", "secp256k1"}) {
    Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
    ASSERT_TRUE(key) << curve;
    const std::string error = from_pem_error(public_pem(key.get()));
    EXPECT_NE(error.find("only P-256 and P-384"), std::string::npos) << error;
  }
}

TEST(SignatureKeyTest, RejectsOtherKeyTypes) {
  Pkey x25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  const std::string error = from_pem_error(public_pem(x25519.get()));
  EXPECT_NE(error.find("X25519"), std::string::npos) << error;
}

TEST(SignatureKeyTest, RejectsGarbageOnOneLine) {
  const std::string body = public_pem(keys().p256.key.get());
  const std::vector<std::string> garbage = {
      "",
      "hello",
      "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
      "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
      body.substr(0, body.size() / 2),
      "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
      std::string("-----BEGIN PUBLIC KEY-----\n\0\0\0\n-----END PUBLIC KEY-----\n", 57),
  };
  for (const std::string& pem : garbage) {
    const std::string error = from_pem_error(pem);
    EXPECT_FALSE(error.empty());
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

TEST(SignatureKeyTest, VerifiesRawSignatures) {
  for (const Signer* signer : every_key_type()) {
    const std::string signature = signer->sign("message");
    EXPECT_TRUE(signer->public_key.verify("message", signature)) << signer->public_key.algorithm();
    EXPECT_FALSE(signer->public_key.verify("messagE", signature)) << signer->public_key.algorithm();
    EXPECT_FALSE(signer->public_key.verify("message", "")) << signer->public_key.algorithm();
    EXPECT_FALSE(signer->public_key.verify("message", "not a signature")) << signer->public_key.algorithm();
    EXPECT_FALSE(keys().stranger.public_key.verify("message", signature));
  }
}

TEST(SignatureKeyTest, RsaAcceptsPss) {
  const std::string signature = sign_with(keys().rsa.key.get(), EVP_sha256(), "message", /*pss=*/true);
  EXPECT_TRUE(keys().rsa.public_key.verify("message", signature));
  EXPECT_FALSE(keys().rsa.public_key.verify("other", signature));
}

TEST(SignatureKeyTest, EcdsaUsesTheCurvesDigest) {
  // A P-256 signature over SHA-384 is not what cosign makes with a P-256 key.
  const std::string signature = sign_with(keys().p256.key.get(), EVP_sha384(), "message");
  EXPECT_FALSE(keys().p256.public_key.verify("message", signature));
}

TEST(SignatureKeyTest, DefaultConstructedKeyVerifiesNothing) {
  EXPECT_FALSE(PublicKey{}.verify("message", keys().p256.sign("message")));
}

// --- simple signing ---------------------------------------------------------------

TEST(SignatureSimpleSigningTest, ValidForEachKeyType) {
  const std::string payload = simple_payload(digest_a);
  for (const Signer* signer : every_key_type()) {
    const std::vector<PublicKey> policy{keys().stranger.public_key, signer->public_key};
    const SignatureCheck check =
        verify_simple_signing(payload, base64_encode(signer->sign(payload)), digest_a, policy);
    EXPECT_EQ(check.result, Result::valid) << signer->public_key.algorithm() << ": " << check.detail;
    EXPECT_EQ(check.key, signer->public_key.name());
    expect_one_line(check);
  }
}

TEST(SignatureSimpleSigningTest, SignatureByAnotherKeyIsWrongKey) {
  const std::string payload = simple_payload(digest_a);
  const SignatureCheck check =
      verify_simple_signing(payload, base64_encode(keys().stranger.sign(payload)), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_key);
  EXPECT_EQ(check.detail,
            "signature does not verify with key release (ecdsa-p256) or ci (ed25519): signed by another key, or the "
            "payload was altered");
  EXPECT_TRUE(check.key.empty());
}

TEST(SignatureSimpleSigningTest, TamperedPayloadIsWrongKey) {
  const std::string payload = simple_payload(digest_a);
  const std::string signature = base64_encode(keys().p256.sign(payload));
  std::string tampered = payload;
  tampered[tampered.find("registry.test") + 1] = 'E';  // still well-formed, still names the digest
  const SignatureCheck check = verify_simple_signing(tampered, signature, digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_key) << check.detail;
  EXPECT_NE(check.detail.find("does not verify with key"), std::string::npos);
}

TEST(SignatureSimpleSigningTest, VerifiesTheExactBytes) {
  // Whitespace, key order and escapes are the signer's: nothing is re-serialized.
  const std::string payload = "{ \"optional\" : {\"note\":\"caf\\u00e9\"},\n \"critical\":{\"type\":\"" +
                              std::string(cosign_signature_type) + "\",\"image\":{\"docker-manifest-digest\":\"" +
                              digest_a + "\"},\"identity\":{}} }\n";
  const SignatureCheck check =
      verify_simple_signing(payload, base64_encode(keys().p256.sign(payload)), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::valid) << check.detail;
}

TEST(SignatureSimpleSigningTest, LargePayloadVerifies) {
  const std::string payload = R"({"critical":{"identity":{},"image":{"docker-manifest-digest":")" + digest_a +
                              R"("},"type":"cosign container image signature"},"optional":{"pad":")" +
                              std::string(3 << 20, 'x') + "\"}}";
  const SignatureCheck check =
      verify_simple_signing(payload, base64_encode(keys().ed25519.sign(payload)), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::valid) << check.detail;
}

TEST(SignatureSimpleSigningTest, OtherDigestIsWrongDigest) {
  const std::string payload = simple_payload(digest_b);
  const SignatureCheck check =
      verify_simple_signing(payload, base64_encode(keys().p256.sign(payload)), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_digest);
  EXPECT_EQ(check.key, "release");
  EXPECT_EQ(check.detail, "signed by release, but the payload names " + digest_b + ", not " + digest_a);
}

TEST(SignatureSimpleSigningTest, OtherDigestByAnotherKeyIsWrongKey) {
  // The digest is only believed once a listed key vouches for it.
  const std::string payload = simple_payload(digest_b);
  const SignatureCheck check =
      verify_simple_signing(payload, base64_encode(keys().stranger.sign(payload)), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_key);
}

TEST(SignatureSimpleSigningTest, OtherTypeIsWrongType) {
  const std::string payload = simple_payload(digest_a, "x");
  const SignatureCheck check =
      verify_simple_signing(payload, base64_encode(keys().ed25519.sign(payload)), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_type);
  EXPECT_EQ(check.key, "ci");
  EXPECT_EQ(check.detail, "signed by ci, but critical.type is \"x\", not a cosign container image signature");
}

TEST(SignatureSimpleSigningTest, DigestKeyAndDigestMatchIgnoringCase) {
  const std::string payload = simple_payload(digest_a, std::string(cosign_signature_type), "Docker-manifest-digest");
  const std::string signature = base64_encode(keys().p256.sign(payload));
  EXPECT_EQ(verify_simple_signing(payload, signature, digest_a, policy_keys()).result, Result::valid);
  EXPECT_EQ(verify_simple_signing(payload, signature, "SHA256:" + std::string(64, 'A'), policy_keys()).result,
            Result::valid);
}

TEST(SignatureSimpleSigningTest, NoKeysIsWrongKey) {
  const std::string payload = simple_payload(digest_a);
  const SignatureCheck check =
      verify_simple_signing(payload, base64_encode(keys().p256.sign(payload)), digest_a, {});
  EXPECT_EQ(check.result, Result::wrong_key);
  EXPECT_NE(check.detail.find("trusts no key"), std::string::npos) << check.detail;
}

TEST(SignatureSimpleSigningTest, MalformedInputs) {
  const std::string good = simple_payload(digest_a);
  const std::string good_signature = base64_encode(keys().p256.sign(good));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good, "not base64!"},
      {good, good_signature + "\n"},
      {good, ""},
      {"not json", good_signature},
      {"", good_signature},
      {"[]", good_signature},
      {R"({"optional":null})", good_signature},
      {R"({"critical":[]})", good_signature},
      {R"({"critical":{"type":"cosign container image signature"}})", good_signature},
      {R"({"critical":{"image":{},"type":"cosign container image signature"}})", good_signature},
      {R"({"critical":{"image":{"docker-manifest-digest":7},"type":"cosign container image signature"}})",
       good_signature},
      {R"({"critical":{"image":{"docker-manifest-digest":")" + digest_a + R"("}}})", good_signature},
      {R"({"critical":{"image":{"docker-manifest-digest":")" + digest_a + R"(","Docker-Manifest-Digest":")" +
           digest_b + R"("},"type":"cosign container image signature"}})",
       good_signature},
      {std::string(4 << 20, '['), good_signature},
      {R"({"critical":{"image":{"docker-manifest-digest":")" + digest_a +
           R"("},"type":"cosign container image signature"},"optional":)" + std::string(100, '[') +
           std::string(100, ']') + "}",
       good_signature},
      {std::string("{\"critical\":\0}", 14), good_signature},
  };
  for (const auto& [payload, signature] : cases) {
    const SignatureCheck check = verify_simple_signing(payload, signature, digest_a, policy_keys());
    EXPECT_EQ(check.result, Result::malformed) << payload.substr(0, 200) << " / " << signature;
    expect_one_line(check);
  }
}

// --- DSSE envelopes ---------------------------------------------------------------

TEST(SignatureDsseTest, ValidForEachKeyType) {
  const std::string body = statement(hex_a);
  for (const Signer* signer : every_key_type()) {
    const std::vector<PublicKey> policy{signer->public_key};
    const SignatureCheck check = verify_dsse_envelope(signed_envelope(*signer, body), digest_a, policy);
    EXPECT_EQ(check.result, Result::valid) << signer->public_key.algorithm() << ": " << check.detail;
    EXPECT_EQ(check.key, signer->public_key.name());
    EXPECT_EQ(check.predicate_type, cosign_sign_predicate);
  }
}

TEST(SignatureDsseTest, AnySignatureEntryCounts) {
  const std::string body = statement(hex_a);
  const std::string good = keys().ed25519.sign(pae(std::string(in_toto_payload_type), body));
  const std::string by_stranger = keys().stranger.sign(pae(std::string(in_toto_payload_type), body));
  EXPECT_EQ(verify_dsse_envelope(envelope(body, {by_stranger, good}), digest_a, policy_keys()).result, Result::valid);
  // An unreadable entry does not hide a good one.
  std::string dsse = envelope(body, {good});
  dsse.insert(dsse.find("[{") + 1, R"({"sig":"%%%"},{"keyid":"x"},)");
  EXPECT_EQ(verify_dsse_envelope(dsse, digest_a, policy_keys()).result, Result::valid) << dsse;
  // Up to 64 entries are tried; more make a malformed envelope, not seconds of checks.
  std::vector<std::string> many(63, by_stranger);
  many.push_back(good);
  EXPECT_EQ(verify_dsse_envelope(envelope(body, many), digest_a, policy_keys()).result, Result::valid);
  many.insert(many.begin(), by_stranger);
  const SignatureCheck too_many = verify_dsse_envelope(envelope(body, many), digest_a, policy_keys());
  EXPECT_EQ(too_many.result, Result::malformed);
  EXPECT_NE(too_many.detail.find("65 signatures, more than 64"), std::string::npos) << too_many.detail;
}

TEST(SignatureDsseTest, SignatureMustCoverThePae) {
  const std::string body = statement(hex_a);
  const std::string over_body = keys().p256.sign(body);
  const std::string over_wrong_pae = keys().p256.sign("DSSEv1 " + std::string(in_toto_payload_type) + " " + body);
  for (const std::string& signature : {over_body, over_wrong_pae}) {
    const SignatureCheck check = verify_dsse_envelope(envelope(body, {signature}), digest_a, policy_keys());
    EXPECT_EQ(check.result, Result::wrong_key);
    EXPECT_EQ(check.predicate_type, cosign_sign_predicate);
  }
}

TEST(SignatureDsseTest, SignatureByAnotherKeyIsWrongKey) {
  const SignatureCheck check =
      verify_dsse_envelope(signed_envelope(keys().stranger, statement(hex_a)), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_key);
  EXPECT_EQ(check.detail,
            "signature does not verify with key release (ecdsa-p256) or ci (ed25519): signed by another key, or the "
            "payload was altered");
}

TEST(SignatureDsseTest, TamperedPayloadIsWrongKey) {
  const std::string body = statement(hex_a);
  const std::string signature = keys().p256.sign(pae(std::string(in_toto_payload_type), body));
  std::string tampered = body;
  tampered[tampered.find("registry.test")] = 'R';
  const SignatureCheck check = verify_dsse_envelope(envelope(tampered, {signature}), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_key) << check.detail;
}

TEST(SignatureDsseTest, OtherSubjectIsWrongDigest) {
  const SignatureCheck check =
      verify_dsse_envelope(signed_envelope(keys().p256, statement(hex_b)), digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_digest);
  EXPECT_EQ(check.key, "release");
  EXPECT_EQ(check.detail, "signed by release, but the payload names " + digest_b + ", not " + digest_a);
}

TEST(SignatureDsseTest, SubjectMatchesIgnoringCaseAmongSeveral) {
  const std::string body =
      R"({"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha512":")" +
      std::string(128, 'c') + R"("}},{"name":"y","digest":{"SHA256":")" + std::string(64, 'A') +
      R"("}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}})";
  EXPECT_EQ(verify_dsse_envelope(signed_envelope(keys().p256, body), digest_a, policy_keys()).result, Result::valid);
}

TEST(SignatureDsseTest, RequiredPredicate) {
  const std::string dsse = signed_envelope(keys().p256, statement(hex_a, "https://spdx.dev/Document/v2.3"));
  const SignatureCheck any = verify_dsse_envelope(dsse, digest_a, policy_keys());
  EXPECT_EQ(any.result, Result::valid);
  EXPECT_EQ(any.predicate_type, "https://spdx.dev/Document/v2.3");
  const SignatureCheck required = verify_dsse_envelope(dsse, digest_a, policy_keys(), cosign_sign_predicate);
  EXPECT_EQ(required.result, Result::wrong_type);
  EXPECT_EQ(required.key, "release");
  EXPECT_EQ(required.detail,
            "signed by release, but the statement's predicateType is \"https://spdx.dev/Document/v2.3\", not "
            "https://sigstore.dev/cosign/sign/v1");
}

TEST(SignatureDsseTest, WrongDigestComesBeforeWrongType) {
  const std::string dsse = signed_envelope(keys().p256, statement(hex_b, "https://example.test/other"));
  EXPECT_EQ(verify_dsse_envelope(dsse, digest_a, policy_keys(), cosign_sign_predicate).result, Result::wrong_digest);
}

TEST(SignatureDsseTest, NoKeysIsWrongKey) {
  const SignatureCheck check = verify_dsse_envelope(signed_envelope(keys().p256, statement(hex_a)), digest_a, {});
  EXPECT_EQ(check.result, Result::wrong_key);
  EXPECT_NE(check.detail.find("trusts no key"), std::string::npos) << check.detail;
}

TEST(SignatureDsseTest, MalformedInputs) {
  const std::string body = statement(hex_a);
  const std::string signature = keys().p256.sign(pae(std::string(in_toto_payload_type), body));
  const std::string sig64 = base64_encode(signature);
  const std::string payload64 = base64_encode(body);
  const std::vector<std::string> cases = {
      "",
      "not json",
      "[]",
      R"({"payloadType":"application/vnd.in-toto+json","signatures":[{"sig":")" + sig64 + R"("}]})",
      R"({"payload":")" + payload64 + R"(","signatures":[{"sig":")" + sig64 + R"("}]})",
      R"({"payload":")" + payload64 + R"(","payloadType":"text/plain","signatures":[{"sig":")" + sig64 + R"("}]})",
      R"({"payload":"@@@@","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":")" + sig64 + R"("}]})",
      R"({"payload":")" + payload64 + R"(","payloadType":"application/vnd.in-toto+json","signatures":[]})",
      R"({"payload":")" + payload64 + R"(","payloadType":"application/vnd.in-toto+json"})",
      R"({"payload":")" + payload64 + R"(","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"-_"}]})",
      envelope("not json", {signature}),
      envelope(R"({"subject":[{"digest":{"sha256":")" + hex_a + R"("}}],"predicateType":"p"})", {signature}),
      envelope(R"({"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"p"})", {signature}),
      envelope(R"({"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":")" + hex_a + R"("}}]})",
               {signature}),
      envelope(R"({"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x"}],"predicateType":"p"})",
               {signature}),
      envelope(R"({"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":1}}],"predicateType":"p"})",
               {signature}),
      envelope(std::string(200, '{'), {signature}),
      std::string(4 << 20, '{'),
  };
  for (const std::string& dsse : cases) {
    const SignatureCheck check = verify_dsse_envelope(dsse, digest_a, policy_keys());
    EXPECT_EQ(check.result, Result::malformed) << dsse.substr(0, 300);
    expect_one_line(check);
  }
}

// --- bundles ----------------------------------------------------------------------

TEST(SignatureBundleTest, Valid) {
  const std::string json =
      bundle(signed_envelope(keys().p256, statement(hex_a)), keys().p256.public_key.fingerprint());
  const SignatureCheck check = verify_bundle(json, digest_a, policy_keys(), cosign_sign_predicate);
  EXPECT_EQ(check.result, Result::valid) << check.detail;
  EXPECT_EQ(check.key, "release");
  EXPECT_EQ(check.predicate_type, cosign_sign_predicate);
}

TEST(SignatureBundleTest, OlderBundleVersionsAndNoHint) {
  std::string json = R"({"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1","dsseEnvelope":)" +
                     signed_envelope(keys().ed25519, statement(hex_a)) + "}";
  EXPECT_EQ(verify_bundle(json, digest_a, policy_keys()).result, Result::valid);
}

TEST(SignatureBundleTest, SbomPredicateWithRequiredPredicateIsWrongType) {
  const std::string json = bundle(signed_envelope(keys().p256, statement(hex_a, "https://cyclonedx.org/bom/v1.5")),
                                  keys().p256.public_key.fingerprint());
  const SignatureCheck required = verify_bundle(json, digest_a, policy_keys(), cosign_sign_predicate);
  EXPECT_EQ(required.result, Result::wrong_type);
  EXPECT_EQ(required.predicate_type, "https://cyclonedx.org/bom/v1.5");
  const SignatureCheck attestation = verify_bundle(json, digest_a, policy_keys());
  EXPECT_EQ(attestation.result, Result::valid);
  EXPECT_TRUE(is_sbom_predicate(attestation.predicate_type));
}

TEST(SignatureBundleTest, UnknownHintIsNamed) {
  const std::string hint = keys().stranger.public_key.fingerprint();
  const std::string json = bundle(signed_envelope(keys().stranger, statement(hex_a)), hint);
  const SignatureCheck check = verify_bundle(json, digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_key);
  EXPECT_NE(check.detail.find("does not verify with key release (ecdsa-p256) or ci (ed25519)"), std::string::npos);
  EXPECT_NE(check.detail.find("the bundle names key " + hint), std::string::npos) << check.detail;
}

TEST(SignatureBundleTest, KnownHintIsNotNamed) {
  // Hinted at release, but the payload was altered after signing.
  const std::string body = statement(hex_a);
  const std::string signature = keys().p256.sign(pae(std::string(in_toto_payload_type), body) + " ");
  const std::string json = bundle(envelope(body, {signature}), keys().p256.public_key.fingerprint());
  const SignatureCheck check = verify_bundle(json, digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_key);
  EXPECT_EQ(check.detail.find("the bundle names key"), std::string::npos) << check.detail;
}

TEST(SignatureBundleTest, OtherDigest) {
  const std::string json = bundle(signed_envelope(keys().p256, statement(hex_b)), "");
  const SignatureCheck check = verify_bundle(json, digest_a, policy_keys());
  EXPECT_EQ(check.result, Result::wrong_digest);
  EXPECT_NE(check.detail.find("names " + digest_b), std::string::npos);
}

TEST(SignatureBundleTest, MalformedInputs) {
  const std::string dsse = signed_envelope(keys().p256, statement(hex_a));
  const std::vector<std::string> cases = {
      "",
      "{",
      "[]",
      R"({"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"})",
      R"({"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"signature":"AAAA"}})",
      R"({"mediaType":"application/json","dsseEnvelope":)" + dsse + "}",
      R"({"mediaType":7,"dsseEnvelope":)" + dsse + "}",
      R"({"dsseEnvelope":"text"})",
      R"({"dsseEnvelope":{}})",
  };
  for (const std::string& json : cases) {
    const SignatureCheck check = verify_bundle(json, digest_a, policy_keys());
    EXPECT_EQ(check.result, Result::malformed) << json;
    expect_one_line(check);
  }
  const SignatureCheck message_signature = verify_bundle(cases[4], digest_a, policy_keys());
  EXPECT_NE(message_signature.detail.find("messageSignature"), std::string::npos);
}

// --- artifact manifests -----------------------------------------------------------

std::string descriptor(const std::string& media_type, const std::string& digest, const std::string& size = "10") {
  return R"({"mediaType":")" + media_type + R"(","digest":")" + digest + R"(","size":)" + size + "}";
}

TEST(SignatureManifestTest, CosignSignatureManifest) {
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
      descriptor("application/vnd.oci.image.config.v1+json", digest_b, "233") +
      R"(,"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":")" + digest_a +
      R"(","size":250,"annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ=="}},)" +
      R"({"mediaType":"application/vnd.dsse.envelope.v1+json","digest":")" + digest_b +
      R"(","size":0,"annotations":{"predicateType":"https://spdx.dev/Document"}}]})";
  const auto parsed = parse_artifact_manifest(manifest);
  ASSERT_TRUE(std::holds_alternative<ArtifactManifest>(parsed)) << std::get<std::string>(parsed);
  const ArtifactManifest& artifact = std::get<ArtifactManifest>(parsed);
  EXPECT_EQ(artifact.artifact_type, "application/vnd.oci.image.config.v1+json");
  EXPECT_FALSE(artifact.subject);
  ASSERT_EQ(artifact.layers.size(), 2u);
  EXPECT_EQ(artifact.layers[0].media_type, simple_signing_media_type);
  EXPECT_EQ(artifact.layers[0].digest.str(), digest_a);
  EXPECT_EQ(artifact.layers[0].size, 250);
  EXPECT_EQ(artifact.layers[0].signature_base64, "MEUCIQ==");
  EXPECT_TRUE(artifact.layers[0].predicate_type.empty());
  EXPECT_EQ(artifact.layers[1].predicate_type, "https://spdx.dev/Document");
  EXPECT_EQ(artifact.layers[1].size, 0);
}

TEST(SignatureManifestTest, BundleReferrerManifest) {
  const std::string empty_digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
  const std::string sha512 = "sha512:" + std::string(128, '0');
  const std::string manifest =
      R"({"schemaVersion":2,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","config":)" +
      descriptor("application/vnd.oci.empty.v1+json", empty_digest, "2") + R"(,"layers":[)" +
      descriptor("application/vnd.dev.sigstore.bundle.v0.3+json", sha512, "4000") + R"(],"subject":)" +
      descriptor("application/vnd.oci.image.manifest.v1+json", digest_a, "500") + "}";
  const auto parsed = parse_artifact_manifest(manifest);
  ASSERT_TRUE(std::holds_alternative<ArtifactManifest>(parsed)) << std::get<std::string>(parsed);
  const ArtifactManifest& artifact = std::get<ArtifactManifest>(parsed);
  EXPECT_EQ(artifact.artifact_type, "application/vnd.dev.sigstore.bundle.v0.3+json");
  ASSERT_TRUE(artifact.subject);
  EXPECT_EQ(artifact.subject->str(), digest_a);
  ASSERT_EQ(artifact.layers.size(), 1u);
  EXPECT_EQ(artifact.layers[0].digest.str(), sha512);
  EXPECT_EQ(artifact.layers[0].size, 4000);
}

TEST(SignatureManifestTest, RejectsBadManifestsOnOneLine) {
  const std::string config = descriptor("application/vnd.oci.image.config.v1+json", digest_b);
  auto with_layer = [&config](const std::string& layer) {
    return R"({"schemaVersion":2,"config":)" + config + R"(,"layers":[)" + layer + "]}";
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not a JSON object"},
      {"[]", "not a JSON object"},
      {R"({"schemaVersion":1,"config":)" + config + R"(,"layers":[]})", "schemaVersion"},
      {R"({"schemaVersion":"2","config":)" + config + R"(,"layers":[]})", "schemaVersion"},
      {R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})",
       "not an image manifest"},
      {R"({"schemaVersion":2,"layers":[]})", "config"},
      {R"({"schemaVersion":2,"config":)" + config + "}", "layers"},
      {R"({"schemaVersion":2,"config":)" + config + R"(,"layers":{}})", "layers"},
      {with_layer(descriptor("t", "sha256:" + std::string(64, 'A'))), "layers[0].digest"},
      {with_layer(descriptor("t", "sha256:abc")), "layers[0].digest"},
      {with_layer(descriptor("t", "md5:" + std::string(32, 'a'))), "layers[0].digest"},
      {with_layer(descriptor("t", digest_a, "-1")), "layers[0].size is negative"},
      {with_layer(descriptor("t", digest_a, "1.5")), "layers[0].size"},
      {with_layer(descriptor("t", digest_a, "\"1\"")), "layers[0].size"},
      {with_layer(descriptor("t", digest_a, "18446744073709551615")), "layers[0].size is too large"},
      {with_layer(R"({"digest":")" + digest_a + R"(","size":1})"), "layers[0].mediaType"},
      {with_layer(R"({"mediaType":"t","digest":")" + digest_a + R"(","size":1,"annotations":[]})"),
       "layers[0].annotations"},
      {with_layer(R"({"mediaType":"t","digest":")" + digest_a + R"(","size":1,"annotations":{"a\nb":1}})"),
       "is not a string"},
      {with_layer("7"), "layers[0] is not an object"},
      {R"({"schemaVersion":2,"artifactType":5,"config":)" + config + R"(,"layers":[]})", "artifactType"},
      {R"({"schemaVersion":2,"config":)" + config + R"(,"layers":[],"subject":{"mediaType":"t","digest":"x","size":1}})",
       "subject.digest"},
  };
  for (const auto& [manifest, expected] : cases) {
    const auto parsed = parse_artifact_manifest(manifest);
    ASSERT_TRUE(std::holds_alternative<std::string>(parsed)) << manifest;
    const std::string& error = std::get<std::string>(parsed);
    EXPECT_NE(error.find(expected), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

// --- SBOM helpers ---------------------------------------------------------------

TEST(SignatureSbomTest, MediaTypes) {
  for (const char* type : {"application/spdx+json", "text/spdx+json", "text/spdx", "application/vnd.cyclonedx+json",
                           "application/vnd.cyclonedx+xml", "application/vnd.syft+json",
                           "application/vnd.cyclonedx+json; version=1.5", "Application/SPDX+JSON",
                           "text/spdx;charset=utf-8"}) {
    EXPECT_TRUE(is_sbom_media_type(type)) << type;
  }
  for (const char* type : {"", "application/json", "application/spdx", "application/vnd.cyclonedx",
                           "application/vnd.oci.image.manifest.v1+json", "text/spdx+jsonx", ";application/spdx+json"}) {
    EXPECT_FALSE(is_sbom_media_type(type)) << type;
  }
}

TEST(SignatureSbomTest, Predicates) {
  for (const char* predicate : {"https://spdx.dev/Document", "https://spdx.dev/Document/v2.3",
                                "https://cyclonedx.org/bom", "https://cyclonedx.org/bom/v1.5", "https://syft.dev/bom"}) {
    EXPECT_TRUE(is_sbom_predicate(predicate)) << predicate;
  }
  for (const char* predicate : {"", "https://sigstore.dev/cosign/sign/v1", "https://slsa.dev/provenance/v1",
                                "http://spdx.dev/Document", "https://spdx.dev/"}) {
    EXPECT_FALSE(is_sbom_predicate(predicate)) << predicate;
  }
}

TEST(SignatureResultTest, Names) {
  EXPECT_EQ(to_string(Result::valid), "valid");
  EXPECT_EQ(to_string(Result::wrong_key), "wrong_key");
  EXPECT_EQ(to_string(Result::wrong_digest), "wrong_digest");
  EXPECT_EQ(to_string(Result::wrong_type), "wrong_type");
  EXPECT_EQ(to_string(Result::malformed), "malformed");
}

// --- mutation ---------------------------------------------------------------------

// Every byte changed, dropped, or preceded by an inserted byte, one at a time; `check`
// gets the mutated text and the position mutated.
template <typename Check>
void for_each_mutation(const std::string& input, Check check) {
  static constexpr std::array<char, 6> replacements{'\0', '"', '{', ']', '\\', '\xff'};
  for (std::size_t i = 0; i < input.size(); ++i) {
    for (const char replacement : replacements) {
      if (input[i] == replacement) continue;
      std::string changed = input;
      changed[i] = replacement;
      check(changed, i);
    }
    std::string flipped = input;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    check(flipped, i);
    check(input.substr(0, i) + input.substr(i + 1), i);
    check(input.substr(0, i) + "[" + input.substr(i), i);
  }
}

TEST(SignatureFuzzTest, MutatedSimpleSigningNeverVerifies) {
  const std::string payload = simple_payload(digest_a);
  const std::string signature = base64_encode(keys().ed25519.sign(payload));
  const std::vector<PublicKey> policy = policy_keys();
  for_each_mutation(payload, [&](const std::string& mutated, std::size_t) {
    const SignatureCheck check = verify_simple_signing(mutated, signature, digest_a, policy);
    EXPECT_NE(check.result, Result::valid) << mutated;
    expect_one_line(check);
  });
  for_each_mutation(signature, [&](const std::string& mutated, std::size_t) {
    const SignatureCheck check = verify_simple_signing(payload, mutated, digest_a, policy);
    EXPECT_NE(check.result, Result::valid) << mutated;
    expect_one_line(check);
  });
}

TEST(SignatureFuzzTest, MutatedBundlesNeverCrash) {
  const std::string body = statement(hex_a);
  const std::string signature = keys().ed25519.sign(pae(std::string(in_toto_payload_type), body));
  const std::string json = bundle(envelope(body, {signature}), "hint");
  // The signed bytes and the signature, as they sit in the bundle's text.
  const std::string payload64 = base64_encode(body);
  const std::string sig64 = base64_encode(signature);
  const std::size_t payload_at = json.find(payload64);
  const std::size_t sig_at = json.find(sig64);
  ASSERT_NE(payload_at, std::string::npos);
  ASSERT_NE(sig_at, std::string::npos);
  auto covered = [&](std::size_t i) {
    return (i >= payload_at && i < payload_at + payload64.size()) || (i >= sig_at && i < sig_at + sig64.size());
  };
  const std::vector<PublicKey> policy = policy_keys();
  std::size_t mutations = 0, valid = 0;
  for_each_mutation(json, [&](const std::string& mutated, std::size_t i) {
    const SignatureCheck check = verify_bundle(mutated, digest_a, policy, cosign_sign_predicate);
    expect_one_line(check);
    ++mutations;
    if (check.result != Result::valid) return;
    ++valid;
    EXPECT_FALSE(covered(i)) << "mutation at " << i << " still verifies: " << mutated;
  });
  EXPECT_GT(mutations, 0u);
  EXPECT_LT(valid, mutations / 10);  // only the hint, keyid and mediaType's tail are free to change
}

TEST(SignatureFuzzTest, MutatedManifestsNeverCrash) {
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
      descriptor("application/vnd.oci.image.config.v1+json", digest_b, "233") +
      R"(,"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":")" + digest_a +
      R"(","size":250,"annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ=="}}],"subject":)" +
      descriptor("application/vnd.oci.image.manifest.v1+json", digest_a) + "}";
  for_each_mutation(manifest, [](const std::string& mutated, std::size_t) {
    const auto parsed = parse_artifact_manifest(mutated);
    if (const auto* error = std::get_if<std::string>(&parsed)) {
      EXPECT_EQ(error->find('\n'), std::string::npos) << *error;
    } else {
      for (const ArtifactLayer& layer : std::get<ArtifactManifest>(parsed).layers) EXPECT_GE(layer.size, 0);
    }
  });
}

}  // namespace
}  // namespace pullgate::policy
