// MetaStore on a real LMDB environment in a fresh temp directory per test.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cache/lmdb.hpp"
#include "cache/meta_store.hpp"

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t map_size = 64 << 20;

Digest digest(char fill) { return Digest::parse("sha256:" + std::string(64, fill)).value(); }

class MetaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pullgate-meta-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes a raw value with plain LMDB, bypassing the store's encoding.
  void write_raw(const char* db, std::string_view key, std::string_view value) {
    MDB_env* raw = nullptr;
    lmdb::check(mdb_env_create(&raw), "create");
    lmdb::Env env(raw);
    lmdb::check(mdb_env_set_maxdbs(env.get(), 16), "maxdbs");
    lmdb::check(mdb_env_set_mapsize(env.get(), map_size), "mapsize");
    lmdb::check(mdb_env_open(env.get(), dir_.c_str(), MDB_NOTLS, 0640), "open");
    auto txn = lmdb::Txn::write(env.get());
    MDB_dbi dbi = txn.open_dbi(db, MDB_CREATE);
    txn.put(dbi, key, value, "raw put");
    txn.commit();
  }

  fs::path dir_;
};

TEST_F(MetaStoreTest, CreatesEnvironmentFiles) {
  auto store = MetaStore::open(dir_ / "meta", map_size);
  EXPECT_TRUE(fs::exists(dir_ / "meta" / "data.mdb"));
  EXPECT_TRUE(fs::exists(dir_ / "meta" / "lock.mdb"));
}

TEST_F(MetaStoreTest, AbsentRecordsAreNullopt) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_FALSE(store->get_tag("docker.io", "library/alpine", "latest"));
  EXPECT_FALSE(store->get_manifest(digest('a')));
  EXPECT_FALSE(store->get_blob(digest('a')));
  EXPECT_FALSE(store->get_response("tags/list"));
  EXPECT_EQ(store->manifest_count(), 0u);
  EXPECT_EQ(store->blob_count(), 0u);
}

TEST_F(MetaStoreTest, TagRoundTripAndOverwrite) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_tag("docker.io", "library/alpine", "latest",
                 TagRecord{digest('a'), "application/vnd.oci.image.index.v1+json", 1700000000000});
  auto tag = store->get_tag("docker.io", "library/alpine", "latest");
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->digest, digest('a'));
  EXPECT_EQ(tag->media_type, "application/vnd.oci.image.index.v1+json");
  EXPECT_EQ(tag->fetched_at_ms, 1700000000000);

  store->put_tag("docker.io", "library/alpine", "latest", TagRecord{digest('b'), "x", 5});
  EXPECT_EQ(store->get_tag("docker.io", "library/alpine", "latest")->digest, digest('b'));
  // Other upstreams, repositories and tags are separate keys.
  EXPECT_FALSE(store->get_tag("ghcr.io", "library/alpine", "latest"));
  EXPECT_FALSE(store->get_tag("docker.io", "library/alpine", "3.19"));
}

TEST_F(MetaStoreTest, TagKeysDoNotAlias) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_tag("up", "a/b", "c", TagRecord{digest('a'), "m", 1});
  EXPECT_FALSE(store->get_tag("up", "a", "b/c"));
  EXPECT_FALSE(store->get_tag("upa/b", "", "c"));
  // A NUL inside a part would make aliasing possible: refused on write, absent on read.
  using namespace std::string_view_literals;
  EXPECT_THROW(store->put_tag("up"sv, "a\0b"sv, "c"sv, TagRecord{digest('a'), "m", 1}), std::invalid_argument);
  EXPECT_FALSE(store->get_tag("up"sv, "a\0b"sv, "c"sv));
}

TEST_F(MetaStoreTest, ManifestRoundTripKeepsExactBytes) {
  auto store = MetaStore::open(dir_, map_size);
  // Not UTF-8, embedded NUL, trailing whitespace: the bytes come back untouched.
  std::string bytes = std::string("{\"schemaVersion\":2}\n\0\xff\xfe ", 25);
  store->put_manifest(digest('c'), ManifestRecord{"application/vnd.oci.image.manifest.v1+json", bytes, 42});
  auto manifest = store->get_manifest(digest('c'));
  ASSERT_TRUE(manifest);
  EXPECT_EQ(manifest->bytes, bytes);
  EXPECT_EQ(manifest->media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(manifest->stored_at_ms, 42);
  EXPECT_EQ(store->manifest_count(), 1u);

  // Every length modulo 3 survives the base64 round trip.
  for (std::size_t n = 0; n < 7; ++n) {
    std::string b(n, '\x80');
    store->put_manifest(digest('d'), ManifestRecord{"m", b, 0});
    EXPECT_EQ(store->get_manifest(digest('d'))->bytes, b);
  }
  EXPECT_EQ(store->manifest_count(), 2u);
}

TEST_F(MetaStoreTest, BlobRoundTripRemoveAndCount) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_blob(digest('1'), BlobRecord{123456789012ull, 10, 20});
  store->put_blob(digest('2'), BlobRecord{1, 30, 40});
  auto blob = store->get_blob(digest('1'));
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->size, 123456789012ull);
  EXPECT_EQ(blob->stored_at_ms, 10);
  EXPECT_EQ(blob->last_access_ms, 20);
  EXPECT_EQ(store->blob_count(), 2u);

  store->remove_blob(digest('1'));
  EXPECT_FALSE(store->get_blob(digest('1')));
  EXPECT_EQ(store->blob_count(), 1u);
  store->remove_blob(digest('1'));  // removing an absent blob is fine
  EXPECT_EQ(store->blob_count(), 1u);
}

TEST_F(MetaStoreTest, TouchBlobCoalescesWithinAMinute) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_blob(digest('1'), BlobRecord{5, 1000, 1000});
  store->touch_blob(digest('1'), 1000 + 59'999);
  EXPECT_EQ(store->get_blob(digest('1'))->last_access_ms, 1000);
  store->touch_blob(digest('1'), 1000 + 60'000);
  EXPECT_EQ(store->get_blob(digest('1'))->last_access_ms, 61'000);
  // A clock that went backwards never moves last access back.
  store->touch_blob(digest('1'), 0);
  EXPECT_EQ(store->get_blob(digest('1'))->last_access_ms, 61'000);
  // Size and stored time are untouched.
  EXPECT_EQ(store->get_blob(digest('1'))->size, 5u);
  EXPECT_EQ(store->get_blob(digest('1'))->stored_at_ms, 1000);
  // Touching an unknown blob creates nothing.
  store->touch_blob(digest('9'), 1'000'000);
  EXPECT_FALSE(store->get_blob(digest('9')));
}

TEST_F(MetaStoreTest, ResponseRoundTripIncludingLongKeys) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_response("docker.io/library/alpine/tags/list?n=100",
                      CachedResponse{"application/json", "{\"tags\":[\"latest\"]}", 77});
  auto response = store->get_response("docker.io/library/alpine/tags/list?n=100");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->content_type, "application/json");
  EXPECT_EQ(response->body, "{\"tags\":[\"latest\"]}");
  EXPECT_EQ(response->fetched_at_ms, 77);

  // Keys beyond LMDB's key limit still work and stay distinct.
  std::string long_a(2000, 'a');
  std::string long_b = long_a + "b";
  store->put_response(long_a, CachedResponse{"t", "A", 1});
  store->put_response(long_b, CachedResponse{"t", "B", 2});
  EXPECT_EQ(store->get_response(long_a)->body, "A");
  EXPECT_EQ(store->get_response(long_b)->body, "B");
  // Empty key and a key starting with NUL are distinct too.
  using namespace std::string_view_literals;
  store->put_response(""sv, CachedResponse{"t", "empty", 3});
  store->put_response("\0x"sv, CachedResponse{"t", "nul", 4});
  EXPECT_EQ(store->get_response(""sv)->body, "empty");
  EXPECT_EQ(store->get_response("\0x"sv)->body, "nul");
  EXPECT_FALSE(store->get_response("x"sv));
}

TEST_F(MetaStoreTest, InvalidUtf8TextFieldIsRefusedNotStored) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_THROW(store->put_manifest(digest('a'), ManifestRecord{"bad\xff", "{}", 0}), std::invalid_argument);
  EXPECT_FALSE(store->get_manifest(digest('a')));
}

TEST_F(MetaStoreTest, RecordsSurviveReopen) {
  {
    auto store = MetaStore::open(dir_, map_size);
    store->put_tag("u", "r", "t", TagRecord{digest('e'), "m", 9});
    store->put_blob(digest('e'), BlobRecord{3, 4, 5});
  }
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_EQ(store->get_tag("u", "r", "t")->digest, digest('e'));
  EXPECT_EQ(store->get_blob(digest('e'))->size, 3u);
}

TEST_F(MetaStoreTest, CorruptRecordsAreAbsent) {
  MetaStore::open(dir_, map_size).reset();  // create the environment
  const std::string key = digest('f').str();
  write_raw("manifests", key, "not json at all");
  write_raw("blobs", key, R"({"v":1,"size":"big","stored_at_ms":1,"last_access_ms":1})");
  write_raw("tags", std::string("u\0r\0t", 5), R"({"v":1,"digest":"md5:abc","media_type":"m","fetched_at_ms":1})");
  write_raw("responses", "k1", R"({"v":1,"content_type":"t","body_base64":"@@@@","fetched_at_ms":1})");
  write_raw("responses", "k2", R"({"v":2,"content_type":"t","body_base64":"","fetched_at_ms":1})");
  write_raw("responses", "k3", R"([1,2,3])");
  write_raw("responses", "k4", R"({"v":1,"content_type":"t","fetched_at_ms":1})");

  auto store = MetaStore::open(dir_, map_size);
  EXPECT_FALSE(store->get_manifest(digest('f')));
  EXPECT_FALSE(store->get_blob(digest('f')));
  EXPECT_FALSE(store->get_tag("u", "r", "t"));
  EXPECT_FALSE(store->get_response("k1"));
  EXPECT_FALSE(store->get_response("k2"));
  EXPECT_FALSE(store->get_response("k3"));
  EXPECT_FALSE(store->get_response("k4"));
  // touch on a corrupt blob record leaves it alone rather than inventing one.
  store->touch_blob(digest('f'), 1'000'000);
  EXPECT_FALSE(store->get_blob(digest('f')));
  // A fresh write replaces the corrupt record.
  store->put_manifest(digest('f'), ManifestRecord{"m", "{}", 1});
  EXPECT_EQ(store->get_manifest(digest('f'))->bytes, "{}");
}

TEST_F(MetaStoreTest, NewerSchemaIsRefused) {
  MetaStore::open(dir_, map_size).reset();
  write_raw("meta", "schema_version", R"({"schema_version":2})");
  try {
    MetaStore::open(dir_, map_size);
    FAIL() << "a newer schema version was opened";
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("schema version 2"), std::string::npos) << message;
    EXPECT_NE(message.find("newer"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST_F(MetaStoreTest, UnreadableSchemaIsRefused) {
  MetaStore::open(dir_, map_size).reset();
  write_raw("meta", "schema_version", "garbage");
  EXPECT_THROW(MetaStore::open(dir_, map_size), std::runtime_error);
}

TEST_F(MetaStoreTest, NotAnLmdbFileIsRefused) {
  std::ofstream(dir_ / "data.mdb") << std::string(8192, 'x');
  try {
    MetaStore::open(dir_, map_size);
    FAIL() << "garbage data.mdb was opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos) << e.what();
  }
}

TEST_F(MetaStoreTest, UnusableDirectoryIsRefused) {
  std::ofstream(dir_ / "file") << "x";
  try {
    MetaStore::open(dir_ / "file" / "meta", map_size);
    FAIL() << "a directory under a regular file was opened";
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("is not writable"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST_F(MetaStoreTest, MapFullIsAClearErrorAndTheStoreStaysUsable) {
  auto store = MetaStore::open(dir_, 64 << 10);
  try {
    store->put_manifest(digest('a'), ManifestRecord{"m", std::string(1 << 20, 'x'), 1});
    FAIL() << "a 1 MiB manifest fit a 64 KiB map";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("full"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(store->get_manifest(digest('a')));
  store->put_manifest(digest('b'), ManifestRecord{"m", "{}", 1});
  EXPECT_EQ(store->get_manifest(digest('b'))->bytes, "{}");
}

TEST_F(MetaStoreTest, SecondProcessSharesTheEnvironment) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_tag("u", "parent", "t", TagRecord{digest('a'), "m", 1});

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child opens its own environment (LMDB forbids using the parent's
    // after fork) while the parent keeps its own open, like the CLI next to the server.
    int code = 0;
    try {
      auto own = MetaStore::open(dir_, map_size);
      if (!own->get_tag("u", "parent", "t")) code = 2;
      own->put_tag("u", "child", "t", TagRecord{digest('b'), "m", 2});
      own.reset();
    } catch (...) {
      code = 3;
    }
    ::_exit(code);  // no destructors: the parent's environment is not ours to close
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  auto tag = store->get_tag("u", "child", "t");
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->digest, digest('b'));
  EXPECT_EQ(tag->fetched_at_ms, 2);
}

// A warm blob hit must not queue behind a writer: while another process holds
// the write lock, reads and a touch within the coalescing window still return.
TEST_F(MetaStoreTest, WarmTouchDoesNotWaitForTheWriter) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_blob(digest('1'), BlobRecord{5, 1000, 1000});

  int locked[2];
  int done[2];
  ASSERT_EQ(::pipe(locked), 0);
  ASSERT_EQ(::pipe(done), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    MDB_env* env = nullptr;
    MDB_txn* txn = nullptr;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
        mdb_env_open(env, dir_.c_str(), MDB_NOTLS, 0640) != 0 || mdb_txn_begin(env, nullptr, 0, &txn) != 0) {
      ::_exit(2);
    }
    (void)!::write(locked[1], "L", 1);
    // Hold the write lock until the parent is done, at most 10 s.
    pollfd wait_for{done[0], POLLIN, 0};
    if (::poll(&wait_for, 1, 10'000) != 1) code = 4;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    ::_exit(code);
  }
  char byte = 0;
  ASSERT_EQ(::read(locked[0], &byte, 1), 1);

  store->touch_blob(digest('1'), 1000 + 30'000);  // inside the window: read only
  EXPECT_EQ(store->get_blob(digest('1'))->last_access_ms, 1000);
  EXPECT_EQ(store->blob_count(), 1u);

  ASSERT_EQ(::write(done[1], "D", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  for (int fd : {locked[0], locked[1], done[0], done[1]}) ::close(fd);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the touch waited for the writer";
}

TEST_F(MetaStoreTest, ConcurrentThreadsShareOneStore) {
  auto store = MetaStore::open(dir_, map_size);
  constexpr int threads = 4;
  constexpr int per_thread = 50;
  std::atomic<int> mismatches{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      try {
        for (int i = 0; i < per_thread; ++i) {
          auto d = registry::digest_of(registry::DigestAlgorithm::sha256, std::to_string(t * per_thread + i));
          store->put_blob(d, BlobRecord{std::uint64_t(i), i, i});
          store->touch_blob(d, i + 60'000);
          auto blob = store->get_blob(d);
          if (!blob || blob->size != std::uint64_t(i) || blob->last_access_ms != i + 60'000) ++mismatches;
        }
      } catch (...) {
        ++mismatches;
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(store->blob_count(), std::uint64_t(threads * per_thread));
}

}  // namespace
}  // namespace pullgate::cache
