// Notary Project signatures with OpenSSL 3: the envelope, JWS or COSE, read into an
// Envelope (policy/notation_envelope.hpp: what the signature covers, the headers, the
// payload, the chain), then the specification's checks on it in order, each failure
// enforced or logged as the level says. The certificate chain is checked here rather
// than by OpenSSL's path building: the specification fixes its order (as given,
// ending with a root), the extensions it honours (basic constraints, key usage,
// extended key usage and nothing else), and checks validity periods apart from trust
// (the authentic timestamp step).
#include "policy/notation.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <new>

#include "policy/notation_envelope.hpp"
#include "policy/text.hpp"
#include "policy/timestamp.hpp"
#include "policy/trusted_root.hpp"

namespace pullgate::policy::notation {
namespace {

struct ErrorQueueGuard {
  ~ErrorQueueGuard() { ERR_clear_error(); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* signature) const { ECDSA_SIG_free(signature); }
};

std::string time_text(TimePoint time) { return format_rfc3339(time); }

// signature-specification.md "Algorithm Selection": the leaf's key decides.
struct Algorithm {
  std::string alg;
  const EVP_MD* md = nullptr;
  std::size_t ec_field_bytes = 0;  // 0 for RSA
};

std::variant<Algorithm, std::string> algorithm_of(const Certificate& leaf) {
  EVP_PKEY* key = X509_get0_pubkey(leaf.x509());
  if (key == nullptr) return std::string("signing certificate's key cannot be read");
  const int bits = EVP_PKEY_get_bits(key);
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
    switch (bits) {
      case 2048: return Algorithm{"PS256", EVP_sha256(), 0};
      case 3072: return Algorithm{"PS384", EVP_sha384(), 0};
      case 4096: return Algorithm{"PS512", EVP_sha512(), 0};
      default: return "signing certificate's RSA key has " + std::to_string(bits) + " bits, not 2048, 3072 or 4096";
    }
  }
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
    char curve[64] = {};
    std::size_t length = 0;
    if (EVP_PKEY_get_group_name(key, curve, sizeof curve, &length) != 1) {
      return std::string("signing certificate's EC curve cannot be read");
    }
    const std::string_view name(curve, length);
    if (name == "prime256v1") return Algorithm{"ES256", EVP_sha256(), 32};
    if (name == "secp384r1") return Algorithm{"ES384", EVP_sha384(), 48};
    if (name == "secp521r1") return Algorithm{"ES512", EVP_sha512(), 66};
    return "signing certificate's EC curve " + std::string(name) + " is not P-256, P-384 or P-521";
  }
  return std::string("signing certificate's key is neither RSA nor EC");
}

// RFC 7518 section 3.4: a JWS ECDSA signature is R || S, each the curve's size.
std::optional<std::string> der_ecdsa(std::string_view raw, std::size_t field_bytes) {
  if (raw.size() != 2 * field_bytes) return std::nullopt;
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> signature(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(bytes, static_cast<int>(field_bytes), nullptr);
  BIGNUM* s = BN_bin2bn(bytes + field_bytes, static_cast<int>(field_bytes), nullptr);
  if (!signature || r == nullptr || s == nullptr || ECDSA_SIG_set0(signature.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    throw std::bad_alloc();
  }
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(signature.get(), &der);
  if (length <= 0) throw std::bad_alloc();
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

bool signature_verifies(const Envelope& envelope, const Algorithm& algorithm) {
  std::string signature = envelope.signature;
  if (algorithm.ec_field_bytes != 0) {
    auto der = der_ecdsa(envelope.signature, algorithm.ec_field_bytes);
    if (!der) return false;
    signature = std::move(*der);
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* key_ctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &key_ctx, algorithm.md, nullptr,
                                   X509_get0_pubkey(envelope.chain[0].x509())) != 1) {
    throw std::bad_alloc();
  }
  if (algorithm.ec_field_bytes == 0 && (EVP_PKEY_CTX_set_rsa_padding(key_ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                        EVP_PKEY_CTX_set_rsa_pss_saltlen(key_ctx, RSA_PSS_SALTLEN_AUTO) != 1)) {
    throw std::bad_alloc();
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                          reinterpret_cast<const unsigned char*>(envelope.signed_bytes.data()),
                          envelope.signed_bytes.size()) == 1;
}

// Integrity (trust-store-trust-policy.md step 3): the algorithm, the signature, the payload.
std::optional<std::string> integrity_refusal(const Envelope& envelope, const registry::Digest& manifest) {
  auto algorithm = algorithm_of(envelope.chain[0]);
  if (auto* error = std::get_if<std::string>(&algorithm)) return *error;
  const Algorithm& expected = std::get<Algorithm>(algorithm);
  if (envelope.alg != expected.alg) {
    return "alg " + envelope.alg + " does not match the signing certificate's key, which requires " + expected.alg;
  }
  if (!signature_verifies(envelope, expected)) {
    return "signature does not verify with the signing certificate's key (the envelope was altered or signed by "
           "another key)";
  }
  if (envelope.target.digest != manifest.str()) {
    return "signed for " + printable(envelope.target.digest, max_quoted) + ", not " + manifest.str();
  }
  return std::nullopt;
}

bool critical(X509* certificate, int nid) {
  const int at = X509_get_ext_by_NID(certificate, nid, -1);
  return at >= 0 && X509_EXTENSION_get_critical(X509_get_ext(certificate, at)) == 1;
}

// The RDNs of a name, in order, as TYPE and UTF-8 value.
std::vector<std::pair<std::string, std::string>> attributes_of(X509_NAME* name) {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const ASN1_OBJECT* object = X509_NAME_ENTRY_get_object(entry);
    const int nid = OBJ_obj2nid(object);
    std::string type;
    if (nid != NID_undef && OBJ_nid2sn(nid) != nullptr) {
      type = OBJ_nid2sn(nid);
    } else {
      char dotted[80] = {};
      OBJ_obj2txt(dotted, sizeof dotted, object, 1);
      type = dotted;
    }
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    std::string value = length < 0 ? std::string() : std::string(reinterpret_cast<char*>(utf8), length);
    OPENSSL_free(utf8);
    out.emplace_back(std::move(type), std::move(value));
  }
  return out;
}

std::string subject_text(const Certificate& certificate) {
  std::string out;
  for (const auto& [type, value] : attributes_of(X509_get_subject_name(certificate.x509()))) {
    std::string escaped;
    for (const char c : value) {
      if (c == ',' || c == ';' || c == '\\' || c == '+') escaped += '\\';
      escaped += c;
    }
    out += (out.empty() ? "" : ", ") + type + "=" + escaped;
  }
  return printable(out, 200);
}

// signature-specification.md "Leaf Certificates", for code signing.
std::optional<std::string> not_for_code_signing(const Certificate& leaf) {
  X509* certificate = leaf.x509();
  const std::string who = "signing certificate " + in_quotes(subject_text(leaf));
  const std::uint32_t flags = X509_get_extension_flags(certificate);
  if ((flags & EXFLAG_BCONS) != 0 && (flags & EXFLAG_CA) != 0) return who + " is a CA";
  if ((flags & EXFLAG_KUSAGE) == 0) return who + " has no key usage";
  if (!critical(certificate, NID_key_usage)) return who + "'s key usage is not critical";
  const std::uint32_t usage = X509_get_key_usage(certificate);
  if ((usage & KU_DIGITAL_SIGNATURE) == 0) return who + "'s key usage lacks digitalSignature";
  if ((usage & (KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT | KU_KEY_AGREEMENT | KU_KEY_CERT_SIGN | KU_CRL_SIGN |
                KU_ENCIPHER_ONLY | KU_DECIPHER_ONLY)) != 0) {
    return who + "'s key usage allows more than signing (encipherment, key agreement or certificate signing)";
  }
  if ((flags & EXFLAG_XKUSAGE) != 0) {
    const std::uint32_t extended = X509_get_extended_key_usage(certificate);
    if ((extended & (XKU_ANYEKU | XKU_SSL_SERVER | XKU_SSL_CLIENT | XKU_SMIME | XKU_TIMESTAMP)) != 0) {
      return who + "'s extended key usage names serverAuth, clientAuth, emailProtection, timeStamping or any";
    }
    if ((extended & XKU_CODE_SIGN) == 0) return who + "'s extended key usage lacks codeSigning";
  }
  return std::nullopt;
}

// signature-specification.md "Root and Intermediate CA Certificates"; `below` is how
// many CA certificates the chain holds under this one.
std::optional<std::string> not_a_ca(const Certificate& ca, std::size_t below) {
  X509* certificate = ca.x509();
  const std::string who = "CA certificate " + in_quotes(subject_text(ca));
  const std::uint32_t flags = X509_get_extension_flags(certificate);
  if ((flags & EXFLAG_BCONS) == 0 || (flags & EXFLAG_CA) == 0 || !critical(certificate, NID_basic_constraints)) {
    return who + " lacks critical basic constraints with CA true";
  }
  if ((flags & EXFLAG_KUSAGE) == 0 || !critical(certificate, NID_key_usage) ||
      (X509_get_key_usage(certificate) & KU_KEY_CERT_SIGN) == 0) {
    return who + " lacks a critical key usage with keyCertSign";
  }
  const long path_length = X509_get_pathlen(certificate);
  if (path_length >= 0 && static_cast<std::size_t>(path_length) < below) {
    return who + "'s path length constraint " + std::to_string(path_length) + " is shorter than the chain below it";
  }
  return std::nullopt;
}

bool sha1_signed(const Certificate& certificate) {
  const int nid = X509_get_signature_nid(certificate.x509());
  return nid == NID_sha1WithRSAEncryption || nid == NID_ecdsa_with_SHA1 || nid == NID_sha1WithRSA;
}

// The x5c chain as signature-specification.md "Other requirements" orders it, its
// certificates as the specification requires, and a certificate of `store` in it.
std::optional<std::string> chain_refusal(const std::vector<Certificate>& chain, const std::vector<Certificate>& store,
                                         std::string_view store_name) {
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const Certificate& certificate = chain[i];
    const Certificate& issuer = i + 1 < chain.size() ? chain[i + 1] : certificate;
    if (sha1_signed(certificate))
      return "certificate " + in_quotes(subject_text(certificate)) + " is signed with SHA-1";
    const bool signed_by_issuer = X509_verify(certificate.x509(), X509_get0_pubkey(issuer.x509())) == 1;
    if (i + 1 < chain.size() &&
        (X509_check_issued(issuer.x509(), certificate.x509()) != X509_V_OK || !signed_by_issuer)) {
      return "x5c is not a chain: " + in_quotes(subject_text(certificate)) +
             " is not issued by the next certificate, " + in_quotes(subject_text(issuer));
    }
    // The root: self-signed. X509_check_issued would also ask for keyCertSign, which a
    // chain of one, a self-signed leaf, must not have.
    if (i + 1 == chain.size() &&
        (X509_NAME_cmp(X509_get_issuer_name(certificate.x509()), X509_get_subject_name(certificate.x509())) != 0 ||
         !signed_by_issuer)) {
      return "x5c does not end with a root certificate: " + in_quotes(subject_text(certificate)) +
             " is not self-signed";
    }
  }
  if (auto refusal = not_for_code_signing(chain.front())) return refusal;
  for (std::size_t i = 1; i < chain.size(); ++i) {
    if (auto refusal = not_a_ca(chain[i], i - 1)) return refusal;
  }
  for (const Certificate& trusted : store) {
    for (const Certificate& certificate : chain) {
      if (certificate.der() == trusted.der()) return std::nullopt;
    }
  }
  return "certificate chain does not lead to the trust store (" + std::string(store_name) + ", " +
         std::to_string(store.size()) + " certificate" + (store.size() == 1 ? "" : "s") + "); its root is " +
         in_quotes(subject_text(chain.back()));
}

bool matches(const TrustedIdentity& identity, const std::vector<std::pair<std::string, std::string>>& subject) {
  if (identity.any) return true;
  for (const auto& wanted : identity.attributes) {
    const auto count =
        std::count_if(subject.begin(), subject.end(), [&](const auto& rdn) { return rdn.first == wanted.first; });
    // A subject naming a type twice matches no identity that names it (notation-go).
    if (count != 1 || std::find(subject.begin(), subject.end(), wanted) == subject.end()) return false;
  }
  return true;
}

std::optional<std::string> identity_refusal(const Certificate& leaf, const std::vector<std::string>& identities) {
  if (auto refusal = trusted_identities_refusal(identities)) return refusal;
  const auto subject = attributes_of(X509_get_subject_name(leaf.x509()));
  std::string listed;
  for (const std::string& text : identities) {
    if (matches(std::get<TrustedIdentity>(parse_trusted_identity(text)), subject)) return std::nullopt;
    listed += (listed.empty() ? "" : "; ") + printable(text, max_quoted);
  }
  return "the signer " + in_quotes(subject_text(leaf)) + " is not a trusted identity (trusted: " + listed + ")";
}

// Every certificate of `chain` valid from `from` to `to` (both ends included).
std::optional<std::string> validity_refusal(const std::vector<Certificate>& chain, TimePoint from, TimePoint to,
                                            const std::string& when) {
  for (const Certificate& certificate : chain) {
    if (from < certificate.not_before() || to > certificate.not_after()) {
      return "certificate " + in_quotes(subject_text(certificate)) + " (valid from " +
             time_text(certificate.not_before()) + " to " + time_text(certificate.not_after()) + ") is not valid at " +
             when;
    }
  }
  return std::nullopt;
}

// The authentic timestamp step for the envelope's scheme; `timestamp` is set when a
// countersignature verified.
std::optional<std::string> timestamp_refusal(const Envelope& envelope, const NotationTrust& trust, TimePoint now,
                                             std::optional<TimePoint>& timestamp) {
  if (envelope.scheme == SigningScheme::x509_signing_authority) {
    return validity_refusal(envelope.chain, *envelope.authentic_signing_time, *envelope.authentic_signing_time,
                            "the authentic signing time " + time_text(*envelope.authentic_signing_time));
  }
  const bool expired = std::any_of(envelope.chain.begin(), envelope.chain.end(),
                                   [&](const Certificate& certificate) { return now > certificate.not_after(); });
  if (trust.tsa_roots.empty() || (trust.verify_timestamp == VerifyTimestamp::after_cert_expiry && !expired)) {
    return validity_refusal(envelope.chain, now, now, "the verification time " + time_text(now));
  }
  if (envelope.timestamp_token.empty()) {
    return std::string(
        "no timestamp countersignature was found in the signature envelope, and the policy names a "
        "TSA trust store");
  }
  std::vector<sigstore::CertificateAuthority> authorities;
  for (const Certificate& root : trust.tsa_roots) {
    authorities.push_back(sigstore::CertificateAuthority{"", {root}, {TimePoint::min(), std::nullopt}});
  }
  auto verified =
      sigstore::verify_rfc3161_token(envelope.timestamp_token, envelope.signature, authorities, "TSA trust store");
  if (auto* error = std::get_if<std::string>(&verified)) return "timestamp countersignature: " + *error;
  const auto& stamp = std::get<sigstore::VerifiedTimestamp>(verified);
  timestamp = stamp.time;
  return validity_refusal(envelope.chain, stamp.time - stamp.accuracy, stamp.time + stamp.accuracy,
                          "the timestamp's time " + time_text(stamp.time));
}

enum class Check { authenticity, authentic_timestamp, expiry };

bool enforced(VerificationLevel level, Check check) {
  switch (level) {
    case VerificationLevel::strict: return true;
    case VerificationLevel::permissive: return check == Check::authenticity;
    case VerificationLevel::audit:
    case VerificationLevel::skip: return false;
  }
  return true;
}

const char* name_of(Check check) {
  switch (check) {
    case Check::authenticity: return "authenticity";
    case Check::authentic_timestamp: return "authentic timestamp";
    case Check::expiry: return "expiry";
  }
  return "";
}

}  // namespace

std::variant<TrustedIdentity, std::string> parse_trusted_identity(std::string_view text) {
  if (text == "*") return TrustedIdentity{true, {}};
  constexpr std::string_view prefix = "x509.subject:";
  if (!text.starts_with(prefix)) return std::string("a trusted identity is \"*\" or begins with x509.subject:");
  text.remove_prefix(prefix.size());
  TrustedIdentity identity;
  // One RDN's text with escapes resolved; `escaped` marks the characters that were
  // escaped, which trimming keeps.
  std::string current;
  std::vector<bool> escaped;
  const auto finish = [&]() -> std::optional<std::string> {
    std::size_t begin = 0, end = current.size();
    while (begin < end && current[begin] == ' ' && !escaped[begin]) ++begin;
    while (end > begin && current[end - 1] == ' ' && !escaped[end - 1]) --end;
    std::size_t equals = std::string::npos;
    for (std::size_t i = begin; i < end; ++i) {
      if (current[i] == '=' && !escaped[i]) {
        equals = i;
        break;
      }
    }
    if (equals == std::string::npos) return "RDN " + in_quotes(current.substr(begin, end - begin)) + " has no '='";
    std::size_t type_end = equals;
    while (type_end > begin && current[type_end - 1] == ' ') --type_end;
    std::size_t value_begin = equals + 1;
    while (value_begin < end && current[value_begin] == ' ' && !escaped[value_begin]) ++value_begin;
    std::string type = current.substr(begin, type_end - begin);
    std::string value = current.substr(value_begin, end - value_begin);
    if (type.empty() || !std::all_of(type.begin(), type.end(),
                                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.'; })) {
      return "RDN type " + in_quotes(type) + " is not an attribute name";
    }
    if (value.empty()) return "RDN " + type + " has an empty value";
    if (type == "S") type = "ST";
    for (const auto& [seen, _] : identity.attributes) {
      if (seen == type) return "RDN type " + type + " appears twice";
    }
    identity.attributes.emplace_back(std::move(type), std::move(value));
    current.clear();
    escaped.clear();
    return std::nullopt;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      if (i + 1 == text.size()) return std::string("a trusted identity ends with a lone backslash");
      const char next = text[++i];
      if (next != ',' && next != ';' && next != '\\' && next != '+' && next != ' ' && next != '"' && next != '=' &&
          next != '<' && next != '>' && next != '#') {
        return "the escape " + in_quotes("\\" + std::string(1, next)) + " is not one a distinguished name allows";
      }
      current += next;
      escaped.push_back(true);
    } else if (c == ',') {
      if (auto error = finish()) return *error;
    } else if (c == '+') {
      return std::string("multi-valued RDNs ('+') are not supported");
    } else if (c == ';') {
      return std::string("an unescaped ';' in a trusted identity (escape it as \\;)");
    } else {
      current += c;
      escaped.push_back(false);
    }
  }
  if (auto error = finish()) return *error;
  for (const std::string_view required : {"C", "ST", "O"}) {
    const bool present = std::any_of(identity.attributes.begin(), identity.attributes.end(),
                                     [&](const auto& rdn) { return rdn.first == required; });
    if (!present) return "a trusted identity must name C, ST (or S) and O; it lacks " + std::string(required);
  }
  return identity;
}

std::optional<std::string> trusted_identities_refusal(const std::vector<std::string>& identities) {
  if (identities.empty()) return std::string("the trust policy names no trusted identity");
  if (identities.size() > 1 && std::find(identities.begin(), identities.end(), "*") != identities.end()) {
    return std::string("the trusted identity \"*\" cannot stand with others");
  }
  std::vector<TrustedIdentity> parsed;
  for (const std::string& text : identities) {
    auto identity = parse_trusted_identity(text);
    if (auto* error = std::get_if<std::string>(&identity)) return "trusted identity " + in_quotes(text) + ": " + *error;
    parsed.push_back(std::get<TrustedIdentity>(std::move(identity)));
  }
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    for (std::size_t j = i + 1; j < parsed.size(); ++j) {
      // Both hold for a subject with every attribute of both, unless a type they share
      // has different values.
      const bool disjoint = std::any_of(parsed[i].attributes.begin(), parsed[i].attributes.end(), [&](const auto& a) {
        return std::any_of(parsed[j].attributes.begin(), parsed[j].attributes.end(),
                           [&](const auto& b) { return a.first == b.first && a.second != b.second; });
      });
      if (!disjoint) {
        return "trusted identities " + in_quotes(identities[i]) + " and " + in_quotes(identities[j]) +
               " overlap: a certificate could match both";
      }
    }
  }
  return std::nullopt;
}

std::variant<NotationVerified, std::string> verify_notation_signature(std::string_view media_type,
                                                                      std::string_view envelope_bytes,
                                                                      const registry::Digest& manifest,
                                                                      const NotationTrust& trust, TimePoint now) {
  if (trust.level == VerificationLevel::skip) {
    NotationVerified skipped;
    skipped.skipped = true;
    return skipped;
  }
  const ErrorQueueGuard clear_errors;
  if (media_type != jws_media_type && media_type != cose_media_type) {
    return "signature envelope media type " + in_quotes(media_type) + " is neither " + std::string(jws_media_type) +
           " nor " + std::string(cose_media_type);
  }
  if (envelope_bytes.size() > max_envelope_size) {
    return "signature envelope is " + std::to_string(envelope_bytes.size()) + " bytes, more than " +
           std::to_string(max_envelope_size);
  }
  auto read = media_type == jws_media_type ? read_jws(envelope_bytes) : read_cose(envelope_bytes);
  if (auto* error = std::get_if<std::string>(&read)) return "integrity: " + *error;
  const Envelope& envelope = std::get<Envelope>(read);
  if (auto refusal = integrity_refusal(envelope, manifest)) return "integrity: " + *refusal;

  NotationVerified verified;
  verified.signer = subject_text(envelope.chain.front());
  verified.scheme = envelope.scheme;
  verified.expiry = envelope.expiry;
  verified.target = envelope.target;
  verified.signing_agent = envelope.signing_agent;
  verified.signing_time =
      envelope.scheme == SigningScheme::x509 ? *envelope.signing_time : *envelope.authentic_signing_time;
  // Each later check: refused when the level enforces it, else logged.
  std::optional<std::string> refusal;
  const auto check = [&](Check kind, std::optional<std::string> failure) {
    if (!failure || refusal) return;
    std::string line = std::string(name_of(kind)) + ": " + *failure;
    if (enforced(trust.level, kind)) {
      refusal = std::move(line);
    } else {
      verified.logged.push_back(std::move(line));
    }
  };

  const bool by_authority = envelope.scheme == SigningScheme::x509_signing_authority;
  std::optional<std::string> authenticity =
      chain_refusal(envelope.chain, by_authority ? trust.signing_authority_roots : trust.ca_roots,
                    by_authority ? "signingAuthority" : "ca");
  if (!authenticity) authenticity = identity_refusal(envelope.chain.front(), trust.trusted_identities);
  check(Check::authenticity, std::move(authenticity));
  if (envelope.expiry && now > *envelope.expiry) {
    check(Check::expiry, "signature expired at " + time_text(*envelope.expiry));
  }
  std::optional<TimePoint> timestamp;
  check(Check::authentic_timestamp, timestamp_refusal(envelope, trust, now, timestamp));
  if (refusal) return *refusal;
  if (timestamp) {
    verified.timestamped = true;
    verified.signing_time = *timestamp;
  }
  // When this result stops holding: the expiry, and the chain's first notAfter when
  // it was checked at `now` (no countersignature read), each where the level
  // enforces that check.
  const auto until = [&](TimePoint t) {
    if (!verified.valid_until || t < *verified.valid_until) verified.valid_until = t;
  };
  if (envelope.expiry && enforced(trust.level, Check::expiry)) until(*envelope.expiry);
  if (envelope.scheme == SigningScheme::x509 && !timestamp && enforced(trust.level, Check::authentic_timestamp))
    for (const Certificate& certificate : envelope.chain) until(certificate.not_after());
  return verified;
}

}  // namespace pullgate::policy::notation
