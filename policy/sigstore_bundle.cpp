// Sigstore bundles read strictly and verified keyless, in the order of sigstore-go's
// Verifier.Verify: the log entry, its body against the bundle, the Fulcio chain and SCT
// at the logged time, the signature, the identity. Each refusal is one line naming the
// check.
#include "policy/sigstore_bundle.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <chrono>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>

#include "policy/text.hpp"
#include "policy/timestamp.hpp"
#include "registry/base64.hpp"
#include "registry/keys.hpp"

namespace pullgate::policy::sigstore {
namespace {

using json = nlohmann::json;

constexpr std::size_t max_quoted_length = 80;
constexpr std::size_t max_identity_length = 200;  // workflow URIs run long, and the end tells them apart
constexpr std::size_t max_bundle_size = 16 * 1024 * 1024;
constexpr std::size_t max_entries = 32;  // log entries or timestamps; a bundle holds one or two
constexpr std::size_t max_chain_length = 10;
constexpr std::string_view in_toto_payload_type = "application/vnd.in-toto+json";

struct MediaType {
  std::string_view text;
  int minor;
};
// sigstore-go bundle.go getBundleVersion: the old ";version=" spellings and the v0.3 one.
constexpr std::array<MediaType, 4> media_types = {{
    {"application/vnd.dev.sigstore.bundle+json;version=0.1", 1},
    {"application/vnd.dev.sigstore.bundle+json;version=0.2", 2},
    {"application/vnd.dev.sigstore.bundle+json;version=0.3", 3},
    {"application/vnd.dev.sigstore.bundle.v0.3+json", 3},
}};

// A mistake in the bundle, thrown where a reader finds it and caught once in
// Bundle::parse, so that each reader names its own field.
struct Malformed {
  std::string reason;
};

std::string in_quotes(std::string_view text) { return "\"" + printable(text, max_quoted_length) + "\""; }
std::string identity_in_quotes(std::string_view text) { return "\"" + printable(text, max_identity_length) + "\""; }

[[noreturn]] void malformed(const std::string& field, const std::string& problem) {
  throw Malformed{"bundle's " + field + " " + problem};
}

const json& need(const json& object, std::string_view key, const std::string& where) {
  const std::string field = where.empty() ? std::string(key) : where + "." + std::string(key);
  if (!object.is_object()) malformed(where, "is not a JSON object");
  const auto found = object.find(std::string(key));
  // proto3 JSON writes an unset message as null or leaves it out.
  if (found == object.end() || found->is_null()) malformed(field, "is missing");
  return *found;
}

const json* optional_member(const json& object, std::string_view key) {
  const auto found = object.find(std::string(key));
  return found == object.end() || found->is_null() ? nullptr : &*found;
}

std::string text_of(const json& value, const std::string& field) {
  if (!value.is_string()) malformed(field, "is not a string");
  return value.get<std::string>();
}

std::string bytes_of(const json& value, const std::string& field) {
  // protojson decodes with Go's base64.StdEncoding, which skips line breaks: `base64`
  // wraps at 76 columns, as in rekor2-timestamp-with-incorrect-time_fail's timestamp.
  std::string text = text_of(value, field);
  std::erase_if(text, [](char c) { return c == '\n' || c == '\r'; });
  std::string out;
  if (!registry::base64_decode(text, out)) malformed(field, "is not base64");
  return out;
}

// proto3 JSON int64: a decimal string, or a number.
std::uint64_t count_of(const json& value, const std::string& field) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) malformed(field, "is negative");
  const std::string text = text_of(value, field);
  if (!text.empty() && text[0] == '-') malformed(field, "is negative (" + in_quotes(text) + ")");
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos) {
    malformed(field, "is not a decimal count (" + in_quotes(text) + ")");
  }
  const std::uint64_t count = std::stoull(text);
  if (count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) malformed(field, "is too large");
  return count;
}

std::string hash_of(const json& value, const std::string& field) {
  std::string hash = bytes_of(value, field);
  if (hash.size() != transparency::hash_size) {
    malformed(field, "is " + std::to_string(hash.size()) + " bytes, not a SHA-256 hash's 32");
  }
  return hash;
}

Certificate certificate_of(const json& value, const std::string& field) {
  auto parsed = Certificate::from_der(bytes_of(need(value, "rawBytes", field), field + ".rawBytes"));
  if (auto* error = std::get_if<std::string>(&parsed))
    malformed(field + ".rawBytes", "is not a certificate: " + *error);
  return std::get<Certificate>(std::move(parsed));
}

bool self_signed(const Certificate& certificate) {
  return X509_check_issued(certificate.x509(), certificate.x509()) == X509_V_OK;
}

InclusionProof proof_of(const json& value, const std::string& where) {
  InclusionProof proof;
  proof.log_index = count_of(need(value, "logIndex", where), where + ".logIndex");
  proof.tree_size = count_of(need(value, "treeSize", where), where + ".treeSize");
  proof.root_hash = hash_of(need(value, "rootHash", where), where + ".rootHash");
  const json& hashes = need(value, "hashes", where);
  if (!hashes.is_array()) malformed(where + ".hashes", "is not an array");
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    proof.hashes.push_back(hash_of(hashes[i], where + ".hashes[" + std::to_string(i) + "]"));
  }
  const std::string checkpoint = where + ".checkpoint";
  proof.checkpoint = text_of(need(need(value, "checkpoint", where), "envelope", checkpoint), checkpoint + ".envelope");
  if (proof.checkpoint.empty()) malformed(checkpoint + ".envelope", "is empty");
  return proof;
}

TlogEntry entry_of(const json& value, const std::string& where, int minor) {
  TlogEntry entry;
  entry.log_index = count_of(need(value, "logIndex", where), where + ".logIndex");
  entry.log_id = hash_of(need(need(value, "logId", where), "keyId", where + ".logId"), where + ".logId.keyId");
  const json& kind_version = need(value, "kindVersion", where);
  entry.kind = text_of(need(kind_version, "kind", where + ".kindVersion"), where + ".kindVersion.kind");
  entry.version = text_of(need(kind_version, "version", where + ".kindVersion"), where + ".kindVersion.version");
  if (const json* time = optional_member(value, "integratedTime")) {
    entry.integrated_time = count_of(*time, where + ".integratedTime");
  }
  if (const json* promise = optional_member(value, "inclusionPromise")) {
    entry.signed_entry_timestamp = bytes_of(need(*promise, "signedEntryTimestamp", where + ".inclusionPromise"),
                                            where + ".inclusionPromise.signedEntryTimestamp");
  }
  if (const json* proof = optional_member(value, "inclusionProof")) {
    entry.inclusion_proof = proof_of(*proof, where + ".inclusionProof");
  }
  entry.canonicalized_body = bytes_of(need(value, "canonicalizedBody", where), where + ".canonicalizedBody");
  // sigstore-go bundle.go validate(): v0.1 entries carry a promise, later ones a proof.
  if (minor == 1 && !entry.signed_entry_timestamp) malformed(where, "has no inclusionPromise, which v0.1 requires");
  if (minor >= 2 && !entry.inclusion_proof) malformed(where, "has no inclusionProof, which v0.2 and later require");
  return entry;
}

DsseEnvelope envelope_of(const json& value) {
  const std::string where = "dsseEnvelope";
  DsseEnvelope envelope;
  envelope.payload = bytes_of(need(value, "payload", where), where + ".payload");
  envelope.payload_type = text_of(need(value, "payloadType", where), where + ".payloadType");
  const json& signatures = need(value, "signatures", where);
  if (!signatures.is_array() || signatures.size() != 1) {
    malformed(where + ".signatures", "must hold exactly one signature");
  }
  envelope.signature = bytes_of(need(signatures[0], "sig", where + ".signatures[0]"), where + ".signatures[0].sig");
  return envelope;
}

Bundle bundle_of(const json& document) {
  if (!document.is_object()) malformed("document", "is not a JSON object");
  Bundle bundle;
  const std::string media_type = text_of(need(document, "mediaType", ""), "mediaType");
  for (const MediaType& known : media_types) {
    if (media_type == known.text) bundle.minor_version = known.minor;
  }
  if (bundle.minor_version == 0)
    malformed("mediaType", in_quotes(media_type) + " is not a bundle version pullgate reads");

  const json& material = need(document, "verificationMaterial", "");
  const json* chain = optional_member(material, "x509CertificateChain");
  const json* certificate = optional_member(material, "certificate");
  const json* public_key = optional_member(material, "publicKey");
  if ((chain != nullptr) + (certificate != nullptr) + (public_key != nullptr) != 1) {
    malformed("verificationMaterial", "must hold exactly one of x509CertificateChain, certificate and publicKey");
  }
  if (chain) {
    const std::string where = "verificationMaterial.x509CertificateChain";
    if (bundle.minor_version >= 3) malformed(where, "is not allowed in v0.3 (a single certificate is)");
    const json& certificates = need(*chain, "certificates", where);
    if (!certificates.is_array() || certificates.empty()) malformed(where + ".certificates", "is empty");
    if (certificates.size() > max_chain_length) malformed(where + ".certificates", "is too long");
    for (std::size_t i = 0; i < certificates.size(); ++i) {
      const std::string field = where + ".certificates[" + std::to_string(i) + "]";
      bundle.certificates.push_back(certificate_of(certificates[i], field));
      // The trusted root supplies the anchors; a bundle carrying one is forged or confused.
      if (i > 0 && self_signed(bundle.certificates.back())) {
        malformed(field, "is a self-signed root (" + bundle.certificates.back().subject() +
                             "), which a bundle must not carry");
      }
    }
  } else if (certificate) {
    bundle.certificates.push_back(certificate_of(*certificate, "verificationMaterial.certificate"));
  } else {
    bundle.public_key_hint =
        text_of(need(*public_key, "hint", "verificationMaterial.publicKey"), "verificationMaterial.publicKey.hint");
  }

  if (const json* entries = optional_member(material, "tlogEntries")) {
    if (!entries->is_array()) malformed("verificationMaterial.tlogEntries", "is not an array");
    if (entries->size() > max_entries) malformed("verificationMaterial.tlogEntries", "has too many entries");
    for (std::size_t i = 0; i < entries->size(); ++i) {
      bundle.tlog_entries.push_back(
          entry_of((*entries)[i], "verificationMaterial.tlogEntries[" + std::to_string(i) + "]", bundle.minor_version));
    }
  }
  if (const json* data = optional_member(material, "timestampVerificationData")) {
    const std::string where = "verificationMaterial.timestampVerificationData";
    if (!data->is_object()) malformed(where, "is not a JSON object");
    if (const json* timestamps = optional_member(*data, "rfc3161Timestamps")) {
      if (!timestamps->is_array()) malformed(where + ".rfc3161Timestamps", "is not an array");
      if (timestamps->size() > max_entries) malformed(where + ".rfc3161Timestamps", "has too many timestamps");
      for (std::size_t i = 0; i < timestamps->size(); ++i) {
        const std::string field = where + ".rfc3161Timestamps[" + std::to_string(i) + "]";
        bundle.rfc3161_timestamps.push_back(
            bytes_of(need((*timestamps)[i], "signedTimestamp", field), field + ".signedTimestamp"));
      }
    }
  }

  const json* message = optional_member(document, "messageSignature");
  const json* envelope = optional_member(document, "dsseEnvelope");
  if ((message != nullptr) == (envelope != nullptr)) {
    malformed("content", "must be exactly one of messageSignature and dsseEnvelope");
  }
  if (message) {
    MessageSignature signature;
    signature.signature = bytes_of(need(*message, "signature", "messageSignature"), "messageSignature.signature");
    if (const json* digest = optional_member(*message, "messageDigest")) {
      const std::string where = "messageSignature.messageDigest";
      const std::string algorithm = text_of(need(*digest, "algorithm", where), where + ".algorithm");
      if (algorithm != "SHA2_256") malformed(where + ".algorithm", in_quotes(algorithm) + " is not SHA2_256");
      signature.digest = hash_of(need(*digest, "digest", where), where + ".digest");
    }
    bundle.message_signature = std::move(signature);
  } else {
    bundle.dsse_envelope = envelope_of(*envelope);
  }
  return bundle;
}

// --- verification ---------------------------------------------------------------

std::string sha256_of(std::string_view bytes) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
         reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string pae(const DsseEnvelope& envelope) {
  return "DSSEv1 " + std::to_string(envelope.payload_type.size()) + " " + envelope.payload_type + " " +
         std::to_string(envelope.payload.size()) + " " + envelope.payload;
}

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct ErrorQueueGuard {
  ~ErrorQueueGuard() { ERR_clear_error(); }
};

// The DER of the one certificate in a PEM text, or empty.
std::string pem_certificate_der(std::string_view pem) {
  const ErrorQueueGuard clear_errors;
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return {};
  std::unique_ptr<X509, X509Free> certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!certificate) return {};
  unsigned char* der = nullptr;
  const int length = i2d_X509(certificate.get(), &der);
  if (length <= 0) return {};
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

// The DER SubjectPublicKeyInfo of the one public key in a PEM text, or empty.
std::string pem_public_key_der(std::string_view pem) {
  const ErrorQueueGuard clear_errors;
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return {};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr),
                                                          EVP_PKEY_free);
  if (!key) return {};
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key.get(), &der);
  if (length <= 0) return {};
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

// Who signed: a Fulcio certificate's key (keyless) or a public key the verifier was
// given (key-based bundles). The log entry must name the same certificate or key, and
// reasons name it as the one or the other.
struct Signer {
  const Certificate* certificate = nullptr;  // keyless; null for a given key
  registry::PublicKey key;                   // the certificate's, or the given one
  std::shared_ptr<EVP_PKEY> pkey;            // the same key, for OpenSSL's own checks
  std::string key_name;                      // "signing certificate's key" | "given key"
  std::string by;                            // "the bundle's certificate" | "the given key"

  // The DER of the certificate or key a log entry must name.
  const std::string& logged_der() const { return certificate ? certificate->der() : key.der(); }
  // A PEM text a Rekor v1 body carries (a certificate, or a public key) as DER.
  std::string der_of_pem(std::string_view pem) const {
    return certificate ? pem_certificate_der(pem) : pem_public_key_der(pem);
  }
  // "log entry's certificate is not the bundle's" or its key-based counterpart.
  std::string mismatch() const {
    return certificate ? "log entry's certificate is not the bundle's" : "log entry's public key is not the given key";
  }
};

std::optional<Signer> signer_of(registry::PublicKey key, const Certificate* certificate) {
  const ErrorQueueGuard clear_errors;
  const auto* start = reinterpret_cast<const unsigned char*>(key.der().data());
  std::shared_ptr<EVP_PKEY> pkey(d2i_PUBKEY(nullptr, &start, static_cast<long>(key.der().size())), EVP_PKEY_free);
  if (!pkey) return std::nullopt;
  Signer signer;
  signer.certificate = certificate;
  signer.key = std::move(key);
  signer.pkey = std::move(pkey);
  signer.key_name = certificate ? "signing certificate's key" : "given key";
  signer.by = certificate ? "the bundle's certificate" : "the given key";
  return signer;
}

const json* path(const json& value, std::initializer_list<std::string_view> keys) {
  const json* at = &value;
  for (const std::string_view key : keys) {
    if (!at->is_object()) return nullptr;
    const auto found = at->find(std::string(key));
    if (found == at->end()) return nullptr;
    at = &*found;
  }
  return at;
}

std::string string_at(const json& value, std::initializer_list<std::string_view> keys) {
  const json* found = path(value, keys);
  return found && found->is_string() ? found->get<std::string>() : std::string();
}

std::string unbase64(const std::string& text) {
  std::string out;
  return registry::base64_decode(text, out) ? out : std::string();
}

Check passed() { return {true, {}}; }
Check failed(std::string reason) { return {false, std::move(reason)}; }

// A sha256 {algorithm, value} of a Rekor body against the hash it must be.
Check hash_matches(const json& body, std::initializer_list<std::string_view> at, std::string_view wanted,
                   const std::string& what, const std::string& whose) {
  const json* hash = path(body, at);
  if (!hash) return failed("log entry has no " + what);
  if (string_at(*hash, {"algorithm"}) != "sha256") return failed("log entry's " + what + " is not sha256");
  if (!equal_ignoring_case(string_at(*hash, {"value"}), hex(wanted))) {
    return failed("log entry's " + what + " is sha256:" + printable(string_at(*hash, {"value"}), max_quoted_length) +
                  ", " + whose + " is sha256:" + hex(wanted));
  }
  return passed();
}

// What Rekor v2 logs of a signing key (protobuf-specs PublicKeyDetails, as sigstore-go
// derives it from the key: Ed25519 prehashed) and the hash its digest is.
struct KeyDetails {
  std::string name;       // "PKIX_ECDSA_P256_SHA_256"
  std::string algorithm;  // the HashAlgorithm of the logged digest: "SHA2_256"
  std::string prefix;     // how reasons write a digest: "sha256"
  const EVP_MD* md = nullptr;
};

std::optional<KeyDetails> key_details_of(const EVP_PKEY* key) {
  if (key == nullptr) return std::nullopt;
  const KeyDetails sha256{"", "SHA2_256", "sha256", EVP_sha256()};
  const KeyDetails sha384{"", "SHA2_384", "sha384", EVP_sha384()};
  const KeyDetails sha512{"", "SHA2_512", "sha512", EVP_sha512()};
  auto with = [](KeyDetails details, std::string name) {
    details.name = std::move(name);
    return details;
  };
  const int bits = EVP_PKEY_get_bits(key);
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
      if (bits == 256) return with(sha256, "PKIX_ECDSA_P256_SHA_256");
      if (bits == 384) return with(sha384, "PKIX_ECDSA_P384_SHA_384");
      if (bits == 521) return with(sha512, "PKIX_ECDSA_P521_SHA_512");
      return std::nullopt;
    case EVP_PKEY_ED25519: return with(sha512, "PKIX_ED25519_PH");
    case EVP_PKEY_RSA:
      if (bits == 2048 || bits == 3072 || bits == 4096) {
        return with(sha256, "PKIX_RSA_PKCS1V15_" + std::to_string(bits) + "_SHA256");
      }
      return std::nullopt;
    default: return std::nullopt;
  }
}

std::string digest_with(const EVP_MD* md, std::string_view bytes) {
  std::string out(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), reinterpret_cast<unsigned char*>(out.data()), &length, md, nullptr) != 1) {
    return {};
  }
  out.resize(length);
  return out;
}

// A Rekor v2 Verifier: the bundle's certificate or the given key, with its details.
Check verifier_is(const json& verifier, const Signer& signer, const KeyDetails& details) {
  if (signer.certificate) {
    if (path(verifier, {"publicKey"}) != nullptr)
      return failed("log entry names a public key, not the bundle's certificate");
    if (unbase64(string_at(verifier, {"x509Certificate", "rawBytes"})) != signer.certificate->der()) {
      return failed(signer.mismatch());
    }
  } else {
    if (path(verifier, {"x509Certificate"}) != nullptr)
      return failed("log entry names a certificate, not the given key");
    if (unbase64(string_at(verifier, {"publicKey", "rawBytes"})) != signer.key.der()) return failed(signer.mismatch());
  }
  if (const std::string logged = string_at(verifier, {"keyDetails"}); logged != details.name) {
    return failed("log entry's keyDetails " + in_quotes(logged) + " are not " + details.name + ", " +
                  (signer.certificate ? "the bundle's certificate key's" : "the given key's"));
  }
  return passed();
}

// Rekor v2 (rekor-tiles) bodies. hashedrekord 0.0.2 logs a digest, a signature and its
// verifier: the digest is the artifact's (a message signature) or the DSSE envelope's
// PAE's (how Rekor v2 logs an envelope, and what sigstore-go rebuilds the entry from),
// hashed as the key signs. dsse 0.0.2 logs the payload's hash and the envelope's
// signatures with their verifiers.
Check rekor_v2_body_matches(const json& body, const TlogEntry& entry, const Bundle& bundle, const Artifact& artifact,
                            const Signer& signer) {
  const std::optional<KeyDetails> details = key_details_of(signer.pkey.get());
  if (!details) return failed(signer.key_name + " is not one Rekor v2 logs");
  if (entry.kind == "hashedrekord") {
    const json* spec = path(body, {"spec", "hashedRekordV002"});
    if (spec == nullptr) return failed("log entry has no spec.hashedRekordV002");
    const std::string algorithm = string_at(*spec, {"data", "algorithm"});
    if (algorithm != details->algorithm) {
      return failed("log entry's digest algorithm " + in_quotes(algorithm) + " is not " + details->algorithm +
                    ", the one the " + (signer.certificate ? std::string("certificate's key") : signer.key_name) +
                    " signs with");
    }
    const std::string logged = unbase64(string_at(*spec, {"data", "digest"}));
    std::string wanted;
    std::string whose;
    if (bundle.message_signature) {
      whose = "the artifact's";
      if (details->md == EVP_sha256()) {
        wanted = artifact.sha256;
      } else if (artifact.bytes) {
        wanted = digest_with(details->md, *artifact.bytes);
      } else {
        return failed("log entry's digest is " + details->algorithm + ", which needs the artifact's bytes");
      }
    } else {
      whose = "the DSSE envelope's";
      wanted = digest_with(details->md, pae(*bundle.dsse_envelope));
    }
    if (logged != wanted) {
      return failed("log entry's " + std::string(bundle.message_signature ? "artifact digest" : "digest") + " is " +
                    details->prefix + ":" + hex(logged) + ", " + whose + " is " + details->prefix + ":" + hex(wanted));
    }
    const std::string& signature =
        bundle.message_signature ? bundle.message_signature->signature : bundle.dsse_envelope->signature;
    if (unbase64(string_at(*spec, {"signature", "content"})) != signature) {
      return failed("log entry's signature is not the bundle's");
    }
    const json* verifier = path(*spec, {"signature", "verifier"});
    return verifier_is(verifier ? *verifier : json::object(), signer, *details);
  }
  if (!bundle.dsse_envelope) return failed("log entry is a dsse, but the bundle signs a message");
  const DsseEnvelope& envelope = *bundle.dsse_envelope;
  const json* spec = path(body, {"spec", "dsseV002"});
  if (spec == nullptr) return failed("log entry has no spec.dsseV002");
  if (string_at(*spec, {"payloadHash", "algorithm"}) != "SHA2_256")
    return failed("log entry's payload hash is not SHA2_256");
  const std::string logged = unbase64(string_at(*spec, {"payloadHash", "digest"}));
  if (logged != sha256_of(envelope.payload)) {
    return failed("log entry's payload hash is sha256:" + hex(logged) + ", the envelope payload's is sha256:" +
                  hex(sha256_of(envelope.payload)));
  }
  const json* signatures = path(*spec, {"signatures"});
  if (!signatures || !signatures->is_array()) return failed("log entry has no signatures");
  for (const json& signature : *signatures) {
    const json* verifier = path(signature, {"verifier"});
    if (unbase64(string_at(signature, {"content"})) == envelope.signature && verifier != nullptr &&
        verifier_is(*verifier, signer, *details)) {
      return passed();
    }
  }
  return failed("log entry holds no signature that is the envelope's by " + signer.by);
}

bool is_rekor_v2(const TlogEntry& entry) {
  return entry.version == "0.0.2" && (entry.kind == "hashedrekord" || entry.kind == "dsse");
}

// sigstore-go tlog/entry.go and verify/tlog.go: the logged body must be this bundle's
// signature, by this certificate or key, over this artifact (memo section 3.6).
Check body_matches(const json& body, const TlogEntry& entry, const Bundle& bundle, const Artifact& artifact,
                   const Signer& signer) {
  const std::string spec_kind = string_at(body, {"kind"});
  const std::string spec_version = string_at(body, {"apiVersion"});
  if (spec_kind != entry.kind || spec_version != entry.version) {
    return failed("log entry's body is " + in_quotes(spec_kind + "/" + spec_version) + ", its kindVersion " +
                  in_quotes(entry.kind + "/" + entry.version));
  }
  if (is_rekor_v2(entry)) return rekor_v2_body_matches(body, entry, bundle, artifact, signer);
  if (entry.kind == "hashedrekord" && entry.version == "0.0.1") {
    if (!bundle.message_signature) return failed("log entry is a hashedrekord, but the bundle signs a DSSE envelope");
    if (auto check = hash_matches(body, {"spec", "data", "hash"}, artifact.sha256, "artifact digest", "the artifact's");
        !check)
      return check;
    if (unbase64(string_at(body, {"spec", "signature", "content"})) != bundle.message_signature->signature) {
      return failed("log entry's signature is not the bundle's");
    }
    if (signer.der_of_pem(unbase64(string_at(body, {"spec", "signature", "publicKey", "content"}))) !=
        signer.logged_der()) {
      return failed(signer.mismatch());
    }
    return passed();
  }
  if (!bundle.dsse_envelope) return failed("log entry is a " + entry.kind + ", but the bundle signs a message");
  const DsseEnvelope& envelope = *bundle.dsse_envelope;
  if (entry.kind == "dsse" && entry.version == "0.0.1") {
    if (auto check = hash_matches(body, {"spec", "payloadHash"}, sha256_of(envelope.payload), "payload hash",
                                  "the envelope payload's");
        !check) {
      return check;
    }
    const json* signatures = path(body, {"spec", "signatures"});
    if (!signatures || !signatures->is_array()) return failed("log entry has no signatures");
    for (const json& signature : *signatures) {
      if (unbase64(string_at(signature, {"signature"})) == envelope.signature &&
          signer.der_of_pem(unbase64(string_at(signature, {"verifier"}))) == signer.logged_der()) {
        return passed();
      }
    }
    return failed("log entry holds no signature that is the envelope's by " + signer.by);
  }
  if (entry.kind == "intoto" && entry.version == "0.0.2") {
    if (auto check = hash_matches(body, {"spec", "content", "payloadHash"}, sha256_of(envelope.payload), "payload hash",
                                  "the envelope payload's");
        !check) {
      return check;
    }
    const json* signatures = path(body, {"spec", "content", "envelope", "signatures"});
    if (!signatures || !signatures->is_array()) return failed("log entry has no signatures");
    // Rekor stores intoto 0.0.2 signatures and keys base64 once more than DSSE does.
    for (const json& signature : *signatures) {
      if (unbase64(unbase64(string_at(signature, {"sig"}))) == envelope.signature &&
          signer.der_of_pem(unbase64(string_at(signature, {"publicKey"}))) == signer.logged_der()) {
        return passed();
      }
    }
    return failed("log entry holds no signature that is the envelope's by " + signer.by);
  }
  return failed("log entry kind " + in_quotes(entry.kind + "/" + entry.version) + " is not one pullgate reads");
}

struct VerifiedEntry {
  Check check;
  std::optional<TimePoint> time;  // the integrated time, when a signed entry timestamp vouches for it
  std::string base_url;
};

// `stamped`: the first verified RFC 3161 time, when the bundle has one; a Rekor v2
// entry has no time of its own, so its log must be trusted then.
VerifiedEntry verify_entry(const TlogEntry& entry, const Bundle& bundle, const Artifact& artifact,
                           const TrustedRoot& root, std::optional<TimePoint> stamped, const Signer& signer) {
  VerifiedEntry out;
  const std::string name = "log entry " + std::to_string(entry.log_index);
  auto refuse = [&](const std::string& reason) {
    out.check = failed(name + ": " + reason);
    return out;
  };
  const json body = json::parse(entry.canonicalized_body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return refuse("canonicalizedBody is not JSON");

  // sigstore-go: a Rekor v2 entry must be proven in the tree; it has no promise.
  const bool v2 = is_rekor_v2(entry);
  if (v2 && !entry.inclusion_proof) return refuse("a Rekor v2 entry must carry an inclusion proof");
  if (v2 && entry.signed_entry_timestamp) return refuse("a Rekor v2 entry carries a signed entry timestamp");
  if (v2 && !stamped) {
    return refuse(
        "a Rekor v2 entry has no time of its own, and the bundle carries no RFC 3161 timestamp: nothing says when "
        "it was signed");
  }
  const TimePoint integrated = TimePoint(std::chrono::seconds(entry.integrated_time));
  const FoundLog found = root.tlog(entry.log_id, v2 ? *stamped : integrated);
  if (!found) return refuse(found.reason);
  out.base_url = found.log->base_url;

  if (entry.signed_entry_timestamp) {
    const transparency::LogEntry logged{entry.canonicalized_body, entry.integrated_time, entry.log_id, entry.log_index};
    const Check set =
        transparency::verify_signed_entry_timestamp(logged, *entry.signed_entry_timestamp, found.log->key);
    if (!set) return refuse("signed entry timestamp: " + set.reason);
  }
  if (entry.inclusion_proof) {
    const InclusionProof& proof = *entry.inclusion_proof;
    const Check included = transparency::verify_inclusion(proof.log_index, proof.tree_size,
                                                          transparency::leaf_hash(entry.canonicalized_body),
                                                          proof.hashes, proof.root_hash);
    if (!included) return refuse("inclusion proof: " + included.reason);
    auto parsed = transparency::parse_checkpoint(proof.checkpoint);
    if (auto* error = std::get_if<std::string>(&parsed)) return refuse("checkpoint: " + *error);
    auto& checkpoint = std::get<transparency::Checkpoint>(parsed);
    if (transparency::origin_rule_for(checkpoint.origin) == transparency::OriginRule::any) {
      // Rekor v1 clients (rekor's SignedNote.Verify, which sigstore-go calls) choose the
      // line by the key hint alone: a log serving on "localhost:8000" signs as that, while
      // the trusted root names it by its hostname.
      for (transparency::NoteSignature& line : checkpoint.signatures) {
        if (line.key_hint == found.log->key.key_hint()) line.name = found.log->key.name();
      }
    }
    const Check signed_by_log =
        transparency::verify_checkpoint(checkpoint, found.log->key, transparency::origin_rule_for(checkpoint.origin));
    if (!signed_by_log) return refuse("checkpoint: " + signed_by_log.reason);
    const Check same_tree = transparency::proof_matches_checkpoint(proof.tree_size, proof.root_hash, checkpoint);
    if (!same_tree) return refuse("checkpoint: " + same_tree.reason);
  }
  if (const Check matches = body_matches(body, entry, bundle, artifact, signer); !matches) {
    return refuse(matches.reason);
  }
  if (entry.signed_entry_timestamp) out.time = integrated;
  out.check = passed();
  return out;
}

bool is_p256(const EVP_PKEY* key) {
  return key && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) == 256;
}

// ECDSA P-256 over the artifact's SHA-256 alone, when its bytes are not at hand.
bool verify_prehashed(EVP_PKEY* key, std::string_view digest, std::string_view signature) {
  const ErrorQueueGuard clear_errors;
  if (!is_p256(key)) return false;
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(key, nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) {
    return false;
  }
  return EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                         reinterpret_cast<const unsigned char*>(digest.data()), digest.size()) == 1;
}

std::optional<registry::PublicKey> leaf_key(const Certificate& leaf) {
  const ErrorQueueGuard clear_errors;
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(X509_get0_pubkey(leaf.x509()), &der);
  if (length <= 0) return std::nullopt;
  const std::string spki(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  auto key = registry::PublicKey::from_der("signing certificate", spki);
  if (std::holds_alternative<std::string>(key)) return std::nullopt;
  return std::get<registry::PublicKey>(std::move(key));
}

Check verify_signature(const Bundle& bundle, const Artifact& artifact, const Signer& signer) {
  if (bundle.message_signature) {
    const MessageSignature& message = *bundle.message_signature;
    if (!message.digest.empty() && message.digest != artifact.sha256) {
      return failed("bundle's messageDigest is sha256:" + hex(message.digest) +
                    ", the artifact's sha256:" + hex(artifact.sha256));
    }
    bool valid = false;
    if (artifact.bytes) {
      valid = signer.key.verify(*artifact.bytes, message.signature);
    } else if (is_p256(signer.pkey.get())) {
      valid = verify_prehashed(signer.pkey.get(), artifact.sha256, message.signature);
    } else {
      // Ed25519 signs the message itself, and P-384 a SHA-384 the SHA-256 cannot give.
      return failed(signer.key_name +
                    " is not ECDSA P-256: its signature needs the artifact's bytes, not only its SHA-256");
    }
    return valid ? passed() : failed("signature over the artifact does not verify with the " + signer.key_name);
  }
  const DsseEnvelope& envelope = *bundle.dsse_envelope;
  if (!signer.key.verify(pae(envelope), envelope.signature)) {
    return failed("DSSE envelope's signature does not verify with the " + signer.key_name);
  }
  if (envelope.payload_type != in_toto_payload_type) {
    return failed("DSSE payloadType " + in_quotes(envelope.payload_type) + " is not an in-toto statement");
  }
  const json statement = json::parse(envelope.payload, nullptr, false);
  const json* subjects = statement.is_discarded() ? nullptr : path(statement, {"subject"});
  if (!subjects || !subjects->is_array()) return failed("in-toto statement has no subject list");
  const std::string wanted = hex(artifact.sha256);
  for (const json& subject : *subjects) {
    if (equal_ignoring_case(string_at(subject, {"digest", "sha256"}), wanted)) return passed();
  }
  return failed("in-toto statement names no subject of sha256:" + wanted);
}

bool matches(const IdentityMatch& expected, const std::string& actual) {
  if (!expected.regex) return actual == expected.text;
  try {
    return std::regex_match(actual, std::regex(expected.text, std::regex::ECMAScript));
  } catch (const std::regex_error&) {
    return false;
  }
}

template <typename Verdict>
Verdict refused(std::string reason) {
  Verdict verdict;
  verdict.reason = std::move(reason);
  return verdict;
}

// What keyless and key-based verification share, in sigstore-go's order: every RFC
// 3161 timestamp, then the log entries (threshold one), and at least one time that a
// log or an authority vouches for. Verified: the times and the entry, with `verified`
// set; else the refusal.
BundleVerdict verify_log_and_times(const Bundle& bundle, const Artifact& artifact, const TrustedRoot& root,
                                   const Signer& signer) {
  if (bundle.tlog_entries.empty()) return refused<BundleVerdict>("bundle has no transparency log entry");
  // The Sigstore client spec: a timestamp that does not verify aborts verification
  // (sigstore-go's VerifyObserverTimestamps), so every one must, each at its genTime.
  const std::string& signature_bytes =
      bundle.message_signature ? bundle.message_signature->signature : bundle.dsse_envelope->signature;
  std::vector<VerifiedTimestamp> stamps;
  for (std::size_t i = 0; i < bundle.rfc3161_timestamps.size(); ++i) {
    auto stamp = verify_rfc3161_timestamp(bundle.rfc3161_timestamps[i], signature_bytes, root);
    if (auto* error = std::get_if<std::string>(&stamp)) {
      return refused<BundleVerdict>("RFC 3161 timestamp " + std::to_string(i) + ": " + *error);
    }
    stamps.push_back(std::get<VerifiedTimestamp>(std::move(stamp)));
  }

  // Threshold one, as sigstore-go's default: the first entry that verifies, preferring
  // one whose signed entry timestamp gives a time (a Rekor v2 entry never has one).
  std::optional<VerifiedEntry> verified;
  std::uint64_t verified_index = 0;
  std::string first_refusal;
  for (const TlogEntry& entry : bundle.tlog_entries) {
    VerifiedEntry result =
        verify_entry(entry, bundle, artifact, root,
                     stamps.empty() ? std::nullopt : std::optional<TimePoint>(stamps.front().time), signer);
    if (result.check && (result.time || !verified)) {
      verified = std::move(result);
      verified_index = entry.log_index;
      if (verified->time) break;
    }
    if (!result.check && first_refusal.empty()) first_refusal = result.check.reason;
  }
  if (!verified) return refused<BundleVerdict>(first_refusal);
  if (!verified->time && stamps.empty()) {
    return refused<BundleVerdict>(
        "log entry " + std::to_string(verified_index) +
        ": no signed entry timestamp vouches for its integrated time, and the bundle carries no RFC 3161 "
        "timestamp: nothing says when it was signed");
  }
  BundleVerdict verdict;
  verdict.verified = true;
  verdict.signed_at = verified->time ? *verified->time : stamps.front().time;
  verdict.logged_time = verified->time.has_value();
  verdict.timestamps = std::move(stamps);
  verdict.log_base_url = verified->base_url;
  verdict.log_index = verified_index;
  return verdict;
}

}  // namespace

std::variant<Bundle, std::string> Bundle::parse(std::string_view text) {
  if (text.size() > max_bundle_size) return std::string("bundle is larger than 16 MiB");
  const json document = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return std::string("bundle is not JSON");
  try {
    return bundle_of(document);
  } catch (const Malformed& error) {
    return error.reason;
  }
}

Artifact Artifact::of_bytes(std::string bytes) {
  Artifact artifact;
  artifact.sha256 = sha256_of(bytes);
  artifact.bytes = std::move(bytes);
  return artifact;
}

std::variant<Artifact, std::string> Artifact::of_digest(std::string_view digest) {
  constexpr std::string_view prefix = "sha256:";
  const std::string_view hex_part = digest.substr(std::min(digest.size(), prefix.size()));
  if (!digest.starts_with(prefix) || hex_part.size() != 64 ||
      hex_part.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
    return "artifact digest " + in_quotes(digest) + " is not sha256:<64 hex digits>";
  }
  Artifact artifact;
  for (std::size_t i = 0; i < hex_part.size(); i += 2) {
    artifact.sha256 += static_cast<char>(std::stoi(std::string(hex_part.substr(i, 2)), nullptr, 16));
  }
  return artifact;
}

KeylessVerdict verify_keyless(const Bundle& bundle, const Artifact& artifact, const TrustedRoot& root,
                              const ExpectedIdentity& expected) {
  if (bundle.certificates.empty()) {
    return refused<KeylessVerdict>(
        "bundle is signed with a public key, not a Fulcio certificate: verify it with its key");
  }
  if (bundle.tlog_entries.empty()) return refused<KeylessVerdict>("bundle has no transparency log entry");
  const Certificate& leaf = bundle.certificates.front();
  auto leaf_public_key = leaf_key(leaf);
  std::optional<Signer> signer =
      leaf_public_key ? signer_of(std::move(*leaf_public_key), &leaf) : std::optional<Signer>();
  if (!signer) {
    return refused<KeylessVerdict>(
        "signing certificate's key is not one pullgate verifies (ECDSA P-256/P-384, RSA of 2048 bits or more, "
        "Ed25519)");
  }
  KeylessVerdict verdict;
  static_cast<BundleVerdict&>(verdict) = verify_log_and_times(bundle, artifact, root, *signer);
  if (!verdict) return verdict;

  // The times a log or an authority vouched for; the certificate must hold at each.
  std::vector<TimePoint> times;
  if (verdict.logged_time) times.push_back(verdict.signed_at);
  for (const VerifiedTimestamp& stamp : verdict.timestamps) times.push_back(stamp.time);
  std::optional<CertificateChain> chain;
  for (const TimePoint time : times) {
    auto at = verify_fulcio_chain(leaf, root, time);
    if (auto* error = std::get_if<std::string>(&at)) return refused<KeylessVerdict>("signing certificate: " + *error);
    if (!chain) chain = std::get<CertificateChain>(std::move(at));
  }
  if (const Check sct = verify_embedded_sct(*chain, root); !sct) {
    return refused<KeylessVerdict>("signing certificate's SCT: " + sct.reason);
  }
  if (const Check signature = verify_signature(bundle, artifact, *signer); !signature) {
    return refused<KeylessVerdict>(signature.reason);
  }

  auto identity = read_fulcio_identity(leaf);
  if (auto* error = std::get_if<std::string>(&identity)) {
    return refused<KeylessVerdict>("signing certificate's identity: " + *error);
  }
  FulcioIdentity& found = std::get<FulcioIdentity>(identity);
  if (!matches(expected.issuer, found.issuer)) {
    return refused<KeylessVerdict>("signed by issuer " + identity_in_quotes(found.issuer) + ", not " +
                                   (expected.issuer.regex ? "one matching " : "") +
                                   identity_in_quotes(expected.issuer.text));
  }
  if (!matches(expected.subject, found.subject)) {
    return refused<KeylessVerdict>("signed by " + identity_in_quotes(found.subject) + ", not " +
                                   (expected.subject.regex ? "one matching " : "") +
                                   identity_in_quotes(expected.subject.text));
  }
  verdict.identity = std::move(found);
  return verdict;
}

BundleVerdict verify_with_key(const Bundle& bundle, const Artifact& artifact, const TrustedRoot& root,
                              const registry::PublicKey& key) {
  if (!bundle.certificates.empty()) {
    return refused<BundleVerdict>("bundle is signed with a Fulcio certificate, not a public key: verify it keyless");
  }
  std::optional<Signer> signer = signer_of(key, nullptr);
  if (!signer) return refused<BundleVerdict>("given key cannot be read back from its DER");
  BundleVerdict verdict = verify_log_and_times(bundle, artifact, root, *signer);
  if (!verdict) return verdict;
  if (const Check signature = verify_signature(bundle, artifact, *signer); !signature) {
    return refused<BundleVerdict>(signature.reason);
  }
  return verdict;
}

}  // namespace pullgate::policy::sigstore
