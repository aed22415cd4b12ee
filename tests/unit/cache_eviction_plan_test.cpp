// The eviction planner as a table: what is cached, the limits and now, and what
// goes, in which order, why, and which manifests, blobs and answers are deleted.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "cache/eviction_plan.hpp"

namespace pullgate::cache {
namespace {

// A digest per letter (the letter's hash: names read as the letters in the rows).
Digest d(char name) { return registry::digest_of(registry::DigestAlgorithm::sha256, std::string(1, name)); }
std::string n(char fill) { return d(fill).str(); }

using M = CacheContents::Manifest;
using B = CacheContents::Blob;
using R = CacheContents::Response;

M image(char digest, std::vector<char> blobs, std::int64_t pulled, std::uint64_t bytes = 0) {
  M m{d(digest), bytes, {}, {}, pulled};
  for (char b : blobs) m.blobs.push_back(d(b));
  return m;
}
M index(char digest, std::vector<char> children, std::int64_t pulled) {
  M m{d(digest), 0, {}, {}, pulled};
  for (char c : children) m.children.push_back(d(c));
  return m;
}
B blob(char digest, std::uint64_t bytes, std::int64_t stored = 0) { return B{d(digest), bytes, stored}; }

struct Row {
  const char* name;
  CacheContents contents;
  EvictionLimits limits;
  std::int64_t now_ms;
  std::vector<std::pair<std::string, EvictionReason>> units;  // in order
  std::vector<char> manifests;                                 // deleted, any order
  std::vector<char> blobs;                                     // deleted, any order
  std::vector<std::string> responses;
  std::uint64_t bytes_after;
};

EvictionLimits max_bytes(std::uint64_t max) { return EvictionLimits{max, 90, 80, std::nullopt}; }
EvictionLimits max_unpulled(std::int64_t ms) { return EvictionLimits{std::nullopt, 90, 80, ms}; }

std::vector<std::string> names(const std::vector<char>& fills) {
  std::vector<std::string> out;
  for (char c : fills) out.push_back(n(c));
  std::sort(out.begin(), out.end());
  return out;
}
std::vector<std::string> names(const std::vector<Digest>& digests) {
  std::vector<std::string> out;
  for (const auto& x : digests) out.push_back(x.str());
  std::sort(out.begin(), out.end());
  return out;
}

const Row rows[] = {
    {"no limits: nothing goes",
     {{image('A', {'a'}, 1)}, {blob('a', 1000)}, {}},
     EvictionLimits{},
     1'000'000,
     {},
     {},
     {},
     {},
     1000},
    {"at the high watermark nothing goes",
     {{image('A', {'a'}, 1), image('B', {'b'}, 2)}, {blob('a', 45), blob('b', 45)}, {}},
     max_bytes(100),
     10,
     {},
     {},
     {},
     {},
     90},
    {"above the high watermark the least recently pulled go until at the low one",
     {{image('A', {'a'}, 30), image('B', {'b'}, 10), image('C', {'c'}, 20)},
      {blob('a', 40), blob('b', 40), blob('c', 40)},
      {}},
     max_bytes(100),
     100,
     {{n('B'), EvictionReason::size}},
     {'B'},
     {'b'},
     {},
     80},
    {"eviction goes on until the low watermark is reached",
     {{image('A', {'a'}, 30), image('B', {'b'}, 10), image('C', {'c'}, 20)},
      {blob('a', 40), blob('b', 15), blob('c', 45)},
      {}},
     max_bytes(100),
     100,
     {{n('B'), EvictionReason::size}, {n('C'), EvictionReason::size}},
     {'B', 'C'},
     {'b', 'c'},
     {},
     40},
    {"manifest bytes count, and go with their image",
     {{image('A', {'a'}, 1, 20), image('B', {'b'}, 2, 20)}, {blob('a', 30), blob('b', 30)}, {}},
     max_bytes(100),
     10,
     {{n('A'), EvictionReason::size}},
     {'A'},
     {'a'},
     {},
     50},
    {"a blob shared with a kept image stays",
     {{image('A', {'s', 'a'}, 1), image('B', {'s', 'b'}, 2)}, {blob('s', 30), blob('a', 10), blob('b', 10)}, {}},
     max_bytes(50),
     10,
     {{n('A'), EvictionReason::size}},
     {'A'},
     {'a'},
     {},
     40},
    {"a blob a manifest names twice is freed once",
     {{image('A', {'a', 'a'}, 1), image('B', {'b'}, 2)}, {blob('a', 30), blob('b', 30)}, {}},
     max_bytes(60),
     10,
     {{n('A'), EvictionReason::size}},
     {'A'},
     {'a'},
     {},
     30},
    {"an index goes with its children and their blobs",
     {{index('I', {'c', 'e'}, 1), image('c', {'1'}, 1), image('e', {'2'}, 1), image('X', {'x'}, 5)},
      {blob('1', 30), blob('2', 30), blob('x', 30)},
      {}},
     max_bytes(90),
     10,
     {{n('I'), EvictionReason::size}},
     {'I', 'c', 'e'},
     {'1', '2'},
     {},
     30},
    {"an index counts as pulled when any of its children was",
     {{index('I', {'c', 'e'}, 1), image('c', {'1'}, 9), image('e', {'2'}, 1), image('X', {'x'}, 5)},
      {blob('1', 30), blob('2', 30), blob('x', 30)},
      {}},
     max_bytes(90),
     10,
     {{n('X'), EvictionReason::size}},
     {'X'},
     {'x'},
     {},
     60},
    {"a child listed by a kept index stays",
     {{index('I', {'c'}, 1), index('J', {'c'}, 5), image('c', {'1'}, 1), image('X', {'x'}, 6)},
      {blob('1', 30), blob('x', 70)},
      {}},
     max_bytes(100),
     10,
     {{n('I'), EvictionReason::size}, {n('J'), EvictionReason::size}},
     {'I', 'J', 'c'},
     {'1'},
     {},
     70},
    {"content not pulled for max_unpulled goes whatever the size",
     {{image('A', {'a'}, 1000), image('B', {'b'}, 4000)}, {blob('a', 1), blob('b', 1)}, {}},
     max_unpulled(2000),
     5000,
     {{n('A'), EvictionReason::unpulled}},
     {'A'},
     {'a'},
     {},
     1},
    {"exactly max_unpulled old goes",
     {{image('A', {'a'}, 3000)}, {blob('a', 1)}, {}},
     max_unpulled(2000),
     5000,
     {{n('A'), EvictionReason::unpulled}},
     {'A'},
     {'a'},
     {},
     0},
    {"unpulled first, then size for what is left",
     {{image('A', {'a'}, 1000), image('B', {'b'}, 4000), image('C', {'c'}, 4500)},
      {blob('a', 50), blob('b', 50), blob('c', 50)},
      {}},
     EvictionLimits{90, 90, 80, 3000},
     5000,
     {{n('A'), EvictionReason::unpulled}, {n('B'), EvictionReason::size}},
     {'A', 'B'},
     {'a', 'b'},
     {},
     50},
    {"a blob no manifest references ages from when it was stored",
     {{image('A', {'a'}, 4000)}, {blob('a', 1), blob('o', 1, 1000), blob('p', 1, 4500)}, {}},
     max_unpulled(2000),
     5000,
     {{n('o'), EvictionReason::unpulled}},
     {},
     {'o'},
     {},
     2},
    {"cached answers are units of their own",
     {{image('A', {'a'}, 5)}, {blob('a', 50)}, {R{"up\ntags\napp", 50, 1}, R{"up\ntags\nnew", 10, 9}}},
     max_bytes(100),
     10,
     {{"up\ntags\napp", EvictionReason::size}},
     {},
     {},
     {"up\ntags\napp"},
     60},
    {"a referenced blob that is not cached frees nothing",
     {{image('A', {'a', 'z'}, 1), image('B', {'b'}, 2)}, {blob('a', 50), blob('b', 50)}, {}},
     max_bytes(100),
     10,
     {{n('A'), EvictionReason::size}},
     {'A'},
     {'a'},
     {},
     50},
    {"a pinned image stays by size, with the blob it shares; its bytes count",
     {{image('A', {'a', 's'}, 1), image('B', {'b', 's'}, 2), image('C', {'c'}, 3)},
      {blob('a', 40), blob('s', 10), blob('b', 40), blob('c', 40)},
      {},
      {d('A')}},
     max_bytes(100),
     10,
     {{n('B'), EvictionReason::size}, {n('C'), EvictionReason::size}},
     {'B', 'C'},
     {'b', 'c'},
     {},
     50},
    {"a pinned image stays however long it was not pulled",
     {{image('A', {'a'}, 1), image('B', {'b'}, 1)}, {blob('a', 10), blob('b', 10)}, {}, {d('A')}},
     max_unpulled(10),
     100,
     {{n('B'), EvictionReason::unpulled}},
     {'B'},
     {'b'},
     {},
     10},
    {"pinned bytes above the low watermark: everything else goes",
     {{image('A', {'a'}, 1), image('B', {'b'}, 2)}, {blob('a', 90), blob('b', 5)}, {}, {d('A')}},
     max_bytes(50),
     10,
     {{n('B'), EvictionReason::size}},
     {'B'},
     {'b'},
     {},
     90},
    {"a pinned child keeps its index",
     {{index('X', {'A'}, 1), image('A', {'a'}, 1)}, {blob('a', 100)}, {}, {d('A')}},
     max_bytes(50),
     10,
     {},
     {},
     {},
     {},
     100},
};

TEST(EvictionPlan, Table) {
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    auto plan = plan_eviction(row.contents, row.limits, row.now_ms);
    std::vector<std::pair<std::string, EvictionReason>> units;
    for (const auto& u : plan.units) units.emplace_back(u.name, u.reason);
    EXPECT_EQ(units, row.units);
    EXPECT_EQ(names(plan.manifests), names(row.manifests));
    EXPECT_EQ(names(plan.blobs), names(row.blobs));
    EXPECT_EQ(plan.responses, row.responses);
    EXPECT_EQ(plan.bytes_after, row.bytes_after);
  }
}

TEST(EvictionPlan, EachUnitSaysWhatItFreed) {
  CacheContents contents{{image('A', {'s', 'a'}, 1, 5), image('B', {'s', 'b'}, 2, 5)},
                         {blob('s', 30), blob('a', 10), blob('b', 20)},
                         {}};
  auto plan = plan_eviction(contents, max_bytes(10), 10);
  ASSERT_EQ(plan.units.size(), 2u);
  EXPECT_EQ(plan.bytes_before, 70u);
  EXPECT_EQ(plan.units[0].bytes, 15u);  // A's manifest and its own blob; s is B's too
  EXPECT_EQ(plan.units[0].last_pull_ms, 1);
  EXPECT_EQ(plan.units[1].bytes, 55u);  // B's manifest, b and s
  EXPECT_EQ(plan.bytes_after, 0u);
}

}  // namespace
}  // namespace pullgate::cache

namespace pullgate::cache {
namespace {

TEST(EvictionPlan, PinnedBytesCountPinnedManifestsAndBlobsOnce) {
  CacheContents contents{{index('X', {'A', 'B'}, 1), image('A', {'a', 's'}, 1, 3), image('B', {'b', 's'}, 1, 4),
                          image('C', {'c'}, 1)},
                         {blob('a', 10), blob('b', 20), blob('s', 30), blob('c', 40)},
                         {},
                         {d('X')}};
  auto plan = plan_eviction(contents, max_bytes(10), 10);
  EXPECT_EQ(plan.pinned_bytes, 3u + 4u + 10u + 20u + 30u);
  EXPECT_EQ(names(plan.manifests), names(std::vector<char>{'C'}));
  EXPECT_EQ(plan.bytes_after, plan.pinned_bytes);
}

}  // namespace
}  // namespace pullgate::cache
