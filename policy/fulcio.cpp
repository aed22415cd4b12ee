// Fulcio certificates with OpenSSL 3: the chain at the signing time, the embedded SCT
// (built by hand, so that the trusted root's CT logs and their periods decide, with no
// CTLOG_STORE file), and the identity in the subject alternative name and extensions.
#include "policy/fulcio.hpp"

#include <openssl/asn1.h>
#include <openssl/ct.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <new>
#include <optional>

#include "policy/text.hpp"

namespace pullgate::policy::sigstore {
namespace {

constexpr std::size_t max_quoted_length = 80;
constexpr std::string_view fulcio_arc = "1.3.6.1.4.1.57264.1.";
constexpr std::string_view username_oid = "1.3.6.1.4.1.57264.1.7";

// OpenSSL keeps a per-thread error queue; a failed call must not leave entries behind
// for whoever calls OpenSSL next on this thread.
struct ErrorQueueGuard {
  ~ErrorQueueGuard() { ERR_clear_error(); }
};

struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
struct StoreFree {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* ctx) const { X509_STORE_CTX_free(ctx); }
};
struct StackFree {  // the stack only: its certificates belong to Certificate objects
  void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};
struct SctListFree {
  void operator()(STACK_OF(SCT) * list) const { SCT_LIST_free(list); }
};
struct Utf8StringFree {
  void operator()(ASN1_UTF8STRING* text) const { ASN1_UTF8STRING_free(text); }
};

Check passed() { return Check{true, {}}; }
Check failed(std::string reason) { return Check{false, std::move(reason)}; }

std::string in_quotes(std::string_view text) { return "\"" + printable(text, max_quoted_length) + "\""; }
std::string time_text(TimePoint time) { return format_rfc3339(time); }
std::string bytes_of(const ASN1_STRING* text) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                     static_cast<std::size_t>(ASN1_STRING_length(text)));
}

// --- the chain --------------------------------------------------------------------

// "CN=sigstore-intermediate,O=sigstore.dev", or what a certificate without a subject
// (a Fulcio leaf) is.
std::string named(const Certificate& certificate) {
  return certificate.subject().empty() ? "the signing certificate" : certificate.subject();
}

bool has_extended_key_usage(X509* certificate) { return (X509_get_extension_flags(certificate) & EXFLAG_XKUSAGE) != 0; }

// Code signing, as sigstore-go asks Go's verifier for it: the leaf must name it (Fulcio
// always does; a certificate without it was not issued to sign code), and a CA above
// it that restricts its usages must allow it.
std::optional<std::string> not_for_code_signing(const CertificateChain& chain) {
  X509* leaf = chain.front().x509();
  if (!has_extended_key_usage(leaf))
    return std::string("certificate has no extended key usage; code signing is needed");
  if ((X509_get_extended_key_usage(leaf) & XKU_CODE_SIGN) == 0) {
    return std::string("certificate's extended key usage does not include code signing");
  }
  for (std::size_t i = 1; i < chain.size(); ++i) {
    X509* issuer = chain[i].x509();
    if (has_extended_key_usage(issuer) && (X509_get_extended_key_usage(issuer) & (XKU_CODE_SIGN | XKU_ANYEKU)) == 0) {
      return "issuer " + chain[i].subject() + " may not issue code-signing certificates (its extended key usage)";
    }
  }
  return std::nullopt;
}

// A CA's certificate: basicConstraints says so, or its key usage allows signing
// certificates (X509_check_ca alone lets CA:TRUE pass when the key usage lacks
// keyCertSign), or it is an old self-signed v1 root.
bool is_ca(X509* certificate) {
  const std::uint32_t flags = X509_get_extension_flags(certificate);
  if ((flags & EXFLAG_CA) != 0) return true;
  if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(certificate) & KU_KEY_CERT_SIGN) != 0) return true;
  return X509_check_ca(certificate) != 0;
}

// OpenSSL counts a certificate expired in the very second of its notAfter; RFC 5280
// (section 4.1.2.5: "inclusive") and Go's verifier, which sigstore-go checks with, count
// that second in. The one error this forgives is that one.
int closed_validity(int ok, X509_STORE_CTX* ctx) {
  if (ok == 0 && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CERT_HAS_EXPIRED) {
    X509* certificate = X509_STORE_CTX_get_current_cert(ctx);
    const std::time_t time = X509_VERIFY_PARAM_get_time(X509_STORE_CTX_get0_param(ctx));
    if (certificate != nullptr && ASN1_TIME_cmp_time_t(X509_get0_notAfter(certificate), time) == 0) {
      X509_STORE_CTX_set_error(ctx, X509_V_OK);
      return 1;
    }
  }
  return ok;
}

// --- SCTs -------------------------------------------------------------------------

void append_big_endian(std::string& out, std::uint64_t value, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xff);
}

// The leaf as the log saw it before the SCT was added: its TBSCertificate without the
// SCT list, encoded again (RFC 6962 section 3.2; Fulcio's certificates are DER, so
// this gives back the very bytes the log signed).
std::string precertificate_tbs(X509* leaf) {
  std::unique_ptr<X509, X509Free> copy(X509_dup(leaf));
  if (!copy) throw std::bad_alloc();
  X509_EXTENSION_free(X509_delete_ext(copy.get(), X509_get_ext_by_NID(copy.get(), NID_ct_precert_scts, -1)));
  unsigned char* der = nullptr;
  const int length = i2d_re_X509_tbs(copy.get(), &der);  // i2d_re_: the cached encoding is stale now
  if (length <= 0) throw std::bad_alloc();
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

// An SCT's time, milliseconds since the epoch, as a TimePoint (clamped: a log may
// write any 64-bit number).
TimePoint time_of_sct(std::uint64_t ms) {
  using std::chrono::milliseconds;
  const auto most =
      static_cast<std::uint64_t>(std::chrono::duration_cast<milliseconds>(TimePoint::max().time_since_epoch()).count());
  if (ms > most) return TimePoint::max();
  return TimePoint(milliseconds(static_cast<std::int64_t>(ms)));
}

// What a CT log signs for a precertificate entry (RFC 6962 section 3.2,
// digitally-signed struct): version 1, certificate_timestamp, the time, precert_entry,
// the issuer's key hash, the TBSCertificate (24-bit length) and the SCT's extensions
// (16-bit length), which may be non-empty (sigstore-conformance
// bundle-with-sct-with-extensions).
std::string signed_sct_data(std::uint64_t timestamp, std::string_view issuer_key_hash, std::string_view tbs,
                            std::string_view extensions) {
  std::string out;
  out += '\x00';  // sct_version v1
  out += '\x00';  // signature_type certificate_timestamp
  append_big_endian(out, timestamp, 8);
  append_big_endian(out, 1, 2);  // entry_type precert_entry
  out += issuer_key_hash;
  append_big_endian(out, tbs.size(), 3);
  out += tbs;
  append_big_endian(out, extensions.size(), 2);
  out += extensions;
  return out;
}

// Why one SCT does not count (a clause that stands on its own), or nothing when it does.
std::optional<std::string> sct_refusal(const SCT* sct, std::string_view tbs, std::string_view issuer_key_hash,
                                       const TrustedRoot& root) {
  if (SCT_get_version(sct) != SCT_VERSION_V1) return std::string("it is not an SCT of version 1");
  if (tbs.size() >= (std::size_t{1} << 24)) return std::string("the certificate is too large for an SCT");
  unsigned char* bytes = nullptr;
  const std::size_t id_length = SCT_get0_log_id(sct, &bytes);
  const std::string log_id(reinterpret_cast<const char*>(bytes), id_length);
  const std::uint64_t timestamp = SCT_get_timestamp(sct);
  const FoundLog log = root.ctlog(log_id, time_of_sct(timestamp));
  if (!log) return log.reason;
  // CT logs of P-256 keys sign with ECDSA over SHA-256 (trusted_root.hpp takes no others).
  if (SCT_get_signature_nid(sct) != NID_ecdsa_with_SHA256) {
    return "log " + log.log->base_url + " signed it with another algorithm than ECDSA with SHA-256";
  }
  const std::size_t extensions_length = SCT_get0_extensions(sct, &bytes);
  const std::string extensions(reinterpret_cast<const char*>(bytes), extensions_length);
  const std::size_t signature_length = SCT_get0_signature(sct, &bytes);
  const std::string signature(reinterpret_cast<const char*>(bytes), signature_length);
  if (!log.log->key.key().verify(signed_sct_data(timestamp, issuer_key_hash, tbs, extensions), signature)) {
    return "log " + log.log->base_url + "'s signature is not over this certificate and its issuer's key";
  }
  return std::nullopt;
}

// --- the identity ------------------------------------------------------------------

enum class Encoding { raw, utf8_string };

// Fulcio's extensions (docs/oid-info.md), by the last arc of 1.3.6.1.4.1.57264.1.x:
// .1 to .6 hold their text as is, .8 on a DER UTF8String.
struct Extension {
  unsigned arc;
  Encoding encoding;
  std::string FulcioIdentity::*field;
};

constexpr std::array<Extension, 23> fulcio_extensions = {{
    {1, Encoding::raw, &FulcioIdentity::issuer},
    {2, Encoding::raw, &FulcioIdentity::github_workflow_trigger},
    {3, Encoding::raw, &FulcioIdentity::github_workflow_sha},
    {4, Encoding::raw, &FulcioIdentity::github_workflow_name},
    {5, Encoding::raw, &FulcioIdentity::github_workflow_repository},
    {6, Encoding::raw, &FulcioIdentity::github_workflow_ref},
    {8, Encoding::utf8_string, &FulcioIdentity::issuer},
    {9, Encoding::utf8_string, &FulcioIdentity::build_signer_uri},
    {10, Encoding::utf8_string, &FulcioIdentity::build_signer_digest},
    {11, Encoding::utf8_string, &FulcioIdentity::runner_environment},
    {12, Encoding::utf8_string, &FulcioIdentity::source_repository_uri},
    {13, Encoding::utf8_string, &FulcioIdentity::source_repository_digest},
    {14, Encoding::utf8_string, &FulcioIdentity::source_repository_ref},
    {15, Encoding::utf8_string, &FulcioIdentity::source_repository_identifier},
    {16, Encoding::utf8_string, &FulcioIdentity::source_repository_owner_uri},
    {17, Encoding::utf8_string, &FulcioIdentity::source_repository_owner_identifier},
    {18, Encoding::utf8_string, &FulcioIdentity::build_config_uri},
    {19, Encoding::utf8_string, &FulcioIdentity::build_config_digest},
    {20, Encoding::utf8_string, &FulcioIdentity::build_trigger},
    {21, Encoding::utf8_string, &FulcioIdentity::run_invocation_uri},
    {22, Encoding::utf8_string, &FulcioIdentity::source_repository_visibility},
    {23, Encoding::utf8_string, &FulcioIdentity::deployment_environment},
    {24, Encoding::utf8_string, &FulcioIdentity::token_subject},
}};

const Extension* fulcio_extension(unsigned arc) {
  for (const Extension& extension : fulcio_extensions)
    if (extension.arc == arc) return &extension;
  return nullptr;
}

std::string dotted(const ASN1_OBJECT* object) {
  std::array<char, 128> text{};
  const int length = OBJ_obj2txt(text.data(), static_cast<int>(text.size()), object, 1);
  if (length <= 0 || static_cast<std::size_t>(length) >= text.size()) return {};
  return std::string(text.data(), static_cast<std::size_t>(length));
}

// The arc x of 1.3.6.1.4.1.57264.1.x, or nothing for any other OID.
std::optional<unsigned> fulcio_arc_of(std::string_view oid) {
  if (!oid.starts_with(fulcio_arc)) return std::nullopt;
  oid.remove_prefix(fulcio_arc.size());
  if (oid.empty() || oid.size() > 4) return std::nullopt;
  unsigned arc = 0;
  for (const char c : oid) {
    if (c < '0' || c > '9') return std::nullopt;
    arc = arc * 10 + static_cast<unsigned>(c - '0');
  }
  return arc;
}

// An extension's value as Fulcio writes it, or nothing when it is not so encoded.
std::optional<std::string> value_of(const ASN1_OCTET_STRING* data, Encoding encoding) {
  const std::string bytes = bytes_of(data);
  if (encoding == Encoding::raw) return bytes;
  const auto* start = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* end = start;
  std::unique_ptr<ASN1_UTF8STRING, Utf8StringFree> text(
      d2i_ASN1_UTF8STRING(nullptr, &end, static_cast<long>(bytes.size())));
  if (!text || end != start + bytes.size()) return std::nullopt;
  return bytes_of(text.get());
}

// The one subject alternative name of a Fulcio certificate.
std::optional<std::string> read_subject(X509* leaf, FulcioIdentity& identity) {
  int found = 0;
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, &found, nullptr)));
  if (!names) {
    if (found == -1) return std::string("certificate has no subject alternative name, so it names no signer");
    if (found == -2) return std::string("certificate has two subject alternative name extensions");
    return std::string("certificate's subject alternative name cannot be read");
  }
  const int count = sk_GENERAL_NAME_num(names.get());
  if (count != 1) {
    return "certificate has " + std::to_string(count) +
           " subject alternative names; a Fulcio certificate names one signer";
  }
  const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), 0);
  switch (name->type) {
    case GEN_URI:
      identity.kind = FulcioIdentity::Kind::uri;
      identity.subject = bytes_of(name->d.uniformResourceIdentifier);
      break;
    case GEN_EMAIL:
      identity.kind = FulcioIdentity::Kind::email;
      identity.subject = bytes_of(name->d.rfc822Name);
      break;
    case GEN_OTHERNAME: {
      const OTHERNAME* other = name->d.otherName;
      if (dotted(other->type_id) != username_oid || other->value == nullptr ||
          other->value->type != V_ASN1_UTF8STRING) {
        return "certificate's subject alternative name is an otherName of type " + in_quotes(dotted(other->type_id)) +
               ", not a Fulcio username (" + std::string(username_oid) + ", a UTF8String)";
      }
      identity.kind = FulcioIdentity::Kind::username;
      identity.subject = bytes_of(other->value->value.utf8string);
      break;
    }
    default:
      return std::string(
          "certificate's subject alternative name is not a URI, an email address or a username, the names Fulcio "
          "gives");
  }
  if (identity.subject.empty()) return std::string("certificate's subject alternative name is empty");
  return std::nullopt;
}

}  // namespace

std::variant<CertificateChain, std::string> chain_to(const Certificate& leaf, const CertificateAuthority& authority,
                                                     TimePoint time) {
  const ErrorQueueGuard clear_errors;
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StackFree> intermediates(sk_X509_new_null());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !intermediates || !ctx || X509_STORE_add_cert(store.get(), authority.anchor().x509()) != 1) {
    throw std::bad_alloc();
  }
  for (std::size_t i = 0; i + 1 < authority.chain.size(); ++i) {
    if (sk_X509_push(intermediates.get(), authority.chain[i].x509()) <= 0) throw std::bad_alloc();
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.x509(), intermediates.get()) != 1) throw std::bad_alloc();
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  // The root's last certificate is the anchor even when it is an intermediate
  // (trustroot.proto: "MAY be an intermediate CA certificate").
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  X509_VERIFY_PARAM_set_time(param, std::chrono::floor<std::chrono::seconds>(time.time_since_epoch()).count());
  X509_STORE_CTX_set_verify_cb(ctx.get(), closed_validity);
  if (X509_verify_cert(ctx.get()) != 1) {
    const int error = X509_STORE_CTX_get_error(ctx.get());
    std::string reason = X509_verify_cert_error_string(error);
    if (X509* at = X509_STORE_CTX_get_current_cert(ctx.get()); at != nullptr) {
      reason += " (" + named(Certificate::from_openssl(at)) + ")";
    }
    return reason;
  }
  CertificateChain chain;
  STACK_OF(X509)* path = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; i < sk_X509_num(path); ++i) chain.push_back(Certificate::from_openssl(sk_X509_value(path, i)));
  return chain;
}

std::variant<CertificateChain, std::string> verify_fulcio_chain(const Certificate& leaf, const TrustedRoot& root,
                                                                TimePoint signed_at) {
  const ErrorQueueGuard clear_errors;
  const std::string valid = "valid from " + time_text(leaf.not_before()) + " to " + time_text(leaf.not_after());
  if (signed_at < leaf.not_before()) {
    return "certificate was not yet valid at the signing time " + time_text(signed_at) + ": it is " + valid;
  }
  if (signed_at > leaf.not_after()) {
    return "certificate had expired at the signing time " + time_text(signed_at) + ": it was " + valid;
  }
  if (is_ca(leaf.x509())) return std::string("certificate is a CA's, not one that signs artifacts");
  const std::vector<const CertificateAuthority*> authorities = root.certificate_authorities_at(signed_at);
  if (authorities.empty()) {
    std::string periods;
    for (const CertificateAuthority& authority : root.certificate_authorities()) {
      periods += (periods.empty() ? "" : "; ") + authority.uri + " " + authority.valid_for.text();
    }
    return "no certificate authority of the trusted root is trusted at the signing time " + time_text(signed_at) +
           " (" + (periods.empty() ? "it has none" : periods) + ")";
  }
  std::string reasons;
  for (const CertificateAuthority* authority : authorities) {
    auto chain = chain_to(leaf, *authority, signed_at);
    if (auto* path = std::get_if<CertificateChain>(&chain)) {
      if (auto refusal = not_for_code_signing(*path)) return std::move(*refusal);
      return std::move(*path);
    }
    reasons += (reasons.empty() ? "" : "; ") + (authority->uri.empty() ? named(authority->anchor()) : authority->uri) +
               ": " + std::get<std::string>(chain);
  }
  return "certificate does not chain to a certificate authority of the trusted root at the signing time " +
         time_text(signed_at) + ": " + reasons;
}

Check verify_embedded_sct(const CertificateChain& chain, const TrustedRoot& root) {
  const ErrorQueueGuard clear_errors;
  if (chain.size() < 2) return failed("an SCT is checked against the certificate's issuer, and the chain has none");
  X509* leaf = chain[0].x509();
  int found = 0;
  std::unique_ptr<STACK_OF(SCT), SctListFree> scts(
      static_cast<STACK_OF(SCT)*>(X509_get_ext_d2i(leaf, NID_ct_precert_scts, &found, nullptr)));
  if (!scts) {
    if (found == -1) {
      return failed("certificate has no embedded SCT (extension 1.3.6.1.4.1.11129.2.4.2): no CT log vouches for it");
    }
    if (found == -2) return failed("certificate has two SCT list extensions");
    return failed("certificate's SCT list cannot be read");
  }
  const int count = sk_SCT_num(scts.get());
  if (count <= 0) return failed("certificate's SCT list is empty");
  const std::string tbs = precertificate_tbs(leaf);
  // The key of the certificate that issued the leaf (the Fulcio intermediate), as the
  // log saw it named in the precertificate entry.
  const std::string issuer_key_hash = chain[1].public_key_sha256();
  std::string reasons;
  for (int i = 0; i < count; ++i) {
    auto refusal = sct_refusal(sk_SCT_value(scts.get(), i), tbs, issuer_key_hash, root);
    if (!refusal) return passed();
    reasons += (reasons.empty() ? "" : "; ") + (count > 1 ? "SCT " + std::to_string(i + 1) + ": " : "") + *refusal;
  }
  if (count == 1) return failed("certificate's embedded SCT does not verify: " + reasons);
  return failed("none of the certificate's " + std::to_string(count) + " embedded SCTs verifies: " + reasons);
}

std::variant<FulcioIdentity, std::string> read_fulcio_identity(const Certificate& leaf) {
  const ErrorQueueGuard clear_errors;
  FulcioIdentity identity;
  if (auto error = read_subject(leaf.x509(), identity)) return std::move(*error);
  std::array<bool, 32> seen{};
  for (int i = 0; i < X509_get_ext_count(leaf.x509()); ++i) {
    X509_EXTENSION* extension = X509_get_ext(leaf.x509(), i);
    const std::string oid = dotted(X509_EXTENSION_get_object(extension));
    const std::optional<unsigned> arc = fulcio_arc_of(oid);
    const Extension* known = arc ? fulcio_extension(*arc) : nullptr;
    if (known == nullptr) continue;  // not Fulcio's, or one this code does not know
    if (seen[known->arc]) return "certificate has extension " + oid + " twice";
    seen[known->arc] = true;
    const std::optional<std::string> value = value_of(X509_EXTENSION_get_data(extension), known->encoding);
    if (!value) return "certificate's extension " + oid + " is not a DER UTF8String, as Fulcio writes it";
    std::string& field = identity.*(known->field);
    // Only the issuer has two extensions (.1 and .8): Fulcio writes the same in both.
    if (!field.empty() && field != *value) {
      return "certificate names two OIDC issuers, " + in_quotes(field) + " and " + in_quotes(*value);
    }
    field = *value;
  }
  if (identity.issuer.empty()) {
    return std::string("certificate names no OIDC issuer (extension 1.3.6.1.4.1.57264.1.8 or .1.1)");
  }
  return identity;
}

}  // namespace pullgate::policy::sigstore
