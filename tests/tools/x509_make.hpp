#pragma once
// Certificates, keys and SCTs made with OpenSSL for tests: the pieces both the unit
// tests of policy/fulcio (tests/unit/policy_trusted_root_test.cpp) and the keyless
// vector maker (tests/tools/sigstore_forge.cpp) build their PKIs from. A failure of
// OpenSSL throws std::runtime_error naming the step (a test fails with it, the tool
// prints it).
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pullgate::testing_support::x509 {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

inline void need(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("OpenSSL failed to " + what);
}

inline Pkey p256() {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  need(key != nullptr, "make a P-256 key");
  return key;
}

// An RSA key of `bits`, or an EC key on `curve` ("P-256", "P-384", "P-521").
inline Pkey rsa_key(unsigned bits) {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits)));
  need(key != nullptr, "make an RSA key");
  return key;
}
inline Pkey ec_key(const std::string& curve) {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve.c_str()));
  need(key != nullptr, "make an EC key on " + curve);
  return key;
}

// What one of OpenSSL's i2d_ functions writes of `object`.
template <typename Encode, typename Object>
std::string encoded(Encode encode, Object* object) {
  unsigned char* der = nullptr;
  const int length = encode(object, &der);
  need(length > 0, "encode DER");
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}
inline std::string der_of(X509* certificate) { return encoded(i2d_X509, certificate); }
inline std::string spki_of(EVP_PKEY* key) { return encoded(i2d_PUBKEY, key); }
// The TBSCertificate, encoded again: what a CT log signs of a precertificate.
inline std::string tbs_of(X509* certificate) { return encoded(i2d_re_X509_tbs, certificate); }

inline std::string sha256_of(const std::string& bytes) {
  unsigned char sum[EVP_MAX_MD_SIZE];
  std::size_t length = 0;
  need(EVP_Q_digest(nullptr, "SHA256", nullptr, bytes.data(), bytes.size(), sum, &length) == 1, "hash");
  return std::string(reinterpret_cast<char*>(sum), length);
}

// DER ECDSA over SHA-256 of `message`.
inline std::string ecdsa_sha256(EVP_PKEY* key, const std::string& message) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t length = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(message.data());
  need(ctx && EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
           EVP_DigestSign(ctx.get(), nullptr, &length, data, message.size()) == 1,
       "sign");
  std::string signature(length, '\0');
  need(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length, data,
                      message.size()) == 1,
       "sign");
  signature.resize(length);
  return signature;
}

// DER of a primitive of `tag` (definite length, short or long form).
inline std::string der(unsigned char tag, const std::string& content) {
  std::string out(1, static_cast<char>(tag));
  if (content.size() < 0x80) {
    out += static_cast<char>(content.size());
  } else {
    std::string length;
    for (std::size_t n = content.size(); n > 0; n >>= 8) length.insert(length.begin(), static_cast<char>(n & 0xff));
    out += static_cast<char>(0x80 | length.size());
    out += length;
  }
  return out + content;
}
inline std::string utf8_string(const std::string& text) { return der(0x0c, text); }

inline std::string big_endian(std::uint64_t value, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

// An extension in OpenSSL's configuration syntax ("critical,CA:TRUE", ...).
inline void add_extension(X509* certificate, int nid, const std::string& value, X509* issuer) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : certificate, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str());
  need(extension != nullptr, "make extension " + value);
  X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
}

// An extension whose extnValue holds `value` as it is.
inline void add_raw_extension(X509* certificate, const std::string& oid, const std::string& value) {
  ASN1_OBJECT* object = OBJ_txt2obj(oid.c_str(), 1);
  ASN1_OCTET_STRING* data = ASN1_OCTET_STRING_new();
  need(object && data, "make extension " + oid);
  ASN1_OCTET_STRING_set(data, reinterpret_cast<const unsigned char*>(value.data()), static_cast<int>(value.size()));
  X509_EXTENSION* extension = X509_EXTENSION_create_by_OBJ(nullptr, object, 0, data);
  need(extension != nullptr && X509_add_ext(certificate, extension, -1) == 1, "add extension " + oid);
  X509_EXTENSION_free(extension);
  ASN1_OCTET_STRING_free(data);
  ASN1_OBJECT_free(object);
}

// A distinguished name as its RDNs in order: {{"C", "US"}, {"O", "acme"}, {"CN", "release"}}.
using Rdns = std::vector<std::pair<std::string, std::string>>;
// Extensions in OpenSSL's configuration syntax: {NID_key_usage, "critical,digitalSignature"}.
using Extensions = std::vector<std::pair<int, std::string>>;

// A certificate named `subject`, valid from `from` to `to` (seconds since the epoch),
// with `extensions`, signed with SHA-256 by `issuer` and `issuer_key` (itself when null).
inline X509Ptr make_named_certificate(EVP_PKEY* key, const Rdns& subject, std::time_t from, std::time_t to,
                                      const Extensions& extensions, X509* issuer, EVP_PKEY* issuer_key, long serial) {
  X509Ptr certificate(X509_new());
  need(certificate != nullptr, "make a certificate");
  X509_set_version(certificate.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), serial);
  X509_NAME* name = X509_get_subject_name(certificate.get());
  for (const auto& [type, value] : subject) {
    need(X509_NAME_add_entry_by_txt(name, type.c_str(), MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0) == 1,
         "name " + type);
  }
  X509_set_issuer_name(certificate.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(certificate.get()), from);
  ASN1_TIME_set(X509_getm_notAfter(certificate.get()), to);
  X509_set_pubkey(certificate.get(), key);
  for (const auto& [nid, value] : extensions) add_extension(certificate.get(), nid, value, issuer);
  need(X509_sign(certificate.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0, "sign a certificate");
  return certificate;
}

// What a CT log signs (RFC 6962 section 3.2): precert_entry over the TBS and the
// issuer's key.
inline std::string precert_signed_data(std::uint64_t timestamp, EVP_PKEY* issuer_key, const std::string& tbs) {
  return std::string("\x00\x00", 2) + big_endian(timestamp, 8) + big_endian(1, 2) + sha256_of(spki_of(issuer_key)) +
         big_endian(tbs.size(), 3) + tbs + big_endian(0, 2);
}

}  // namespace pullgate::testing_support::x509
