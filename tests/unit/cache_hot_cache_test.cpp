#include "cache/hot_cache.hpp"

#include <gtest/gtest.h>

namespace pullgate::cache {
namespace {

Digest digest_n(int n) { return registry::digest_of(registry::DigestAlgorithm::sha256, std::to_string(n)); }

TEST(HotCache, RemembersManifestsAndTags) {
  HotCache hot(1 << 20);
  auto d = digest_n(1);
  EXPECT_EQ(hot.manifest(d), nullptr);
  hot.remember_manifest(d, std::make_shared<const ManifestRecord>(ManifestRecord{"m", "{}", 1}));
  ASSERT_NE(hot.manifest(d), nullptr);
  EXPECT_EQ(hot.manifest(d)->bytes, "{}");

  EXPECT_FALSE(hot.tag("up", "repo", "v1"));
  hot.remember_tag("up", "repo", "v1", TagRecord{d, "m", 5});
  ASSERT_TRUE(hot.tag("up", "repo", "v1"));
  EXPECT_EQ(hot.tag("up", "repo", "v1")->fetched_at_ms, 5);
  hot.remember_tag("up", "repo", "v1", TagRecord{digest_n(2), "m", 6});
  EXPECT_EQ(hot.tag("up", "repo", "v1")->digest, digest_n(2));
  // Keys cannot alias across the parts, whatever byte joins them: "up"+"repo"+"v1"
  // is not "up"+"repo<sep>v"+"1" nor "up<sep>repo"+""+"v1", for a NUL or a newline.
  using namespace std::string_view_literals;
  using namespace std::string_literals;
  for (auto sep : {"\0"sv, "\n"sv}) {
    EXPECT_FALSE(hot.tag("up", std::string("repo") + std::string(sep) + "v", "1")) << int(sep[0]);
    EXPECT_FALSE(hot.tag(std::string("up") + std::string(sep) + "repo", "", "v1")) << int(sep[0]);
    EXPECT_FALSE(hot.tag("up", "repo", std::string(sep) + "v1")) << int(sep[0]);
  }
  hot.remember_tag("a\0"s + "b", "c", "d", TagRecord{d, "m", 7});
  EXPECT_FALSE(hot.tag("a", "b\0"s + "c", "d"));
  // The same, for the seen marks: a digest seen in up/repo is not seen in "up"+"repo"
  // split elsewhere.
  hot.remember_seen(d, "up", "repo");
  EXPECT_TRUE(hot.seen(d, "up", "repo"));
  for (auto sep : {"\0"sv, "\n"sv}) {
    EXPECT_FALSE(hot.seen(d, std::string("up") + std::string(sep), "repo")) << int(sep[0]);
    EXPECT_FALSE(hot.seen(d, "u", std::string("p") + std::string(sep) + "repo")) << int(sep[0]);
  }
}

TEST(HotCache, StaysWithinItsBudget) {
  const std::size_t budget = 64 * 1024;
  HotCache hot(budget);
  std::string body(1000, 'x');
  for (int i = 0; i < 1000; ++i) {
    hot.remember_manifest(digest_n(i), std::make_shared<const ManifestRecord>(ManifestRecord{"m", body, 1}));
    hot.remember_tag("up", "repo", "t" + std::to_string(i), TagRecord{digest_n(i), "m", 1});
    ASSERT_LE(hot.bytes(), budget);
  }
  // The newest entry is always there right after it was added.
  EXPECT_NE(hot.manifest(digest_n(999)), nullptr);
  // A record larger than an eighth of the budget is not kept at all.
  hot.remember_manifest(digest_n(5000),
                        std::make_shared<const ManifestRecord>(ManifestRecord{"m", std::string(budget / 4, 'y'), 1}));
  EXPECT_EQ(hot.manifest(digest_n(5000)), nullptr);
}

TEST(HotCache, KeepsWhereManifestsWereSeenWithinAQuarterOfItsBudget) {
  const std::size_t budget = 64 * 1024;
  HotCache hot(budget);
  for (int i = 0; i < 10'000; ++i) {
    hot.remember_seen(digest_n(i), "up", "repo");
    ASSERT_LE(hot.bytes(), budget / 4);
    ASSERT_TRUE(hot.seen(digest_n(i), "up", "repo"));
  }
  // Marks made long ago were let go (each is one LMDB read away); manifests and tags
  // still have their own three quarters and more.
  EXPECT_FALSE(hot.seen(digest_n(0), "up", "repo"));
  EXPECT_GT(hot.bytes(), 0u);
  hot.remember_manifest(digest_n(1), std::make_shared<const ManifestRecord>(ManifestRecord{"m", std::string(1000, 'x'), 1}));
  EXPECT_NE(hot.manifest(digest_n(1)), nullptr);
  // Eviction forgets every mark (they are learnt again from LMDB).
  const Digest gone[] = {digest_n(1)};
  hot.forget_manifests(gone);
  EXPECT_FALSE(hot.seen(digest_n(9'999), "up", "repo"));
  EXPECT_EQ(hot.bytes(), 0u);
}

}  // namespace
}  // namespace pullgate::cache
