// Transparency-log proofs (policy/transparency.hpp): the real bundles and trusted roots
// of the Sigstore conformance corpus (tests/fixtures/sigstore/README.md), and trees,
// checkpoints and signed entry timestamps made here with keys generated for the test.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/text.hpp"
#include "policy/transparency.hpp"
#include "registry/base64.hpp"
#include "tests/unit/sigstore_fixtures.hpp"

namespace pullgate::policy::transparency {
namespace {

using json = nlohmann::json;
using registry::base64_encode;

const std::string em_dash = "\xE2\x80\x94";

// --- fixtures ---------------------------------------------------------------------

std::string fixture(const std::string& name) { return testing_support::sigstore_fixture(name); }
using testing_support::expect_failure;
using testing_support::expect_passed;
using testing_support::unbase64;

std::string string_of(const json& value) { return value.get<std::string>(); }
std::string decoded(const json& value) { return unbase64(string_of(value)); }
std::uint64_t number(const json& value) { return std::stoull(string_of(value)); }

// A bundle's (only) tlog entry, decoded: what a caller hands to these functions.
struct BundleEntry {
  LogEntry entry;            // what the SET covers
  std::string set;           // inclusionPromise.signedEntryTimestamp, if any
  std::uint64_t proof_index = 0;
  std::uint64_t tree_size = 0;
  std::string root;
  std::vector<std::string> hashes;
  std::string checkpoint;    // the signed note, as it stands in the bundle
};

BundleEntry bundle_entry(const std::string& name) {
  const json bundle = json::parse(fixture(name + "/bundle.sigstore.json"));
  const json& tlog = bundle.at("verificationMaterial").at("tlogEntries").at(0);
  BundleEntry out;
  out.entry.body = decoded(tlog.at("canonicalizedBody"));
  out.entry.log_id = decoded(tlog.at("logId").at("keyId"));
  out.entry.log_index = number(tlog.at("logIndex"));
  if (tlog.contains("integratedTime")) out.entry.integrated_time = number(tlog.at("integratedTime"));
  if (tlog.contains("inclusionPromise")) out.set = decoded(tlog.at("inclusionPromise").at("signedEntryTimestamp"));
  const json& proof = tlog.at("inclusionProof");
  out.proof_index = number(proof.at("logIndex"));
  out.tree_size = number(proof.at("treeSize"));
  out.root = decoded(proof.at("rootHash"));
  for (const json& hash : proof.at("hashes")) out.hashes.push_back(decoded(hash));
  if (proof.contains("checkpoint")) out.checkpoint = string_of(proof.at("checkpoint").at("envelope"));
  return out;
}

// "https://rekor.sigstore.dev" -> "rekor.sigstore.dev": the name a log signs checkpoints with.
std::string hostname(const std::string& base_url) {
  std::string host = base_url.substr(base_url.find("://") + 3);
  return host.substr(0, host.find_first_of(":/"));
}

// Every tlog of a trusted root, with the log id the root gives it.
std::vector<std::pair<LogKey, std::string>> tlogs_of(const std::string& trusted_root) {
  std::vector<std::pair<LogKey, std::string>> logs;
  const json root = json::parse(fixture(trusted_root));  // outlives the loop, unlike a temporary in its head
  for (const json& tlog : root.at("tlogs")) {
    auto key = LogKey::from_der(hostname(string_of(tlog.at("baseUrl"))), decoded(tlog.at("publicKey").at("rawBytes")));
    if (auto* error = std::get_if<std::string>(&key)) {
      ADD_FAILURE() << trusted_root << ": " << *error;
      continue;
    }
    logs.emplace_back(std::get<LogKey>(std::move(key)), decoded(tlog.at("logId").at("keyId")));
  }
  return logs;
}

LogKey tlog(const std::string& trusted_root, const std::string& name) {
  for (auto& [log, id] : tlogs_of(trusted_root))
    if (log.name() == name) return log;
  ADD_FAILURE() << trusted_root << " has no tlog " << name;
  return LogKey{};
}

// Rekor v1 (ECDSA P-256), Rekor v2 on staging (Ed25519), and the conformance suite's
// local Rekor v2 (Ed25519).
const LogKey& rekor_v1() {
  static const LogKey log = tlog("production_trusted_root.json", "rekor.sigstore.dev");
  return log;
}
const LogKey& rekor_v2() {
  static const LogKey log = tlog("rekor2-happy-path/trusted_root.json", "log2025-alpha1.rekor.sigstage.dev");
  return log;
}
const LogKey& rekor_local() {
  static const LogKey log = tlog("bundle-with-sct-with-extensions/trusted_root.json", "rekor-local");
  return log;
}

Checkpoint parsed(std::string_view note) {
  auto checkpoint = parse_checkpoint(note);
  if (auto* error = std::get_if<std::string>(&checkpoint)) {
    ADD_FAILURE() << *error << " in " << note;
    return Checkpoint{};
  }
  return std::get<Checkpoint>(std::move(checkpoint));
}

std::string parse_error(std::string_view note) {
  auto checkpoint = parse_checkpoint(note);
  if (auto* error = std::get_if<std::string>(&checkpoint)) return *error;
  ADD_FAILURE() << "parsed: " << note;
  return {};
}

// --- keys made here ---------------------------------------------------------------

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string spki_der(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  EXPECT_GT(length, 0);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return out;
}

registry::PrivateKey private_key(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  auto parsed = registry::PrivateKey::from_pem("test", std::string_view(data, static_cast<std::size_t>(length)));
  EXPECT_TRUE(std::holds_alternative<registry::PrivateKey>(parsed));
  return std::get<registry::PrivateKey>(std::move(parsed));
}

// A log made here: its private key and what the trusted root would say of it.
struct TestLog {
  registry::PrivateKey key;
  LogKey log;
};

TestLog make_log(const std::string& name, EVP_PKEY* generated) {
  Pkey key(generated);
  auto log = LogKey::from_der(name, spki_der(key.get()));
  if (auto* error = std::get_if<std::string>(&log)) ADD_FAILURE() << *error;
  return TestLog{private_key(key.get()), std::get<LogKey>(std::move(log))};
}

struct TestLogs {
  TestLog ecdsa = make_log("log.test", EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  TestLog ed25519 = make_log("log.test", EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  TestLog witness = make_log("witness.test", EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
};

const TestLogs& logs() {
  static const TestLogs generated;
  return generated;
}

std::vector<const TestLog*> both_kinds() { return {&logs().ecdsa, &logs().ed25519}; }

// --- Merkle trees by RFC 6962's recursive definitions (section 2.1) ---------------

std::vector<std::string> leaves(std::size_t count) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(leaf_hash("entry " + std::to_string(i)));
  return out;
}

// MTH(D[n]): k is the largest power of two below n.
std::string tree_hash(std::span<const std::string> leaves) {
  if (leaves.size() == 1) return leaves[0];
  const std::size_t k = std::bit_floor(leaves.size() - 1);
  return node_hash(tree_hash(leaves.first(k)), tree_hash(leaves.subspan(k)));
}

// PATH(m, D[n]), from the leaf up.
std::vector<std::string> audit_path(std::size_t m, std::span<const std::string> leaves) {
  if (leaves.size() == 1) return {};
  const std::size_t k = std::bit_floor(leaves.size() - 1);
  std::vector<std::string> path;
  if (m < k) {
    path = audit_path(m, leaves.first(k));
    path.push_back(tree_hash(leaves.subspan(k)));
  } else {
    path = audit_path(m - k, leaves.subspan(k));
    path.push_back(tree_hash(leaves.first(k)));
  }
  return path;
}

// Calls check(tree, root, m) for every entry m of every tree of 1 to max_size entries.
template <typename EntryCheck>
void for_every_entry(std::size_t max_size, EntryCheck check) {
  for (std::size_t n = 1; n <= max_size; ++n) {
    const std::vector<std::string> tree = leaves(n);
    const std::string root = tree_hash(tree);
    for (std::size_t m = 0; m < n; ++m) {
      SCOPED_TRACE("entry " + std::to_string(m) + " of " + std::to_string(n));
      check(tree, root, m);
    }
  }
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char sum[32];
  std::size_t length = 0;
  EXPECT_EQ(EVP_Q_digest(nullptr, "SHA256", nullptr, bytes.data(), bytes.size(), sum, &length), 1);
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < length; ++i) {
    out += digits[sum[i] >> 4];
    out += digits[sum[i] & 0xf];
  }
  return out;
}

// --- checkpoints made here ---------------------------------------------------------

std::string note_text(const std::string& origin, std::uint64_t size, std::string_view root,
                      const std::vector<std::string>& extensions = {}) {
  std::string text = origin + "\n" + std::to_string(size) + "\n" + base64_encode(root) + "\n";
  for (const std::string& line : extensions) text += line + "\n";
  return text;
}

std::string signature_line(const std::string& name, std::uint32_t hint, const std::string& signature) {
  const std::string hint_bytes{static_cast<char>(hint >> 24), static_cast<char>(hint >> 16),
                               static_cast<char>(hint >> 8), static_cast<char>(hint)};
  return em_dash + " " + name + " " + base64_encode(hint_bytes + signature) + "\n";
}

std::string signed_by(const TestLog& log, const std::string& text) {
  return signature_line(log.log.name(), log.log.key_hint(), log.key.sign(text));
}

// The tree of seven entries the checkpoint tests sign.
const std::vector<std::string> seven = leaves(7);
const std::string seven_root = tree_hash(seven);

// ===================================================================================

TEST(MerkleInclusionTest, HashesAreRfc6962s) {
  // SHA-256 of the single byte 0x00: the leaf hash of an empty entry.
  EXPECT_EQ(hex(leaf_hash("")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  EXPECT_EQ(hex(leaf_hash("entry")), sha256_hex(std::string(1, '\0') + "entry"));
  const std::string left(32, 'l'), right(32, 'r');
  EXPECT_EQ(hex(node_hash(left, right)), sha256_hex("\x01" + left + right));
}

TEST(MerkleInclusionTest, EveryEntryOfEveryTreeUpToSixteenVerifies) {
  for_every_entry(16, [](const std::vector<std::string>& tree, const std::string& root, std::size_t m) {
    expect_passed(verify_inclusion(m, tree.size(), tree[m], audit_path(m, tree), root));
  });
}

TEST(MerkleInclusionTest, AnAlteredProofLeafOrRootFails) {
  for_every_entry(8, [](const std::vector<std::string>& tree, const std::string& root, std::size_t m) {
    const std::size_t n = tree.size();
    const std::vector<std::string> path = audit_path(m, tree);
    for (std::size_t i = 0; i < path.size(); ++i) {
      for (std::size_t byte : {std::size_t{0}, std::size_t{31}}) {
        std::vector<std::string> flipped = path;
        flipped[i][byte] ^= 0x01;
        expect_failure(verify_inclusion(m, n, tree[m], flipped, root), "leads to root");
      }
    }
    std::string leaf = tree[m];
    leaf[5] ^= 0x80;
    expect_failure(verify_inclusion(m, n, leaf, path, root), "leads to root");
    std::string other_root = root;
    other_root[31] ^= 0x01;
    expect_failure(verify_inclusion(m, n, tree[m], path, other_root), "leads to root");
  });
}

TEST(MerkleInclusionTest, AProofForAnotherIndexFails) {
  for_every_entry(8, [](const std::vector<std::string>& tree, const std::string& root, std::size_t m) {
    for (std::size_t other = 0; other < tree.size(); ++other) {
      if (other == m) continue;
      SCOPED_TRACE("as entry " + std::to_string(other));
      EXPECT_FALSE(verify_inclusion(other, tree.size(), tree[m], audit_path(m, tree), root));
      EXPECT_FALSE(verify_inclusion(other, tree.size(), tree[other], audit_path(m, tree), root));
    }
  });
}

TEST(MerkleInclusionTest, AProofForAnotherTreeSizeFailsAgainstThatTreesRoot) {
  for (std::size_t n = 1; n <= 8; ++n) {
    const std::vector<std::string> tree = leaves(n);
    for (std::size_t other = 1; other <= 9; ++other) {
      if (other == n) continue;
      const std::vector<std::string> other_tree = leaves(other);
      for (std::size_t m = 0; m < std::min(n, other); ++m) {
        SCOPED_TRACE("entry " + std::to_string(m) + " of " + std::to_string(n) + " as of " + std::to_string(other));
        EXPECT_FALSE(verify_inclusion(m, other, tree[m], audit_path(m, tree), tree_hash(other_tree)));
      }
    }
  }
}

TEST(MerkleInclusionTest, TheTreeSizeIsBoundByTheSignedRootNotByTheProof) {
  // Entry 0's path in a tree of 4 has the shape of one in a tree of 3, and leads to the
  // same root: only a checkpoint, which signs root and size together, pins the size
  // (proof_matches_checkpoint).
  const std::vector<std::string> tree = leaves(4);
  expect_passed(verify_inclusion(0, 4, tree[0], audit_path(0, tree), tree_hash(tree)));
  expect_passed(verify_inclusion(0, 3, tree[0], audit_path(0, tree), tree_hash(tree)));
}

TEST(MerkleInclusionTest, AProofOfTheWrongLengthFailsSayingTheLength) {
  for_every_entry(8, [](const std::vector<std::string>& tree, const std::string& root, std::size_t m) {
    std::vector<std::string> path = audit_path(m, tree);
    const std::string needs = "needs " + std::to_string(path.size());
    std::vector<std::string> longer = path;
    longer.push_back(root);
    expect_failure(verify_inclusion(m, tree.size(), tree[m], longer, root), needs);
    if (!path.empty()) {
      path.pop_back();
      expect_failure(verify_inclusion(m, tree.size(), tree[m], path, root), needs);
    }
  });
}

TEST(MerkleInclusionTest, AnIndexOutsideTheTreeFails) {
  const std::vector<std::string> tree = leaves(5);
  expect_failure(verify_inclusion(5, 5, tree[4], audit_path(4, tree), tree_hash(tree)),
                 "entry index 5 is not below the tree size 5");
  expect_failure(verify_inclusion(0, 0, tree[0], {}, tree[0]), "not below the tree size 0");
  expect_failure(verify_inclusion(UINT64_MAX, 5, tree[0], {}, tree[0]), "not below");
}

TEST(MerkleInclusionTest, HashesThatAreNot32BytesFail) {
  const std::vector<std::string> tree = leaves(3);
  const std::string root = tree_hash(tree);
  const std::vector<std::string> path = audit_path(1, tree);
  expect_failure(verify_inclusion(1, 3, tree[1].substr(1), path, root), "leaf hash is 31 bytes, not 32");
  expect_failure(verify_inclusion(1, 3, tree[1], path, root + "x"), "root hash is 33 bytes, not 32");
  std::vector<std::string> short_hash = path;
  short_hash[1].pop_back();
  expect_failure(verify_inclusion(1, 3, tree[1], short_hash, root), "inclusion proof hash 1 is 31 bytes");
}

TEST(MerkleInclusionTest, HugeTreesNeedNoMoreThan64Hashes) {
  // Sizes from a bundle are untrusted: the largest ones must give a reason, not overflow.
  const std::string hash(32, 'h');
  expect_failure(verify_inclusion(0, UINT64_MAX, hash, {}, hash), "needs 64");
  expect_failure(verify_inclusion(UINT64_MAX - 1, UINT64_MAX, hash, {}, hash), "needs 63");
  const std::vector<std::string> path(64, hash);
  expect_failure(verify_inclusion(0, UINT64_MAX, hash, path, hash), "leads to root");
}

TEST(MerkleInclusionTest, RealProofsVerify) {
  // A Rekor v1 entry (shard-local index), a Rekor v2 entry, and the local Rekor v2 of
  // the conformance suite.
  for (const char* name : {"happy-path-v0.2", "rekor2-happy-path", "bundle-with-sct-with-extensions"}) {
    SCOPED_TRACE(name);
    const BundleEntry e = bundle_entry(name);
    expect_passed(verify_inclusion(e.proof_index, e.tree_size, leaf_hash(e.entry.body), e.hashes, e.root));
  }
}

TEST(MerkleInclusionTest, RealProofsFailWhenAnythingIsOff) {
  const BundleEntry e = bundle_entry("happy-path-v0.2");
  const std::string leaf = leaf_hash(e.entry.body);
  // Which hash is altered does not matter: each one is on the way to the root.
  for (std::size_t i = 0; i < e.hashes.size(); ++i) {
    std::vector<std::string> flipped = e.hashes;
    flipped[i][7] ^= 0x04;
    expect_failure(verify_inclusion(e.proof_index, e.tree_size, leaf, flipped, e.root), "leads to root");
  }
  EXPECT_FALSE(verify_inclusion(e.proof_index - 1, e.tree_size, leaf, e.hashes, e.root));
  EXPECT_FALSE(verify_inclusion(e.entry.log_index, e.tree_size, leaf, e.hashes, e.root));  // the global index
  EXPECT_FALSE(verify_inclusion(e.proof_index, e.tree_size + 1, leaf, e.hashes, e.root));
  EXPECT_FALSE(verify_inclusion(e.proof_index, e.tree_size - 1, leaf, e.hashes, e.root));
  EXPECT_FALSE(verify_inclusion(e.proof_index, e.tree_size, leaf_hash(e.entry.body + " "), e.hashes, e.root));
}

TEST(MerkleInclusionTest, ConformanceProofFailuresFail) {
  // A bit flipped in one proof hash; a stale proof for another tree.
  for (const char* name : {"inclusion-proof-corrupted-hash_fail", "invalid-inclusion-proof_fail"}) {
    SCOPED_TRACE(name);
    const BundleEntry e = bundle_entry(name);
    expect_failure(verify_inclusion(e.proof_index, e.tree_size, leaf_hash(e.entry.body), e.hashes, e.root),
                   "leads to root");
  }
}

// --- log keys ---------------------------------------------------------------------

TEST(TransparencyLogKeyTest, LogIdsAreTheTrustedRootsOwn) {
  // ECDSA (SHA-256 of the SPKI) and Ed25519 (C2SP key id over the name) alike.
  std::size_t ecdsa = 0, ed25519 = 0;
  for (const char* root : {"production_trusted_root.json", "rekor2-happy-path/trusted_root.json",
                           "bundle-with-sct-with-extensions/trusted_root.json"}) {
    for (const auto& [log, id] : tlogs_of(root)) {
      SCOPED_TRACE(std::string(root) + " " + log.name());
      EXPECT_EQ(hex(log.log_id()), hex(id));
      (log.key().algorithm() == "ed25519" ? ed25519 : ecdsa)++;
    }
  }
  EXPECT_EQ(ecdsa, 2u);
  EXPECT_EQ(ed25519, 3u);
}

TEST(TransparencyLogKeyTest, TheKeyHintIsTheLogIdsFirstFourBytes) {
  EXPECT_EQ(rekor_v1().key_hint(), 0xc0d23d6au);
  EXPECT_EQ(rekor_v2().key_hint(), 0xf30d5a99u);
  EXPECT_EQ(rekor_v1().name(), "rekor.sigstore.dev");
  EXPECT_EQ(rekor_v1().key().algorithm(), "ecdsa-p256");
  EXPECT_EQ(rekor_v2().key().algorithm(), "ed25519");
}

TEST(TransparencyLogKeyTest, TheEd25519KeyIdDependsOnTheName) {
  const std::string der = unbase64("MCowBQYDK2VwAyEAPn+AREHoBaZ7wgS1zBqpxmLSGnyhxXj4lFxSdWVB8o8=");
  auto renamed = LogKey::from_der("log.example", der);
  ASSERT_TRUE(std::holds_alternative<LogKey>(renamed));
  EXPECT_NE(std::get<LogKey>(renamed).log_id(), rekor_v2().log_id());
}

TEST(TransparencyLogKeyTest, OtherKeysAndNamesAreRefusedOnOneLine) {
  Pkey p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  const std::string good = spki_der(Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")).get());
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"log.test", spki_der(p384.get())},  // a kind PublicKey takes, but no log signs with
      {"log.test", "not DER"},
      {"log.test", ""},
      {"log.test", good + "x"},
      {"log.test", good.substr(0, good.size() - 1)},
      {"", good},
      {"log test", good},
      {"log+test", good},
      {"log\ntest", good},
  };
  const std::vector<std::string> words = {"ecdsa-p384", "not a DER", "not a DER", "bytes after",
                                          "not a DER", "cannot name", "cannot name", "cannot name", "cannot name"};
  for (std::size_t i = 0; i < refused.size(); ++i) {
    auto log = LogKey::from_der(refused[i].first, refused[i].second);
    ASSERT_TRUE(std::holds_alternative<std::string>(log)) << i;
    const std::string& error = std::get<std::string>(log);
    EXPECT_NE(error.find(words[i]), std::string::npos) << i << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

// --- checkpoints: parsing -----------------------------------------------------------

TEST(CheckpointParseTest, ReadsARekorV1Checkpoint) {
  const Checkpoint checkpoint = parsed(bundle_entry("happy-path-v0.2").checkpoint);
  EXPECT_EQ(checkpoint.origin, "rekor.sigstore.dev - 2605736670972794746");
  EXPECT_EQ(checkpoint.size, 23083062u);
  EXPECT_EQ(base64_encode(checkpoint.root_hash), "dauhleYK4YyAdxwwDtR0l0KnSOWZdG2bwqHftlanvcI=");
  EXPECT_EQ(checkpoint.extensions, std::vector<std::string>{"Timestamp: 1689177396617352539"});
  EXPECT_EQ(checkpoint.signed_text,
            "rekor.sigstore.dev - 2605736670972794746\n23083062\ndauhleYK4YyAdxwwDtR0l0KnSOWZdG2bwqHftlanvcI=\n"
            "Timestamp: 1689177396617352539\n");
  ASSERT_EQ(checkpoint.signatures.size(), 1u);
  EXPECT_EQ(checkpoint.signatures[0].name, "rekor.sigstore.dev");
  EXPECT_EQ(checkpoint.signatures[0].key_hint, 0xc0d23d6au);
  EXPECT_EQ(checkpoint.signatures[0].signature.substr(0, 1), "\x30");  // DER ECDSA
}

TEST(CheckpointParseTest, ReadsEveryLineOfACosignedCheckpoint) {
  const Checkpoint checkpoint = parsed(bundle_entry("rekor2-checkpoint-multiple-cosigs").checkpoint);
  EXPECT_EQ(checkpoint.origin, "log2025-alpha1.rekor.sigstage.dev");
  EXPECT_EQ(checkpoint.size, 736u);
  EXPECT_TRUE(checkpoint.extensions.empty());
  ASSERT_EQ(checkpoint.signatures.size(), 3u);
  EXPECT_EQ(checkpoint.signatures[1].name, "witness.example/w1");
  EXPECT_EQ(checkpoint.signatures[0].signature.size(), 64u);  // Ed25519
  EXPECT_EQ(checkpoint.signatures[1].signature.size(), 72u);  // C2SP cosignature: timestamp and Ed25519
}

TEST(CheckpointParseTest, ConformanceCheckpointsMissingALineAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"rekor2-checkpoint-missing-origin_fail", "has 2 lines above its signatures"},
      {"rekor2-checkpoint-missing-size_fail", "has 2 lines above its signatures"},
      {"rekor2-checkpoint-missing-root-hash_fail", "has 2 lines above its signatures"},
      {"rekor2-checkpoint-missing-log-signature_fail", "no signature lines"},
  };
  for (const auto& [name, words] : cases) {
    const std::string error = parse_error(bundle_entry(name).checkpoint);
    EXPECT_NE(error.find(words), std::string::npos) << name << ": " << error;
  }
}

TEST(CheckpointParseTest, EachMissingOrMalformedPartIsRefusedOnOneLine) {
  const std::string root = base64_encode(seven_root);
  const std::string signature = signature_line("log.test", 0x01020304, std::string(64, 's'));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"log.test\n7\n" + root + "\n" + signature, "no blank line"},
      {"7\n" + root + "\n\n" + signature, "has 2 lines"},                        // no origin
      {"log.test\n" + root + "\n\n" + signature, "has 2 lines"},                 // no size
      {"log.test\n7\n\n" + signature, "has 2 lines"},                            // no root hash
      {"log.test\n7\n" + root + "\n\n", "no signature lines"},                   // no signature
      {"\n7\n" + root + "\n\n" + signature, "empty origin"},
      {"log.test\nseven\n" + root + "\nx\n\n" + signature, "tree size \"seven\" is not a decimal"},
      {"log.test\n-7\n" + root + "\n\n" + signature, "is not a decimal"},
      {"log.test\n+7\n" + root + "\n\n" + signature, "is not a decimal"},
      {"log.test\n7 \n" + root + "\n\n" + signature, "is not a decimal"},
      {"log.test\n18446744073709551616\n" + root + "\n\n" + signature, "is not a decimal"},
      {"log.test\n7\n" + root + "!\n\n" + signature, "is not base64"},
      {"log.test\n7\n" + base64_encode(seven_root.substr(1)) + "\n\n" + signature, "root hash is 31 bytes"},
      {"log.test\n7\n" + root + "\n\next\n\n" + signature, "empty line among its extension lines"},
      {"log.test\n7\n" + root + "\n\n" + signature.substr(0, signature.size() - 1), "does not end in a line break"},
      {"log.test\n7\n" + root + "\n\n- log.test AQIDBHNz\n", "line 1 does not start with an em dash"},
      {"log.test\n7\n" + root + "\n\n" + signature + em_dash + " log.test\n", "line 2 is not"},
      {"log.test\n7\n" + root + "\n\n" + em_dash + "  AQIDBHNz\n", "line 1 is not"},
      {"log.test\n7\n" + root + "\n\n" + em_dash + " log.test AQID!!!!\n", "not base64"},
      {"log.test\n7\n" + root + "\n\n" + em_dash + " log.test AQIDBA==\n", "too short"},
      {"", "no blank line"},
  };
  for (const auto& [note, words] : cases) {
    const std::string error = parse_error(note);
    EXPECT_NE(error.find(words), std::string::npos) << error << " for " << note;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

TEST(CheckpointParseTest, TheTextEndsAtTheLastBlankLine) {
  const std::string root = base64_encode(seven_root);
  const std::string text = "log.test\n7\n" + root + "\nTimestamp: 1\n";
  const std::string signature = signature_line("log.test", 0x01020304, std::string(64, 's'));
  const Checkpoint checkpoint = parsed(text + "\n" + signature + signature);
  EXPECT_EQ(checkpoint.signed_text, text);
  EXPECT_EQ(checkpoint.signatures.size(), 2u);
  // A blank line of the text makes the text's lines the extension lines' problem, not
  // the signatures': the last blank line is the one that counts.
  EXPECT_NE(parse_error(text + "\n\n" + signature).find("empty line among its extension lines"), std::string::npos);
}

TEST(CheckpointParseTest, AtMostOneHundredSignatureLines) {
  const std::string text = note_text("log.test", 7, seven_root);
  std::string block;
  for (int i = 0; i < 100; ++i) block += signature_line("witness.test", static_cast<std::uint32_t>(i), "s");
  EXPECT_EQ(parsed(text + "\n" + block).signatures.size(), 100u);
  block += signature_line("witness.test", 100, "s");
  EXPECT_NE(parse_error(text + "\n" + block).find("101 signature lines, more than 100"), std::string::npos);
}

// --- checkpoints: verifying ---------------------------------------------------------

TEST(CheckpointVerifyTest, RealCheckpointsVerify) {
  // Rekor v1 (ECDSA, origin with the tree id), Rekor v2 (Ed25519, origin = name),
  // and the local Rekor v2.
  const std::vector<std::pair<std::string, const LogKey*>> cases = {
      {"happy-path-v0.2", &rekor_v1()},
      {"rekor2-happy-path", &rekor_v2()},
      {"bundle-with-sct-with-extensions", &rekor_local()},
  };
  for (const auto& [name, log] : cases) {
    SCOPED_TRACE(name);
    const BundleEntry e = bundle_entry(name);
    const Checkpoint checkpoint = parsed(e.checkpoint);
    expect_passed(verify_checkpoint(checkpoint, *log, origin_rule_for(checkpoint.origin)));
    expect_passed(proof_matches_checkpoint(e.tree_size, e.root, checkpoint));
  }
  EXPECT_EQ(origin_rule_for(parsed(bundle_entry("happy-path-v0.2").checkpoint).origin), OriginRule::any);
  EXPECT_EQ(origin_rule_for(parsed(bundle_entry("rekor2-happy-path").checkpoint).origin), OriginRule::key_name);
}

TEST(CheckpointVerifyTest, WitnessAndOtherKeyLinesAreIgnored) {
  // Cosigned by a witness, by several, the log's line second, a second key of the same
  // origin (another hint), and both.
  for (const char* name : {"rekor2-checkpoint-cosigned", "rekor2-checkpoint-multiple-cosigs",
                           "rekor2-checkpoint-origin-not-first", "rekor2-checkpoint-two-sigs-from-origin",
                           "rekor2-checkpoint-two-sigs-cosigned"}) {
    SCOPED_TRACE(name);
    const BundleEntry e = bundle_entry(name);
    const Checkpoint checkpoint = parsed(e.checkpoint);
    EXPECT_GE(checkpoint.signatures.size(), 2u);
    expect_passed(verify_checkpoint(checkpoint, rekor_v2(), OriginRule::key_name));
  }
}

TEST(CheckpointVerifyTest, ConformanceCheckpointFailuresFail) {
  // The log's line with an altered signature.
  expect_failure(verify_checkpoint(parsed(bundle_entry("invalid-checkpoint-signature_fail").checkpoint), rekor_v1(),
                                   OriginRule::any),
                 "checkpoint signature of log rekor.sigstore.dev (key c0d23d6a) does not verify");
  // The log's name with another key hint: no line of this log.
  expect_failure(verify_checkpoint(parsed(bundle_entry("checkpoint-bad-keyhint_fail").checkpoint), rekor_v1(),
                                   OriginRule::any),
                 "checkpoint has no signature of log rekor.sigstore.dev (key c0d23d6a), only of "
                 "\"rekor.sigstore.dev\" (c4d23d6a)");
  // Another log's name (origin and signature line), the right key hint.
  const Checkpoint renamed = parsed(bundle_entry("rekor2-checkpoint-no-matching-signature_fail").checkpoint);
  EXPECT_EQ(origin_rule_for(renamed.origin), OriginRule::key_name);
  expect_failure(verify_checkpoint(renamed, rekor_v2(), OriginRule::key_name),
                 "origin \"log2025-alpha1.rekor.github.dev\" is not the log's name");
  expect_failure(verify_checkpoint(renamed, rekor_v2(), OriginRule::any), "no signature of log");
}

TEST(CheckpointVerifyTest, ACheckpointOfAnotherTreeDoesNotProveTheProof) {
  // checkpoint-wrong-roothash_fail: the log signed this checkpoint, of a later tree.
  const BundleEntry e = bundle_entry("checkpoint-wrong-roothash_fail");
  const Checkpoint checkpoint = parsed(e.checkpoint);
  expect_passed(verify_checkpoint(checkpoint, rekor_v1(), OriginRule::any));
  expect_passed(verify_inclusion(e.proof_index, e.tree_size, leaf_hash(e.entry.body), e.hashes, e.root));
  expect_failure(proof_matches_checkpoint(e.tree_size, e.root, checkpoint), "is not the checkpoint's");
}

TEST(CheckpointVerifyTest, ASignedTreeProvesEachOfItsEntries) {
  // The whole way for a tree made here: a proof for every entry, against a checkpoint
  // each kind of log key signed.
  for (const TestLog* log : both_kinds()) {
    SCOPED_TRACE(log->log.key().algorithm());
    const std::string text = note_text("log.test", seven.size(), seven_root, {"Timestamp: 1700000000"});
    const Checkpoint checkpoint = parsed(text + "\n" + signed_by(*log, text));
    expect_passed(verify_checkpoint(checkpoint, log->log, OriginRule::key_name));
    expect_passed(proof_matches_checkpoint(seven.size(), seven_root, checkpoint));
    for (std::size_t m = 0; m < seven.size(); ++m) {
      expect_passed(verify_inclusion(m, checkpoint.size, seven[m], audit_path(m, seven), checkpoint.root_hash));
    }
  }
}

TEST(CheckpointVerifyTest, AProofOfAnotherRootOrSizeDoesNotMatch) {
  const std::vector<std::string> six(seven.begin(), seven.end() - 1);
  const std::string text = note_text("log.test", seven.size(), seven_root);
  const Checkpoint checkpoint = parsed(text + "\n" + signed_by(logs().ecdsa, text));
  expect_failure(proof_matches_checkpoint(6, tree_hash(six), checkpoint), "is not the checkpoint's");
  expect_failure(proof_matches_checkpoint(6, seven_root, checkpoint),
                 "inclusion proof is for a tree of 6 entries, the checkpoint of 7");
}

TEST(CheckpointVerifyTest, ACheckpointOfAWrongRootIsSignedButProvesNothing) {
  // The log signed a root that is not the tree's: the signature holds, the entries'
  // proofs do not reach it.
  std::string wrong_root = seven_root;
  wrong_root[0] ^= 0x01;
  for (const TestLog* log : both_kinds()) {
    const std::string text = note_text("log.test", seven.size(), wrong_root);
    const Checkpoint checkpoint = parsed(text + "\n" + signed_by(*log, text));
    expect_passed(verify_checkpoint(checkpoint, log->log, OriginRule::key_name));
    expect_failure(verify_inclusion(3, checkpoint.size, seven[3], audit_path(3, seven), checkpoint.root_hash),
                   "leads to root");
  }
}

TEST(CheckpointVerifyTest, AnAlteredCheckpointFails) {
  for (const TestLog* log : both_kinds()) {
    SCOPED_TRACE(log->log.key().algorithm());
    const std::string text = note_text("log.test", seven.size(), seven_root);
    const std::string altered = note_text("log.test", seven.size() + 1, seven_root);
    expect_failure(verify_checkpoint(parsed(altered + "\n" + signed_by(*log, text)), log->log, OriginRule::key_name),
                   "does not verify");
  }
}

TEST(CheckpointVerifyTest, OneBadLineOfTheLogFailsEvenNextToAGoodOne) {
  for (const TestLog* log : both_kinds()) {
    SCOPED_TRACE(log->log.key().algorithm());
    const std::string text = note_text("log.test", seven.size(), seven_root);
    const std::string bad = signature_line("log.test", log->log.key_hint(), log->key.sign("another text\n"));
    expect_failure(verify_checkpoint(parsed(text + "\n" + signed_by(*log, text) + bad), log->log, OriginRule::any),
                   "does not verify");
    expect_failure(verify_checkpoint(parsed(text + "\n" + bad + signed_by(*log, text)), log->log, OriginRule::any),
                   "does not verify");
  }
}

TEST(CheckpointVerifyTest, OnlyLinesOfOtherKeysFail) {
  for (const TestLog* log : both_kinds()) {
    SCOPED_TRACE(log->log.key().algorithm());
    const std::string text = note_text("log.test", seven.size(), seven_root);
    const std::string signature = log->key.sign(text);
    // The log's own signature under another hint; under another name; a witness only.
    const std::string other_hint = signature_line("log.test", log->log.key_hint() ^ 1, signature);
    const std::string other_name = signature_line("log.example", log->log.key_hint(), signature);
    for (const std::string& lines : {other_hint, other_name, signed_by(logs().witness, text)}) {
      expect_failure(verify_checkpoint(parsed(text + "\n" + lines), log->log, OriginRule::key_name),
                     "checkpoint has no signature of log log.test (key ");
    }
  }
}

TEST(CheckpointVerifyTest, CosignaturesAndASecondKeyOfTheSameNameAreIgnored) {
  const std::string text = note_text("log.test", seven.size(), seven_root);
  // Both test logs are named log.test: each one's line is another key of the same
  // origin to the other.
  const std::string lines = signed_by(logs().witness, text) + signed_by(logs().ecdsa, text) +
                            signed_by(logs().ed25519, text) +
                            signature_line("witness.test", 0xdeadbeef, std::string(72, 'w'));
  const Checkpoint checkpoint = parsed(text + "\n" + lines);
  for (const TestLog* log : both_kinds()) expect_passed(verify_checkpoint(checkpoint, log->log, OriginRule::key_name));
  expect_passed(verify_checkpoint(checkpoint, logs().witness.log, OriginRule::any));
}

TEST(CheckpointVerifyTest, TheOriginMustBeTheLogsNameUnderRekorV2Rules) {
  const std::string text = note_text("log.example", seven.size(), seven_root);
  const Checkpoint checkpoint = parsed(text + "\n" + signed_by(logs().ed25519, text));
  expect_failure(verify_checkpoint(checkpoint, logs().ed25519.log, OriginRule::key_name),
                 "checkpoint origin \"log.example\" is not the log's name log.test");
  expect_passed(verify_checkpoint(checkpoint, logs().ed25519.log, OriginRule::any));
}

TEST(CheckpointVerifyTest, RekorV1OriginsEndInATreeId) {
  EXPECT_EQ(origin_rule_for("rekor.sigstore.dev - 2605736670972794746"), OriginRule::any);
  EXPECT_EQ(origin_rule_for(" - 1"), OriginRule::any);
  EXPECT_EQ(origin_rule_for("a - b - 12"), OriginRule::any);
  EXPECT_EQ(origin_rule_for("a - 1234567890123456789012345"), OriginRule::any);  // any length
  EXPECT_EQ(origin_rule_for("log2025-1.rekor.sigstore.dev"), OriginRule::key_name);
  EXPECT_EQ(origin_rule_for("rekor.sigstore.dev - "), OriginRule::key_name);
  EXPECT_EQ(origin_rule_for("rekor.sigstore.dev - 12a"), OriginRule::key_name);
  EXPECT_EQ(origin_rule_for("rekor.sigstore.dev - 12 - x"), OriginRule::key_name);
  EXPECT_EQ(origin_rule_for("rekor.sigstore.dev -12"), OriginRule::key_name);
}

// --- signed entry timestamps --------------------------------------------------------

LogEntry test_entry(const TestLog& log) {
  LogEntry entry;
  entry.body = R"({"apiVersion":"0.0.1","kind":"hashedrekord"})";
  entry.integrated_time = 1700000000;
  entry.log_id = log.log.log_id();
  entry.log_index = 42;
  return entry;
}

TEST(SignedEntryTimestampTest, ThePayloadIsRekorsCanonicalJson) {
  LogEntry entry;
  entry.body = "hello";
  entry.integrated_time = 1689177396;
  for (int i = 0; i < 32; ++i) entry.log_id += static_cast<char>(i);
  entry.log_index = 27246492;
  EXPECT_EQ(signed_entry_timestamp_payload(entry),
            R"({"body":"aGVsbG8=","integratedTime":1689177396,)"
            R"("logID":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f","logIndex":27246492})");
}

TEST(SignedEntryTimestampTest, ARealSetVerifies) {
  const BundleEntry e = bundle_entry("happy-path-v0.2");
  EXPECT_EQ(e.entry.log_id, rekor_v1().log_id());
  expect_passed(verify_signed_entry_timestamp(e.entry, e.set, rekor_v1()));
}

TEST(SignedEntryTimestampTest, ARealSetOverAnythingElseFails) {
  const BundleEntry e = bundle_entry("happy-path-v0.2");
  LogEntry other = e.entry;
  other.body += " ";
  expect_failure(verify_signed_entry_timestamp(other, e.set, rekor_v1()), "does not verify");
  other = e.entry;
  other.integrated_time += 1;
  expect_failure(verify_signed_entry_timestamp(other, e.set, rekor_v1()), "does not verify");
  other = e.entry;
  other.log_index += 1;
  expect_failure(verify_signed_entry_timestamp(other, e.set, rekor_v1()), "does not verify");
  other = e.entry;
  other.log_index = e.proof_index;  // the shard-local index is not what Rekor signs
  expect_failure(verify_signed_entry_timestamp(other, e.set, rekor_v1()), "does not verify");
}

TEST(SignedEntryTimestampTest, TheConformanceSetWithABadSignatureFails) {
  const BundleEntry e = bundle_entry("set-invalid-signature_fail");
  expect_failure(verify_signed_entry_timestamp(e.entry, e.set, rekor_v1()),
                 "signed entry timestamp does not verify with the key of log rekor.sigstore.dev");
}

TEST(SignedEntryTimestampTest, ASetMadeHereVerifiesAndItsAlterationsFail) {
  const TestLog& log = logs().ecdsa;
  const LogEntry entry = test_entry(log);
  const std::string set = log.key.sign(signed_entry_timestamp_payload(entry));
  expect_passed(verify_signed_entry_timestamp(entry, set, log.log));
  LogEntry other = entry;
  other.integrated_time = 1700000001;
  expect_failure(verify_signed_entry_timestamp(other, set, log.log), "does not verify");
  other = entry;
  other.body[0] = '[';
  expect_failure(verify_signed_entry_timestamp(other, set, log.log), "does not verify");
  other = entry;
  other.log_index = 43;
  expect_failure(verify_signed_entry_timestamp(other, set, log.log), "does not verify");
  expect_failure(verify_signed_entry_timestamp(entry, set, rekor_v1()), "entry names log");
}

TEST(SignedEntryTimestampTest, AnEntryOfAnotherLogFails) {
  const TestLog& log = logs().ecdsa;
  LogEntry entry = test_entry(log);
  entry.log_id = rekor_v1().log_id();
  const std::string set = log.key.sign(signed_entry_timestamp_payload(entry));
  expect_failure(verify_signed_entry_timestamp(entry, set, log.log), "entry names log c0d23d6a");
}

TEST(SignedEntryTimestampTest, Ed25519LogsHaveNoSets) {
  const TestLog& log = logs().ed25519;
  const LogEntry entry = test_entry(log);
  const std::string set = log.key.sign(signed_entry_timestamp_payload(entry));
  expect_failure(verify_signed_entry_timestamp(entry, set, log.log), "signed entry timestamps are ECDSA");
}

// --- all of it, on the conformance happy paths --------------------------------------

TEST(TransparencyConformanceTest, HappyPathV02ProvesItsEntryThreeWays) {
  // Rekor v1: the SET, the inclusion proof (shard-local index) and the checkpoint.
  const BundleEntry e = bundle_entry("happy-path-v0.2");
  expect_passed(verify_signed_entry_timestamp(e.entry, e.set, rekor_v1()));
  expect_passed(verify_inclusion(e.proof_index, e.tree_size, leaf_hash(e.entry.body), e.hashes, e.root));
  const Checkpoint checkpoint = parsed(e.checkpoint);
  expect_passed(verify_checkpoint(checkpoint, rekor_v1(), origin_rule_for(checkpoint.origin)));
  expect_passed(proof_matches_checkpoint(e.tree_size, e.root, checkpoint));
  // Rekor v1's key does not sign Rekor v2's checkpoints, nor the reverse.
  expect_failure(verify_checkpoint(checkpoint, rekor_v2(), OriginRule::any), "no signature of log");
}

TEST(TransparencyConformanceTest, RekorV2HappyPathProvesItsEntry) {
  // Rekor v2: no SET; the proof against the checkpoint's size and root, Ed25519.
  const BundleEntry e = bundle_entry("rekor2-happy-path");
  EXPECT_TRUE(e.set.empty());
  EXPECT_EQ(e.entry.log_id, rekor_v2().log_id());
  const Checkpoint checkpoint = parsed(e.checkpoint);
  expect_passed(verify_checkpoint(checkpoint, rekor_v2(), OriginRule::key_name));
  expect_passed(verify_inclusion(e.entry.log_index, checkpoint.size, leaf_hash(e.entry.body), e.hashes,
                                 checkpoint.root_hash));
  expect_passed(proof_matches_checkpoint(e.tree_size, e.root, checkpoint));
  expect_failure(verify_checkpoint(checkpoint, rekor_local(), OriginRule::any), "no signature of log rekor-local");
}

}  // namespace
}  // namespace pullgate::policy::transparency
