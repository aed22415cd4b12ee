#pragma once
// Sigstore bundles (v0.1, v0.2, v0.3) read strictly, and verified keyless: the
// transparency-log entry (signed entry timestamp, inclusion proof and checkpoint), the
// Rekor body against the bundle, the Fulcio chain and SCT at the logged time, the
// signature over the artifact or the DSSE envelope, and the signer's identity. Pure
// functions over a trusted root (policy/trusted_root.hpp): no network, no clock.
// RFC 3161 timestamps (policy/timestamp.hpp) are verified, every one, and the
// certificate checked at each time they and the log vouch for. Rekor v2 entries
// (hashedrekord and dsse 0.0.2) are verified by their inclusion proof and checkpoint
// and their body against the bundle; they carry no time, so such a bundle needs a
// timestamp. Key-based bundles are verified against the key given (verify_with_key).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/certificate.hpp"
#include "policy/fulcio.hpp"
#include "policy/rfc3339.hpp"
#include "policy/timestamp.hpp"
#include "policy/trusted_root.hpp"

namespace pullgate::registry {
class PublicKey;
}  // namespace pullgate::registry

namespace pullgate::policy::sigstore {

struct InclusionProof {
  std::uint64_t log_index = 0;  // shard-local in Rekor v1, unlike the entry's logIndex
  std::uint64_t tree_size = 0;
  std::string root_hash;            // 32 bytes
  std::vector<std::string> hashes;  // 32 bytes each, leaf to root
  std::string checkpoint;           // the signed note's text
};

struct TlogEntry {
  std::uint64_t log_index = 0;                        // global
  std::string log_id;                                 // 32 bytes
  std::string kind, version;                          // kindVersion
  std::uint64_t integrated_time = 0;                  // Unix seconds; 0 when absent (Rekor v2)
  std::optional<std::string> signed_entry_timestamp;  // inclusionPromise
  std::optional<InclusionProof> inclusion_proof;
  std::string canonicalized_body;
};

struct MessageSignature {
  std::string digest;  // messageDigest (SHA2_256 only), 32 bytes; an unauthenticated hint
  std::string signature;
};

struct DsseEnvelope {
  std::string payload_type;
  std::string payload;    // decoded
  std::string signature;  // decoded; a bundle's envelope has exactly one
};

struct Bundle {
  int minor_version = 0;  // 1, 2 or 3 (v0.x)
  // The signing certificate and what a v0.1/v0.2 chain carries after it; empty for a
  // public key.
  std::vector<Certificate> certificates;
  std::optional<std::string> public_key_hint;
  std::vector<TlogEntry> tlog_entries;
  std::vector<std::string> rfc3161_timestamps;  // DER TimeStampResp
  std::optional<MessageSignature> message_signature;
  std::optional<DsseEnvelope> dsse_envelope;

  // One line naming the field when `json` is not a bundle or breaks its version's rules.
  static std::variant<Bundle, std::string> parse(std::string_view json);
};

// What was signed: a file's bytes, or only its SHA-256 ("sha256:<hex>"). For a DSSE
// envelope it is the in-toto statement's subject.
struct Artifact {
  std::string sha256;                // 32 bytes
  std::optional<std::string> bytes;  // when known (Ed25519 signs the bytes, not a digest)

  static Artifact of_bytes(std::string bytes);
  static std::variant<Artifact, std::string> of_digest(std::string_view digest);
};

// An issuer or subject alternative name: the exact text, or a regular expression
// (ECMAScript) that must match all of it, not a part as cosign's --*-regexp does.
struct IdentityMatch {
  std::string text;
  bool regex = false;

  static IdentityMatch exact(std::string text) { return {std::move(text), false}; }
  static IdentityMatch pattern(std::string text) { return {std::move(text), true}; }
};

struct ExpectedIdentity {
  IdentityMatch issuer;
  IdentityMatch subject;
};

// What a verified bundle's log and timestamps vouch for, keyless or key-based alike.
struct BundleVerdict {
  bool verified = false;
  std::string reason;        // one line: which check failed; empty when verified
  // The log's verified integrated time, or else the first timestamp's time.
  TimePoint signed_at;
  bool logged_time = false;  // signed_at is the log's (Rekor v1 with a signed entry timestamp)
  std::vector<VerifiedTimestamp> timestamps;  // every RFC 3161 timestamp, verified
  std::string log_base_url;  // the log that holds the entry
  std::uint64_t log_index = 0;  // the entry's global logIndex
  explicit operator bool() const { return verified; }
};

struct KeylessVerdict : BundleVerdict {
  FulcioIdentity identity;  // when verified
};

KeylessVerdict verify_keyless(const Bundle& bundle, const Artifact& artifact, const TrustedRoot& root,
                              const ExpectedIdentity& expected);

// A key-based bundle (cosign sign-blob --key, sigstore-go's managed keys): the same
// log entry, body and timestamp checks, the entry naming `key`, and the signature
// over the artifact or the DSSE envelope by `key`. No identity: the key is the signer.
// A bundle with a certificate is refused, saying to verify it keyless.
BundleVerdict verify_with_key(const Bundle& bundle, const Artifact& artifact, const TrustedRoot& root,
                              const registry::PublicKey& key);

}  // namespace pullgate::policy::sigstore
