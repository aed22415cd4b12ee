#include "registry/digest.hpp"

#include <gtest/gtest.h>

#include <string>
#include <unordered_set>

namespace pullgate::registry {
namespace {

const std::string sha256_abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string sha256_empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string sha512_abc =
    "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643"
    "ce80e2a9ac94fa54ca49f";
const std::string sha512_empty =
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a"
    "81a538327af927da3e";

TEST(DigestParse, AcceptsWellFormed) {
  const auto d = Digest::parse(sha256_abc);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->algorithm(), DigestAlgorithm::sha256);
  EXPECT_EQ(d->algorithm_name(), "sha256");
  EXPECT_EQ(d->hex(), sha256_abc.substr(7));
  EXPECT_EQ(d->str(), sha256_abc);

  const auto d512 = Digest::parse(sha512_abc);
  ASSERT_TRUE(d512);
  EXPECT_EQ(d512->algorithm(), DigestAlgorithm::sha512);
  EXPECT_EQ(d512->algorithm_name(), "sha512");
  EXPECT_EQ(d512->hex().size(), 128u);
}

TEST(DigestParse, RefusesMalformed) {
  const std::string hex64 = sha256_abc.substr(7);
  std::string upper = sha256_abc;
  upper[10] = 'A';
  const std::string cases[] = {
      "",
      ":",
      "sha256",
      "sha256:",
      ":" + hex64,
      upper,                                       // upper-case hex
      "SHA256:" + hex64,                           // upper-case algorithm
      "sha256:" + hex64.substr(1),                 // too short
      "sha256:" + hex64 + "0",                     // too long
      sha256_abc + "\n",                           // trailing junk
      sha256_abc + " ",
      " " + sha256_abc,
      "sha256:" + hex64.substr(0, 63) + "g",       // not hex
      "sha384:" + hex64 + hex64.substr(0, 32),     // unknown algorithm
      "md5:d41d8cd98f00b204e9800998ecf8427e",
      "sha512:" + hex64,                           // sha512 with a sha256 length
      "sha256:" + hex64.substr(0, 32) + std::string(1, '\0') + hex64.substr(33),
      "sha256+b64:" + hex64,
      "sha256::" + hex64.substr(1),
      "sha256:" + std::string(1 << 16, 'a'),       // overlong
      "sha256:\xc3\xa9" + hex64.substr(2),         // unicode
  };
  for (const auto& text : cases) {
    EXPECT_FALSE(Digest::parse(text)) << "accepted: " << text.substr(0, 80);
  }
}

TEST(DigestParse, OrderingEqualityAndHash) {
  const auto a = *Digest::parse(sha256_abc);
  const auto b = *Digest::parse(sha256_empty);
  EXPECT_EQ(a, *Digest::parse(sha256_abc));
  EXPECT_NE(a, b);
  EXPECT_TRUE((a <=> b) != 0);
  std::unordered_set<Digest> set{a, b, a};
  EXPECT_EQ(set.size(), 2u);
}

TEST(DigestHasher, KnownVectors) {
  EXPECT_EQ(digest_of(DigestAlgorithm::sha256, "abc").str(), sha256_abc);
  EXPECT_EQ(digest_of(DigestAlgorithm::sha256, "").str(), sha256_empty);
  EXPECT_EQ(digest_of(DigestAlgorithm::sha512, "abc").str(), sha512_abc);
  EXPECT_EQ(digest_of(DigestAlgorithm::sha512, "").str(), sha512_empty);
}

TEST(DigestHasher, IncrementalMatchesOneShot) {
  DigestHasher hasher(DigestAlgorithm::sha256);
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) hasher.update(chunk.data(), chunk.size());
  hasher.update(nullptr, 0);  // empty update is a no-op
  EXPECT_EQ(hasher.finish().str(), "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(DigestHasher, MovedHasherContinues) {
  DigestHasher first(DigestAlgorithm::sha512);
  first.update("a", 1);
  DigestHasher second(std::move(first));
  second.update("bc", 2);
  EXPECT_EQ(second.finish().str(), sha512_abc);

  DigestHasher third(DigestAlgorithm::sha256);
  third = DigestHasher(DigestAlgorithm::sha256);
  third.update("abc", 3);
  EXPECT_EQ(third.finish().str(), sha256_abc);
}

TEST(DigestHasher, SecondFinishThrowsInsteadOfLying) {
  DigestHasher hasher(DigestAlgorithm::sha256);
  hasher.update("abc", 3);
  EXPECT_EQ(hasher.finish().str(), sha256_abc);
  EXPECT_THROW(hasher.finish(), std::logic_error);
  EXPECT_THROW(hasher.update("x", 1), std::logic_error);
}

TEST(DigestHasher, ResultParsesBack) {
  const auto d = digest_of(DigestAlgorithm::sha512, "pullgate");
  const auto parsed = Digest::parse(d.str());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, d);
}

}  // namespace
}  // namespace pullgate::registry
