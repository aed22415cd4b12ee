// BlobStore on a real directory: temp → publish → open, and crash leftovers.
#include <gtest/gtest.h>

#include "tests/unit/temp_dir.hpp"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cache/blob_store.hpp"

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;
using registry::DigestAlgorithm;
using registry::digest_of;

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    ASSERT_GT(n, 0);
    data.remove_prefix(std::size_t(n));
  }
}

std::string read_all(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::pread(fd, buffer, sizeof buffer, off_t(out.size()))) > 0) out.append(buffer, std::size_t(n));
  return out;
}

std::size_t entries(const fs::path& dir) {
  return std::size_t(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-blobs");
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

TEST_F(BlobStoreTest, ConstructorCreatesLayout) {
  BlobStore store(dir_ / "data");
  EXPECT_TRUE(fs::is_directory(dir_ / "data" / "blobs"));
  EXPECT_TRUE(fs::is_directory(dir_ / "data" / "tmp"));
  EXPECT_EQ(entries(dir_ / "data" / "tmp"), 0u);  // the writability probe cleaned up
  EXPECT_EQ(store.root(), dir_ / "data");
}

TEST_F(BlobStoreTest, PathForUsesFanOutAndStaysUnderRoot) {
  BlobStore store(dir_);
  auto sha256 = digest_of(DigestAlgorithm::sha256, "hello");
  auto path = store.path_for(sha256);
  std::string hex(sha256.hex());
  EXPECT_EQ(path, dir_ / "blobs" / "sha256" / hex.substr(0, 2) / hex);

  auto sha512 = digest_of(DigestAlgorithm::sha512, "hello");
  std::string hex512(sha512.hex());
  EXPECT_EQ(store.path_for(sha512), dir_ / "blobs" / "sha512" / hex512.substr(0, 2) / hex512);

  const fs::path blobs = (dir_ / "blobs").lexically_normal();
  for (const auto& d : {sha256, sha512}) {
    auto normal = store.path_for(d).lexically_normal();
    auto [root_end, _] = std::mismatch(blobs.begin(), blobs.end(), normal.begin(), normal.end());
    EXPECT_EQ(root_end, blobs.end()) << normal;
    EXPECT_EQ(normal.lexically_relative(blobs).string().find(".."), std::string::npos) << normal;
  }
}

TEST_F(BlobStoreTest, AbsentBlobIsNullopt) {
  BlobStore store(dir_);
  EXPECT_FALSE(store.open(digest_of(DigestAlgorithm::sha256, "nothing")));
}

TEST_F(BlobStoreTest, TempPublishOpen) {
  BlobStore store(dir_);
  const std::string content = "layer bytes\n" + std::string(10000, 'z');
  auto digest = digest_of(DigestAlgorithm::sha256, content);

  TempBlob temp = store.create_temp();
  ASSERT_TRUE(temp.file);
  EXPECT_EQ(temp.path.parent_path(), dir_ / "tmp");
  EXPECT_EQ(temp.path.filename().string().size(), 16u);
  EXPECT_EQ(temp.path.filename().string().find_first_not_of("0123456789abcdef"), std::string::npos);
  write_all(temp.file.get(), content);
  EXPECT_FALSE(store.open(digest));  // not visible before publish

  store.publish(temp, digest);
  EXPECT_FALSE(fs::exists(temp.path));
  EXPECT_TRUE(fs::is_regular_file(store.path_for(digest)));

  auto opened = store.open(digest);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->size, content.size());
  EXPECT_EQ(read_all(opened->file.get()), content);
  // Read-only: writing through the handle fails.
  EXPECT_LT(::write(opened->file.get(), "x", 1), 0);

  store.remove(digest);
  EXPECT_FALSE(store.open(digest));
  store.remove(digest);  // a second remove is harmless
}

TEST_F(BlobStoreTest, PublishingTheSameDigestTwiceKeepsOneBlob) {
  BlobStore store(dir_);
  auto digest = digest_of(DigestAlgorithm::sha256, "same");
  for (int i = 0; i < 2; ++i) {
    TempBlob temp = store.create_temp();
    write_all(temp.file.get(), "same");
    store.publish(temp, digest);
  }
  EXPECT_EQ(store.open(digest)->size, 4u);
  EXPECT_EQ(entries(store.path_for(digest).parent_path()), 1u);
}

TEST_F(BlobStoreTest, TempNamesAreDistinct) {
  BlobStore store(dir_);
  TempBlob a = store.create_temp();
  TempBlob b = store.create_temp();
  EXPECT_NE(a.path, b.path);
  EXPECT_NE(a.file.get(), b.file.get());
  store.discard(a);
  store.discard(b);
}

TEST_F(BlobStoreTest, DiscardRemovesTempAndNeverThrows) {
  BlobStore store(dir_);
  TempBlob temp = store.create_temp();
  write_all(temp.file.get(), "half a layer");
  store.discard(temp);
  EXPECT_FALSE(fs::exists(temp.path));
  EXPECT_EQ(entries(dir_ / "tmp"), 0u);
  store.discard(temp);  // already gone: still no throw
}

TEST_F(BlobStoreTest, PublishFailureIsASystemError) {
  BlobStore store(dir_);
  TempBlob temp = store.create_temp();
  auto digest = digest_of(DigestAlgorithm::sha256, "x");
  fs::remove(temp.path);  // the temp file vanished under us
  EXPECT_THROW(store.publish(temp, digest), std::system_error);
  EXPECT_FALSE(store.open(digest));
}

TEST_F(BlobStoreTest, CrashLeftoversAreClearedAndNeverVisible) {
  auto content = std::string("partial download");
  auto digest = digest_of(DigestAlgorithm::sha256, content);
  fs::path leftover;
  {
    BlobStore store(dir_);
    TempBlob temp = store.create_temp();
    write_all(temp.file.get(), content);
    leftover = temp.path;
    EXPECT_FALSE(store.open(digest));
    // "Crash": neither publish nor discard.
  }
  // A leftover named like the blob itself, and a stray directory.
  std::ofstream(dir_ / "tmp" / std::string(digest.hex())) << content;
  fs::create_directories(dir_ / "tmp" / "stray" / "deeper");
  ASSERT_TRUE(fs::exists(leftover));

  BlobStore reopened(dir_);
  EXPECT_FALSE(fs::exists(leftover));
  EXPECT_EQ(entries(dir_ / "tmp"), 0u);
  EXPECT_FALSE(reopened.open(digest));
}

TEST_F(BlobStoreTest, PublishedBlobsSurviveReopen) {
  auto digest = digest_of(DigestAlgorithm::sha256, "kept");
  {
    BlobStore store(dir_);
    TempBlob temp = store.create_temp();
    write_all(temp.file.get(), "kept");
    store.publish(temp, digest);
  }
  BlobStore reopened(dir_);
  EXPECT_EQ(reopened.open(digest)->size, 4u);
}

TEST_F(BlobStoreTest, DirectoryInPlaceOfABlobIsNotABlob) {
  BlobStore store(dir_);
  auto digest = digest_of(DigestAlgorithm::sha256, "dir");
  fs::create_directories(store.path_for(digest));
  EXPECT_FALSE(store.open(digest));
}

TEST_F(BlobStoreTest, UnusableRootIsAOneLineError) {
  std::ofstream(dir_ / "file") << "x";
  try {
    BlobStore store(dir_ / "file" / "data");
    FAIL() << "a root under a regular file was accepted";
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    EXPECT_EQ(message.rfind("data directory " + (dir_ / "file" / "data").string() + " is not writable: ", 0), 0u)
        << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST_F(BlobStoreTest, FileHandleClosesAndMoves) {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  {
    FileHandle a(fd);
    FileHandle b(std::move(a));
    EXPECT_FALSE(a);
    EXPECT_EQ(b.get(), fd);
    FileHandle c;
    c = std::move(b);
    EXPECT_EQ(c.get(), fd);
    EXPECT_FALSE(b);
  }
  struct stat st {};
  EXPECT_NE(::fstat(fd, &st), 0);  // closed exactly once, by the last owner
}

}  // namespace
}  // namespace pullgate::cache
