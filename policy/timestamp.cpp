// RFC 3161 timestamps with OpenSSL 3: the response read with TS_*, the token's
// signature verified with CMS against the trusted root's timestamp authority (never a
// certificate the token brings), the authority's chain at genTime with
// policy/fulcio.hpp's chain_to, and the usages and periods sigstore-go requires.
#include "policy/timestamp.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <new>
#include <optional>
#include <string_view>

#include "policy/fulcio.hpp"
#include "policy/text.hpp"

namespace pullgate::policy::sigstore {
namespace {

struct ErrorQueueGuard {
  ~ErrorQueueGuard() { ERR_clear_error(); }
};
struct RespFree {
  void operator()(TS_RESP* response) const { TS_RESP_free(response); }
};
struct CmsFree {
  void operator()(CMS_ContentInfo* cms) const { CMS_ContentInfo_free(cms); }
};
struct CertsFree {  // CMS_get1_certs: the stack and its references
  void operator()(STACK_OF(X509) * stack) const { sk_X509_pop_free(stack, X509_free); }
};
struct StackFree {  // the stack only
  void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
struct Pkcs7Free {
  void operator()(PKCS7* token) const { PKCS7_free(token); }
};
struct TstInfoFree {
  void operator()(TS_TST_INFO* info) const { TS_TST_INFO_free(info); }
};
struct ObjectsFree {
  void operator()(EXTENDED_KEY_USAGE* usages) const { EXTENDED_KEY_USAGE_free(usages); }
};

std::string time_text(TimePoint time) { return format_rfc3339(time); }

// GeneralizedTime "YYYYMMDDHHMMSS[.fff]Z" with its fraction, which ASN1_TIME_to_tm drops
// (a TSA may stamp milliseconds, and validFor ends are compared exactly).
std::optional<TimePoint> time_of(const ASN1_GENERALIZEDTIME* time) {
  std::tm parts{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1) return std::nullopt;
  TimePoint out = Clock::from_time_t(timegm(&parts));
  const std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(time)),
                         static_cast<std::size_t>(ASN1_STRING_length(time)));
  const std::size_t dot = text.find('.');
  if (dot != std::string::npos) {
    std::chrono::nanoseconds fraction{0};
    std::int64_t scale = 100'000'000;
    for (std::size_t i = dot + 1; i < text.size() && text[i] >= '0' && text[i] <= '9' && scale > 0; ++i) {
      fraction += std::chrono::nanoseconds((text[i] - '0') * scale);
      scale /= 10;
    }
    out += std::chrono::duration_cast<Clock::duration>(fraction);
  }
  return out;
}

struct Digest {
  const EVP_MD* md = nullptr;
  const char* name = nullptr;
};

// sigstore timestamp-authority VerifyTimestampResponse: SHA-1 is too weak, and only the
// SHA-2 hashes Go's crypto names are read.
std::variant<Digest, std::string> digest_of(const X509_ALGOR* algorithm) {
  const ASN1_OBJECT* object = nullptr;
  X509_ALGOR_get0(&object, nullptr, nullptr, algorithm);
  switch (OBJ_obj2nid(object)) {
    case NID_sha256: return Digest{EVP_sha256(), "SHA-256"};
    case NID_sha384: return Digest{EVP_sha384(), "SHA-384"};
    case NID_sha512: return Digest{EVP_sha512(), "SHA-512"};
    case NID_sha1: return std::string("timestamp's message imprint is SHA-1, which is too weak");
    default: break;
  }
  char dotted[80] = {};
  OBJ_obj2txt(dotted, sizeof dotted, object, 1);
  return "timestamp's message imprint algorithm " + std::string(dotted) + " is not SHA-256, SHA-384 or SHA-512";
}

std::string hash_of(const EVP_MD* md, std::string_view bytes) {
  std::string out(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), reinterpret_cast<unsigned char*>(out.data()), &length, md, nullptr) != 1) {
    throw std::bad_alloc();
  }
  out.resize(length);
  return out;
}

bool is_ca(X509* certificate) { return X509_check_ca(certificate) != 0; }

std::string name_of(const CertificateAuthority& authority) {
  return authority.uri.empty() ? authority.anchor().subject() : authority.uri;
}

// The leaf's extended key usage: present, critical, time stamping and nothing else
// (timestamp-authority verifyLeafCert and verifyLeafExtendedKeyUsage).
std::optional<std::string> not_for_time_stamping(const CertificateChain& chain) {
  X509* leaf = chain.front().x509();
  const std::string who = "TSA certificate " + chain.front().subject();
  if (is_ca(leaf)) return who + " is a CA's, not a timestamp authority's";
  int critical = -1;
  std::unique_ptr<EXTENDED_KEY_USAGE, ObjectsFree> usages(
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(leaf, NID_ext_key_usage, &critical, nullptr)));
  if (!usages) return who + " has no extended key usage; time stamping is needed";
  if (critical != 1) return who + "'s extended key usage is not critical";
  if (sk_ASN1_OBJECT_num(usages.get()) != 1 || OBJ_obj2nid(sk_ASN1_OBJECT_value(usages.get(), 0)) != NID_time_stamp) {
    return who + "'s extended key usage is not time stamping alone";
  }
  for (std::size_t i = 1; i + 1 < chain.size(); ++i) {
    X509* issuer = chain[i].x509();
    if ((X509_get_extension_flags(issuer) & EXFLAG_XKUSAGE) != 0 &&
        (X509_get_extended_key_usage(issuer) & (XKU_TIMESTAMP | XKU_ANYEKU)) == 0) {
      return "issuer " + chain[i].subject() + " may not issue time-stamping certificates (its extended key usage)";
    }
  }
  return std::nullopt;
}

// The certificate among `certificates` that `signer` names (issuer and serial, or key id).
X509* signer_among(CMS_SignerInfo* signer, STACK_OF(X509) * certificates) {
  for (int i = 0; certificates != nullptr && i < sk_X509_num(certificates); ++i) {
    if (CMS_SignerInfo_cert_cmp(signer, sk_X509_value(certificates, i)) == 0) return sk_X509_value(certificates, i);
  }
  return nullptr;
}

// Whether the certificates a token embeds may serve as intermediates between its signer
// and an authority's anchor. A Sigstore root lists each authority's whole chain; a
// Notary Project TSA trust store holds roots only, and the token brings the rest.
enum class Embedded { ignored, intermediates };

// The token, signed by `authority`, at `time`: one line naming the check that failed.
std::optional<std::string> refusal_by(const CertificateAuthority& authority, CMS_ContentInfo* token,
                                      CMS_SignerInfo* signer, STACK_OF(X509) * embedded, TimePoint time, Embedded use) {
  // A root may give only the authority's CAs; then the token must bring its leaf.
  const bool root_names_leaf = !is_ca(authority.chain.front().x509());
  X509* brought = signer_among(signer, embedded);
  if (sk_X509_num(embedded) > 0 && brought == nullptr)
    return std::string("timestamp embeds no certificate for its signer");
  std::optional<Certificate> leaf;
  if (root_names_leaf) {
    leaf = authority.chain.front();
    if (brought != nullptr && Certificate::from_openssl(brought).der() != leaf->der()) {
      return "the certificate the timestamp embeds for its signer (" + Certificate::from_openssl(brought).subject() +
             ") is not the authority's TSA certificate";
    }
    if (CMS_SignerInfo_cert_cmp(signer, leaf->x509()) != 0) {
      return "timestamp is not signed by the authority's TSA certificate " + leaf->subject();
    }
  } else if (brought != nullptr) {
    leaf = Certificate::from_openssl(brought);
  } else {
    return std::string("timestamp embeds no certificate for its signer, and the authority names no TSA certificate");
  }

  std::unique_ptr<STACK_OF(X509), StackFree> signers(sk_X509_new_null());
  if (!signers || sk_X509_push(signers.get(), leaf->x509()) <= 0) throw std::bad_alloc();
  if (CMS_verify(token, signers.get(), nullptr, nullptr, nullptr,
                 CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
    return "timestamp's signature does not verify with TSA certificate " + leaf->subject();
  }
  CertificateAuthority widened = authority;
  for (int i = 0; use == Embedded::intermediates && i < sk_X509_num(embedded); ++i) {
    X509* certificate = sk_X509_value(embedded, i);
    if (certificate != brought) widened.chain.insert(widened.chain.end() - 1, Certificate::from_openssl(certificate));
  }
  auto chain = chain_to(*leaf, widened, time);
  if (auto* error = std::get_if<std::string>(&chain)) {
    return "TSA certificate does not chain to the authority at the timestamp's time " + time_text(time) + ": " +
           *error;
  }
  if (auto refusal = not_for_time_stamping(std::get<CertificateChain>(chain))) return refusal;
  if (!authority.valid_for.contains(time)) {
    return "the timestamp's time " + time_text(time) + " is outside the authority's validFor (" +
           authority.valid_for.text() + ")";
  }
  return std::nullopt;
}

// RFC 3161 section 2.4.2: accuracy when given; the baseline policy's second otherwise.
Clock::duration accuracy_of(TS_TST_INFO* info) {
  using namespace std::chrono;
  if (const TS_ACCURACY* accuracy = TS_TST_INFO_get_accuracy(info); accuracy != nullptr) {
    const auto part = [](const ASN1_INTEGER* value) {
      const long n = value == nullptr ? 0 : ASN1_INTEGER_get(value);
      return n < 0 ? 0L : n;  // -1 is OpenSSL's "too large": treat as unknown, not as a long range
    };
    return duration_cast<Clock::duration>(seconds(part(TS_ACCURACY_get_seconds(accuracy))) +
                                          milliseconds(part(TS_ACCURACY_get_millis(accuracy))) +
                                          microseconds(part(TS_ACCURACY_get_micros(accuracy))));
  }
  char policy[80] = {};
  OBJ_obj2txt(policy, sizeof policy, TS_TST_INFO_get_policy_id(info), 1);
  return std::string_view(policy) == "0.4.0.2023.1.1" ? Clock::duration(std::chrono::seconds(1)) : Clock::duration{};
}

// The token (`token`, its TSTInfo `info`) over `signature` (named in reasons as
// `signed_name`) by one of `authorities` (named `store`).
std::variant<VerifiedTimestamp, std::string> verify_token(PKCS7* token, TS_TST_INFO* info, std::string_view signature,
                                                          const std::vector<CertificateAuthority>& authorities,
                                                          std::string_view signed_name, std::string_view store,
                                                          Embedded use) {
  const std::optional<TimePoint> time = time_of(TS_TST_INFO_get_time(info));
  if (!time) return std::string("timestamp's genTime is not a time");
  TS_MSG_IMPRINT* imprint = TS_TST_INFO_get_msg_imprint(info);
  auto digest = digest_of(TS_MSG_IMPRINT_get_algo(imprint));
  if (auto* error = std::get_if<std::string>(&digest)) return *error;
  const Digest& hash = std::get<Digest>(digest);
  const ASN1_OCTET_STRING* stamped = TS_MSG_IMPRINT_get_msg(imprint);
  const std::string expected = hash_of(hash.md, signature);
  const std::string found(reinterpret_cast<const char*>(ASN1_STRING_get0_data(stamped)),
                          static_cast<std::size_t>(ASN1_STRING_length(stamped)));
  if (found != expected) {
    return "timestamp is not over " + std::string(signed_name) + ": its " + std::string(hash.name) + " imprint is " +
           hex(found).substr(0, 16) + "..., the signature's " + hex(expected).substr(0, 16) + "...";
  }

  unsigned char* token_der = nullptr;
  const int token_length = i2d_PKCS7(token, &token_der);
  if (token_length <= 0) return std::string("timestamp's token cannot be re-encoded");
  const unsigned char* token_at = token_der;
  std::unique_ptr<CMS_ContentInfo, CmsFree> cms(d2i_CMS_ContentInfo(nullptr, &token_at, token_length));
  OPENSSL_free(token_der);
  if (!cms) return std::string("timestamp's token is not CMS SignedData");
  STACK_OF(CMS_SignerInfo)* signers = CMS_get0_SignerInfos(cms.get());
  if (signers == nullptr || sk_CMS_SignerInfo_num(signers) != 1) {
    return std::string("timestamp's token must have exactly one signer");
  }
  CMS_SignerInfo* signer = sk_CMS_SignerInfo_value(signers, 0);
  std::unique_ptr<STACK_OF(X509), CertsFree> embedded(CMS_get1_certs(cms.get()));

  if (authorities.empty()) return "the " + std::string(store) + " has no timestamp authority";
  std::string reasons;
  for (const CertificateAuthority& authority : authorities) {
    auto refusal = refusal_by(authority, cms.get(), signer, embedded.get(), *time, use);
    ERR_clear_error();
    if (!refusal) return VerifiedTimestamp{*time, name_of(authority), accuracy_of(info)};
    reasons += (reasons.empty() ? "" : "; ") + name_of(authority) + ": " + *refusal;
  }
  return "timestamp of " + time_text(*time) + " is not by a timestamp authority of the " + std::string(store) + ": " +
         reasons;
}

}  // namespace

std::variant<VerifiedTimestamp, std::string> verify_rfc3161_timestamp(std::string_view signed_timestamp,
                                                                      std::string_view signature,
                                                                      const TrustedRoot& root) {
  const ErrorQueueGuard clear_errors;
  const auto* at = reinterpret_cast<const unsigned char*>(signed_timestamp.data());
  const auto* end = at + signed_timestamp.size();
  std::unique_ptr<TS_RESP, RespFree> response(d2i_TS_RESP(nullptr, &at, static_cast<long>(signed_timestamp.size())));
  if (!response) return std::string("timestamp is not a DER TimeStampResp");
  if (at != end) return std::string("timestamp has bytes after its TimeStampResp");
  const long status = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(response.get())));
  if (status != 0) return "timestamp response's status is " + std::to_string(status) + ", not granted (0)";
  PKCS7* token = TS_RESP_get_token(response.get());
  TS_TST_INFO* info = TS_RESP_get_tst_info(response.get());
  if (token == nullptr || info == nullptr) return std::string("timestamp response carries no token");
  return verify_token(token, info, signature, root.timestamp_authorities(), "the bundle's signature", "trusted root",
                      Embedded::ignored);
}

std::variant<VerifiedTimestamp, std::string> verify_rfc3161_token(std::string_view token, std::string_view signature,
                                                                  const std::vector<CertificateAuthority>& authorities,
                                                                  std::string_view store) {
  const ErrorQueueGuard clear_errors;
  const auto* at = reinterpret_cast<const unsigned char*>(token.data());
  const auto* end = at + token.size();
  std::unique_ptr<PKCS7, Pkcs7Free> parsed(d2i_PKCS7(nullptr, &at, static_cast<long>(token.size())));
  if (!parsed) return std::string("timestamp is not a DER TimeStampToken");
  if (at != end) return std::string("timestamp has bytes after its TimeStampToken");
  std::unique_ptr<TS_TST_INFO, TstInfoFree> info(PKCS7_to_TS_TST_INFO(parsed.get()));
  if (!info) return std::string("timestamp's token carries no TSTInfo");
  return verify_token(parsed.get(), info.get(), signature, authorities, "the signature", store,
                      Embedded::intermediates);
}

}  // namespace pullgate::policy::sigstore
