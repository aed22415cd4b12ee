// The evictor against a real LMDB MetaStore and BlobStore in a temp directory: what a
// run removes (records and files), what it keeps (shared blobs, decisions), and a blob
// published again while a run was planned.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include "cache/evictor.hpp"
#include "registry/manifest.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t day_ms = 24 * 3600 * 1000;

class EvictorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-evict");
    meta_ = MetaStore::open(dir_ / "lmdb", 64 << 20);
    blobs_ = std::make_unique<BlobStore>(dir_);
  }
  void TearDown() override {
    meta_.reset();
    fs::remove_all(dir_);
  }

  // A blob file of `size` bytes, published and recorded as stored at `stored_ms`.
  Digest put_blob(char fill, std::size_t size, std::int64_t stored_ms = 0) {
    std::string bytes(size, fill);
    auto digest = registry::digest_of(registry::DigestAlgorithm::sha256, bytes);
    auto temp = blobs_->create_temp();
    EXPECT_EQ(::write(temp.file.get(), bytes.data(), bytes.size()), ssize_t(bytes.size()));
    blobs_->publish(temp, digest);
    meta_->put_blob(digest, BlobRecord{size, stored_ms, stored_ms});
    return digest;
  }

  static std::string descriptor(const Digest& digest, const char* media_type) {
    return std::string(R"({"mediaType":")") + media_type + R"(","digest":")" + digest.str() + R"(","size":1})";
  }

  // An image manifest of config and layers, stored with its references, tagged `tag`
  // in up/app and seen there.
  Digest put_image(const std::string& tag, const Digest& config, const std::vector<Digest>& layers) {
    std::string bytes = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                        descriptor(config, "application/vnd.oci.image.config.v1+json") + R"(,"layers":[)";
    for (std::size_t i = 0; i < layers.size(); ++i)
      bytes += (i ? "," : "") + descriptor(layers[i], "application/vnd.oci.image.layer.v1.tar+gzip");
    bytes += "]}";
    const std::string media_type = "application/vnd.oci.image.manifest.v1+json";
    auto digest = registry::digest_of(registry::DigestAlgorithm::sha256, bytes);
    auto parsed = registry::parse_manifest(bytes, media_type);
    EXPECT_TRUE(std::holds_alternative<registry::ParsedManifest>(parsed));
    store_manifest(*meta_, digest, ManifestRecord{media_type, bytes, 0},
                   std::get<registry::ParsedManifest>(parsed));
    meta_->put_tag("up", "app", tag, TagRecord{digest, media_type, 0});
    meta_->mark_seen(digest, "up", "app");
    return digest;
  }

  Evictor evictor(EvictionLimits limits) {
    return Evictor(*meta_, *blobs_, pulls_, limits, [this] { return now_; });
  }

  fs::path dir_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<BlobStore> blobs_;
  PullTimes pulls_;
  WallTime now_ = WallTime{} + std::chrono::hours(24 * 365 * 30);
};

TEST_F(EvictorTest, TheLeastRecentlyPulledImageGoesAndABlobSharedWithAKeptImageStays) {
  auto base = put_blob('s', 400);
  auto old_layer = put_blob('o', 300);
  auto new_layer = put_blob('n', 300);
  auto config_old = put_blob('c', 10);
  auto config_new = put_blob('d', 10);
  auto old_image = put_image("old", config_old, {base, old_layer});
  auto new_image = put_image("new", config_new, {base, new_layer});
  pulls_.note(old_image.str(), 1000);
  pulls_.note(new_image.str(), 2000);

  // About 2.1 kB cached (two manifests of about 550 bytes included); 2 kB allowed:
  // above the high watermark, and one image is enough to get under the low one.
  auto result = evictor(EvictionLimits{2000, 90, 80, std::nullopt}).run();
  ASSERT_EQ(result.plan.units.size(), 1u);
  EXPECT_EQ(result.plan.units[0].name, old_image.str());
  EXPECT_EQ(result.plan.units[0].reason, EvictionReason::size);

  EXPECT_FALSE(meta_->get_manifest(old_image));
  EXPECT_FALSE(meta_->get_tag("up", "app", "old"));
  EXPECT_FALSE(meta_->seen_in(old_image, "up", "app"));
  EXPECT_TRUE(meta_->referenced_by(old_layer, 10).empty());
  EXPECT_FALSE(meta_->get_blob(old_layer));
  EXPECT_FALSE(blobs_->open(old_layer));
  EXPECT_FALSE(blobs_->open(config_old));
  EXPECT_FALSE(pulls_.noted(old_image.str()));

  EXPECT_TRUE(meta_->get_blob(base));
  EXPECT_TRUE(blobs_->open(base));
  EXPECT_EQ(meta_->referenced_by(base, 10), std::vector<Digest>{new_image});
  EXPECT_TRUE(meta_->get_manifest(new_image));
  EXPECT_TRUE(meta_->get_tag("up", "app", "new"));
  EXPECT_TRUE(blobs_->open(new_layer));
  EXPECT_LE(result.after.bytes, 1600u);
  EXPECT_EQ(result.after.blob_files, 3u);
}

TEST_F(EvictorTest, AnImageEvictedByHandTakesWhatItHoldsAloneAndARefusedPinEvictsNothing) {
  auto base = put_blob('s', 400);
  auto a_layer = put_blob('a', 300);
  auto b_layer = put_blob('b', 200);
  auto a = put_image("a", put_blob('c', 10), {base, a_layer});
  auto b = put_image("b", put_blob('d', 10), {base, b_layer});
  pulls_.note(a.str(), 1000);
  pulls_.note(b.str(), 2000);

  auto listed = evictor(EvictionLimits{}).inventory(ImageOrder::size, 10);
  ASSERT_EQ(listed.image_count, 2u);
  ASSERT_EQ(listed.images.size(), 2u);
  EXPECT_EQ(listed.images[0].image.root, a);  // the larger first
  EXPECT_EQ(listed.images[0].image.blobs, 3u);
  EXPECT_EQ(listed.images[0].image.bytes, meta_->get_manifest(a)->bytes.size() + 710);
  EXPECT_EQ(listed.images[0].image.bytes_alone, meta_->get_manifest(a)->bytes.size() + 310);  // not the base
  EXPECT_EQ(listed.images[0].image.last_pull_ms, 1000);
  ASSERT_EQ(listed.images[0].names.size(), 1u);
  EXPECT_EQ(listed.images[0].names[0].repository, "app");
  EXPECT_EQ(listed.images[0].names[0].tags, std::vector<std::string>{"a"});
  EXPECT_EQ(listed.totals.blob_files, 5u);
  EXPECT_EQ(listed.totals.blob_bytes, 920u);
  auto by_pull = evictor(EvictionLimits{}).inventory(ImageOrder::pulled, 1);
  ASSERT_EQ(by_pull.images.size(), 1u);
  EXPECT_EQ(by_pull.images[0].image.root, a);  // the least recently pulled

  auto pinned = evictor(EvictionLimits{});
  pinned.pins = [] { return std::vector<ImagePin>{*parse_image_pin("up/app:a")}; };
  auto refused = pinned.evict_images({a}, false);
  EXPECT_FALSE(refused.result);
  EXPECT_EQ(refused.pinned, std::vector<Digest>{a});
  EXPECT_TRUE(meta_->get_manifest(a));
  EXPECT_TRUE(blobs_->open(a_layer));

  auto missing = evictor(EvictionLimits{}).evict_images({a_layer}, false);  // not a manifest
  EXPECT_FALSE(missing.result);
  EXPECT_EQ(missing.missing, std::vector<Digest>{a_layer});

  auto manual = evictor(EvictionLimits{});
  auto done = manual.evict_images({a}, false);
  ASSERT_TRUE(done.result);
  ASSERT_EQ(done.result->plan.units.size(), 1u);
  EXPECT_EQ(done.result->plan.units[0].reason, EvictionReason::manual);
  EXPECT_FALSE(meta_->get_manifest(a));
  EXPECT_FALSE(blobs_->open(a_layer));
  EXPECT_TRUE(blobs_->open(base));
  EXPECT_TRUE(blobs_->open(b_layer));
  ASSERT_TRUE(manual.last_run());
  EXPECT_TRUE(manual.last_run()->manual);
  EXPECT_EQ(manual.last_run()->units, 1u);
}

TEST_F(EvictorTest, ACachedManifestIsFoundByTagDigestOrBareDigestOnly) {
  auto image = put_image("v1", put_blob('c', 10), {put_blob('l', 100)});
  EXPECT_EQ(find_cached_manifest(*meta_, "up/app:v1").digest, image);
  EXPECT_EQ(find_cached_manifest(*meta_, "up/app@" + image.str()).digest, image);
  EXPECT_EQ(find_cached_manifest(*meta_, image.str()).digest, image);
  auto elsewhere = find_cached_manifest(*meta_, "up/other@" + image.str());  // never seen there
  EXPECT_FALSE(elsewhere.digest);
  EXPECT_TRUE(elsewhere.unknown);
  auto untagged = find_cached_manifest(*meta_, "up/app:v2");
  EXPECT_TRUE(untagged.unknown);
  auto bad = find_cached_manifest(*meta_, "not an image");
  EXPECT_FALSE(bad.unknown);
  EXPECT_NE(bad.error.find("not an image"), std::string::npos);
  auto pattern = find_cached_manifest(*meta_, "up/app*:v1");  // a pin pattern, not an image
  EXPECT_FALSE(pattern.digest);
  EXPECT_FALSE(pattern.unknown);
  EXPECT_NE(pattern.error.find("not an image"), std::string::npos);
}

TEST_F(EvictorTest, AManualVerdictSurvivesEvictionAndComputedFindingsGo) {
  auto image = put_image("v1", put_blob('c', 10), {put_blob('l', 100)});
  meta_->put_verdict(image, VerdictRecord{"deny", "manual", {"no"}, "", "ops", 1, std::nullopt, ""});
  meta_->put_verdict(image, VerdictRecord{"allow", "rule", {"ok"}, "p1", "", 1, std::nullopt, "default"});
  meta_->put_signals(image, "default", SignalRecord{"p1", 1, "valid", "", "k", "found", "", false, "", "", 0});
  meta_->put_report(image, ReportRecord{"{}", "trivy", 1, 1});
  ExceptionRecord exception{"e1", image.str(), "", "", "because", "ops", 1, std::nullopt};
  meta_->put_exception(exception);

  now_ += std::chrono::hours(24 * 40);
  auto result = evictor(EvictionLimits{std::nullopt, 90, 80, 30 * day_ms}).run();
  ASSERT_EQ(result.plan.units.size(), 1u);
  EXPECT_EQ(result.plan.units[0].reason, EvictionReason::unpulled);
  EXPECT_FALSE(meta_->get_manifest(image));

  auto verdicts = meta_->get_verdicts_in(image, "default");
  ASSERT_TRUE(verdicts.manual);
  EXPECT_EQ(verdicts.manual->decision, "deny");
  EXPECT_FALSE(verdicts.computed);
  EXPECT_FALSE(meta_->get_signals(image, "default"));
  EXPECT_TRUE(meta_->get_report(image));
  EXPECT_TRUE(meta_->get_exception("e1"));
}

TEST_F(EvictorTest, ABlobPublishedAgainWhileARunIsPlannedStays) {
  auto layer = put_blob('l', 500);
  auto image = put_image("v1", put_blob('c', 10), {layer});
  auto run = evictor(EvictionLimits{100, 90, 80, std::nullopt});
  auto prepared = run.prepare();
  ASSERT_EQ(prepared.plan.units.size(), 1u);
  ASSERT_EQ(prepared.plan.blobs.size(), 2u);

  // Meanwhile the layer is published again (a fill that stored it anew), under its lock.
  {
    auto held = blobs_->lock(layer);
    meta_->put_blob(layer, BlobRecord{500, 77, 77});
  }
  auto result = run.carry_out(std::move(prepared));
  EXPECT_FALSE(meta_->get_manifest(image));
  ASSERT_EQ(result.plan.blobs.size(), 1u);  // only the config went
  ASSERT_TRUE(meta_->get_blob(layer));
  EXPECT_EQ(meta_->get_blob(layer)->stored_at_ms, 77);
  EXPECT_TRUE(blobs_->open(layer));
}

TEST_F(EvictorTest, AStreamingClientKeepsReadingAnEvictedBlob) {
  auto layer = put_blob('l', 4096);
  put_image("v1", put_blob('c', 10), {layer});
  auto open = blobs_->open(layer);
  ASSERT_TRUE(open);
  evictor(EvictionLimits{100, 90, 80, std::nullopt}).run();
  EXPECT_FALSE(blobs_->open(layer));
  std::string read(4096, '\0');
  EXPECT_EQ(::pread(open->file.get(), read.data(), read.size(), 0), 4096);
  EXPECT_EQ(read, std::string(4096, 'l'));
}

TEST_F(EvictorTest, StoredPullTimesOrderTheImagesAfterARestart) {
  auto first = put_image("first", put_blob('c', 10), {put_blob('1', 500)});
  auto second = put_image("second", put_blob('d', 10), {put_blob('2', 500)});
  // Pulled in this order before a restart: `first` last.
  PullTime times[] = {{second.str(), 100}, {first.str(), 200}};
  meta_->put_pull_times(times);
  auto result = evictor(EvictionLimits{1200, 90, 80, std::nullopt}).run();
  ASSERT_EQ(result.plan.units.size(), 1u);
  EXPECT_EQ(result.plan.units[0].name, second.str());
  EXPECT_TRUE(meta_->get_manifest(first));
  EXPECT_FALSE(meta_->get_pull_time(second.str()));
}

TEST_F(EvictorTest, CachedAnswersGoWhenUnused) {
  meta_->put_response("up\ntags\napp", CachedResponse{"application/json", "{\"tags\":[]}", 0});
  meta_->put_response("up\ntags\nnew", CachedResponse{"application/json", "{\"tags\":[]}", 0});
  now_ += std::chrono::hours(2);
  pulls_.note("up\ntags\nnew", ms_since_epoch(now_));
  auto result = evictor(EvictionLimits{std::nullopt, 90, 80, 3600 * 1000}).run();
  EXPECT_EQ(result.plan.responses, std::vector<std::string>{"up\ntags\napp"});
  EXPECT_FALSE(meta_->get_response("up\ntags\napp"));
  EXPECT_TRUE(meta_->get_response("up\ntags\nnew"));
}

TEST_F(EvictorTest, APinnedTagKeepsWhatItPointsAtNowAndADigestPinKeepsItsDigest) {
  auto first = put_image("stable", put_blob('c', 10), {put_blob('a', 100)});
  auto kept_by_digest = put_image("other", put_blob('d', 10), {put_blob('b', 100)});
  auto unpinned = put_image("loose", put_blob('e', 10), {put_blob('x', 100)});
  auto e = evictor(EvictionLimits{std::nullopt, 90, 80, day_ms});
  e.pins = [&] {
    return std::vector<ImagePin>{{"up", "app", "stable", std::nullopt}, {"up", "app", "", kept_by_digest}};
  };
  // Nothing was pulled for 30 years: only the pinned images stay.
  auto result = e.run();
  ASSERT_EQ(result.plan.units.size(), 1u);
  EXPECT_EQ(result.plan.units[0].name, unpinned.str());
  EXPECT_TRUE(meta_->get_manifest(first));
  EXPECT_TRUE(meta_->get_manifest(kept_by_digest));
  EXPECT_GT(result.plan.pinned_bytes, 220u);

  // The tag moves: the next run keeps the new image and no longer the old one.
  auto second = put_image("stable", put_blob('f', 10), {put_blob('g', 100)});
  result = e.run();
  ASSERT_EQ(result.plan.units.size(), 1u);
  EXPECT_EQ(result.plan.units[0].name, first.str());
  EXPECT_EQ(result.plan.units[0].reason, EvictionReason::unpulled);
  EXPECT_FALSE(meta_->get_manifest(first));
  EXPECT_TRUE(meta_->get_manifest(second));
  EXPECT_TRUE(meta_->get_manifest(kept_by_digest));
}

TEST_F(EvictorTest, NothingToEvictWritesNothing) {
  put_image("v1", put_blob('c', 10), {put_blob('l', 100)});
  const auto before = meta_->generation();
  bool called = false;
  auto run = evictor(EvictionLimits{1 << 20, 90, 80, std::nullopt});
  run.on_evicted = [&](const EvictionPlan&) { called = true; };
  auto result = run.run();
  EXPECT_TRUE(result.plan.units.empty());
  EXPECT_EQ(meta_->generation(), before);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace pullgate::cache
