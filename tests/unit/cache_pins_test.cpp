// Pins (cache/pins.hpp): what a pin's text may be, what a pattern matches, and what
// the pins resolve to against a real LMDB MetaStore's tag records.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "cache/pins.hpp"
#include "registry/glob.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;

// Does the pin `text` keep what (upstream, repository, tag) points at?
bool keeps(const std::string& text, std::string_view upstream, std::string_view repository, std::string_view tag) {
  auto pin = parse_image_pin(text);
  EXPECT_TRUE(pin) << text;
  if (!pin || pin->upstream != upstream) return false;
  return registry::glob_match(pin->repository, repository) && registry::glob_match(pin->tag, tag);
}

TEST(PinPatterns, WhatAPatternMatches) {
  struct Row {
    const char* pin;
    const char* upstream;
    const char* repository;
    const char* tag;
    bool kept;
  };
  const Row rows[] = {
      {"docker.io/library/**:stable", "docker.io", "library/debian", "stable", true},
      {"docker.io/library/**:stable", "docker.io", "library/team/app", "stable", true},  // ** crosses segments
      {"docker.io/library/**:stable", "docker.io", "library/debian", "latest", false},
      {"docker.io/library/**:stable", "docker.io", "library", "stable", false},
      {"docker.io/library/**:stable", "ghcr.io", "library/debian", "stable", false},  // the upstream is exact
      {"ghcr.io/org/*:v1.*", "ghcr.io", "org/app", "v1.2", true},
      {"ghcr.io/org/*:v1.*", "ghcr.io", "org/app", "v1.2.3-rc1", true},
      {"ghcr.io/org/*:v1.*", "ghcr.io", "org/app", "v2.0", false},
      {"ghcr.io/org/*:v1.*", "ghcr.io", "org/team/app", "v1.2", false},  // * stays in one segment
      {"ghcr.io/org/app:v?", "ghcr.io", "org/app", "v1", true},
      {"ghcr.io/org/app:v?", "ghcr.io", "org/app", "v10", false},
      {"ghcr.io/org/app:*", "ghcr.io", "org/app", "anything", true},
      {"ghcr.io/org/app:v1", "ghcr.io", "org/app", "v1", true},
      {"ghcr.io/org/app:v1", "ghcr.io", "org/app", "v11", false},
  };
  for (const auto& row : rows)
    EXPECT_EQ(keeps(row.pin, row.upstream, row.repository, row.tag), row.kept)
        << row.pin << " vs " << row.upstream << "/" << row.repository << ":" << row.tag;
}

TEST(PinPatterns, ParsedPinsSayWhetherTheyArePatterns) {
  const std::string digest = "sha256:" + std::string(64, 'b');
  EXPECT_TRUE(parse_image_pin("docker.io/library/**:stable")->is_pattern());
  EXPECT_TRUE(parse_image_pin("docker.io/library/debian:1*")->is_pattern());
  EXPECT_FALSE(parse_image_pin("docker.io/library/debian:stable")->is_pattern());
  auto by_digest = parse_image_pin("registry.corp/prod/**@" + digest);
  ASSERT_TRUE(by_digest);
  EXPECT_FALSE(by_digest->is_pattern());  // a digest pin keeps its digest, wherever it was seen
  EXPECT_EQ(by_digest->digest->str(), digest);
  EXPECT_EQ(by_digest->repository, "prod/**");
}

TEST(PinPatterns, BadPinsSayWhy) {
  struct Row {
    const char* text;
    const char* problem;
  };
  const Row rows[] = {
      {"debian:stable", "names no UPSTREAM/ before the repository"},
      {"docker.io/library/debian", "names neither :TAG nor @DIGEST"},
      {"*.io/library/debian:stable", "the upstream is a name, not a pattern"},
      {"up/Repo:x", "the repository is not a valid repository name"},
      {"up/Re*po:x", "the repository pattern contains 'R'; allowed are a-z 0-9 . _ - / and the wildcards * and ?"},
      {"up/app:x y", "the tag is not a valid tag"},
      {"up/app:v1.[0-9]*", "the tag pattern contains '['; allowed are A-Z a-z 0-9 . _ - and the wildcards * and ?"},
      {"up/app@sha256:12", "the digest is not ALGORITHM:HEX"},
  };
  for (const auto& row : rows) {
    std::string problem;
    EXPECT_FALSE(parse_image_pin(row.text, &problem)) << row.text;
    EXPECT_EQ(problem, row.problem) << row.text;
  }
  std::string problem;
  EXPECT_FALSE(parse_image_pin("up/" + std::string(256, '*') + ":x", &problem));
  EXPECT_EQ(problem, "the repository pattern is 256 characters long, at most 255 are allowed");
}

class PinResolution : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-pins");
    meta_ = MetaStore::open(dir_ / "lmdb", 64 << 20);
  }
  void TearDown() override {
    meta_.reset();
    fs::remove_all(dir_);
  }
  static registry::Digest digest(char c) { return *registry::Digest::parse("sha256:" + std::string(64, c)); }
  void tag(std::string_view upstream, std::string_view repository, std::string_view tag, char c) {
    meta_->put_tag(upstream, repository, tag, TagRecord{digest(c), "application/vnd.oci.image.manifest.v1+json", 1});
  }
  std::vector<std::string> resolve(const std::vector<std::string>& texts) {
    std::vector<ImagePin> pins;
    for (const auto& text : texts) pins.push_back(*parse_image_pin(text));
    std::vector<std::string> out;
    for (const auto& d : resolve_pins(*meta_, pins)) out.push_back(d.str());
    std::sort(out.begin(), out.end());
    return out;
  }
  static std::string s(char c) { return digest(c).str(); }
  fs::path dir_;
  std::unique_ptr<MetaStore> meta_;
};

TEST_F(PinResolution, APatternKeepsWhatEveryMatchingTagPointsAtAcrossRepositories) {
  tag("docker.io", "library/debian", "stable", 'a');
  tag("docker.io", "library/team/app", "stable", 'b');
  tag("docker.io", "library/debian", "latest", 'c');
  tag("docker.io", "other/app", "stable", 'd');
  tag("ghcr.io", "library/debian", "stable", 'e');
  EXPECT_EQ(resolve({"docker.io/library/**:stable"}), (std::vector<std::string>{s('a'), s('b')}));
  EXPECT_EQ(resolve({"docker.io/*/app:*"}), (std::vector<std::string>{s('d')}));
  EXPECT_EQ(resolve({"docker.io/**:*"}), (std::vector<std::string>{s('a'), s('b'), s('c'), s('d')}));
  EXPECT_TRUE(resolve({"docker.io/nothing/**:stable"}).empty());
  // Exact pins and digest pins resolve as before, beside patterns.
  EXPECT_EQ(resolve({"ghcr.io/library/debian:stable", "up/x@" + s('f'), "docker.io/library/debian:latest"}),
            (std::vector<std::string>{s('c'), s('e'), s('f')}));
}

TEST_F(PinResolution, APatternFollowsATagThatMoves) {
  tag("docker.io", "library/debian", "stable", 'a');
  EXPECT_EQ(resolve({"docker.io/library/**:stable"}), (std::vector<std::string>{s('a')}));
  tag("docker.io", "library/debian", "stable", 'b');  // the tag moves: the old image is no longer kept
  EXPECT_EQ(resolve({"docker.io/library/**:stable"}), (std::vector<std::string>{s('b')}));
  EXPECT_EQ(resolve({"docker.io/library/debian:stable"}), (std::vector<std::string>{s('b')}));
}

TEST_F(PinResolution, StoredPinsJoinTheConfigsAndOnesThatDoNotParseAreSkipped) {
  tag("docker.io", "library/debian", "stable", 'a');
  tag("docker.io", "library/alpine", "3", 'b');
  const std::vector<std::string> config = {"docker.io/library/debian:stable"};
  EXPECT_EQ(pins_in_force(*meta_, config).size(), 1u);
  EXPECT_TRUE(meta_->add_pin({"docker.io/library/alpine:3", "alice", 1, ""}));
  EXPECT_TRUE(meta_->add_pin({"not a pin", "mallory", 1, ""}));  // the store does not parse; nothing adds it
  auto pins = pins_in_force(*meta_, config);
  ASSERT_EQ(pins.size(), 2u);
  std::vector<std::string> out;
  for (const auto& d : resolve_pins(*meta_, pins)) out.push_back(d.str());
  EXPECT_EQ(out, (std::vector<std::string>{s('a'), s('b')}));
}

TEST(PinPatterns, AFormattedPinParsesToItself) {
  const std::string digest = "sha256:" + std::string(64, 'e');
  for (const std::string& text : std::vector<std::string>{"docker.io/library/debian:stable", "localhost:5000/it/a:v1",
                                                          "docker.io/library/**:stable", "ghcr.io/org/app@" + digest})
    EXPECT_EQ(format_image_pin(*parse_image_pin(text)), text);
  std::string problem;
  EXPECT_FALSE(parse_image_pin("up\nstream/app:x", &problem));
  EXPECT_EQ(problem, "the upstream has a character no upstream name has");
}

TEST_F(PinResolution, TagRecordsAreListedWithTheirNames) {
  tag("localhost:5000", "it/a", "v1", 'a');
  auto tags = meta_->list_tags();
  ASSERT_EQ(tags.size(), 1u);
  EXPECT_EQ(tags[0].upstream, "localhost:5000");
  EXPECT_EQ(tags[0].repository, "it/a");
  EXPECT_EQ(tags[0].tag, "v1");
  EXPECT_EQ(tags[0].record.digest.str(), s('a'));
}

}  // namespace
}  // namespace pullgate::cache
