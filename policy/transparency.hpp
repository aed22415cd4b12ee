#pragma once
// Transparency-log proofs, as keyless Sigstore verification needs them (issue 15):
// that a Rekor entry is in the log's Merkle tree (RFC 9162 inclusion proof), that the
// tree's head was signed by the log (a C2SP checkpoint, a signed note) and that the
// log promised to include the entry (Rekor v1's signed entry timestamp, the SET).
// Pure: bytes in, a verdict out. The caller reads the bundle and the trusted root and
// hands over what they hold, decoded from base64; nothing here re-serializes what it
// verifies, except the SET payload, whose exact bytes are defined below.
//
// Sources: RFC 9162 section 2.1.3.2; C2SP signed-note and tlog-checkpoint; rekor
// pkg/verify (SET payload, checkpoint); sigstore-go pkg/verify/tlog.go (which lines of
// a checkpoint count). Real vectors from sigstore-conformance: tests/fixtures/sigstore.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "registry/keys.hpp"

namespace pullgate::policy::transparency {

// SHA-256, the hash of every Sigstore log: roots, proof hashes and leaf hashes are this long.
inline constexpr std::size_t hash_size = 32;

// What a check found: passed, or one line saying why not.
struct Check {
  bool passed = false;
  std::string reason;  // empty when passed
  explicit operator bool() const { return passed; }
};

// --- Merkle trees (RFC 6962 section 2.1) -------------------------------------------

// SHA-256(0x00 || entry): the hash of a log entry (Rekor: its canonicalized body).
std::string leaf_hash(std::string_view entry);
// SHA-256(0x01 || left || right): an inner node.
std::string node_hash(std::string_view left, std::string_view right);

// RFC 9162 section 2.1.3.2: `proof` (hashes ordered from the leaf up) leads from the
// entry's `leaf` hash at `index` to `root`, the root of a tree of `tree_size` entries.
// Fails on an index outside the tree, a proof of the wrong length for (index, size),
// hashes that are not 32 bytes, and a root that is not reached.
Check verify_inclusion(std::uint64_t index, std::uint64_t tree_size, std::string_view leaf,
                       std::span<const std::string> proof, std::string_view root);

// --- the log's key ----------------------------------------------------------------

// A transparency log as the trusted root names it: its key (ECDSA P-256, as Rekor v1
// signs, or Ed25519, as Rekor v2 does) and the name it signs checkpoints with (the
// hostname of its baseUrl: "rekor.sigstore.dev", "log2025-1.rekor.sigstore.dev").
class LogKey {
 public:
  // `spki_der`: the DER SubjectPublicKeyInfo (trusted_root.json publicKey.rawBytes,
  // decoded). Other key types, and names a note cannot carry (empty, with spaces or
  // '+'), are an error line.
  static std::variant<LogKey, std::string> from_der(std::string name, std::string_view spki_der);

  const std::string& name() const { return name_; }
  const registry::PublicKey& key() const { return key_; }
  // The log's 32-byte id, as trusted_root.json's logId.keyId and a bundle's
  // tlogEntries[].logId hold it: SHA-256 of the SPKI for ECDSA; for Ed25519 the C2SP
  // key id, SHA-256(name || "\n" || 0x01 || raw key).
  const std::string& log_id() const { return log_id_; }
  // Its first 4 bytes, big-endian: how checkpoint signature lines name the key.
  std::uint32_t key_hint() const { return key_hint_; }

 private:
  std::string name_;
  registry::PublicKey key_;
  std::string log_id_;
  std::uint32_t key_hint_ = 0;
};

// --- checkpoints (C2SP tlog-checkpoint, a C2SP signed note) ----------------------

// One signature line: "— <name> <base64(key hint || signature)>".
struct NoteSignature {
  std::string name;
  std::uint32_t key_hint = 0;
  std::string signature;  // raw bytes after the hint
};

struct Checkpoint {
  std::string signed_text;  // the bytes the signatures cover: origin to last extension, ending in "\n"
  std::string origin;       // Rekor v1: "rekor.sigstore.dev - <tree id>"; C2SP: the log's name
  std::uint64_t size = 0;
  std::string root_hash;  // 32 bytes
  std::vector<std::string> extensions;  // lines after the root hash ("Timestamp: ..." in Rekor v1)
  std::vector<NoteSignature> signatures;
};

// Strict: the note splits at its last blank line; the text above it has an origin, a
// decimal size and a base64 root hash of 32 bytes, and ends in a line break; below it
// at least one signature line, each ending in a line break. Anything else is an error line.
std::variant<Checkpoint, std::string> parse_checkpoint(std::string_view note);

// Whether the origin must be the log's name. Rekor v2 (and any C2SP log) signs
// checkpoints whose origin is its name; Rekor v1's origin carries the tree id.
enum class OriginRule { any, key_name };

// Rekor v1's origin: ends in " - <decimal tree id>" (sigstore-go's test, the regular
// expression `.* - [0-9]+$`): any origin; otherwise the origin must be the key name.
OriginRule origin_rule_for(std::string_view origin);

// The checkpoint is signed by `log`: every signature line with the log's name and key
// hint must verify, and there must be at least one. Other lines (witness cosignatures,
// another key of the same origin) are ignored.
Check verify_checkpoint(const Checkpoint& checkpoint, const LogKey& log, OriginRule rule);

// An inclusion proof's tree is the checkpoint's: same root hash and same size (Rekor
// v1 carries both next to the checkpoint, and a checkpoint of another tree proves
// nothing about the proof).
Check proof_matches_checkpoint(std::uint64_t tree_size, std::string_view root_hash, const Checkpoint& checkpoint);

// --- Rekor v1 signed entry timestamps --------------------------------------------

// What a SET covers: a bundle's tlogEntries[] fields, decoded.
struct LogEntry {
  std::string body;                  // canonicalizedBody's bytes
  std::uint64_t integrated_time = 0;  // Unix seconds
  std::string log_id;                // logId.keyId's 32 bytes
  std::uint64_t log_index = 0;       // the global logIndex, not inclusionProof.logIndex
};

// The exact bytes Rekor signs (RFC 8785 canonical JSON, keys in that order):
// {"body":"<base64 with padding>","integratedTime":N,"logID":"<lowercase hex>","logIndex":M}
std::string signed_entry_timestamp_payload(const LogEntry& entry);

// `signature` (the SET, DER ECDSA over SHA-256 of the payload) is `log`'s over
// `entry`, and the entry names that log.
Check verify_signed_entry_timestamp(const LogEntry& entry, std::string_view signature, const LogKey& log);

}  // namespace pullgate::policy::transparency
