// Transparency-log proofs as a Sigstore bundle carries them (policy/transparency.hpp):
// checkpoints (signed notes) and Merkle inclusion proofs. Input: one byte choosing the
// form, then
//   0: a checkpoint note, parsed and verified against a log key made at start;
//   1: 8 bytes of index, 8 of tree size, then 32-byte hashes: the leaf, the root, the proof;
//   2: a checkpoint's text above its blank line, which the target signs itself: what
//      parses must verify, and must not once a byte of its signed text is changed.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstring>
#include <memory>
#include <variant>

#include "policy/transparency.hpp"
#include "registry/base64.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::policy::transparency;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;

namespace {

constexpr const char* log_name = "log.fuzz.example";

struct Log {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> private_key{nullptr, EVP_PKEY_free};
  std::unique_ptr<LogKey> key;
};

const Log& log() {
  static const Log made = [] {
    Log l;
    EVP_PKEY* key = nullptr;
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr),
                                                                   EVP_PKEY_CTX_free);
    require(ctx && EVP_PKEY_keygen_init(ctx.get()) == 1 && EVP_PKEY_keygen(ctx.get(), &key) == 1, "an Ed25519 key");
    l.private_key.reset(key);
    unsigned char* der = nullptr;
    const int length = i2d_PUBKEY(key, &der);
    require(length > 0, "the key's DER");
    auto parsed = LogKey::from_der(log_name, std::string_view(reinterpret_cast<char*>(der), length));
    OPENSSL_free(der);
    require(std::holds_alternative<LogKey>(parsed), "the log key reads back");
    l.key = std::make_unique<LogKey>(std::get<LogKey>(std::move(parsed)));
    return l;
  }();
  return made;
}

std::string sign(std::string_view text) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t length = 64;
  std::string signature(length, '\0');
  require(ctx && EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, log().private_key.get()) == 1 &&
              EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                             reinterpret_cast<const unsigned char*>(text.data()), text.size()) == 1,
          "signing");
  signature.resize(length);
  return signature;
}

std::string hint_bytes(std::uint32_t hint) {
  return {static_cast<char>(hint >> 24), static_cast<char>(hint >> 16), static_cast<char>(hint >> 8),
          static_cast<char>(hint)};
}

void check_parsed(std::string_view note, const Checkpoint& c) {
  require(note.starts_with(c.signed_text), "the signed text is the note's start");
  require(c.signed_text.ends_with('\n'), "the signed text ends in a line break");
  require(!c.origin.empty() && c.root_hash.size() == hash_size, "an origin and a 32-byte root");
  require(!c.signatures.empty(), "at least one signature line");
}

std::uint64_t read_u64(const std::uint8_t* data) {
  std::uint64_t value = 0;
  std::memcpy(&value, data, sizeof value);
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto text = pullgate::fuzz::as_text(data + 1, size - 1);
  const LogKey& key = *log().key;
  switch (data[0] % 3) {
    case 0: {
      auto parsed = parse_checkpoint(text);
      if (auto* error = std::get_if<std::string>(&parsed)) {
        require(one_line(*error), "a one-line refusal", *error);
        break;
      }
      const auto& checkpoint = std::get<Checkpoint>(parsed);
      check_parsed(text, checkpoint);
      for (auto rule : {OriginRule::any, OriginRule::key_name}) {
        auto verified = verify_checkpoint(checkpoint, key, rule);
        // The key is made at start: nothing the fuzzer writes carries its signature.
        require(!verified, "a note the log never signed does not verify", text);
        require(one_line(verified.reason), "a one-line reason", verified.reason);
      }
      break;
    }
    case 1: {
      if (text.size() < 16 + 2 * hash_size) break;
      const auto index = read_u64(data + 1);
      const auto tree_size = read_u64(data + 9);
      const auto leaf = text.substr(16, hash_size);
      const auto root = text.substr(16 + hash_size, hash_size);
      std::vector<std::string> proof;
      for (auto rest = text.substr(16 + 2 * hash_size); !rest.empty(); rest.remove_prefix(std::min(rest.size(), hash_size)))
        proof.emplace_back(rest.substr(0, hash_size));
      auto verified = verify_inclusion(index, tree_size, leaf, proof, root);
      if (verified) {
        require(index < tree_size, "a proven entry is inside its tree");
        require(tree_size > 1 || leaf == root, "a tree of one entry is its leaf");
      } else {
        require(one_line(verified.reason), "a one-line reason", verified.reason);
      }
      break;
    }
    default: {
      // The text above the blank line, ending in a line break as a note's does.
      std::string body(text);
      if (body.empty() || body.back() != '\n') body += '\n';
      const std::string note = body + "\n\xE2\x80\x94 " + log_name + " " +
                               pullgate::registry::base64_encode(hint_bytes(key.key_hint()) + sign(body)) + "\n";
      auto parsed = parse_checkpoint(note);
      if (!std::holds_alternative<Checkpoint>(parsed)) break;
      const auto& checkpoint = std::get<Checkpoint>(parsed);
      check_parsed(note, checkpoint);
      require(static_cast<bool>(verify_checkpoint(checkpoint, key, OriginRule::any)), "a note the log signed verifies",
              note);
      for (std::size_t i = 0; i < body.size(); i += 1 + body.size() / 8) {
        std::string changed = note;
        changed[i] = static_cast<char>(changed[i] ^ 0x20);
        auto reparsed = parse_checkpoint(changed);
        if (auto* altered = std::get_if<Checkpoint>(&reparsed))
          require(!verify_checkpoint(*altered, key, OriginRule::any), "an altered note does not verify", changed);
      }
    }
  }
  return 0;
}
