// Merkle inclusion proofs, checkpoints and signed entry timestamps of transparency
// logs, with OpenSSL 3 (SHA-256) and the keys of registry/keys.hpp.
#include "policy/transparency.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>

#include "policy/text.hpp"
#include "registry/base64.hpp"

namespace pullgate::policy::transparency {
namespace {

constexpr std::string_view em_dash = "\xE2\x80\x94";  // U+2014, which starts every signature line
// Each line a checkpoint names the log with costs a verification; golang.org/x/mod's
// note reader refuses more than 100 signatures too.
constexpr std::size_t max_signature_lines = 100;
constexpr std::size_t max_quoted_length = 80;  // of untrusted text quoted in a reason
constexpr std::size_t listed_signers = 3;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// SHA-256 of the pieces one after another, 32 raw bytes. OpenSSL's SHA-256 fails only
// when memory does.
std::string sha256(std::initializer_list<std::string_view> pieces) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
  for (std::string_view piece : pieces) {
    if (EVP_DigestUpdate(ctx.get(), piece.data(), piece.size()) != 1) throw std::bad_alloc();
  }
  std::string out(hash_size, '\0');
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length) != 1 ||
      length != hash_size) {
    throw std::bad_alloc();
  }
  return out;
}

std::string hint_hex(std::uint32_t hint) {
  const std::string bytes{static_cast<char>(hint >> 24), static_cast<char>(hint >> 16), static_cast<char>(hint >> 8),
                          static_cast<char>(hint)};
  return hex(bytes);
}

std::uint32_t big_endian_32(std::string_view bytes) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) value = value << 8 | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::string quoted(std::string_view text) { return "\"" + printable(text, max_quoted_length) + "\""; }

Check passed() { return Check{true, {}}; }
Check failed(std::string reason) { return Check{false, std::move(reason)}; }

// A 32-byte hash's size checked; `what` names it in the reason.
std::optional<std::string> wrong_hash_size(std::string_view hash, const std::string& what) {
  if (hash.size() == hash_size) return std::nullopt;
  return what + " is " + std::to_string(hash.size()) + " bytes, not " + std::to_string(hash_size);
}

// How many hashes RFC 9162's loop consumes for entry `index` of a tree of `tree_size`:
// one per level where the paths to index and to the last entry differ (the bits of
// index ^ (size - 1)), then one per set bit of index above them. Only for the reason.
std::uint64_t proof_length(std::uint64_t index, std::uint64_t tree_size) {
  const int inner = std::bit_width(index ^ (tree_size - 1));
  return static_cast<std::uint64_t>(inner) + (inner >= 64 ? 0 : std::popcount(index >> inner));
}

Check wrong_length(std::uint64_t index, std::uint64_t tree_size, std::size_t given) {
  return failed("inclusion proof has " + std::to_string(given) + " hashes; entry " + std::to_string(index) +
                " of a tree of " + std::to_string(tree_size) + " needs " +
                std::to_string(proof_length(index, tree_size)));
}

// `text` (ending in "\n") as lines without their line breaks.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  for (std::size_t end = text.find('\n'); end != std::string_view::npos; end = text.find('\n', start)) {
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::optional<std::uint64_t> decimal(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || stop != end) return std::nullopt;
  return value;
}

// The note text above the blank line: origin, size, root hash, extension lines.
std::optional<std::string> read_body(std::string_view text, Checkpoint& checkpoint) {
  const std::vector<std::string_view> lines = lines_of(text);
  if (lines.size() < 3) {
    return "checkpoint has " + std::to_string(lines.size()) +
           " lines above its signatures; an origin, a tree size and a root hash are needed";
  }
  if (lines[0].empty()) return "checkpoint has an empty origin line";
  const std::optional<std::uint64_t> size = decimal(lines[1]);
  if (!size) return "checkpoint tree size " + quoted(lines[1]) + " is not a decimal number";
  std::string root;
  if (!registry::base64_decode(lines[2], root)) return "checkpoint root hash " + quoted(lines[2]) + " is not base64";
  if (auto error = wrong_hash_size(root, "checkpoint root hash")) return error;
  for (std::size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) return "checkpoint has an empty line among its extension lines";
    checkpoint.extensions.emplace_back(lines[i]);
  }
  checkpoint.origin = lines[0];
  checkpoint.size = *size;
  checkpoint.root_hash = std::move(root);
  return std::nullopt;
}

// "— <name> <base64(key hint || signature)>"; `number` counts from 1 for the reason.
std::variant<NoteSignature, std::string> read_signature_line(std::string_view line, std::size_t number) {
  const std::string where = "checkpoint signature line " + std::to_string(number);
  const std::string prefix = std::string(em_dash) + " ";
  if (!line.starts_with(prefix)) return where + " does not start with an em dash (U+2014) and a space";
  const std::string_view rest = line.substr(prefix.size());
  const std::size_t space = rest.find(' ');
  if (space == std::string_view::npos || space == 0) return where + " is not \"— <name> <base64>\"";
  NoteSignature signature;
  signature.name = rest.substr(0, space);
  std::string bytes;
  if (!registry::base64_decode(rest.substr(space + 1), bytes)) return where + " has a signature that is not base64";
  if (bytes.size() < 5) return where + " is too short for a key hint and a signature";
  signature.key_hint = big_endian_32(bytes);
  signature.signature = bytes.substr(4);
  return signature;
}

// The block below the blank line: one signature a line, each ending in "\n".
std::optional<std::string> read_signatures(std::string_view block, Checkpoint& checkpoint) {
  if (block.empty()) return "checkpoint has no signature lines";
  if (!block.ends_with('\n')) return "checkpoint's last signature line does not end in a line break";
  const std::vector<std::string_view> lines = lines_of(block);
  if (lines.size() > max_signature_lines) {
    return "checkpoint has " + std::to_string(lines.size()) + " signature lines, more than " +
           std::to_string(max_signature_lines);
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto line = read_signature_line(lines[i], i + 1);
    if (auto* error = std::get_if<std::string>(&line)) return std::move(*error);
    checkpoint.signatures.push_back(std::get<NoteSignature>(std::move(line)));
  }
  return std::nullopt;
}

// Who signed, for a reason: "rekor.sigstore.dev" (c0d23d6a), "witness.example" (3bc3c7e4).
std::string signers(const Checkpoint& checkpoint) {
  if (checkpoint.signatures.empty()) return "no one";
  std::string out;
  for (std::size_t i = 0; i < checkpoint.signatures.size() && i < listed_signers; ++i) {
    const NoteSignature& line = checkpoint.signatures[i];
    out += (i == 0 ? "" : ", ") + quoted(line.name) + " (" + hint_hex(line.key_hint) + ")";
  }
  if (checkpoint.signatures.size() > listed_signers)
    out += " and " + std::to_string(checkpoint.signatures.size() - listed_signers) + " more";
  return out;
}

// C2SP signed-note key names: not empty, no spaces, no '+'.
bool is_key_name(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f || c == '+') return false;
  }
  return true;
}

}  // namespace

std::string leaf_hash(std::string_view entry) { return sha256({std::string_view("\x00", 1), entry}); }

std::string node_hash(std::string_view left, std::string_view right) { return sha256({"\x01", left, right}); }

Check verify_inclusion(std::uint64_t index, std::uint64_t tree_size, std::string_view leaf,
                       std::span<const std::string> proof, std::string_view root) {
  if (index >= tree_size) {
    return failed("entry index " + std::to_string(index) + " is not below the tree size " + std::to_string(tree_size));
  }
  if (auto error = wrong_hash_size(leaf, "leaf hash")) return failed(std::move(*error));
  if (auto error = wrong_hash_size(root, "root hash")) return failed(std::move(*error));
  for (std::size_t i = 0; i < proof.size(); ++i) {
    if (auto error = wrong_hash_size(proof[i], "inclusion proof hash " + std::to_string(i))) {
      return failed(std::move(*error));
    }
  }
  // RFC 9162 section 2.1.3.2, step by step: fn is the entry's position at the current
  // level, sn the last entry's.
  std::uint64_t fn = index;
  std::uint64_t sn = tree_size - 1;
  std::string r(leaf);
  for (const std::string& p : proof) {
    if (sn == 0) return wrong_length(index, tree_size, proof.size());
    if ((fn & 1) != 0 || fn == sn) {
      r = node_hash(p, r);
      // The right edge of an unbalanced tree: climb the levels where the entry's
      // subtree has no right sibling.
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return wrong_length(index, tree_size, proof.size());
  if (r != root) {
    return failed("inclusion proof of entry " + std::to_string(index) + " leads to root " + hex(r).substr(0, 16) +
                  "..., not " + hex(root).substr(0, 16) + "...: the entry is not in that tree, or the proof was altered");
  }
  return passed();
}

std::variant<LogKey, std::string> LogKey::from_der(std::string name, std::string_view spki_der) {
  if (!is_key_name(name)) return "log name " + quoted(name) + " cannot name a checkpoint key (empty, a space or '+')";
  auto key = registry::PublicKey::from_der(name, spki_der);
  if (auto* error = std::get_if<std::string>(&key)) return std::move(*error);
  LogKey log;
  log.key_ = std::get<registry::PublicKey>(std::move(key));
  if (log.key_.algorithm() == "ecdsa-p256") {
    // Rekor v1: the log id is the SPKI's hash (trusted roots hash these very bytes).
    log.log_id_ = sha256({spki_der});
  } else if (log.key_.algorithm() == "ed25519") {
    // C2SP signed-note Ed25519 key id: signature type 0x01 and the raw key, which is
    // the end of the SPKI's BIT STRING (RFC 8410), the SPKI's last 32 bytes.
    log.log_id_ = sha256({name, "\n", "\x01", spki_der.substr(spki_der.size() - 32)});
  } else {
    return "log key " + name + " is " + log.key_.algorithm() +
           "; transparency logs sign with ECDSA P-256 (Rekor v1) or Ed25519 (Rekor v2)";
  }
  log.key_hint_ = big_endian_32(log.log_id_);
  log.name_ = std::move(name);
  return log;
}

std::variant<Checkpoint, std::string> parse_checkpoint(std::string_view note) {
  // The last blank line ends the text: the text may hold blank lines of its own, the
  // signatures cannot.
  const std::size_t blank = note.rfind("\n\n");
  if (blank == std::string_view::npos) return "checkpoint has no blank line before its signatures";
  Checkpoint checkpoint;
  checkpoint.signed_text = note.substr(0, blank + 1);
  if (auto error = read_body(checkpoint.signed_text, checkpoint)) return std::move(*error);
  if (auto error = read_signatures(note.substr(blank + 2), checkpoint)) return std::move(*error);
  return checkpoint;
}

OriginRule origin_rule_for(std::string_view origin) {
  const std::size_t dash = origin.rfind(" - ");
  if (dash == std::string_view::npos) return OriginRule::key_name;
  const std::string_view tree_id = origin.substr(dash + 3);
  const bool digits = !tree_id.empty() && std::all_of(tree_id.begin(), tree_id.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
  return digits ? OriginRule::any : OriginRule::key_name;
}

Check verify_checkpoint(const Checkpoint& checkpoint, const LogKey& log, OriginRule rule) {
  if (rule == OriginRule::key_name && checkpoint.origin != log.name()) {
    return failed("checkpoint origin " + quoted(checkpoint.origin) + " is not the log's name " + log.name());
  }
  // C2SP note semantics: lines of other signers are skipped, a bad line of this one fails.
  std::size_t verified = 0;
  for (const NoteSignature& line : checkpoint.signatures) {
    if (line.name != log.name() || line.key_hint != log.key_hint()) continue;
    if (!log.key().verify(checkpoint.signed_text, line.signature)) {
      return failed("checkpoint signature of log " + log.name() + " (key " + hint_hex(log.key_hint()) +
                    ") does not verify: the checkpoint was altered, or signed by another key");
    }
    ++verified;
  }
  if (verified == 0) {
    return failed("checkpoint has no signature of log " + log.name() + " (key " + hint_hex(log.key_hint()) +
                  "), only of " + signers(checkpoint));
  }
  return passed();
}

Check proof_matches_checkpoint(std::uint64_t tree_size, std::string_view root_hash, const Checkpoint& checkpoint) {
  if (root_hash != checkpoint.root_hash) {
    return failed("inclusion proof's root " + hex(root_hash).substr(0, 16) + "... is not the checkpoint's " +
                  hex(checkpoint.root_hash).substr(0, 16) + "...");
  }
  if (tree_size != checkpoint.size) {
    return failed("inclusion proof is for a tree of " + std::to_string(tree_size) + " entries, the checkpoint of " +
                  std::to_string(checkpoint.size));
  }
  return passed();
}

std::string signed_entry_timestamp_payload(const LogEntry& entry) {
  // No value needs JSON escaping: base64, digits and hex.
  return R"({"body":")" + registry::base64_encode(entry.body) + R"(","integratedTime":)" +
         std::to_string(entry.integrated_time) + R"(,"logID":")" + hex(entry.log_id) + R"(","logIndex":)" +
         std::to_string(entry.log_index) + "}";
}

Check verify_signed_entry_timestamp(const LogEntry& entry, std::string_view signature, const LogKey& log) {
  // Rekor v1 signs SETs with ECDSA; sigstore-go takes no other kind.
  if (log.key().algorithm() != "ecdsa-p256") {
    return failed("log " + log.name() + " has an " + log.key().algorithm() +
                  " key; signed entry timestamps are ECDSA signatures of Rekor v1 logs");
  }
  if (entry.log_id != log.log_id()) {
    return failed("entry names log " + hex(entry.log_id).substr(0, 16) + "..., not " + log.name() + " (" +
                  hex(log.log_id()).substr(0, 16) + "...)");
  }
  if (!log.key().verify(signed_entry_timestamp_payload(entry), signature)) {
    return failed("signed entry timestamp does not verify with the key of log " + log.name() +
                  ": the entry's body, time or index was altered, or another key signed it");
  }
  return passed();
}

}  // namespace pullgate::policy::transparency
