#include "registry/names.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pullgate::registry {
namespace {

const std::string digest_text = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(Repository, AcceptsSpecGrammar) {
  const std::pair<std::string, std::size_t> cases[] = {
      {"a", 1},
      {"library/nginx", 2},
      {"a/b/c/d", 4},
      {"foo.bar", 1},
      {"foo_bar", 1},
      {"foo__bar", 1},
      {"foo-bar", 1},
      {"foo---bar", 1},
      {"a0/b-1.c_2__d", 2},
      {"123", 1},
      {"manifests/blobs", 2},
      {std::string(255, 'a'), 1},
  };
  for (const auto& [text, components] : cases) {
    const auto repository = Repository::parse(text);
    ASSERT_TRUE(repository) << text;
    EXPECT_EQ(repository->str(), text);
    EXPECT_EQ(repository->components(), components) << text;
  }
}

TEST(Repository, RefusesEverythingElse) {
  std::string overlong;
  for (int i = 0; i < 64; ++i) overlong += "abc/";
  overlong += "abc";  // 259 characters, every component valid
  const std::string cases[] = {
      "",
      "Library/nginx",     // upper case
      "library//nginx",    // empty component
      "/library",
      "library/",
      ".",
      "..",
      "a/../b",
      "a/./b",
      "-a",
      "a-",
      "a.",
      ".a",
      "_a",
      "a___b",             // three underscores
      "a_-b",              // mixed separators
      "a..b",
      "a.-b",
      "a b",
      "a:b",
      "a@b",
      "a%2fb",
      std::string("a\0b", 3),
      "a\nb",
      "caf\xc3\xa9",       // unicode
      std::string(256, 'a'),
      overlong,
  };
  for (const auto& text : cases) {
    EXPECT_FALSE(Repository::parse(text)) << "accepted: " << text.substr(0, 60);
  }
}

TEST(Repository, LengthLimitCountsWholeName) {
  std::string name(127, 'a');
  name += "/";
  name += std::string(127, 'b');
  EXPECT_EQ(name.size(), 255u);
  EXPECT_TRUE(Repository::parse(name));
  EXPECT_FALSE(Repository::parse(name + "b"));
}

TEST(Repository, HostileLongSeparatorRunsAreLinear) {
  // Classic regex backtracking bait: long runs of separators with a bad ending.
  std::string text = "a";
  for (int i = 0; i < 120; ++i) text += "-";
  text += "a";
  EXPECT_TRUE(Repository::parse(text));
  EXPECT_FALSE(Repository::parse(text + "-"));
  EXPECT_FALSE(Repository::parse(std::string(100000, 'a')));
}

TEST(Tag, Grammar) {
  const std::string good[] = {"latest", "v1.2.3", "_", "A", "9", "1.0-rc_1", "a..b", "a--", std::string(128, 'x')};
  for (const auto& text : good) {
    const auto tag = Tag::parse(text);
    ASSERT_TRUE(tag) << text;
    EXPECT_EQ(tag->str(), text);
  }
  const std::string bad[] = {"",        ".hidden", "-x",         "a:b",     "a/b",   "a b",
                             "a+b",     "a@b",     "caf\xc3\xa9", "a\tb",    std::string(129, 'x'),
                             std::string("a\0", 2), "%2e%2e"};
  for (const auto& text : bad) {
    EXPECT_FALSE(Tag::parse(text)) << "accepted: " << text.substr(0, 60);
  }
}

TEST(Reference, ColonMeansDigest) {
  const auto by_digest = Reference::parse(digest_text);
  ASSERT_TRUE(by_digest);
  EXPECT_TRUE(by_digest->is_digest());
  ASSERT_NE(by_digest->digest(), nullptr);
  EXPECT_EQ(by_digest->digest()->str(), digest_text);
  EXPECT_EQ(by_digest->tag(), nullptr);
  EXPECT_EQ(by_digest->str(), digest_text);

  const auto by_tag = Reference::parse("latest");
  ASSERT_TRUE(by_tag);
  EXPECT_FALSE(by_tag->is_digest());
  ASSERT_NE(by_tag->tag(), nullptr);
  EXPECT_EQ(by_tag->tag()->str(), "latest");
  EXPECT_EQ(by_tag->digest(), nullptr);
  EXPECT_EQ(by_tag->str(), "latest");
}

TEST(Reference, RefusesBadDigestsAndTags) {
  const std::string bad[] = {"",
                             "sha256:abc",                 // contains ':' but not a digest: no tag fallback
                             "latest:",                    // ':' => digest, invalid
                             "sha256:" + std::string(64, 'A'),
                             ".latest",
                             std::string(129, 'x')};
  for (const auto& text : bad) {
    EXPECT_FALSE(Reference::parse(text)) << "accepted: " << text.substr(0, 60);
  }
}

TEST(Reference, ConstructsFromValues) {
  const Reference from_tag(*Tag::parse("v1"));
  EXPECT_EQ(from_tag.str(), "v1");
  const Reference from_digest(*Digest::parse(digest_text));
  EXPECT_TRUE(from_digest.is_digest());
}

}  // namespace
}  // namespace pullgate::registry
