// MetaStore on a real LMDB environment in a fresh temp directory per test.
#include <gtest/gtest.h>

#include "tests/unit/temp_dir.hpp"
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cache/lmdb.hpp"
#include "cache/meta_store.hpp"

// AddressSanitizer (gcc defines __SANITIZE_ADDRESS__, clang has the feature).
#if defined(__SANITIZE_ADDRESS__)
#define PULLGATE_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PULLGATE_UNDER_ASAN 1
#endif
#endif
#ifndef PULLGATE_UNDER_ASAN
#define PULLGATE_UNDER_ASAN 0
#endif

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t map_size = 64 << 20;

Digest digest(char fill) { return Digest::parse("sha256:" + std::string(64, fill)).value(); }

// A distinct digest per number: "sha256:f000…0042".
Digest numbered(int n) {
  auto text = std::to_string(n);
  return Digest::parse("sha256:f" + std::string(63 - text.size(), '0') + text).value();
}

// Runs body in a forked child, which opens its own environment (LMDB forbids using
// the parent's after fork) as the CLI does next to the server, and exits without
// destructors. Returns its exit code: body's result, 3 when body threw, -1 when the
// child did not exit normally.
int exit_code_of_child(const std::function<int()>& body) {
  pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) {
    int code = 0;
    try {
      code = body();
    } catch (...) {
      code = 3;
    }
    ::_exit(code);  // the parent's environment is not ours to close
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

class MetaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-meta");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The store's environment opened with plain LMDB, bypassing the store.
  lmdb::Env raw_env() {
    MDB_env* raw = nullptr;
    lmdb::check(mdb_env_create(&raw), "create");
    lmdb::Env env(raw);
    lmdb::check(mdb_env_set_maxdbs(env.get(), 16), "maxdbs");
    lmdb::check(mdb_env_set_mapsize(env.get(), map_size), "mapsize");
    lmdb::check(mdb_env_open(env.get(), dir_.c_str(), MDB_NOTLS, 0640), "open");
    return env;
  }

  // Writes a raw value, bypassing the store's encoding.
  void write_raw(const char* db, std::string_view key, std::string_view value) {
    auto env = raw_env();
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

TEST_F(MetaStoreTest, ABatchIsOneTransaction) {
  // A cold pull by tag: the tag, the manifest with its references and where it was
  // seen go in one synced commit, not one per record.
  auto store = MetaStore::open(dir_, map_size);
  const auto before = store->generation();
  ManifestBatch batch;
  batch.upstream = "u";
  batch.repository = "r";
  batch.tag = ManifestBatch::Tag{"t", TagRecord{digest('a'), "m", 7}};
  batch.manifest = ManifestBatch::Manifest{digest('a'), ManifestRecord{"m", "{}", 8}, {digest('b'), digest('c')}};
  batch.seen = {digest('a'), digest('d')};
  store->write(batch);
  EXPECT_EQ(store->generation(), before + 1);
  EXPECT_EQ(store->get_tag("u", "r", "t")->digest, digest('a'));
  EXPECT_EQ(store->get_manifest(digest('a'))->bytes, "{}");
  EXPECT_EQ(store->referenced_by(digest('b'), 10), std::vector<Digest>{digest('a')});
  EXPECT_EQ(store->referenced_by(digest('c'), 10), std::vector<Digest>{digest('a')});
  EXPECT_TRUE(store->seen_in(digest('a'), "u", "r"));
  EXPECT_TRUE(store->seen_in(digest('d'), "u", "r"));
  EXPECT_FALSE(store->seen_in(digest('a'), "u", "other"));

  // Nothing new (only pairs seen already): no write at all.
  ManifestBatch known;
  known.upstream = "u";
  known.repository = "r";
  known.seen = {digest('d')};
  store->write(known);
  EXPECT_EQ(store->generation(), before + 1);

  // A refused part refuses the whole batch: nothing of it is written.
  ManifestBatch bad = batch;
  bad.tag->name = std::string("t\0x", 3);
  bad.manifest->digest = digest('e');
  EXPECT_THROW(store->write(bad), std::invalid_argument);
  EXPECT_FALSE(store->get_manifest(digest('e')));
  EXPECT_EQ(store->generation(), before + 1);

  // store_manifest: the manifest and its references in one transaction.
  registry::ParsedManifest parsed;
  parsed.blobs.push_back(registry::Descriptor{"layer", digest('f'), 1, std::nullopt, ""});
  store_manifest(*store, digest('7'), ManifestRecord{"m", "[]", 9}, parsed);
  EXPECT_EQ(store->generation(), before + 2);
  EXPECT_EQ(store->referenced_by(digest('f'), 10), std::vector<Digest>{digest('7')});
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
  // A fresh write replaces the corrupt record.
  store->put_manifest(digest('f'), ManifestRecord{"m", "{}", 1});
  EXPECT_EQ(store->get_manifest(digest('f'))->bytes, "{}");
}

TEST_F(MetaStoreTest, AVerdictWrittenBeforeScopesReadsWithNoScope) {
  // Computed verdicts gained "scope" later; an older record still reads (and, with no
  // scope, counts in none: the gate computes it again). A scope that is not a string
  // makes a bad record.
  MetaStore::open(dir_, map_size).reset();
  const std::string old_record = R"({"v":1,"decision":"allow","source":"rule","reasons":["r"],"policy_version":"p",)"
                                 R"("set_by":"","evaluated_at_ms":1,"expires_at_ms":null})";
  write_raw("verdicts", digest('a').str(), old_record);
  write_raw("verdicts", digest('b').str(), old_record.substr(0, old_record.size() - 1) + R"(,"scope":7})");
  auto store = MetaStore::open(dir_, map_size);
  auto read = store->get_verdict(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->decision, "allow");
  EXPECT_EQ(read->scope, "");
  EXPECT_FALSE(store->get_verdict(digest('b')));
}

TEST_F(MetaStoreTest, SignalsAndComputedVerdictsArePerScope) {
  auto store = MetaStore::open(dir_, map_size);
  SignalRecord found;
  found.policy_version = "p1";
  found.checked_at_ms = 5;
  found.signature = "valid";
  found.key = "ci";
  store->put_signals(digest('a'), "dev", found);
  EXPECT_EQ(store->get_signals(digest('a'), "dev")->key, "ci");
  EXPECT_FALSE(store->get_signals(digest('a'), "prod"));
  EXPECT_FALSE(store->get_signals(digest('b'), "dev"));

  store->put_verdict(digest('a'), VerdictRecord{"allow", "rule", {"r"}, "p1", "", 1, std::nullopt, "dev"});
  store->put_verdict(digest('a'), VerdictRecord{"deny", "rule", {"r"}, "p1", "", 1, std::nullopt, "prod"});
  EXPECT_EQ(store->get_verdicts_in(digest('a'), "dev").computed->decision, "allow");
  EXPECT_EQ(store->get_verdicts_in(digest('a'), "prod").computed->decision, "deny");
  EXPECT_FALSE(store->get_verdicts_in(digest('a'), "prod").manual);
  EXPECT_FALSE(store->get_verdicts_in(digest('a'), "other").computed);
  EXPECT_TRUE(store->get_verdict(digest('a')));  // one of them, for showing
  EXPECT_EQ(store->list_verdicts({}).size(), 2u);
  // A manual verdict comes first in every scope.
  store->put_verdict(digest('a'), VerdictRecord{"warn", "manual", {"m"}, "", "ops", 1, std::nullopt, ""});
  EXPECT_EQ(store->get_verdicts_in(digest('a'), "dev").manual->decision, "warn");
  EXPECT_EQ(store->get_verdicts_in(digest('a'), "dev").computed->decision, "allow");
  EXPECT_EQ(store->get_verdict(digest('a'))->source, "manual");
  EXPECT_TRUE(store->remove_computed_verdicts(digest('a')));
  EXPECT_FALSE(store->remove_computed_verdicts(digest('a')));
  EXPECT_EQ(store->list_verdicts({}).size(), 1u);
  EXPECT_TRUE(store->remove_verdict(digest('a')));
  EXPECT_TRUE(store->list_verdicts({}).empty());

  // A computed verdict stored after the digest's manual one expired takes its place
  // in what is shown; one stored while the manual one counts leaves it.
  store->put_verdict(digest('c'), VerdictRecord{"deny", "manual", {"m"}, "", "ops", 1, 10, ""});
  store->put_verdict(digest('c'), VerdictRecord{"allow", "rule", {"r"}, "p1", "", 20, std::nullopt, "dev"});
  EXPECT_EQ(store->get_verdict(digest('c'))->source, "rule");
  EXPECT_EQ(store->list_verdicts({}).size(), 1u);
  store->put_verdict(digest('c'), VerdictRecord{"deny", "manual", {"m"}, "", "ops", 30, 100, ""});
  store->put_verdict(digest('c'), VerdictRecord{"allow", "rule", {"r"}, "p1", "", 40, std::nullopt, "prod"});
  EXPECT_EQ(store->get_verdict(digest('c'))->source, "manual");
  EXPECT_EQ(store->list_verdicts({}).size(), 3u);
}

TEST_F(MetaStoreTest, WhereAManifestWasSeen) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_FALSE(store->seen_in(digest('a'), "a.io", "team/app"));
  store->mark_seen(digest('a'), "a.io", "team/app");
  auto generation = store->generation();
  store->mark_seen(digest('a'), "a.io", "team/app");  // known: no write
  EXPECT_EQ(store->generation(), generation);
  EXPECT_TRUE(store->seen_in(digest('a'), "a.io", "team/app"));
  EXPECT_FALSE(store->seen_in(digest('a'), "a.io", "team/other"));
  EXPECT_FALSE(store->seen_in(digest('a'), "b.io", "team/app"));
  EXPECT_FALSE(store->seen_in(digest('b'), "a.io", "team/app"));
  // Names that cannot be keyed are never seen, and refused on write.
  EXPECT_FALSE(store->seen_in(digest('a'), "a.io\nteam", "app"));
  EXPECT_THROW(store->mark_seen(digest('a'), "", "team/app"), std::invalid_argument);
  // A name too long for a key is hashed and still found exactly.
  const std::string long_repo = "team/" + std::string(600, 'r');
  store->mark_seen(digest('a'), "a.io", long_repo);
  EXPECT_TRUE(store->seen_in(digest('a'), "a.io", long_repo));
  EXPECT_FALSE(store->seen_in(digest('a'), "a.io", long_repo + "x"));

  // A blob's parents, only those seen in the repository asked about.
  store->add_references(digest('a'), {digest('f')});
  store->add_references(digest('b'), {digest('f')});
  store->mark_seen(digest('b'), "a.io", "evil/x");
  EXPECT_EQ(store->referenced_by(digest('f'), 10).size(), 2u);
  EXPECT_EQ(store->referenced_by_in(digest('f'), "a.io", "team/app", 10), std::vector<Digest>{digest('a')});
  EXPECT_EQ(store->referenced_by_in(digest('f'), "a.io", "evil/x", 10), std::vector<Digest>{digest('b')});
  EXPECT_TRUE(store->referenced_by_in(digest('f'), "a.io", "team/none", 10).empty());
  EXPECT_TRUE(store->referenced_by_in(digest('f'), "a.io", "team/app", 0).empty());
}

TEST_F(MetaStoreTest, AStoreFromBeforeSeenLearnsItFromItsTags) {
  {
    auto store = MetaStore::open(dir_, map_size);
    store->put_tag("a.io", "team/app", "v1", TagRecord{digest('1'), "index", 1});
    store->put_manifest(digest('1'), ManifestRecord{"index", "{}", 1});
    store->put_manifest(digest('2'), ManifestRecord{"image", "{}", 1});
    store->add_references(digest('1'), {digest('2')});  // the index lists a child manifest
    store->add_references(digest('2'), {digest('b')});  // which has a layer
    store->put_manifest(digest('3'), ManifestRecord{"image", "{}", 1});  // pulled by digest only
  }
  {  // as written before "seen" existed
    auto env = raw_env();
    auto txn = lmdb::Txn::write(env.get());
    lmdb::check(mdb_drop(txn.get(), txn.open_dbi("seen", 0), 1), "drop seen");
    txn.commit();
  }
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_TRUE(store->seen_in(digest('1'), "a.io", "team/app"));
  EXPECT_TRUE(store->seen_in(digest('2'), "a.io", "team/app"));
  EXPECT_FALSE(store->seen_in(digest('b'), "a.io", "team/app"));  // a blob: not a manifest
  EXPECT_FALSE(store->seen_in(digest('3'), "a.io", "team/app"));  // confirmed upstream on its next pull
  EXPECT_FALSE(store->seen_in(digest('1'), "a.io", "team/other"));
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

// The map is not a second limit to tune: past 3/4 full it grows before the next
// write (doubling, up to the maximum), and says so.
TEST_F(MetaStoreTest, TheMapGrowsBeforeItFills) {
  auto store = MetaStore::open(dir_, 1 << 20, 64 << 20);
  std::vector<MapEvent> events;
  store->on_map_event([&](const MapEvent& e) { events.push_back(e); });
  EXPECT_EQ(store->map_usage().map_bytes, std::size_t(1) << 20);
  EXPECT_EQ(store->map_usage().max_bytes, std::size_t(64) << 20);
  for (int i = 0; i < 48; ++i) {  // 3 MiB of manifests into a 1 MiB map
    store->put_manifest(numbered(i), ManifestRecord{"m", std::string(64 << 10, 'x'), i});
  }
  auto usage = store->map_usage();
  EXPECT_GT(usage.map_bytes, std::size_t(3) << 20);
  EXPECT_LE(usage.map_bytes, std::size_t(64) << 20);
  EXPECT_LE(usage.used_bytes, usage.map_bytes);
  ASSERT_FALSE(events.empty());
  for (const auto& e : events) {
    EXPECT_EQ(e.kind, MapEvent::Kind::grown);
    EXPECT_GT(e.new_map_bytes, e.before.map_bytes);
  }
  EXPECT_EQ(store->manifest_count(), 48u);
  store.reset();
  // Reopened with the configured start size, the environment keeps its grown size.
  auto again = MetaStore::open(dir_, 1 << 20, 64 << 20);
  EXPECT_GE(again->map_usage().map_bytes, usage.used_bytes);
  EXPECT_EQ(again->get_manifest(numbered(0))->bytes.size(), std::size_t(64 << 10));
}

// At its maximum the map cannot grow: that is said once, before it is full, and a
// write that no longer fits is MDB_MAP_FULL's clear error as before.
TEST_F(MetaStoreTest, AMapAtItsMaximumSaysSoOnceBeforeItIsFull) {
  auto store = MetaStore::open(dir_, 1 << 20, 1 << 20);
  std::vector<MapEvent> events;
  store->on_map_event([&](const MapEvent& e) { events.push_back(e); });
  bool full = false;
  for (int i = 0; i < 64 && !full; ++i) {
    try {
      store->put_manifest(numbered(i), ManifestRecord{"m", std::string(64 << 10, 'x'), i});
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("full"), std::string::npos) << e.what();
      full = true;
      EXPECT_EQ(events.size(), 1u) << "no warning before the map filled";
    }
  }
  EXPECT_TRUE(full);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, MapEvent::Kind::at_max);
  EXPECT_EQ(events[0].before.max_bytes, std::size_t(1) << 20);
  EXPECT_EQ(store->map_usage().map_bytes, std::size_t(1) << 20);
}

// A map that cannot get the address space to grow (a process limit, here RLIMIT_AS
// in a forked child) says so once, keeps working at its size (LMDB is never left
// without a map), and a write that no longer fits is MAP_FULL's clear error.
TEST_F(MetaStoreTest, AMapWithoutAddressSpaceToGrowSaysSoAndKeepsWorking) {
#if PULLGATE_UNDER_ASAN
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space for its shadow, so no RLIMIT_AS leaves "
                  "room for its own allocator: the address-space limit is tested in the plain build only";
#endif
  int code = exit_code_of_child([&] {
    auto store = MetaStore::open(dir_, 64 << 20, std::size_t(64) << 30);
    std::vector<MapEvent> events;
    store->on_map_event([&](const MapEvent& e) { events.push_back(e); });
    std::ifstream statm("/proc/self/statm");
    std::size_t pages = 0;
    statm >> pages;
    const std::size_t in_use = pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const rlimit limit{in_use + (48 << 20), in_use + (48 << 20)};  // room for 48 MiB more, not a 128 MiB map
    if (::setrlimit(RLIMIT_AS, &limit) != 0) return 10;
    bool full = false;
    int written = 0;
    for (int i = 0; i < 4096 && !full; ++i) {
      try {
        store->put_manifest(numbered(i), ManifestRecord{"m", std::string(64 << 10, 'x'), i});
        ++written;
      } catch (const std::runtime_error& e) {
        if (std::string(e.what()).find("full") == std::string::npos) return 11;
        full = true;
      }
    }
    if (!full) return 12;
    if (events.size() != 1 || events[0].kind != MapEvent::Kind::failed) return 13;
    if (events[0].error.find("address space") == std::string::npos) return 14;
    if (events[0].new_map_bytes != (std::size_t(128) << 20)) return 15;
    if (store->map_usage().map_bytes != (std::size_t(64) << 20)) return 16;
    // Still readable: the map is the old one, with everything written.
    auto first = store->get_manifest(numbered(0));
    if (!first || first->bytes.size() != (64 << 10)) return 17;
    return store->manifest_count() == std::size_t(written) ? 0 : 18;
  });
  EXPECT_EQ(code, 0) << "10: setrlimit; 11: another error than full; 12: never full; 13-15: not one failed "
                        "event naming the address space and 128 MiB; 16: the map changed; 17-18: the store "
                        "broke; 3: a write threw; -1: the child crashed";
}

// Readers on other threads while the map grows under them: growth waits for their
// transactions to end, and nobody reads a torn record.
TEST_F(MetaStoreTest, TheMapGrowsWhileOtherThreadsRead) {
  auto store = MetaStore::open(dir_, 1 << 20, 64 << 20);
  store->put_manifest(digest('f'), ManifestRecord{"m", std::string(1000, 'y'), 1});
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop) {
        try {
          auto m = store->get_manifest(digest('f'));
          if (!m || m->bytes != std::string(1000, 'y')) ++bad;
        } catch (const std::exception& e) {
          ++bad;
        }
      }
    });
  }
  for (int i = 0; i < 48; ++i) {
    try {
      store->put_manifest(numbered(i), ManifestRecord{"m", std::string(64 << 10, 'x'), i});
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
      break;
    }
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(store->map_usage().map_bytes, std::size_t(3) << 20);
}

// A second process (the CLI next to the server) that grew the map: this one follows
// the new size on its next transaction instead of failing.
TEST_F(MetaStoreTest, AMapGrownByAnotherProcessIsFollowed) {
  auto store = MetaStore::open(dir_, 1 << 20, 64 << 20);
  store->put_tag("u", "parent", "t", TagRecord{digest('a'), "m", 1});
  int code = exit_code_of_child([&] {
    auto own = MetaStore::open(dir_, 1 << 20, 64 << 20);
    for (int i = 0; i < 48; ++i) own->put_manifest(numbered(i), ManifestRecord{"m", std::string(64 << 10, 'x'), i});
    return own->map_usage().map_bytes > (std::size_t(1) << 20) ? 0 : 2;
  });
  ASSERT_EQ(code, 0) << "2: the child's map did not grow; 3: a write failed";
  EXPECT_EQ(store->manifest_count(), 48u);
  store->put_tag("u", "parent", "t2", TagRecord{digest('b'), "m", 2});
  EXPECT_TRUE(store->get_tag("u", "parent", "t2"));
  EXPECT_GT(store->map_usage().map_bytes, std::size_t(1) << 20);
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

// A process killed inside a read transaction (a CLI next to the running server)
// leaves its reader slot, which pins that snapshot's pages; the next process to open
// the environment clears it.
TEST_F(MetaStoreTest, OpenClearsReaderSlotsOfDeadProcesses) {
  auto store = MetaStore::open(dir_, map_size);  // the server: keeps the environment open
  EXPECT_EQ(store->stale_readers_cleared(), 0u);

  pid_t reader = ::fork();
  ASSERT_GE(reader, 0);
  if (reader == 0) {
    MDB_env* env = nullptr;
    MDB_txn* txn = nullptr;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
        mdb_env_open(env, dir_.c_str(), MDB_NOTLS, 0640) != 0 ||
        mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) != 0) {
      ::_exit(2);
    }
    ::_exit(0);  // dies mid-read: no abort, no close
  }
  int status = 0;
  ASSERT_EQ(::waitpid(reader, &status, 0), reader);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto pids = store->reader_pids();
  ASSERT_NE(std::find(pids.begin(), pids.end(), long(reader)), pids.end()) << "the dead reader left no slot";

  pid_t next = ::fork();  // the next CLI run opens the environment
  ASSERT_GE(next, 0);
  if (next == 0) {
    int code = 0;
    try {
      auto own = MetaStore::open(dir_, map_size);
      if (own->stale_readers_cleared() != 1) code = 2;
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  }
  ASSERT_EQ(::waitpid(next, &status, 0), next);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: the open did not report one stale reader cleared";
  pids = store->reader_pids();
  EXPECT_EQ(std::find(pids.begin(), pids.end(), long(reader)), pids.end()) << "the dead reader's slot is still held";
}

// A warm hit must not queue behind a writer: while another process holds the write
// lock, reads and marking seen what is seen already still return.
TEST_F(MetaStoreTest, WarmReadsDoNotWaitForTheWriter) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_blob(digest('1'), BlobRecord{5, 1000, 1000});
  store->mark_seen(digest('2'), "u", "r");

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

  EXPECT_EQ(store->get_blob(digest('1'))->last_access_ms, 1000);
  EXPECT_EQ(store->blob_count(), 1u);
  store->mark_seen(digest('2'), "u", "r");
  ManifestBatch known;
  known.upstream = "u";
  known.repository = "r";
  known.seen = {digest('2')};
  store->write(known);

  ASSERT_EQ(::write(done[1], "D", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  for (int fd : {locked[0], locked[1], done[0], done[1]}) ::close(fd);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a read waited for the writer";
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
          store->put_blob(d, BlobRecord{std::uint64_t(i), i, i + 60'000});
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

// ---- verdicts ----

Digest sha512(char fill) { return Digest::parse("sha512:" + std::string(128, fill)).value(); }

VerdictRecord verdict(std::string decision, std::string source = "rule") {
  return VerdictRecord{std::move(decision), std::move(source), {"reason one"}, "policy-7", "", 1000, std::nullopt,
                       "scope-a"};
}

std::vector<std::string> listed_digests(const std::vector<std::pair<Digest, VerdictRecord>>& listed) {
  std::vector<std::string> out;
  for (const auto& [d, record] : listed) out.push_back(d.str());
  return out;
}

TEST_F(MetaStoreTest, VerdictRoundTripAndOverwrite) {
  auto store = MetaStore::open(dir_, map_size);
  VerdictRecord record{"deny",  "manual", {"CVE-2024-0001 in openssl", "signé par personne", ""},
                       "",      "alice",  1700000000123, 1800000000456, ""};
  store->put_verdict(digest('a'), record);
  auto read = store->get_verdict(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->decision, "deny");
  EXPECT_EQ(read->source, "manual");
  EXPECT_EQ(read->reasons, record.reasons);
  EXPECT_EQ(read->policy_version, "");
  EXPECT_EQ(read->set_by, "alice");
  EXPECT_EQ(read->evaluated_at_ms, 1700000000123);
  EXPECT_EQ(read->expires_at_ms, std::optional<std::int64_t>(1800000000456));

  // Overwrite with a verdict that does not expire and has no reasons.
  store->put_verdict(digest('a'), VerdictRecord{"allow", "report", {}, "policy-8", "", 5, std::nullopt, ""});
  read = store->get_verdict(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->decision, "allow");
  EXPECT_EQ(read->source, "report");
  EXPECT_TRUE(read->reasons.empty());
  EXPECT_EQ(read->policy_version, "policy-8");
  EXPECT_EQ(read->evaluated_at_ms, 5);
  EXPECT_FALSE(read->expires_at_ms);

  // sha256 and sha512 digests are separate keys.
  EXPECT_FALSE(store->get_verdict(sha512('a')));
  store->put_verdict(sha512('a'), verdict("warn"));
  EXPECT_EQ(store->get_verdict(sha512('a'))->decision, "warn");
  EXPECT_EQ(store->get_verdict(digest('a'))->decision, "allow");
}

TEST_F(MetaStoreTest, AbsentVerdictAndRemove) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_FALSE(store->get_verdict(digest('b')));
  EXPECT_FALSE(store->remove_verdict(digest('b')));
  EXPECT_EQ(store->verdict_count(), 0u);
  store->put_verdict(digest('b'), verdict("deny"));
  store->put_verdict(digest('c'), verdict("allow"));
  EXPECT_EQ(store->verdict_count(), 2u);
  EXPECT_TRUE(store->remove_verdict(digest('b')));
  EXPECT_EQ(store->verdict_count(), 1u);
  EXPECT_FALSE(store->get_verdict(digest('b')));
  EXPECT_FALSE(store->remove_verdict(digest('b')));
  // The neighbour is untouched.
  EXPECT_EQ(store->get_verdict(digest('c'))->decision, "allow");
}

TEST_F(MetaStoreTest, UnknownDecisionOrBadTextIsRefusedNotStored) {
  auto store = MetaStore::open(dir_, map_size);
  for (const char* decision : {"", "Allow", "maybe", "deny "}) {
    EXPECT_THROW(store->put_verdict(digest('a'), verdict(decision)), std::invalid_argument) << decision;
  }
  VerdictRecord bad_reason = verdict("deny");
  bad_reason.reasons.push_back("bad\xff");
  EXPECT_THROW(store->put_verdict(digest('a'), bad_reason), std::invalid_argument);
  EXPECT_FALSE(store->get_verdict(digest('a')));
}

TEST_F(MetaStoreTest, ListVerdictsInDigestOrderWithFiltersAndLimit) {
  auto store = MetaStore::open(dir_, map_size);
  // Written out of order on purpose.
  store->put_verdict(sha512('1'), verdict("deny", "rule"));
  store->put_verdict(digest('e'), verdict("allow", "manual"));
  store->put_verdict(digest('3'), verdict("deny", "manual"));
  store->put_verdict(digest('b'), verdict("warn", "report"));
  store->put_verdict(digest('0'), verdict("deny", "report"));

  auto all = store->list_verdicts(VerdictFilter{});
  EXPECT_EQ(listed_digests(all), (std::vector<std::string>{digest('0').str(), digest('3').str(), digest('b').str(),
                                                           digest('e').str(), sha512('1').str()}));
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[2].second.decision, "warn");
  EXPECT_EQ(all[2].second.source, "report");

  auto denied = store->list_verdicts(VerdictFilter{"deny", std::nullopt, 1000});
  EXPECT_EQ(listed_digests(denied),
            (std::vector<std::string>{digest('0').str(), digest('3').str(), sha512('1').str()}));

  auto manual = store->list_verdicts(VerdictFilter{std::nullopt, "manual", 1000});
  EXPECT_EQ(listed_digests(manual), (std::vector<std::string>{digest('3').str(), digest('e').str()}));

  auto denied_manual = store->list_verdicts(VerdictFilter{"deny", "manual", 1000});
  EXPECT_EQ(listed_digests(denied_manual), (std::vector<std::string>{digest('3').str()}));

  // The limit counts matches, not entries scanned.
  auto first_two_denied = store->list_verdicts(VerdictFilter{"deny", std::nullopt, 2});
  EXPECT_EQ(listed_digests(first_two_denied), (std::vector<std::string>{digest('0').str(), digest('3').str()}));
  EXPECT_EQ(store->list_verdicts(VerdictFilter{std::nullopt, std::nullopt, 1}).size(), 1u);
  EXPECT_TRUE(store->list_verdicts(VerdictFilter{std::nullopt, std::nullopt, 0}).empty());
  EXPECT_TRUE(store->list_verdicts(VerdictFilter{"allow", "rule", 1000}).empty());
}

TEST_F(MetaStoreTest, ListVerdictsOnEmptyStore) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_TRUE(store->list_verdicts(VerdictFilter{}).empty());
}

TEST_F(MetaStoreTest, CorruptVerdictsAreAbsent) {
  MetaStore::open(dir_, map_size).reset();
  const std::string fields = R"("source":"rule","reasons":["r"],"policy_version":"p","set_by":"","evaluated_at_ms":1)";
  const std::vector<std::pair<char, std::string>> corrupt = {
      {'1', "not json"},
      {'2', R"({"v":1,"decision":"maybe",)" + fields + R"(,"expires_at_ms":null})"},
      {'3', R"({"v":1,"decision":"ALLOW",)" + fields + R"(,"expires_at_ms":null})"},
      {'4', R"({"v":2,"decision":"allow",)" + fields + R"(,"expires_at_ms":null})"},
      {'5', R"({"v":1,"decision":"allow",)" + fields + "}"},  // expires_at_ms missing
      {'6', R"({"v":1,"decision":"allow",)" + fields + R"(,"expires_at_ms":"soon"})"},
      {'7', R"({"v":1,"decision":"allow","source":"rule","reasons":"r","policy_version":"p","set_by":"",)"
            R"("evaluated_at_ms":1,"expires_at_ms":null})"},
      {'8', R"({"v":1,"decision":"allow","source":"rule","reasons":[1],"policy_version":"p","set_by":"",)"
            R"("evaluated_at_ms":1,"expires_at_ms":null})"},
      {'9', R"({"v":1,"decision":"allow","reasons":[],"policy_version":"p","set_by":"","evaluated_at_ms":1,)"
            R"("expires_at_ms":null})"},
      {'a', R"({"v":1,"decision":"allow","source":"rule","reasons":[],"policy_version":"p","set_by":"",)"
            R"("evaluated_at_ms":1.5,"expires_at_ms":null})"},
      {'b', R"(["allow"])"},
  };
  for (const auto& [fill, value] : corrupt) write_raw("verdicts", digest(fill).str(), value);
  // One good record written raw, to show the format above is otherwise right, and
  // one good record under a key that is not a digest.
  const std::string good = R"({"v":1,"decision":"deny",)" + fields + R"(,"expires_at_ms":99})";
  write_raw("verdicts", digest('c').str(), good);
  write_raw("verdicts", "sha256:short", good);

  auto store = MetaStore::open(dir_, map_size);
  for (const auto& [fill, value] : corrupt) EXPECT_FALSE(store->get_verdict(digest(fill))) << value;
  auto read = store->get_verdict(digest('c'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->decision, "deny");
  EXPECT_EQ(read->expires_at_ms, std::optional<std::int64_t>(99));
  // The listing skips what does not decode, including the bad key.
  EXPECT_EQ(listed_digests(store->list_verdicts(VerdictFilter{})), (std::vector<std::string>{digest('c').str()}));
  // A corrupt record can be removed and replaced.
  EXPECT_TRUE(store->remove_verdict(digest('2')));
  store->put_verdict(digest('3'), verdict("allow"));
  EXPECT_EQ(store->get_verdict(digest('3'))->decision, "allow");
}

// ---- references ----

TEST_F(MetaStoreTest, ReferencesAreIdempotent) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_TRUE(store->referenced_by(digest('1'), 100).empty());
  store->add_references(digest('a'), {digest('1'), digest('2'), digest('1')});
  store->add_references(digest('a'), {digest('1'), digest('2')});
  EXPECT_EQ(store->referenced_by(digest('1'), 100), std::vector<Digest>{digest('a')});
  EXPECT_EQ(store->referenced_by(digest('2'), 100), std::vector<Digest>{digest('a')});
  // The manifest itself is not referenced by anything.
  EXPECT_TRUE(store->referenced_by(digest('a'), 100).empty());
  store->add_references(digest('b'), {});  // nothing to add is fine
  EXPECT_TRUE(store->referenced_by(digest('b'), 100).empty());
}

TEST_F(MetaStoreTest, SeveralManifestsReferenceOneBlobInDigestOrder) {
  auto store = MetaStore::open(dir_, map_size);
  const Digest shared_layer = digest('5');
  store->add_references(sha512('e'), {shared_layer});
  store->add_references(digest('c'), {shared_layer, digest('6')});
  store->add_references(digest('a'), {digest('7'), shared_layer});
  EXPECT_EQ(store->referenced_by(shared_layer, 100), (std::vector<Digest>{digest('a'), digest('c'), sha512('e')}));
  EXPECT_EQ(store->referenced_by(shared_layer, 2), (std::vector<Digest>{digest('a'), digest('c')}));
  EXPECT_TRUE(store->referenced_by(shared_layer, 0).empty());
  EXPECT_EQ(store->referenced_by(digest('6'), 100), std::vector<Digest>{digest('c')});
  EXPECT_EQ(store->referenced_by(digest('7'), 100), std::vector<Digest>{digest('a')});

  // An index and its children: the child manifests are referenced by the index.
  const Digest index = sha512('0');
  store->add_references(index, {digest('a'), digest('c')});
  EXPECT_EQ(store->referenced_by(digest('a'), 100), std::vector<Digest>{index});
}

// Real digests have fixed lengths, so one can't be a prefix of another; synthetic
// keys check that the scan stops at the separator anyway and ignores bad keys.
TEST_F(MetaStoreTest, ReferencePrefixScanDoesNotLeak) {
  MetaStore::open(dir_, map_size).reset();
  const std::string a = digest('a').str();
  write_raw("refs", a + "\n" + digest('1').str(), "");
  write_raw("refs", a + "0\n" + digest('2').str(), "");                 // a longer "digest" starting with a
  write_raw("refs", a.substr(0, a.size() - 1) + "\n" + digest('3').str(), "");  // a prefix of a
  write_raw("refs", a + "\n" + "garbage", "");                            // not a digest after the separator
  write_raw("refs", a + "\n" + digest('4').str() + "x", "");              // trailing bytes after the digest
  write_raw("refs", a + "\n", "");                                        // nothing after the separator
  write_raw("refs", a, "");                                               // no separator at all
  write_raw("refs", a + "\n" + digest('5').str(), "");

  auto store = MetaStore::open(dir_, map_size);
  EXPECT_EQ(store->referenced_by(digest('a'), 100), (std::vector<Digest>{digest('1'), digest('5')}));
  // Bad keys do not count against the limit.
  EXPECT_EQ(store->referenced_by(digest('a'), 2), (std::vector<Digest>{digest('1'), digest('5')}));
  // Adding an existing reference through the store changes nothing.
  store->add_references(digest('1'), {digest('a')});
  EXPECT_EQ(store->referenced_by(digest('a'), 100), (std::vector<Digest>{digest('1'), digest('5')}));
}

TEST_F(MetaStoreTest, ManifestWithTwoHundredLayers) {
  auto store = MetaStore::open(dir_, map_size);
  std::vector<Digest> layers;
  for (int i = 0; i < 200; ++i) {
    // Half sha512, so the longest keys (two sha512 digests) are exercised.
    auto algorithm = i % 2 ? registry::DigestAlgorithm::sha512 : registry::DigestAlgorithm::sha256;
    layers.push_back(registry::digest_of(algorithm, "layer " + std::to_string(i)));
  }
  const Digest image = registry::digest_of(registry::DigestAlgorithm::sha512, "image");
  const Digest other = registry::digest_of(registry::DigestAlgorithm::sha256, "other image");
  store->add_references(image, layers);
  store->add_references(other, {layers[0], layers[199]});
  for (int i = 0; i < 200; ++i) {
    auto expected = i == 0 || i == 199 ? std::vector<Digest>{image, other} : std::vector<Digest>{image};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(store->referenced_by(layers[i], 10), expected) << i;
  }
}

TEST_F(MetaStoreTest, OpensAStoreWrittenBeforeVerdictsExisted) {
  // The previous version's layout: these five databases, schema version 1.
  for (const char* db : {"tags", "manifests", "blobs", "responses"}) write_raw(db, "k", "v");
  write_raw("meta", "schema_version", R"({"schema_version":1})");
  write_raw("blobs", digest('1').str(), R"({"v":1,"size":7,"stored_at_ms":1,"last_access_ms":2})");
  {
    MDB_env* raw = nullptr;
    lmdb::check(mdb_env_create(&raw), "create");
    lmdb::Env env(raw);
    lmdb::check(mdb_env_set_maxdbs(env.get(), 16), "maxdbs");
    lmdb::check(mdb_env_open(env.get(), dir_.c_str(), MDB_NOTLS, 0640), "open");
    auto txn = lmdb::Txn::read(env.get());
    MDB_dbi dbi = 0;
    ASSERT_EQ(mdb_dbi_open(txn.get(), "verdicts", 0, &dbi), MDB_NOTFOUND);
    ASSERT_EQ(mdb_dbi_open(txn.get(), "refs", 0, &dbi), MDB_NOTFOUND);
  }
  {
    auto store = MetaStore::open(dir_, map_size);
    EXPECT_EQ(store->get_blob(digest('1'))->size, 7u);
    EXPECT_FALSE(store->get_verdict(digest('a')));
    EXPECT_TRUE(store->referenced_by(digest('1'), 10).empty());
    store->put_verdict(digest('a'), verdict("deny"));
    store->add_references(digest('a'), {digest('1')});
  }
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_EQ(store->get_verdict(digest('a'))->decision, "deny");
  EXPECT_EQ(store->referenced_by(digest('1'), 10), std::vector<Digest>{digest('a')});
  EXPECT_EQ(store->get_blob(digest('1'))->size, 7u);
}

// The CLI writes verdicts while the server runs: a verdict written by another
// process is seen by a store that was already open.
TEST_F(MetaStoreTest, VerdictWrittenByAnotherProcessIsSeen) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_verdict(digest('a'), verdict("allow"));
  EXPECT_FALSE(store->get_verdict(digest('b')));

  int code = exit_code_of_child([&] {
    auto own = MetaStore::open(dir_, map_size);
    if (!own->get_verdict(digest('a'))) return 2;
    own->put_verdict(digest('b'), VerdictRecord{"deny", "manual", {"blocked by ops"}, "", "cli", 77, 88, ""});
    if (!own->remove_verdict(digest('a'))) return 4;
    own->add_references(digest('b'), {digest('1')});
    return 0;
  });
  ASSERT_EQ(code, 0);

  auto read = store->get_verdict(digest('b'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->decision, "deny");
  EXPECT_EQ(read->set_by, "cli");
  EXPECT_EQ(read->reasons, std::vector<std::string>{"blocked by ops"});
  EXPECT_EQ(read->expires_at_ms, std::optional<std::int64_t>(88));
  EXPECT_FALSE(store->get_verdict(digest('a')));
  EXPECT_EQ(listed_digests(store->list_verdicts(VerdictFilter{})), (std::vector<std::string>{digest('b').str()}));
  EXPECT_EQ(store->referenced_by(digest('1'), 10), std::vector<Digest>{digest('b')});
}

// ---- run-time exceptions and the generation ----

ExceptionRecord exception_record(std::string id, std::string digest_text = "", std::string repository = "") {
  ExceptionRecord r;
  r.id = std::move(id);
  r.digest = std::move(digest_text);
  r.repository = std::move(repository);
  r.upstream = "docker.io";
  r.reason = "hotfix";
  r.who = "alice";
  r.created_at_ms = 1000;
  r.expires_at_ms = 2000;
  return r;
}

// The keys of listed records (an exception's id, a pin's text), in the order listed.
template <class Record>
std::vector<std::string> keys_of(const std::vector<Record>& records, std::string Record::*key) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.*key);
  return out;
}

std::vector<std::string> ids(const std::vector<ExceptionRecord>& records) { return keys_of(records, &ExceptionRecord::id); }

TEST_F(MetaStoreTest, ExceptionRoundTripOverwriteAndRemove) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_FALSE(store->get_exception("INC-1"));
  EXPECT_FALSE(store->remove_exception("INC-1"));

  store->put_exception(exception_record("INC-1", digest('a').str()));
  auto read = store->get_exception("INC-1");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->id, "INC-1");
  EXPECT_EQ(read->digest, digest('a').str());
  EXPECT_EQ(read->repository, "");
  EXPECT_EQ(read->upstream, "docker.io");
  EXPECT_EQ(read->reason, "hotfix");
  EXPECT_EQ(read->who, "alice");
  EXPECT_EQ(read->created_at_ms, 1000);
  EXPECT_EQ(read->expires_at_ms, std::optional<std::int64_t>(2000));

  auto never = exception_record("INC-1", "", "team/**");
  never.expires_at_ms.reset();
  store->put_exception(never);
  read = store->get_exception("INC-1");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->digest, "");
  EXPECT_EQ(read->repository, "team/**");
  EXPECT_FALSE(read->expires_at_ms);

  EXPECT_TRUE(store->remove_exception("INC-1"));
  EXPECT_FALSE(store->get_exception("INC-1"));
  EXPECT_FALSE(store->remove_exception("INC-1"));
}

TEST_F(MetaStoreTest, ListExceptionsInIdOrder) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_TRUE(store->list_exceptions().empty());
  store->put_exception(exception_record("b", "", "x"));
  store->put_exception(exception_record("a-2", "", "x"));
  store->put_exception(exception_record("a-10", digest('c').str()));
  EXPECT_EQ(ids(store->list_exceptions()), (std::vector<std::string>{"a-10", "a-2", "b"}));
}

TEST_F(MetaStoreTest, ExceptionsThatWouldOpenEverythingOrCannotBeKeyedAreRefused) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_THROW(store->put_exception(exception_record("wide")), std::invalid_argument);  // no digest, no repository
  EXPECT_THROW(store->put_exception(exception_record("", "", "x")), std::invalid_argument);
  EXPECT_THROW(store->put_exception(exception_record(std::string(600, 'i'), "", "x")), std::invalid_argument);
  EXPECT_THROW(store->put_exception(exception_record(std::string("a\0b", 3), "", "x")), std::invalid_argument);
  EXPECT_TRUE(store->list_exceptions().empty());
  EXPECT_FALSE(store->get_exception(""));
  EXPECT_FALSE(store->get_exception(std::string(600, 'i')));
  EXPECT_FALSE(store->remove_exception(""));
}

TEST_F(MetaStoreTest, CorruptExceptionsAreAbsent) {
  {
    auto store = MetaStore::open(dir_, map_size);
    store->put_exception(exception_record("good", "", "x"));
  }
  const std::string ok_fields =
      R"("digest":"","repository":"x","upstream":"","reason":"","who":"","created_at_ms":1,"expires_at_ms":null)";
  write_raw("exceptions", "garbage", "not json");
  write_raw("exceptions", "old-version", R"({"v":0,"id":"old-version",)" + ok_fields + "}");
  write_raw("exceptions", "wrong-id", R"({"v":1,"id":"other",)" + ok_fields + "}");
  write_raw("exceptions", "no-expiry-field",
            R"({"v":1,"id":"no-expiry-field","digest":"","repository":"x","upstream":"","reason":"","who":"","created_at_ms":1})");
  write_raw("exceptions", "wide",
            R"({"v":1,"id":"wide","digest":"","repository":"","upstream":"","reason":"","who":"","created_at_ms":1,"expires_at_ms":null})");
  write_raw("exceptions", "bad-type", R"({"v":1,"id":"bad-type","digest":"","repository":"x","upstream":"","reason":"","who":"","created_at_ms":1,"expires_at_ms":"soon"})");
  auto store = MetaStore::open(dir_, map_size);
  for (const char* id : {"garbage", "old-version", "wrong-id", "no-expiry-field", "wide", "bad-type"})
    EXPECT_FALSE(store->get_exception(id)) << id;
  EXPECT_EQ(ids(store->list_exceptions()), std::vector<std::string>{"good"});
}

// ---- run-time pins ----

std::vector<std::string> pin_texts(const std::vector<PinRecord>& records) { return keys_of(records, &PinRecord::pin); }

TEST_F(MetaStoreTest, APinIsAddedOnceListedInOrderAndRemoved) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_FALSE(store->get_pin("docker.io/library/debian:stable"));
  EXPECT_TRUE(store->list_pins().empty());
  EXPECT_FALSE(store->remove_pin("docker.io/library/debian:stable"));

  EXPECT_TRUE(store->add_pin({"docker.io/library/debian:stable", "alice", 1000, "release 4.2"}));
  EXPECT_TRUE(store->add_pin({"docker.io/library/**:lts", "bob", 2000, ""}));
  // Adding it again keeps the first record: who pinned it and when stay.
  const auto before = store->generation();
  EXPECT_FALSE(store->add_pin({"docker.io/library/debian:stable", "mallory", 3000, "again"}));
  EXPECT_EQ(store->generation(), before);  // nothing committed
  auto read = store->get_pin("docker.io/library/debian:stable");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->who, "alice");
  EXPECT_EQ(read->created_at_ms, 1000);
  EXPECT_EQ(read->note, "release 4.2");
  EXPECT_EQ(pin_texts(store->list_pins()),
            (std::vector<std::string>{"docker.io/library/**:lts", "docker.io/library/debian:stable"}));

  EXPECT_TRUE(store->remove_pin("docker.io/library/debian:stable"));
  EXPECT_FALSE(store->get_pin("docker.io/library/debian:stable"));
  EXPECT_FALSE(store->remove_pin("docker.io/library/debian:stable"));
  EXPECT_EQ(pin_texts(store->list_pins()), std::vector<std::string>{"docker.io/library/**:lts"});
}

TEST_F(MetaStoreTest, PinsThatCannotBeKeyedOrStoredAreRefused) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_THROW(store->add_pin({"", "alice", 1, ""}), std::invalid_argument);
  EXPECT_THROW(store->add_pin({"up/" + std::string(600, 'a') + ":x", "alice", 1, ""}), std::invalid_argument);
  EXPECT_THROW(store->add_pin({std::string("up/a\0b:x", 8), "alice", 1, ""}), std::invalid_argument);
  EXPECT_THROW(store->add_pin({"up/a:x", "alice", 1, "\xff not UTF-8"}), std::invalid_argument);
  EXPECT_TRUE(store->list_pins().empty());
  EXPECT_FALSE(store->get_pin(""));
  EXPECT_FALSE(store->remove_pin(std::string(600, 'a')));
}

TEST_F(MetaStoreTest, CorruptPinsAreAbsent) {
  {
    auto store = MetaStore::open(dir_, map_size);
    EXPECT_TRUE(store->add_pin({"up/good:x", "alice", 1, ""}));
  }
  write_raw("pins", "up/garbage:x", "not json");
  write_raw("pins", "up/old:x", R"({"v":0,"pin":"up/old:x","who":"","created_at_ms":1,"note":""})");
  write_raw("pins", "up/wrong:x", R"({"v":1,"pin":"up/other:x","who":"","created_at_ms":1,"note":""})");
  write_raw("pins", "up/no-note:x", R"({"v":1,"pin":"up/no-note:x","who":"","created_at_ms":1})");
  auto store = MetaStore::open(dir_, map_size);
  for (const char* pin : {"up/garbage:x", "up/old:x", "up/wrong:x", "up/no-note:x"})
    EXPECT_FALSE(store->get_pin(pin)) << pin;
  EXPECT_EQ(pin_texts(store->list_pins()), std::vector<std::string>{"up/good:x"});
}

TEST_F(MetaStoreTest, APinAddedByAnotherProcessIsSeen) {
  auto store = MetaStore::open(dir_, map_size);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      auto other = MetaStore::open(dir_, map_size);
      code = other->add_pin({"up/app:stable", "child", 5, ""}) ? 0 : 1;
    } catch (...) {
      code = 2;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto read = store->get_pin("up/app:stable");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->who, "child");
}

TEST_F(MetaStoreTest, GenerationMovesOnEveryCommitAndNotOnReads) {
  auto store = MetaStore::open(dir_, map_size);
  auto g0 = store->generation();
  store->get_tag("u", "r", "t");
  store->list_exceptions();
  EXPECT_EQ(store->generation(), g0);
  store->put_exception(exception_record("a", "", "x"));
  auto g1 = store->generation();
  EXPECT_GT(g1, g0);
  store->put_verdict(digest('a'), verdict("deny"));
  EXPECT_GT(store->generation(), g1);
  auto g2 = store->generation();
  EXPECT_FALSE(store->remove_exception("absent"));  // nothing committed
  EXPECT_EQ(store->generation(), g2);
}

TEST_F(MetaStoreTest, ExceptionAndGenerationSeenAcrossProcesses) {
  auto store = MetaStore::open(dir_, map_size);
  store->put_exception(exception_record("parent", "", "x"));
  const auto before = store->generation();

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      auto own = MetaStore::open(dir_, map_size);
      if (!own->get_exception("parent")) code = 2;
      if (own->generation() != before) code = 4;
      own->put_exception(exception_record("child", digest('b').str()));
      if (!own->remove_exception("parent")) code = 5;
      own.reset();
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  // Two commits in the child: the parent's generation moved without it writing.
  EXPECT_GE(store->generation(), before + 2);
  EXPECT_EQ(ids(store->list_exceptions()), std::vector<std::string>{"child"});
  auto read = store->get_exception("child");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->digest, digest('b').str());
}


// ---- scan reports and the pending-scan queue ----

ReportRecord report(std::string summary, std::string scanner = "trivy") {
  return ReportRecord{std::move(summary), std::move(scanner), 1000, 2000};
}

std::vector<std::string> pending_digests(const std::vector<std::pair<Digest, PendingRecord>>& listed) {
  std::vector<std::string> out;
  for (const auto& [d, r] : listed) out.push_back(d.str());
  return out;
}

TEST_F(MetaStoreTest, ReportRoundTripReplaceAndRemove) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_FALSE(store->get_report(digest('a')));
  EXPECT_EQ(store->report_count(), 0u);

  const std::string summary = R"({"v":1,"critical":2,"ids":["CVE-2024-1"]})";
  store->put_report(digest('a'), ReportRecord{summary, "trivy", 111, 222});
  auto read = store->get_report(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->summary_json, summary);
  EXPECT_EQ(read->scanner, "trivy");
  EXPECT_EQ(read->scanned_at_ms, 111);
  EXPECT_EQ(read->imported_at_ms, 222);
  EXPECT_EQ(store->report_count(), 1u);

  // Opaque: any bytes the caller chose come back exactly, empty included.
  const std::string odd("x\0\xff\n", 4);
  store->put_report(digest('a'), ReportRecord{odd, "grype", -5, 7});
  read = store->get_report(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->summary_json, odd);
  EXPECT_EQ(read->scanner, "grype");
  EXPECT_EQ(read->scanned_at_ms, -5);
  EXPECT_EQ(store->report_count(), 1u);
  store->put_report(digest('b'), report(""));
  EXPECT_EQ(store->get_report(digest('b'))->summary_json, "");
  EXPECT_EQ(store->report_count(), 2u);

  EXPECT_TRUE(store->remove_report(digest('a')));
  EXPECT_FALSE(store->remove_report(digest('a')));
  EXPECT_FALSE(store->get_report(digest('a')));
  EXPECT_TRUE(store->get_report(digest('b')));
  EXPECT_EQ(store->report_count(), 1u);
}

TEST_F(MetaStoreTest, ReportWithBadScannerTextIsRefusedNotStored) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_THROW(store->put_report(digest('a'), report("{}", "bad\xff")), std::invalid_argument);
  EXPECT_FALSE(store->get_report(digest('a')));
  EXPECT_EQ(store->report_count(), 0u);
}

TEST_F(MetaStoreTest, VexDocumentsAreKeptPerDigestAndName) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_TRUE(store->vex_for(digest('a')).empty());
  EXPECT_FALSE(store->put_vex(digest('a'), VexRecord{"https://acme.example/vex/2", "{\"two\":1}", 20, "alice"}));
  EXPECT_FALSE(store->put_vex(digest('a'), VexRecord{"https://acme.example/vex/1", "{\"one\":1}", 10, ""}));
  EXPECT_FALSE(store->put_vex(digest('b'), VexRecord{"sha256:feed", "{}", 30, "bob"}));
  auto a = store->vex_for(digest('a'));
  ASSERT_EQ(a.size(), 2u);  // in name order, the other digest's apart
  EXPECT_EQ(a[0].name, "https://acme.example/vex/1");
  EXPECT_EQ(a[0].document_json, "{\"one\":1}");
  EXPECT_EQ(a[0].imported_at_ms, 10);
  EXPECT_EQ(a[1].by, "alice");
  // The same name replaces.
  EXPECT_TRUE(store->put_vex(digest('a'), VexRecord{"https://acme.example/vex/1", "{\"one\":2}", 11, "carol"}));
  a = store->vex_for(digest('a'));
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].document_json, "{\"one\":2}");
  EXPECT_EQ(a[0].by, "carol");
  // Names LMDB cannot key, and text that is not UTF-8, are refused and nothing is stored.
  EXPECT_THROW(store->put_vex(digest('c'), VexRecord{"", "{}", 1, ""}), std::invalid_argument);
  EXPECT_THROW(store->put_vex(digest('c'), VexRecord{std::string("a\0b", 3), "{}", 1, ""}), std::invalid_argument);
  EXPECT_THROW(store->put_vex(digest('c'), VexRecord{std::string(600, 'n'), "{}", 1, ""}), std::invalid_argument);
  EXPECT_THROW(store->put_vex(digest('c'), VexRecord{"n", "{}", 1, "bad\xff"}), std::invalid_argument);
  EXPECT_TRUE(store->vex_for(digest('c')).empty());
  // Removing one by name, then all of a digest's.
  EXPECT_EQ(store->remove_vex(digest('a'), "https://acme.example/vex/2"), 1u);
  EXPECT_EQ(store->remove_vex(digest('a'), "https://acme.example/vex/2"), 0u);
  EXPECT_EQ(store->vex_for(digest('a')).size(), 1u);
  EXPECT_EQ(store->remove_vex(digest('b'), ""), 1u);
  EXPECT_TRUE(store->vex_for(digest('b')).empty());
  EXPECT_EQ(store->vex_for(digest('a')).size(), 1u);
}

TEST_F(MetaStoreTest, PendingCreatesThenUpdates) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_FALSE(store->get_pending(digest('a')));
  EXPECT_EQ(store->pending_count(), 0u);

  store->add_pending(digest('a'), "docker.io/library/alpine:3.19", 100);
  auto read = store->get_pending(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->references, std::vector<std::string>{"docker.io/library/alpine:3.19"});
  EXPECT_EQ(read->first_seen_ms, 100);
  EXPECT_EQ(read->last_seen_ms, 100);
  EXPECT_EQ(read->requests, 1u);

  store->add_pending(digest('a'), "docker.io/library/alpine@" + digest('a').str(), 300);
  // A clock that went backwards does not move last_seen back, nor first_seen.
  store->add_pending(digest('a'), "docker.io/library/alpine:3.19", 200);
  read = store->get_pending(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->references, (std::vector<std::string>{"docker.io/library/alpine@" + digest('a').str(),
                                                        "docker.io/library/alpine:3.19"}));
  EXPECT_EQ(read->first_seen_ms, 100);
  EXPECT_EQ(read->last_seen_ms, 300);
  EXPECT_EQ(read->requests, 3u);
  EXPECT_EQ(store->pending_count(), 1u);
}

TEST_F(MetaStoreTest, PendingReferencesAreCappedDedupedNewestLast) {
  auto store = MetaStore::open(dir_, map_size);
  const std::size_t cap = MetaStore::max_pending_references;
  for (std::size_t i = 0; i < cap + 4; ++i) store->add_pending(digest('a'), "u/r:" + std::to_string(i), 10);
  auto read = store->get_pending(digest('a'));
  ASSERT_TRUE(read);
  ASSERT_EQ(read->references.size(), cap);
  EXPECT_EQ(read->references.front(), "u/r:4");  // the four oldest fell off
  EXPECT_EQ(read->references.back(), "u/r:" + std::to_string(cap + 3));
  EXPECT_EQ(read->requests, cap + 4);

  // Asked again: no duplicate, it moves to the newest place; nothing else drops.
  store->add_pending(digest('a'), "u/r:4", 11);
  read = store->get_pending(digest('a'));
  ASSERT_EQ(read->references.size(), cap);
  EXPECT_EQ(read->references.back(), "u/r:4");
  EXPECT_EQ(read->references.front(), "u/r:5");
  EXPECT_EQ(std::count(read->references.begin(), read->references.end(), "u/r:4"), 1);
  EXPECT_EQ(read->requests, cap + 5);
}

TEST_F(MetaStoreTest, BadPendingReferencesAreRefusedNotStored) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_THROW(store->add_pending(digest('a'), "", 1), std::invalid_argument);
  EXPECT_THROW(store->add_pending(digest('a'), std::string(MetaStore::max_pending_reference_bytes + 1, 'x'), 1),
               std::invalid_argument);
  EXPECT_THROW(store->add_pending(digest('a'), "u/r:\xff", 1), std::invalid_argument);
  EXPECT_FALSE(store->get_pending(digest('a')));
  EXPECT_EQ(store->pending_count(), 0u);
  EXPECT_TRUE(store->list_pending(10).empty());

  // A refused reference leaves an existing entry exactly as it was.
  store->add_pending(digest('a'), "u/r:1", 5);
  EXPECT_THROW(store->add_pending(digest('a'), "u/r:\xff", 6), std::invalid_argument);
  auto read = store->get_pending(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->references, std::vector<std::string>{"u/r:1"});
  EXPECT_EQ(read->requests, 1u);
  EXPECT_EQ(read->last_seen_ms, 5);
  store->add_pending(digest('b'), std::string(MetaStore::max_pending_reference_bytes, 'x'), 1);
  EXPECT_EQ(store->pending_count(), 2u);
}

TEST_F(MetaStoreTest, ListPendingOldestFirstWithLimit) {
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_TRUE(store->list_pending(10).empty());
  // Digest order and time order differ; a negative time sorts before zero.
  store->add_pending(digest('1'), "u/r:1", 300);
  store->add_pending(digest('2'), "u/r:2", 100);
  store->add_pending(digest('3'), "u/r:3", -50);
  store->add_pending(digest('4'), "u/r:4", 100);  // same time as '2': digest order
  store->add_pending(digest('5'), "u/r:5", 1'700'000'000'000);
  store->add_pending(digest('0'), "u/r:0", 0);
  // A later request does not move an entry: the order is by first_seen.
  store->add_pending(digest('3'), "u/r:3b", 9'000'000'000'000);

  auto all = store->list_pending(100);
  EXPECT_EQ(pending_digests(all), (std::vector<std::string>{digest('3').str(), digest('0').str(), digest('2').str(),
                                                            digest('4').str(), digest('1').str(), digest('5').str()}));
  EXPECT_EQ(all[0].second.references, (std::vector<std::string>{"u/r:3", "u/r:3b"}));
  EXPECT_EQ(all[0].second.first_seen_ms, -50);
  EXPECT_EQ(pending_digests(store->list_pending(2)), (std::vector<std::string>{digest('3').str(), digest('0').str()}));
  EXPECT_TRUE(store->list_pending(0).empty());
  EXPECT_EQ(store->pending_count(), 6u);

  EXPECT_TRUE(store->remove_pending(digest('0')));
  EXPECT_FALSE(store->remove_pending(digest('0')));
  EXPECT_FALSE(store->remove_pending(digest('9')));
  EXPECT_FALSE(store->get_pending(digest('0')));
  EXPECT_EQ(pending_digests(store->list_pending(2)), (std::vector<std::string>{digest('3').str(), digest('2').str()}));
  EXPECT_EQ(store->pending_count(), 5u);

  // Removed and asked for again: a new wait, at the back of the queue.
  store->add_pending(digest('3'), "u/r:3c", 2'000'000'000'000);
  auto again = store->list_pending(100);
  ASSERT_EQ(again.size(), 5u);
  EXPECT_EQ(again.back().first, digest('5'));
  store->remove_pending(digest('3'));
  store->add_pending(digest('3'), "u/r:3c", 2'000'000'000'000);
  again = store->list_pending(100);
  ASSERT_EQ(again.size(), 5u);
  EXPECT_EQ(again.back().first, digest('3'));
  EXPECT_EQ(again.back().second.references, std::vector<std::string>{"u/r:3c"});
  EXPECT_EQ(again.back().second.requests, 1u);
}

TEST_F(MetaStoreTest, ReportEndsTheWaitInOneTransaction) {
  auto store = MetaStore::open(dir_, map_size);
  store->add_pending(digest('a'), "u/r:a", 1);
  store->add_pending(digest('b'), "u/r:b", 2);
  const auto before = store->generation();

  store->put_report(digest('a'), report("{}"));
  // One commit wrote the report and cleared the queue entry.
  EXPECT_EQ(store->generation(), before + 1);
  EXPECT_TRUE(store->get_report(digest('a')));
  EXPECT_FALSE(store->get_pending(digest('a')));
  EXPECT_EQ(pending_digests(store->list_pending(10)), std::vector<std::string>{digest('b').str()});
  EXPECT_EQ(store->pending_count(), 1u);
  EXPECT_EQ(store->report_count(), 1u);

  // A refused report leaves the wait in place.
  EXPECT_THROW(store->put_report(digest('b'), report("{}", "bad\xff")), std::invalid_argument);
  EXPECT_TRUE(store->get_pending(digest('b')));
  EXPECT_EQ(store->pending_count(), 1u);

  // A report for a digest nobody waits for is stored; the queue is untouched.
  store->put_report(digest('c'), report("{}"));
  EXPECT_EQ(store->pending_count(), 1u);
  EXPECT_EQ(store->report_count(), 2u);
  // Removing a report does not queue the digest again; that is the gate's call.
  EXPECT_TRUE(store->remove_report(digest('a')));
  EXPECT_FALSE(store->get_pending(digest('a')));
}

TEST_F(MetaStoreTest, CorruptReportsAndPendingAreAbsent) {
  {
    auto store = MetaStore::open(dir_, map_size);
    store->add_pending(digest('c'), "u/r:c", 50);  // a good entry next to the bad ones
  }
  const std::vector<std::pair<char, std::string>> bad_reports = {
      {'1', "not json"},
      {'2', R"({"v":2,"summary_base64":"","scanner":"t","scanned_at_ms":1,"imported_at_ms":1})"},
      {'3', R"({"v":1,"summary_base64":"@@@@","scanner":"t","scanned_at_ms":1,"imported_at_ms":1})"},
      {'4', R"({"v":1,"summary_base64":"","scanner":7,"scanned_at_ms":1,"imported_at_ms":1})"},
      {'5', R"({"v":1,"summary_base64":"","scanner":"t","scanned_at_ms":1})"},
  };
  for (const auto& [fill, value] : bad_reports) write_raw("reports", digest(fill).str(), value);
  const std::vector<std::pair<char, std::string>> bad_pending = {
      {'1', "[]"},
      {'2', R"({"v":1,"references":"u/r:t","first_seen_ms":1,"last_seen_ms":1,"requests":1})"},
      {'3', R"({"v":1,"references":[1],"first_seen_ms":1,"last_seen_ms":1,"requests":1})"},
      {'4', R"({"v":1,"references":[],"first_seen_ms":1,"last_seen_ms":1,"requests":-1})"},
      {'5', R"({"v":1,"references":[],"first_seen_ms":1,"last_seen_ms":1,"requests":4294967296})"},
      {'6', R"({"v":1,"references":[],"first_seen_ms":"1","last_seen_ms":1,"requests":1})"},
  };
  for (const auto& [fill, value] : bad_pending) {
    write_raw("pending", digest(fill).str(), value);
    // Order entries for the bad records, placed before the good one.
    write_raw("pending_order", "0000000000000000\n" + digest(fill).str(), "");
  }
  // Order entries that name nothing, or are not order keys at all.
  write_raw("pending_order", "0000000000000000\n" + digest('9').str(), "");
  write_raw("pending_order", "zz", "");
  write_raw("pending_order", "0000000000000001\nmd5:abc", "");

  auto store = MetaStore::open(dir_, map_size);
  for (const auto& [fill, value] : bad_reports) EXPECT_FALSE(store->get_report(digest(fill))) << value;
  for (const auto& [fill, value] : bad_pending) EXPECT_FALSE(store->get_pending(digest(fill))) << value;
  EXPECT_EQ(pending_digests(store->list_pending(100)), std::vector<std::string>{digest('c').str()});

  // A corrupt entry can be removed; a new request over one starts a fresh wait
  // and leaves no stale order entry behind.
  EXPECT_TRUE(store->remove_pending(digest('1')));
  EXPECT_FALSE(store->get_pending(digest('1')));
  store->add_pending(digest('2'), "u/r:2", 100);
  auto fresh = store->get_pending(digest('2'));
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->first_seen_ms, 100);
  EXPECT_EQ(fresh->requests, 1u);
  EXPECT_EQ(pending_digests(store->list_pending(100)), (std::vector<std::string>{digest('c').str(), digest('2').str()}));
  // A report over a corrupt entry clears it too; a corrupt report is replaced.
  store->put_report(digest('3'), report("{}"));
  EXPECT_FALSE(store->get_pending(digest('3')));
  EXPECT_EQ(store->get_report(digest('3'))->summary_json, "{}");
  EXPECT_TRUE(store->remove_report(digest('1')));
}

TEST_F(MetaStoreTest, OpensAStoreWrittenBeforeReportsExisted) {
  for (const char* db : {"tags", "manifests", "blobs", "responses", "verdicts", "refs", "exceptions"}) {
    write_raw(db, "k", "v");
  }
  write_raw("meta", "schema_version", R"({"schema_version":1})");
  {
    auto store = MetaStore::open(dir_, map_size);
    EXPECT_FALSE(store->get_report(digest('a')));
    EXPECT_TRUE(store->list_pending(10).empty());
    store->add_pending(digest('a'), "u/r:a", 1);
    store->put_report(digest('b'), report("{}"));
  }
  auto store = MetaStore::open(dir_, map_size);
  EXPECT_EQ(store->pending_count(), 1u);
  EXPECT_EQ(store->report_count(), 1u);
}

// The CLI imports reports while the server runs: a report written by another
// process is seen by the server's open store, and the wait it ends is gone.
TEST_F(MetaStoreTest, ReportImportedByAnotherProcessIsSeen) {
  auto store = MetaStore::open(dir_, map_size);
  store->add_pending(digest('a'), "docker.io/library/alpine:3.19", 10);
  store->add_pending(digest('b'), "docker.io/library/busybox:1", 20);

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      auto own = MetaStore::open(dir_, map_size);
      auto queue = own->list_pending(10);
      if (queue.size() != 2 || queue[0].first != digest('a')) code = 2;
      own->put_report(digest('a'), ReportRecord{R"({"critical":1})", "trivy", 30, 40});
      own->add_pending(digest('c'), "ghcr.io/x/y:z", 50);
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

  auto read = store->get_report(digest('a'));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->summary_json, R"({"critical":1})");
  EXPECT_EQ(read->scanner, "trivy");
  EXPECT_EQ(read->scanned_at_ms, 30);
  EXPECT_EQ(read->imported_at_ms, 40);
  EXPECT_FALSE(store->get_pending(digest('a')));
  EXPECT_EQ(pending_digests(store->list_pending(10)), (std::vector<std::string>{digest('b').str(), digest('c').str()}));
  EXPECT_EQ(store->pending_count(), 2u);
  EXPECT_EQ(store->report_count(), 1u);
}

// ---- the fleet store's records (cache/fleet.hpp) ----

VerdictRecord manual_verdict(const std::string& decision) {
  VerdictRecord v;
  v.decision = decision;
  v.source = "manual";
  v.reasons = {"set for the fleet"};
  v.set_by = "ops";
  v.evaluated_at_ms = 1000;
  return v;
}

VerdictRecord computed_verdict(const std::string& scope) {
  VerdictRecord v;
  v.decision = "allow";
  v.source = "rule";
  v.reasons = {"rule"};
  v.policy_version = "p1";
  v.evaluated_at_ms = 1000;
  v.scope = scope;
  return v;
}

ExceptionRecord fleet_exception(const std::string& id) {
  ExceptionRecord e;
  e.id = id;
  e.repository = "team/*";
  e.reason = "migration";
  e.who = "ops";
  e.created_at_ms = 1000;
  e.expires_at_ms = 9'000'000'000'000;
  return e;
}

FleetRecord put(FleetRecord::Kind kind, std::string key, std::string value) {
  return FleetRecord{kind, std::move(key), std::move(value)};
}
FleetRecord removal(FleetRecord::Kind kind, std::string key) { return FleetRecord{kind, std::move(key), std::nullopt}; }

TEST_F(MetaStoreTest, FleetBatchesApplyInOrderWithTheirRevision) {
  auto store = MetaStore::open(dir_, map_size);
  using K = FleetRecord::Kind;
  EXPECT_EQ(store->fleet_revision(), 0);
  store->put_verdict(digest('a'), computed_verdict("default"));
  ReportRecord report{"{}", "trivy", 500, 600};
  FleetBatch first{{put(K::verdict, digest('a').str(), encode_record(manual_verdict("deny"))),
                    put(K::exception, "ex-1", encode_record(fleet_exception("ex-1"))),
                    put(K::report, digest('b').str(), encode_record(report))},
                   7};
  store->add_pending(digest('b'), "up/team/app:v1", 100);
  store->put_verdict(digest('b'), computed_verdict("default"));
  auto applied = store->apply_fleet(first);
  EXPECT_EQ(applied.written, 3u);
  EXPECT_FALSE(applied.stale);
  EXPECT_EQ(store->fleet_revision(), 7);
  EXPECT_EQ(store->get_verdicts_in(digest('a'), "default").manual->decision, "deny");
  ASSERT_TRUE(store->get_exception("ex-1"));
  EXPECT_EQ(store->get_report(digest('b'))->scanner, "trivy");
  // The report ends the wait and the verdict computed without it.
  EXPECT_FALSE(store->get_pending(digest('b')));
  EXPECT_FALSE(store->get_verdicts_in(digest('b'), "default").computed);

  // A batch at or before the applied revision is stale: nothing changes.
  auto stale = store->apply_fleet(FleetBatch{{removal(K::verdict, digest('a').str())}, 7});
  EXPECT_TRUE(stale.stale);
  EXPECT_TRUE(store->get_verdicts_in(digest('a'), "default").manual);

  auto second = store->apply_fleet(
      FleetBatch{{removal(K::verdict, digest('a').str()), removal(K::exception, "ex-1")}, 9});
  EXPECT_EQ(second.removed, 2u);
  EXPECT_FALSE(store->get_verdict(digest('a')));
  EXPECT_FALSE(store->get_exception("ex-1"));
  EXPECT_EQ(store->fleet_revision(), 9);
}

TEST_F(MetaStoreTest, FleetRecordsThatAreNotOneAreSkipped) {
  auto store = MetaStore::open(dir_, map_size);
  using K = FleetRecord::Kind;
  auto applied = store->apply_fleet(FleetBatch{
      {put(K::verdict, "not-a-digest", encode_record(manual_verdict("deny"))),
       // Only a person's verdict is the fleet's: a computed one is not taken.
       put(K::verdict, digest('a').str(), encode_record(computed_verdict("default"))),
       put(K::verdict, digest('b').str(), "{\"v\":1,\"decision\":\"deny\""),
       put(K::exception, "ex-2", encode_record(fleet_exception("another-id"))),
       put(K::report, digest('c').str(), "[]"),
       put(K::verdict, digest('d').str(), encode_record(manual_verdict("deny")))},
      3});
  EXPECT_EQ(applied.skipped, 5u);
  EXPECT_EQ(applied.written, 1u);
  EXPECT_FALSE(store->get_verdict(digest('a')));
  EXPECT_FALSE(store->get_verdict(digest('b')));
  EXPECT_FALSE(store->get_exception("ex-2"));
  EXPECT_FALSE(store->get_report(digest('c')));
  EXPECT_EQ(store->get_verdict(digest('d'))->decision, "deny");
  EXPECT_EQ(store->fleet_revision(), 3);
}

TEST_F(MetaStoreTest, AFullFleetBatchReplacesWhatTheFleetSharesAndNothingElse) {
  auto store = MetaStore::open(dir_, map_size);
  using K = FleetRecord::Kind;
  // Before: a manual deny and an exception the fleet removed while this replica was
  // away, an upstream gate's verdict (this mirror's own), a computed verdict, a
  // report etcd no longer has, and a pending entry of this replica's.
  store->put_verdict(digest('a'), manual_verdict("deny"));
  VerdictRecord upstream = manual_verdict("deny");
  upstream.source = "upstream";
  store->put_verdict(digest('e'), upstream);
  store->put_verdict(digest('c'), computed_verdict("default"));
  store->put_exception(fleet_exception("gone"));
  store->put_report(digest('f'), ReportRecord{"{}", "grype", 1, 2});
  store->put_verdict(digest('f'), computed_verdict("default"));
  store->add_pending(digest('1'), "up/team/app:v2", 100);
  store->apply_fleet(FleetBatch{{}, 4});

  auto applied = store->apply_fleet(FleetBatch{{put(K::verdict, digest('b').str(), encode_record(manual_verdict("warn"))),
                                                put(K::exception, "kept", encode_record(fleet_exception("kept")))},
                                               2,  // a full read may be at any revision
                                               true});
  EXPECT_FALSE(applied.stale);
  EXPECT_EQ(applied.removed, 3u);  // the manual verdict, the exception, the report
  EXPECT_FALSE(store->get_verdict(digest('a')));
  EXPECT_EQ(store->get_verdict(digest('b'))->decision, "warn");
  EXPECT_EQ(store->get_verdict(digest('e'))->source, "upstream");
  EXPECT_TRUE(store->get_verdicts_in(digest('c'), "default").computed);
  EXPECT_FALSE(store->get_exception("gone"));
  EXPECT_TRUE(store->get_exception("kept"));
  EXPECT_FALSE(store->get_report(digest('f')));
  EXPECT_FALSE(store->get_verdicts_in(digest('f'), "default").computed);  // made from the report that went
  EXPECT_TRUE(store->get_pending(digest('1')));
  EXPECT_EQ(store->fleet_revision(), 2);
}

TEST_F(MetaStoreTest, AFleetRevisionThatDoesNotReadIsAFullReadAgain) {
  auto store = MetaStore::open(dir_, map_size);
  store->apply_fleet(FleetBatch{{}, 12});
  store.reset();
  write_raw("meta", "fleet_revision", "12x");
  store = MetaStore::open(dir_, map_size);
  EXPECT_EQ(store->fleet_revision(), 0);
}

}  // namespace
}  // namespace pullgate::cache
