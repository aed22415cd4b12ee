// BlobFetches and BlobFill with a scripted upstream: one download per digest, the
// held-back last byte, and nothing published unless the digest checks out.
#include "cache/blob_fetch.hpp"

#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/fields.hpp>

#include <filesystem>
#include <random>

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;
using registry::DigestAlgorithm;

struct Script {
  unsigned status = 200;
  std::optional<std::uint64_t> content_length;
  std::vector<std::string> chunks;
  bool reset_after_chunks = false;  // throw instead of a clean end
};

class ScriptedResponse final : public registry::UpstreamResponse {
 public:
  explicit ScriptedResponse(Script script) : script_(std::move(script)) {}
  unsigned status() const override { return script_.status; }
  const registry::http::fields& headers() const override { return headers_; }
  std::optional<std::uint64_t> content_length() const override { return script_.content_length; }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer) override {
    if (next_ == script_.chunks.size()) {
      if (script_.reset_after_chunks) throw registry::UpstreamError(registry::UpstreamError::Kind::protocol, "reset");
      co_return 0;
    }
    auto& chunk = script_.chunks[next_];
    auto n = std::min(buffer.size(), chunk.size() - offset_);
    std::memcpy(buffer.data(), chunk.data() + offset_, n);
    offset_ += n;
    if (offset_ == chunk.size()) ++next_, offset_ = 0;
    co_return n;
  }

 private:
  Script script_;
  registry::http::fields headers_;
  std::size_t next_ = 0, offset_ = 0;
};

class ScriptedUpstream final : public registry::Upstream {
 public:
  explicit ScriptedUpstream(Script script) : script_(std::move(script)) { settings_.name = "scripted"; }
  const registry::UpstreamSettings& settings() const override { return settings_; }
  asio::awaitable<std::unique_ptr<registry::UpstreamResponse>> send(registry::UpstreamRequest request) override {
    ++requests;
    last_target = request.target;
    co_return std::make_unique<ScriptedResponse>(script_);
  }
  int requests = 0;
  std::string last_target;

 private:
  Script script_;
  registry::UpstreamSettings settings_;
};

class BlobFetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("pullgate-fetch-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(std::random_device{}()));
    blobs_ = std::make_unique<BlobStore>(root_);
    meta_ = MetaStore::open(root_ / "lmdb", 64 << 20);
    fetches_ = std::make_unique<BlobFetches>(*blobs_, *meta_, ioc_.get_executor());
  }
  void TearDown() override {
    fetches_.reset();
    meta_.reset();
    blobs_.reset();
    fs::remove_all(root_);
  }
  static std::string bytes(std::size_t n, char seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
    return s;
  }
  std::size_t temp_files() const {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(root_ / "tmp"), fs::directory_iterator()));
  }

  fs::path root_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<BlobFetches> fetches_;
  asio::io_context ioc_;
};

TEST_F(BlobFetchTest, ConcurrentJoinsShareOneDownloadAndPublishVerifiedBytes) {
  auto body = bytes(300'000, 'a');
  auto digest = registry::digest_of(DigestAlgorithm::sha256, body);
  ScriptedUpstream upstream({200, body.size(), {body.substr(0, 100'000), body.substr(100'000)}});

  auto first = fetches_->join_or_start(digest, upstream, "/v2/r/blobs/" + digest.str(), "s", ioc_.get_executor());
  auto second = fetches_->join_or_start(digest, upstream, "/v2/r/blobs/" + digest.str(), "s", ioc_.get_executor());
  EXPECT_EQ(first, second);
  EXPECT_EQ(fetches_->in_flight(), 1u);
  ioc_.run();

  EXPECT_EQ(upstream.requests, 1);
  EXPECT_EQ(fetches_->started(), 1u);
  EXPECT_EQ(fetches_->in_flight(), 0u);
  auto status = first->status();
  EXPECT_EQ(status.state, BlobFill::State::complete) << status.error;
  EXPECT_EQ(first->sendable(body.size()), body.size());
  auto opened = blobs_->open(digest);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->size, body.size());
  auto record = meta_->get_blob(digest);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->size, body.size());
  // The fill's descriptor still reads the published bytes.
  std::string readback(body.size(), '\0');
  ASSERT_EQ(::pread(first->fd(), readback.data(), readback.size(), 0), static_cast<ssize_t>(body.size()));
  EXPECT_EQ(readback, body);
  EXPECT_EQ(temp_files(), 0u);
}

TEST_F(BlobFetchTest, DigestMismatchPublishesNothingAndFails) {
  auto body = bytes(50'000, 'b');
  auto digest = registry::digest_of(DigestAlgorithm::sha256, bytes(50'000, 'c'));
  ScriptedUpstream upstream({200, body.size(), {body}});
  auto fill = fetches_->join_or_start(digest, upstream, "/t", "s", ioc_.get_executor());
  ioc_.run();
  auto status = fill->status();
  EXPECT_EQ(status.state, BlobFill::State::failed);
  EXPECT_NE(status.error.find("digest mismatch"), std::string::npos) << status.error;
  EXPECT_LT(fill->sendable(body.size()), body.size());
  EXPECT_FALSE(blobs_->open(digest));
  EXPECT_FALSE(meta_->get_blob(digest));
  EXPECT_EQ(temp_files(), 0u);
}

TEST_F(BlobFetchTest, ShortBodyResetAndOverlongBodyFail) {
  auto body = bytes(10'000, 'd');
  auto digest = registry::digest_of(DigestAlgorithm::sha256, body);
  std::vector<Script> scripts = {
      {200, body.size() + 1, {body}},                    // ends before Content-Length
      {200, body.size(), {body.substr(0, 5000)}, true},  // reset mid-body
      {200, 5000, {body}},                               // more than Content-Length
  };
  for (auto& script : scripts) {
    ScriptedUpstream upstream(script);
    auto fill = fetches_->join_or_start(digest, upstream, "/t", "s", ioc_.get_executor());
    ioc_.restart();
    ioc_.run();
    EXPECT_EQ(fill->status().state, BlobFill::State::failed);
    EXPECT_FALSE(blobs_->open(digest));
    EXPECT_EQ(temp_files(), 0u);
  }
}

TEST_F(BlobFetchTest, TheLastByteWaitsForVerificationNotForTheDisk) {
  // Publishing (fsync, rename, directory fsync, LMDB record) runs on the blocking-work
  // executor: held here, the fill is verified and every byte sendable while nothing is
  // published yet; a joiner meanwhile shares the fill. Then it is published.
  asio::io_context blocking;
  BlobFetches fetches(*blobs_, *meta_, blocking.get_executor());
  std::vector<std::pair<unsigned, std::uint64_t>> reports;  // status, bytes
  fetches.on_download_end = [&](const std::string&, unsigned status, std::uint64_t bytes) {
    reports.emplace_back(status, bytes);
  };
  auto body = bytes(200'000, 'p');
  auto digest = registry::digest_of(DigestAlgorithm::sha256, body);
  ScriptedUpstream upstream({200, body.size(), {body.substr(0, 70'000), body.substr(70'000)}});
  const std::string target = "/v2/r/blobs/" + digest.str();
  auto fill = fetches.join_or_start(digest, upstream, target, "s", ioc_.get_executor());
  // Polled, never run: the download's end waits for `blocking`, so run() would not return.
  for (int steps = 0; steps < 1000 && ioc_.poll() > 0;) ++steps;
  ASSERT_EQ(fill->status().state, BlobFill::State::complete) << fill->status().error;
  EXPECT_EQ(fill->sendable(body.size()), body.size());
  EXPECT_FALSE(blobs_->open(digest));
  EXPECT_FALSE(meta_->get_blob(digest));
  EXPECT_EQ(temp_files(), 1u);
  EXPECT_EQ(fetches.join_or_start(digest, upstream, target, "s", ioc_.get_executor()), fill);
  EXPECT_EQ(upstream.requests, 1);
  // The upstream request is over and counted (metrics), whatever the disk does next.
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], std::make_pair(200u, std::uint64_t{body.size()}));

  blocking.run();  // the publish
  ioc_.restart();
  ioc_.run();      // the download's end
  auto opened = blobs_->open(digest);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->size, body.size());
  ASSERT_TRUE(meta_->get_blob(digest));
  EXPECT_EQ(meta_->get_blob(digest)->size, body.size());
  EXPECT_EQ(fetches.in_flight(), 0u);
  EXPECT_EQ(temp_files(), 0u);
  EXPECT_EQ(reports.size(), 1u);  // once
}

TEST_F(BlobFetchTest, UpstreamRefusalCarriesItsStatus) {
  auto digest = registry::digest_of(DigestAlgorithm::sha256, "x");
  ScriptedUpstream upstream({404, std::nullopt, {}});
  auto fill = fetches_->join_or_start(digest, upstream, "/v2/r/blobs/" + digest.str(), "s", ioc_.get_executor());
  ioc_.run();
  auto status = fill->status();
  EXPECT_EQ(status.state, BlobFill::State::failed);
  EXPECT_EQ(status.upstream_status, 404u);
  EXPECT_EQ(status.written, 0u);
}

TEST_F(BlobFetchTest, ABlobTheDiskCannotHoldFailsBeforeAnyByte) {
  struct statvfs fs_info {};
  ASSERT_EQ(::statvfs(root_.c_str(), &fs_info), 0);
  const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs_info.f_bavail) * fs_info.f_frsize;
  // Twice the free space (a disk that cannot hold it), and a size no file can have.
  for (std::uint64_t size : {free_bytes * 2 + (1u << 30), std::uint64_t{1} << 62}) {
    Script script;
    script.content_length = size;
    script.chunks = {bytes(4096, 'n')};
    ScriptedUpstream upstream(script);
    auto digest = registry::digest_of(DigestAlgorithm::sha256, "never stored " + std::to_string(size));
    auto fill = fetches_->join_or_start(digest, upstream, "/v2/r/blobs/" + digest.str(), "s", ioc_.get_executor());
    ioc_.run();
    ioc_.restart();
    auto status = fill->status();
    EXPECT_EQ(status.state, BlobFill::State::failed) << size;
    EXPECT_NE(status.error.find("no room on the mirror's disk"), std::string::npos) << status.error;
    EXPECT_TRUE(status.local);
    EXPECT_EQ(status.written, 0u);
    EXPECT_EQ(temp_files(), 0u);
    EXPECT_FALSE(blobs_->open(digest));
  }
}

TEST_F(BlobFetchTest, BlobsOverTheLimitAreRefusedWithOrWithoutContentLength) {
  const std::uint64_t limit = 64 * 1024;
  fetches_ = std::make_unique<BlobFetches>(*blobs_, *meta_, ioc_.get_executor(), BlobLimits{limit, 0});
  auto body = bytes(200'000, 'L');
  auto digest = registry::digest_of(DigestAlgorithm::sha256, body);
  // Announced: refused before a byte is read. Streamed without a size: refused as
  // soon as it passes the limit, not when (if ever) it ends.
  using Length = std::optional<std::uint64_t>;
  for (Length length : {Length(body.size()), Length()}) {
    SCOPED_TRACE(length ? "Content-Length" : "chunked");
    ScriptedUpstream upstream({200, length, {body.substr(0, 50'000), body.substr(50'000, 50'000), body.substr(100'000)}});
    auto fill = fetches_->join_or_start(digest, upstream, "/t", "s", ioc_.get_executor());
    ioc_.restart();
    ioc_.run();
    auto status = fill->status();
    EXPECT_EQ(status.state, BlobFill::State::failed);
    EXPECT_NE(status.error.find("65536 bytes a blob may have on this mirror"), std::string::npos) << status.error;
    EXPECT_LE(status.written, limit);
    EXPECT_FALSE(blobs_->open(digest));
    EXPECT_FALSE(meta_->get_blob(digest));
    EXPECT_EQ(temp_files(), 0u);
  }
  // A blob of exactly the limit is stored, announced or not.
  auto fits = bytes(limit, 'F');
  auto fits_digest = registry::digest_of(DigestAlgorithm::sha256, fits);
  for (Length length : {Length(limit), Length()}) {
    ScriptedUpstream upstream({200, length, {fits}});
    auto fill = fetches_->join_or_start(fits_digest, upstream, "/t", "s", ioc_.get_executor());
    ioc_.restart();
    ioc_.run();
    EXPECT_EQ(fill->status().state, BlobFill::State::complete) << fill->status().error;
    EXPECT_TRUE(blobs_->open(fits_digest));
    blobs_->remove(fits_digest);
  }
}

TEST_F(BlobFetchTest, ABlobOfUnknownSizeStopsAtTheFreeSpaceReserve) {
  struct statvfs fs_info {};
  ASSERT_EQ(::statvfs(root_.c_str(), &fs_info), 0);
  const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs_info.f_bavail) * fs_info.f_frsize;
  // A reserve larger than the free space: not one byte of an unannounced blob fits.
  fetches_ = std::make_unique<BlobFetches>(*blobs_, *meta_, ioc_.get_executor(), BlobLimits{std::numeric_limits<std::uint64_t>::max(),
                                                                       free_bytes * 2 + (1u << 30)});
  auto body = bytes(100'000, 'R');
  auto digest = registry::digest_of(DigestAlgorithm::sha256, body);
  ScriptedUpstream upstream({200, std::nullopt, {body}});
  auto fill = fetches_->join_or_start(digest, upstream, "/t", "s", ioc_.get_executor());
  ioc_.run();
  auto status = fill->status();
  EXPECT_EQ(status.state, BlobFill::State::failed);
  EXPECT_NE(status.error.find("no room on the mirror's disk"), std::string::npos) << status.error;
  EXPECT_TRUE(status.local);
  EXPECT_EQ(status.written, 0u);
  EXPECT_FALSE(blobs_->open(digest));
  EXPECT_EQ(temp_files(), 0u);
}

TEST(BlobFill, HoldsBackTheLastByteOfEveryResponseUntilVerified) {
  auto digest = registry::digest_of(DigestAlgorithm::sha256, "y");
  BlobFill fill(digest);
  EXPECT_EQ(fill.sendable(100), 0u);  // connecting
  fill.set_streaming(100, FileHandle(::dup(0)));
  fill.add_written(40);
  EXPECT_EQ(fill.sendable(100), 40u);
  EXPECT_EQ(fill.sendable(41), 40u);  // a range ending at byte 40 waits for it
  EXPECT_EQ(fill.sendable(30), 29u);  // a range ending at byte 29: its last byte waits too
  fill.add_written(60);
  EXPECT_EQ(fill.sendable(100), 99u);
  fill.set_complete();
  EXPECT_EQ(fill.sendable(100), 100u);
}

TEST(BlobFill, WaitForChangeWakesOnProgress) {
  asio::io_context ioc;
  auto digest = registry::digest_of(DigestAlgorithm::sha256, "z");
  BlobFill fill(digest);
  bool woke = false;
  auto seen = fill.status();
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    co_await fill.wait_for_change(seen);
    woke = true;
  }, asio::detached);
  ioc.run_one();  // the waiter is now parked
  EXPECT_FALSE(woke);
  fill.set_streaming(10, FileHandle(::dup(0)));
  ioc.run_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(woke);
  EXPECT_EQ(fill.status().state, BlobFill::State::streaming);
}

}  // namespace
}  // namespace pullgate::cache
