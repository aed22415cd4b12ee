// PullTimes in memory, and flushed to a real LMDB MetaStore in a temp directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "cache/pull_times.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;

class PullTimesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-pulls");
    meta_ = MetaStore::open(dir_ / "lmdb", 64 << 20);
  }
  void TearDown() override {
    meta_.reset();
    fs::remove_all(dir_);
  }
  fs::path dir_;
  std::unique_ptr<MetaStore> meta_;
};

TEST(PullTimes, ATimeNeverMovesBack) {
  PullTimes pulls;
  pulls.note("sha256:a", 200);
  pulls.note("sha256:a", 100);
  EXPECT_EQ(pulls.noted("sha256:a"), 200);
  pulls.note("sha256:a", 300);
  EXPECT_EQ(pulls.noted("sha256:a"), 300);
  EXPECT_EQ(pulls.noted("sha256:b"), std::nullopt);
}

TEST(PullTimes, TakeReturnsOnlyWhatWasNotedSinceTheLastTake) {
  PullTimes pulls;
  pulls.note("a", 1);
  pulls.note("b", 2);
  auto first = pulls.take_noted();
  std::sort(first.begin(), first.end(), [](auto& l, auto& r) { return l.key < r.key; });
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].key, "a");
  EXPECT_EQ(first[0].at_ms, 1);
  EXPECT_EQ(first[1].key, "b");
  EXPECT_TRUE(pulls.take_noted().empty());
  pulls.note("b", 1);  // older than what is known: nothing new to store
  EXPECT_TRUE(pulls.take_noted().empty());
  pulls.note("b", 5);
  auto second = pulls.take_noted();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].key, "b");
  EXPECT_EQ(second[0].at_ms, 5);
}

TEST(PullTimes, ForgottenKeysAreNotStored) {
  PullTimes pulls;
  pulls.note("a", 1);
  pulls.forget("a");
  EXPECT_EQ(pulls.noted("a"), std::nullopt);
  EXPECT_TRUE(pulls.take_noted().empty());
}

TEST_F(PullTimesTest, FlushStoresTheNotedTimesAndTheyOutliveTheProcess) {
  PullTimes pulls;
  const std::string long_key(1000, 'k');  // a response key longer than LMDB keys may be
  pulls.note("sha256:a", 10);
  pulls.note(long_key, 20);
  EXPECT_EQ(pulls.flush_to(*meta_), 2u);
  EXPECT_EQ(pulls.flush_to(*meta_), 0u);
  meta_.reset();
  meta_ = MetaStore::open(dir_ / "lmdb", 64 << 20);
  EXPECT_EQ(meta_->get_pull_time("sha256:a"), 10);
  EXPECT_EQ(meta_->get_pull_time(long_key), 20);
  EXPECT_EQ(meta_->get_pull_time("sha256:b"), std::nullopt);
  EXPECT_EQ(meta_->list_pull_times().size(), 2u);
}

TEST_F(PullTimesTest, AStoredTimeNeverMovesBack) {
  PullTime newer{"sha256:a", 50};
  meta_->put_pull_times(std::span(&newer, 1));
  PullTime older{"sha256:a", 40};
  meta_->put_pull_times(std::span(&older, 1));
  EXPECT_EQ(meta_->get_pull_time("sha256:a"), 50);
}

TEST_F(PullTimesTest, AFailedFlushIsTriedAgain) {
  // A store too small for the batch: the commit fails with MDB_MAP_FULL.
  meta_.reset();
  meta_ = MetaStore::open(dir_ / "small", 256 << 10);
  PullTimes pulls;
  constexpr int keys = 5000;
  for (int i = 0; i < keys; ++i) pulls.note("sha256:" + std::string(60, 'a') + std::to_string(i), i);
  EXPECT_THROW(pulls.flush_to(*meta_), std::runtime_error);
  EXPECT_EQ(meta_->list_pull_times().size(), 0u);
  EXPECT_EQ(pulls.take_noted().size(), std::size_t(keys));
}

}  // namespace
}  // namespace pullgate::cache
