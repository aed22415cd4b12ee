// Garbage collection and verify (cache/garbage.hpp) against a real BlobStore and
// LMDB MetaStore in a temp directory: what each finding removes, what the guards keep
// (a locked temp file, a young file without a record, a blob published again), and
// the MetaStore's sweeps of orphan seen entries and of removed scopes' verdicts.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cache/garbage.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class GarbageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-garbage");
    meta_ = MetaStore::open(dir_ / "lmdb", 64 << 20);
    blobs_ = std::make_unique<BlobStore>(dir_);
  }
  void TearDown() override {
    meta_.reset();
    fs::remove_all(dir_);
  }

  Digest put_blob(const std::string& bytes, bool record = true) {
    auto digest = registry::digest_of(registry::DigestAlgorithm::sha256, bytes);
    auto temp = blobs_->create_temp();
    EXPECT_EQ(::write(temp.file.get(), bytes.data(), bytes.size()), ssize_t(bytes.size()));
    blobs_->publish(temp, digest);
    if (record) meta_->put_blob(digest, BlobRecord{bytes.size(), 7, 7});
    return digest;
  }

  GarbageReport collect(bool hash, std::int64_t grace_ms, std::vector<GarbageFinding>* findings = nullptr) {
    GarbageOptions options;
    options.hash = hash;
    options.now_ms = wall_now_ms();
    options.grace_ms = grace_ms;
    return collect_blob_garbage(*blobs_, *meta_, options, [&](const GarbageFinding& f) {
      if (findings) findings->push_back(f);
    });
  }

  fs::path dir_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST_F(GarbageTest, VerifyRemovesACorruptBlobWithItsRecordAndASecondRunIsClean) {
  auto good = put_blob("good bytes");
  auto bad = put_blob("bad bytes");
  {
    std::fstream f(blobs_->path_for(bad), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.put('B');  // one flipped byte
  }
  std::vector<GarbageFinding> findings;
  auto report = collect(true, 3600 * 1000, &findings);
  EXPECT_EQ(report.files_checked, 2u);
  EXPECT_EQ(report.bytes_checked, 19u);
  EXPECT_EQ(report.mismatched, 1u);
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].kind, GarbageFinding::Kind::mismatch);
  EXPECT_EQ(findings[0].digest, bad.str());
  EXPECT_TRUE(findings[0].removed);
  EXPECT_FALSE(fs::exists(blobs_->path_for(bad)));
  EXPECT_FALSE(meta_->get_blob(bad));
  EXPECT_TRUE(fs::exists(blobs_->path_for(good)));
  EXPECT_TRUE(meta_->get_blob(good));
  EXPECT_EQ(collect(true, 0).found(), 0u);
}

TEST_F(GarbageTest, WithoutHashingACorruptFileIsNotNoticed) {
  auto bad = put_blob("bad bytes");
  std::ofstream(blobs_->path_for(bad), std::ios::binary) << "other";
  auto report = collect(false, 0);
  EXPECT_EQ(report.found(), 0u);
  EXPECT_EQ(report.bytes_checked, 0u);
}

TEST_F(GarbageTest, ARecordWithoutAFileIsRemovedAtOnce) {
  auto gone = put_blob("gone");
  fs::remove(blobs_->path_for(gone));
  std::vector<GarbageFinding> findings;
  auto report = collect(false, 3600 * 1000, &findings);
  EXPECT_EQ(report.missing_files, 1u);
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].kind, GarbageFinding::Kind::missing_file);
  EXPECT_TRUE(findings[0].removed);
  EXPECT_FALSE(meta_->get_blob(gone));
}

TEST_F(GarbageTest, AFileWithoutARecordGoesOnlyAfterTheGrace) {
  auto orphan = put_blob("orphan", /*record=*/false);
  // Just renamed into place: it may be a publish whose record is being written.
  auto young = collect(true, 3600 * 1000);
  EXPECT_EQ(young.orphan_files, 0u);
  EXPECT_EQ(young.recent_orphans, 1u);
  EXPECT_TRUE(fs::exists(blobs_->path_for(orphan)));
  auto old = collect(true, 0);
  EXPECT_EQ(old.orphan_files, 1u);
  EXPECT_EQ(old.removed, 1u);
  EXPECT_FALSE(fs::exists(blobs_->path_for(orphan)));
}

TEST_F(GarbageTest, AFilePublishedWithItsRecordMeanwhileIsKept) {
  // The record written between the records' listing and the file's turn (a publish
  // in another process): looked up again under the blob's lock, the file stays.
  auto digest = put_blob("published", /*record=*/false);
  GarbageOptions options;
  options.now_ms = wall_now_ms();
  options.grace_ms = 0;
  meta_->put_blob(digest, BlobRecord{9, 1, 1});
  auto report = collect_blob_garbage(*blobs_, *meta_, options);
  EXPECT_EQ(report.found(), 0u);
  EXPECT_TRUE(fs::exists(blobs_->path_for(digest)));
}

TEST_F(GarbageTest, AConditionalRecordRemovalKeepsARecordPublishedAgain) {
  auto digest = put_blob("again");
  EXPECT_FALSE(meta_->remove_blob_if(digest, 8));  // stored at 7: another publish
  EXPECT_TRUE(meta_->get_blob(digest));
  EXPECT_TRUE(meta_->remove_blob_if(digest, 7));
  EXPECT_FALSE(meta_->get_blob(digest));
}

TEST_F(GarbageTest, ADownloadInProgressKeepsItsTempFileAndAStaleOneGoes) {
  auto in_progress = blobs_->create_temp();  // held open and locked, as a fill holds it
  auto stale = dir_ / "tmp" / "0123456789abcdef";
  std::ofstream(stale) << "left by a crash";
  struct timespec old[2] = {{0, 0}, {0, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, stale.c_str(), old, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, in_progress.path.c_str(), old, 0), 0);  // even when not written for long
  std::vector<GarbageFinding> findings;
  auto report = collect(false, 3600 * 1000, &findings);
  EXPECT_EQ(report.stale_temps, 1u);
  EXPECT_EQ(report.temps_in_use, 1u);
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].path, stale);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(in_progress.path));
  // A fresh unlocked temp file (created, not yet locked) is young: kept.
  std::ofstream(dir_ / "tmp" / "fedcba9876543210") << "just created";
  EXPECT_EQ(collect(false, 3600 * 1000).stale_temps, 0u);
}

TEST_F(GarbageTest, ReportOnlyChangesNothing) {
  auto gone = put_blob("gone");
  fs::remove(blobs_->path_for(gone));
  GarbageOptions options;
  options.remove = false;
  options.now_ms = wall_now_ms();
  auto report = collect_blob_garbage(*blobs_, *meta_, options);
  EXPECT_EQ(report.missing_files, 1u);
  EXPECT_EQ(report.removed, 0u);
  EXPECT_TRUE(meta_->get_blob(gone));
}

TEST_F(GarbageTest, SeenEntriesOfManifestsGoneAreRemovedAndAListedChildKeepsItsOwn) {
  const std::string index_bytes = "index";
  auto index = registry::digest_of(registry::DigestAlgorithm::sha256, index_bytes);
  auto child = registry::digest_of(registry::DigestAlgorithm::sha256, "child");
  auto gone = registry::digest_of(registry::DigestAlgorithm::sha256, "gone");
  meta_->put_manifest(index, ManifestRecord{"application/vnd.oci.image.index.v1+json", index_bytes, 1});
  meta_->add_references(index, {child});
  meta_->mark_seen(std::vector<Digest>{index, child, gone}, "up", "app");
  meta_->put_signals(gone, "default", SignalRecord{"v1", 5, "valid", "", "", "", "", false, "", "", 0});
  meta_->put_signals(index, "default", SignalRecord{"v1", 5, "valid", "", "", "", "", false, "", "", 0});
  auto removed = meta_->remove_orphan_manifest_records(/*checked_before_ms=*/4);
  EXPECT_EQ(removed.seen, 1u);
  EXPECT_EQ(removed.signals, 0u);  // checked too recently: maybe a pull in progress
  EXPECT_TRUE(meta_->seen_in(index, "up", "app"));
  EXPECT_TRUE(meta_->seen_in(child, "up", "app"));  // listed by a cached index, not fetched yet
  EXPECT_FALSE(meta_->seen_in(gone, "up", "app"));
  removed = meta_->remove_orphan_manifest_records(6);
  EXPECT_EQ(removed.signals, 1u);
  EXPECT_FALSE(meta_->get_signals(gone, "default"));
  EXPECT_TRUE(meta_->get_signals(index, "default"));
}

TEST_F(GarbageTest, ComputedVerdictsOfRemovedScopesGoAndManualOnesStay) {
  auto a = registry::digest_of(registry::DigestAlgorithm::sha256, "a");
  auto b = registry::digest_of(registry::DigestAlgorithm::sha256, "b");
  auto computed = [](const std::string& scope) {
    VerdictRecord r;
    r.decision = "allow";
    r.source = "rule";
    r.policy_version = "v1";
    r.scope = scope;
    return r;
  };
  meta_->put_verdict(a, computed("prod"));
  meta_->put_verdict(a, computed("old"));
  VerdictRecord manual;
  manual.decision = "deny";
  manual.source = "manual";
  meta_->put_verdict(b, manual);
  meta_->put_signals(a, "old", SignalRecord{"v1", 5, "valid", "", "", "", "", false, "", "", 0});
  auto removed = meta_->remove_records_of_other_scopes({"prod", "default"});
  EXPECT_EQ(removed.verdicts, 1u);
  EXPECT_EQ(removed.signals, 1u);
  EXPECT_TRUE(meta_->get_verdicts_in(a, "prod").computed);
  EXPECT_FALSE(meta_->get_verdicts_in(a, "old").computed);
  EXPECT_EQ(meta_->get_verdicts_in(b, "old").manual->decision, "deny");
  EXPECT_EQ(meta_->remove_records_of_other_scopes({"prod", "default"}).verdicts, 0u);
}

}  // namespace
}  // namespace pullgate::cache
