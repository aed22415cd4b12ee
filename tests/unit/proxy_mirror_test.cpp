// The mirror's writes to LMDB, with a scripted upstream and the real stores: a cold
// pull of a manifest by tag costs one transaction for what it learned (tag, manifest,
// references, where it was seen) and one for the gate's first verdict; a blob served
// from the cache writes nothing. And the manifest source every caller fetches through
// (a client's pull by digest or tag, a confirmation in another repository, the
// signal look-up): what it refuses is refused for each, and stored for none.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cache/blob_fetch.hpp"
#include "cache/blob_store.hpp"
#include "cache/evictor.hpp"
#include "cache/meta_store.hpp"
#include "proxy/telemetry/audit_log.hpp"
#include "proxy/gate/gate.hpp"
#include "proxy/telemetry/log.hpp"
#include "proxy/telemetry/metrics.hpp"
#include "proxy/mirror/manifest_source.hpp"
#include "proxy/mirror/mirror.hpp"
#include "proxy/mirror/signals.hpp"
#include "policy/policy.hpp"
#include "policy/signature.hpp"
#include "registry/manifest.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::proxy {
namespace {

namespace fs = std::filesystem;
using registry::Digest;

constexpr std::string_view manifest_type = "application/vnd.oci.image.manifest.v1+json";

class Answer final : public registry::UpstreamResponse {
 public:
  Answer(unsigned status, registry::http::fields headers, std::string body, bool chunked = false)
      : status_(status), headers_(std::move(headers)), body_(std::move(body)), chunked_(chunked) {}
  unsigned status() const override { return status_; }
  const registry::http::fields& headers() const override { return headers_; }
  std::optional<std::uint64_t> content_length() const override {
    if (chunked_) return std::nullopt;
    return body_.size();
  }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer) override {
    auto n = std::min(buffer.size(), body_.size() - offset_);
    std::memcpy(buffer.data(), body_.data() + offset_, n);
    offset_ += n;
    co_return n;
  }

 private:
  unsigned status_;
  registry::http::fields headers_;
  std::string body_;
  std::size_t offset_ = 0;
  bool chunked_;
};

// A registry with one repository: manifests by tag and digest (HEAD and GET), blobs,
// and scripted answers (a wrong digest, none, a failure). While `hold` is set, its
// answers wait for release().
class ScriptedRegistry final : public registry::Upstream {
 public:
  struct Scripted {
    unsigned status = 200;
    std::string body;
    std::string digest;       // the GET's Docker-Content-Digest; empty: none
    std::string head_digest;  // the HEAD's; empty: none
    std::string content_type = std::string(manifest_type);
    bool chunked = false;  // no Content-Length
  };

  ScriptedRegistry() { settings_.name = "up"; }
  const registry::UpstreamSettings& settings() const override { return settings_; }
  asio::awaitable<std::unique_ptr<registry::UpstreamResponse>> send(registry::UpstreamRequest request) override {
    ++requests;
    ++asked[request.target];
    if (hold) {
      auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor,
                                                        asio::steady_timer::time_point::max());
      held.push_back(timer);
      co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    registry::http::fields headers;
    std::string body;
    unsigned status = 404;
    const bool get = request.method == registry::http::verb::get;
    if (auto scripted = answers.find(request.target); scripted != answers.end()) {
      const auto& a = scripted->second;
      status = a.status;
      if (!a.content_type.empty()) headers.set(registry::http::field::content_type, a.content_type);
      const auto& digest = get ? a.digest : a.head_digest;
      if (!digest.empty()) headers.set("Docker-Content-Digest", digest);
      if (get) body = a.body;
      co_return std::make_unique<Answer>(status, std::move(headers), std::move(body), a.chunked);
    }
    if (auto it = manifests.find(request.target); it != manifests.end()) {
      status = 200;
      headers.set("Docker-Content-Digest", registry::digest_of(registry::DigestAlgorithm::sha256, it->second).str());
      headers.set(registry::http::field::content_type, manifest_type);
      if (request.method == registry::http::verb::get) body = it->second;
    } else if (auto blob = blobs.find(request.target); blob != blobs.end()) {
      status = 200;
      body = blob->second;
    }
    co_return std::make_unique<Answer>(status, std::move(headers), std::move(body));
  }
  void release() {
    hold = false;
    for (auto& timer : held) timer->cancel();
    held.clear();
  }

  std::map<std::string, std::string> manifests;  // by target
  std::map<std::string, std::string> blobs;
  std::map<std::string, Scripted> answers;  // by target, before the others
  int requests = 0;
  std::map<std::string, int> asked;  // by target
  bool hold = false;
  std::vector<std::shared_ptr<asio::steady_timer>> held;

 private:
  registry::UpstreamSettings settings_;
};

class RecordingClient final : public ClientStream {
 public:
  asio::awaitable<void> write(http::response<http::string_body>& response) override {
    status = response.result_int();
    body = response.body();
    co_return;
  }
  asio::awaitable<void> write_header(http::response<http::empty_body>& header) override {
    status = header.result_int();
    co_return;
  }
  asio::awaitable<void> write_file(int fd, std::uint64_t offset, std::uint64_t length) override {
    std::string bytes(length, '\0');
    auto n = ::pread(fd, bytes.data(), length, static_cast<off_t>(offset));
    body += bytes.substr(0, n < 0 ? 0 : static_cast<std::size_t>(n));
    co_return;
  }
  unsigned status = 0;
  std::string body;
};

class MirrorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-mirror");
    meta_ = cache::MetaStore::open(dir_ / "lmdb", 64 << 20);
    blobs_ = std::make_unique<cache::BlobStore>(dir_);
    fetches_ = std::make_unique<cache::BlobFetches>(*blobs_, *meta_, ioc_.get_executor(), cache::BlobLimits{}, clock_);
    audit_ = std::make_unique<AuditLog>(dir_ / "audit.log", 0, 2);
    gate_ = std::make_unique<Gate>(*meta_, policy_, *audit_, metrics_, false, clock_);

    layer_ = std::string(100'000, 'L');
    config_blob_ = R"({"architecture":"amd64","os":"linux"})";
    layer_digest_ = registry::digest_of(registry::DigestAlgorithm::sha256, layer_);
    auto config_digest = registry::digest_of(registry::DigestAlgorithm::sha256, config_blob_);
    manifest_ = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                config_digest.str() + R"(","size":)" + std::to_string(config_blob_.size()) +
                R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
                layer_digest_.str() + R"(","size":)" + std::to_string(layer_.size()) + "}]}";
    manifest_digest_ = registry::digest_of(registry::DigestAlgorithm::sha256, manifest_);
    auto upstream = std::make_unique<ScriptedRegistry>();
    registry_ = upstream.get();
    registry_->manifests["/v2/it/app/manifests/v1"] = manifest_;
    registry_->manifests["/v2/it/app/manifests/" + manifest_digest_.str()] = manifest_;
    registry_->blobs["/v2/it/app/blobs/" + layer_digest_.str()] = layer_;

    UpstreamConfig up;
    up.settings.name = "up";
    up.is_default = true;
    upstreams_.push_back(UpstreamEntry{up, std::move(upstream)});
    config_.upstreams = {up};
    mirror_ = std::make_unique<Mirror>(config_, upstreams_, *meta_, *blobs_, *fetches_, access_log_, *gate_, metrics_,
                                       policy_, ioc_.get_executor(), clock_);
    source_ = std::make_unique<ManifestSource>(*meta_, hot_, metrics_, ioc_.get_executor(), false, clock_);
  }
  void TearDown() override {
    source_.reset();
    mirror_.reset();
    upstreams_.clear();
    gate_.reset();
    audit_.reset();
    fetches_.reset();
    blobs_.reset();
    meta_.reset();
    fs::remove_all(dir_);
  }

  RecordingClient get(const std::string& target) {
    Request request{http::verb::get, target, 11};
    request.set(http::field::host, "mirror.test");
    request.set(http::field::accept, manifest_type);
    RecordingClient client;
    RequestContext context{"127.0.0.1:4242"};
    bool done = false;
    asio::co_spawn(
        ioc_,
        [&]() -> asio::awaitable<void> {
          co_await mirror_->handle(request, client, context);
          done = true;
        },
        asio::detached);
    ioc_.restart();
    ioc_.run();
    EXPECT_TRUE(done) << target;
    return client;
  }

  ManifestSource::Request source_request(registry::Reference reference) {
    return ManifestSource::Request{*registry_, repository_, std::move(reference), {}, std::nullopt};
  }
  // Starts a fetch from the source; `out` is set when it ends.
  void start_fetch(const ManifestSource::Request& request, std::optional<ManifestFetch>& out) {
    asio::co_spawn(
        ioc_, [&]() -> asio::awaitable<void> { out = co_await source_->fetch(request); }, asio::detached);
  }
  ManifestFetch fetch(const ManifestSource::Request& request) {
    std::optional<ManifestFetch> out;
    start_fetch(request, out);
    ioc_.restart();
    ioc_.run();
    return std::move(out).value();  // throws (and fails the test) when the fetch did not end
  }
  // `n` fetches of one request at once: all of them start while the upstream holds its
  // answer. Returns how each ended.
  std::vector<ManifestFetch> fetch_together(const ManifestSource::Request& request, std::size_t n) {
    registry_->hold = true;
    std::vector<std::optional<ManifestFetch>> out(n);
    for (auto& o : out) start_fetch(request, o);
    ioc_.restart();
    ioc_.poll();  // every fetch started: the first asks, and waits for its answer
    registry_->release();
    ioc_.run();
    std::vector<ManifestFetch> ended;
    for (auto& o : out) ended.push_back(std::move(o).value());
    return ended;
  }
  static Digest digest_of(std::string_view bytes) { return registry::digest_of(registry::DigestAlgorithm::sha256, bytes); }
  // Another manifest of the repository (the image's config, no layers).
  std::string other_manifest() const {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
           R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
           digest_of(config_blob_).str() + R"(","size":)" + std::to_string(config_blob_.size()) + R"(},"layers":[]})";
  }
  // Nothing of `bytes` is stored: not under `named` (the digest the upstream gave it),
  // not under its own digest, not as seen in the repository, not under `tag`.
  void expect_nothing_stored(const std::string& bytes, const Digest& named, const std::string& tag = "") {
    EXPECT_FALSE(meta_->get_manifest(named));
    EXPECT_FALSE(meta_->get_manifest(digest_of(bytes)));
    EXPECT_FALSE(meta_->seen_in(named, "up", repository_));
    EXPECT_FALSE(meta_->seen_in(digest_of(bytes), "up", repository_));
    EXPECT_FALSE(hot_.manifest(named));
    EXPECT_FALSE(hot_.manifest(digest_of(bytes)));
    if (!tag.empty()) EXPECT_FALSE(meta_->get_tag("up", repository_, tag));
  }

  fs::path dir_;
  // The mirror's one clock, moved by the tests: far from the machine's, so a time
  // taken from anywhere else shows.
  WallTime now_ = WallTime{} + std::chrono::hours(24 * 365 * 20);
  WallClock clock_ = [this] { return now_; };
  asio::io_context ioc_;
  std::unique_ptr<cache::MetaStore> meta_;
  std::unique_ptr<cache::BlobStore> blobs_;
  std::unique_ptr<cache::BlobFetches> fetches_;
  AccessLog access_log_{""};
  PullgateMetrics metrics_;
  PolicyHolder policy_{default_policy()};
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Gate> gate_;
  Config config_;
  std::vector<UpstreamEntry> upstreams_;
  ScriptedRegistry* registry_ = nullptr;
  std::unique_ptr<Mirror> mirror_;
  cache::HotCache hot_{1 << 20};
  std::unique_ptr<ManifestSource> source_;
  const std::string repository_ = "it/app";
  std::string layer_, config_blob_, manifest_;
  Digest layer_digest_ = registry::digest_of(registry::DigestAlgorithm::sha256, "");
  Digest manifest_digest_ = layer_digest_;
};

TEST_F(MirrorStoreTest, AColdPullByTagIsOneTransactionAndTheGatesVerdictAnother) {
  const auto before = meta_->generation();
  auto answer = get("/v2/it/app/manifests/v1");
  ASSERT_EQ(answer.status, 200u) << answer.body;
  EXPECT_EQ(answer.body, manifest_);
  EXPECT_EQ(registry_->requests, 2);  // HEAD of the tag, GET of the manifest
  EXPECT_EQ(meta_->generation(), before + 2);
  // All of it stored: the tag, the manifest, what it references, where it was seen.
  EXPECT_EQ(meta_->get_tag("up", "it/app", "v1")->digest, manifest_digest_);
  EXPECT_EQ(meta_->get_manifest(manifest_digest_)->bytes, manifest_);
  EXPECT_EQ(meta_->referenced_by(layer_digest_, 10), std::vector<Digest>{manifest_digest_});
  EXPECT_TRUE(meta_->seen_in(manifest_digest_, "up", "it/app"));
  EXPECT_EQ(gate_->evaluations(), 1u);

  // Warm: nothing asked, nothing written.
  const auto warm = meta_->generation();
  EXPECT_EQ(get("/v2/it/app/manifests/v1").status, 200u);
  EXPECT_EQ(get("/v2/it/app/manifests/" + manifest_digest_.str()).status, 200u);
  EXPECT_EQ(registry_->requests, 2);
  EXPECT_EQ(meta_->generation(), warm);
}

TEST_F(MirrorStoreTest, EveryPartTellsTimeByTheOneClockItIsGiven) {
  ASSERT_EQ(get("/v2/it/app/manifests/v1").status, 200u);
  ASSERT_EQ(get("/v2/it/app/blobs/" + layer_digest_.str()).status, 200u);
  const auto at = ms_since_epoch(now_);
  EXPECT_EQ(meta_->get_tag("up", repository_, "v1")->fetched_at_ms, at);
  EXPECT_EQ(meta_->get_manifest(manifest_digest_)->stored_at_ms, at);
  EXPECT_EQ(meta_->get_blob(layer_digest_)->stored_at_ms, at);
  ASSERT_TRUE(meta_->get_verdict(manifest_digest_));
  EXPECT_EQ(meta_->get_verdict(manifest_digest_)->evaluated_at_ms, at);

  // The tag is checked again when this clock, not the machine's, passes its TTL.
  const auto asked = registry_->asked["/v2/it/app/manifests/v1"];
  now_ += std::chrono::seconds(299);
  ASSERT_EQ(get("/v2/it/app/manifests/v1").status, 200u);
  EXPECT_EQ(registry_->asked["/v2/it/app/manifests/v1"], asked);
  now_ += std::chrono::seconds(2);
  ASSERT_EQ(get("/v2/it/app/manifests/v1").status, 200u);
  EXPECT_GT(registry_->asked["/v2/it/app/manifests/v1"], asked);
  EXPECT_EQ(meta_->get_tag("up", repository_, "v1")->fetched_at_ms, ms_since_epoch(now_));
}

TEST_F(MirrorStoreTest, ACachedBlobIsServedWithoutAWrite) {
  ASSERT_EQ(get("/v2/it/app/manifests/v1").status, 200u);
  auto filled = get("/v2/it/app/blobs/" + layer_digest_.str());
  ASSERT_EQ(filled.status, 200u);
  EXPECT_EQ(filled.body, layer_);
  ASSERT_TRUE(blobs_->open(layer_digest_));
  // Stored long ago, and not pulled since: a hit still writes nothing.
  meta_->put_blob(layer_digest_, cache::BlobRecord{layer_.size(), 0, 0});
  const auto before = meta_->generation();
  for (int i = 0; i < 3; ++i) {
    auto hit = get("/v2/it/app/blobs/" + layer_digest_.str());
    ASSERT_EQ(hit.status, 200u);
    EXPECT_EQ(hit.body, layer_);
  }
  EXPECT_EQ(meta_->generation(), before);
  EXPECT_EQ(meta_->get_blob(layer_digest_)->last_access_ms, 0);
}

TEST_F(MirrorStoreTest, AServedManifestNotesItsPullTimeWithoutAWrite) {
  ASSERT_EQ(get("/v2/it/app/manifests/v1").status, 200u);
  EXPECT_EQ(mirror_->pull_times().noted(manifest_digest_.str()), ms_since_epoch(now_));
  const auto before = meta_->generation();
  now_ += std::chrono::seconds(10);
  ASSERT_EQ(get("/v2/it/app/manifests/" + manifest_digest_.str()).status, 200u);
  EXPECT_EQ(meta_->generation(), before);  // noted in memory only
  EXPECT_EQ(mirror_->pull_times().noted(manifest_digest_.str()), ms_since_epoch(now_));
  EXPECT_EQ(meta_->get_pull_time(manifest_digest_.str()), std::nullopt);
  mirror_->pull_times().flush_to(*meta_);
  EXPECT_EQ(meta_->get_pull_time(manifest_digest_.str()), ms_since_epoch(now_));
}

TEST_F(MirrorStoreTest, AnEvictedImageIsFetchedAgainOnItsNextPull) {
  ASSERT_EQ(get("/v2/it/app/manifests/v1").status, 200u);
  ASSERT_EQ(get("/v2/it/app/blobs/" + layer_digest_.str()).status, 200u);
  const auto asked = registry_->asked["/v2/it/app/manifests/v1"];
  cache::Evictor evictor(*meta_, *blobs_, mirror_->pull_times(), cache::EvictionLimits{1, 90, 80, std::nullopt},
                         clock_);
  evictor.on_evicted = [this](const cache::EvictionPlan& plan) { mirror_->forget_evicted(plan.manifests); };
  auto result = evictor.run();
  ASSERT_EQ(result.plan.manifests, std::vector<registry::Digest>{manifest_digest_});
  EXPECT_FALSE(meta_->get_manifest(manifest_digest_));
  EXPECT_FALSE(blobs_->open(layer_digest_));

  // Neither the hot cache's tag nor its manifest answers: the upstream is asked again.
  auto again = get("/v2/it/app/manifests/v1");
  ASSERT_EQ(again.status, 200u);
  EXPECT_GT(registry_->asked["/v2/it/app/manifests/v1"], asked);
  EXPECT_TRUE(meta_->get_manifest(manifest_digest_));
  auto blob = get("/v2/it/app/blobs/" + layer_digest_.str());
  ASSERT_EQ(blob.status, 200u);
  EXPECT_EQ(blob.body, layer_);
}

// ---------------------------------------------------------------------------------
// The manifest source

TEST_F(MirrorStoreTest, TheSourceRefusesBytesThatDoNotMatchTheDigestAskedFor) {
  const auto other = other_manifest();
  registry_->answers["/v2/it/app/manifests/" + manifest_digest_.str()] = {200, other, manifest_digest_.str()};
  auto fetched = fetch(source_request(registry::Reference(manifest_digest_)));
  ASSERT_TRUE(fetched.failure());
  EXPECT_EQ(fetched.failure()->kind, ManifestFailure::Kind::mismatch);
  EXPECT_EQ(fetched.failure()->reply.status, 502u);
  EXPECT_EQ(fetched.failure()->reply.code, registry::ErrorCode::digest_invalid);
  EXPECT_FALSE(fetched.failure()->reply.trouble);
  expect_nothing_stored(other, manifest_digest_);
}

TEST_F(MirrorStoreTest, TheSourceRefusesATagWhoseBytesDoNotMatchTheDigestTheUpstreamNames) {
  const auto other = other_manifest();
  registry_->answers["/v2/it/app/manifests/v2"] = {200, other, manifest_digest_.str()};
  auto fetched = fetch(source_request(registry::Reference(*registry::Tag::parse("v2"))));
  ASSERT_TRUE(fetched.failure());
  EXPECT_EQ(fetched.failure()->kind, ManifestFailure::Kind::mismatch);
  EXPECT_EQ(fetched.failure()->reply.code, registry::ErrorCode::digest_invalid);
  expect_nothing_stored(other, manifest_digest_, "v2");

  // Named rightly (or not at all), the same bytes are stored with the tag.
  registry_->answers["/v2/it/app/manifests/v2"] = {200, other, ""};
  fetched = fetch(source_request(registry::Reference(*registry::Tag::parse("v2"))));
  ASSERT_TRUE(fetched.fetched());
  EXPECT_EQ(fetched.fetched()->digest, digest_of(other));
  EXPECT_EQ(meta_->get_tag("up", repository_, "v2")->digest, digest_of(other));
  EXPECT_EQ(meta_->get_manifest(digest_of(other))->bytes, other);
  EXPECT_TRUE(meta_->seen_in(digest_of(other), "up", repository_));
}

TEST_F(MirrorStoreTest, TheSourceRefusesAManifestLargerThanAManifestMayBe) {
  const std::string huge(registry::max_manifest_bytes + 1, ' ');
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "without a Content-Length" : "with a Content-Length");
    registry_->answers["/v2/it/app/manifests/big"] = {200, huge, "", "", std::string(manifest_type), chunked};
    auto fetched = fetch(source_request(registry::Reference(*registry::Tag::parse("big"))));
    ASSERT_TRUE(fetched.failure());
    EXPECT_EQ(fetched.failure()->kind, ManifestFailure::Kind::too_large);
    EXPECT_EQ(fetched.failure()->reply.status, 502u);
    EXPECT_EQ(fetched.failure()->reply.code, registry::ErrorCode::manifest_invalid);
    expect_nothing_stored(huge, digest_of(huge), "big");
  }
  // A client's pull by digest is refused the same way.
  const auto digest = digest_of(huge);
  registry_->answers["/v2/it/app/manifests/" + digest.str()] = {200, huge, digest.str()};
  auto answer = get("/v2/it/app/manifests/" + digest.str());
  EXPECT_EQ(answer.status, 502u) << answer.body;
  EXPECT_NE(answer.body.find("MANIFEST_INVALID"), std::string::npos) << answer.body;
  EXPECT_FALSE(meta_->get_manifest(digest));
}

TEST_F(MirrorStoreTest, ConcurrentFetchesOfOneReferenceMakeOneUpstreamRequest) {
  const auto request = source_request(registry::Reference(manifest_digest_));
  const auto ended = fetch_together(request, 4);
  EXPECT_EQ(registry_->requests, 1);
  int asked = 0;
  for (const auto& fetched : ended) {
    ASSERT_TRUE(fetched.fetched());
    EXPECT_EQ(fetched.fetched()->digest, manifest_digest_);
    EXPECT_EQ(fetched.fetched()->record->bytes, manifest_);
    asked += fetched.asked;
  }
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(meta_->get_manifest(manifest_digest_)->bytes, manifest_);
  // Over: the next fetch asks again.
  EXPECT_TRUE(fetch(request).asked);
  EXPECT_EQ(registry_->requests, 2);
}

TEST_F(MirrorStoreTest, AFailureIsSharedByTheFetchesWaitingForIt) {
  registry_->answers["/v2/it/app/manifests/" + manifest_digest_.str()] = {503, "", ""};
  const auto ended = fetch_together(source_request(registry::Reference(manifest_digest_)), 3);
  EXPECT_EQ(registry_->requests, 1);
  int asked = 0;
  for (const auto& fetched : ended) {
    ASSERT_TRUE(fetched.failure());
    EXPECT_EQ(fetched.failure()->kind, ManifestFailure::Kind::answered);
    EXPECT_EQ(fetched.failure()->upstream_status, 503u);
    EXPECT_EQ(fetched.failure()->reply.status, 502u);
    EXPECT_TRUE(fetched.failure()->reply.trouble);
    asked += fetched.asked;
  }
  EXPECT_EQ(asked, 1);
  EXPECT_FALSE(meta_->get_manifest(manifest_digest_));
}

// Every caller goes through the source: a wrong digest is refused for each, and
// nothing of it stored.

TEST_F(MirrorStoreTest, AClientPullByDigestIsRefusedBytesThatDoNotMatch) {
  const auto other = other_manifest();
  registry_->answers["/v2/it/app/manifests/" + manifest_digest_.str()] = {200, other, manifest_digest_.str()};
  auto answer = get("/v2/it/app/manifests/" + manifest_digest_.str());
  EXPECT_EQ(answer.status, 502u) << answer.body;
  EXPECT_NE(answer.body.find("DIGEST_INVALID"), std::string::npos) << answer.body;
  expect_nothing_stored(other, manifest_digest_);
}

TEST_F(MirrorStoreTest, AClientPullByTagIsRefusedBytesThatDoNotMatchTheDigestTheUpstreamNames) {
  // The HEAD names no digest, so the tag's manifest is fetched by tag; the GET names a
  // digest its bytes do not have. (Before the one source, this path hashed the bytes
  // itself and never looked at the digest the upstream named: it served them.)
  const auto other = other_manifest();
  registry_->answers["/v2/it/app/manifests/v2"] = {200, other, manifest_digest_.str(), ""};
  auto answer = get("/v2/it/app/manifests/v2");
  EXPECT_EQ(answer.status, 502u) << answer.body;
  EXPECT_NE(answer.body.find("DIGEST_INVALID"), std::string::npos) << answer.body;
  expect_nothing_stored(other, manifest_digest_, "v2");
}

TEST_F(MirrorStoreTest, AConfirmationInAnotherRepositoryIsRefusedBytesThatDoNotMatch) {
  ASSERT_EQ(get("/v2/it/app/manifests/" + manifest_digest_.str()).status, 200u);
  // Cached from it/app; it/other's HEAD names no digest, and its GET sends other bytes.
  const auto other = other_manifest();
  registry_->answers["/v2/it/other/manifests/" + manifest_digest_.str()] = {200, other, manifest_digest_.str(), ""};
  auto answer = get("/v2/it/other/manifests/" + manifest_digest_.str());
  EXPECT_EQ(answer.status, 502u) << answer.body;
  EXPECT_NE(answer.body.find("DIGEST_INVALID"), std::string::npos) << answer.body;
  EXPECT_FALSE(meta_->seen_in(manifest_digest_, "up", "it/other"));
  EXPECT_FALSE(meta_->get_manifest(digest_of(other)));
}

TEST_F(MirrorStoreTest, TheSignalLookUpIsRefusedBytesThatDoNotMatch) {
  // A signature by its cosign tag whose bytes do not match the digest the upstream
  // names, and one in the referrers list whose bytes do not match its digest.
  const auto other = other_manifest();
  const std::string sig_tag = "sha256-" + std::string(manifest_digest_.hex()) + ".sig";
  const Digest lied = digest_of("what the upstream says it is");
  registry_->answers["/v2/it/app/manifests/" + sig_tag] = {200, other, lied.str()};
  const Digest referrer = digest_of("a referrer");
  registry_->answers["/v2/it/app/referrers/" + manifest_digest_.str()] = {
      200,
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
          referrer.str() + R"(","size":10,"artifactType":")" + std::string(policy::cosign_sig_artifact_type) +
          R"("}]})",
      "", "", "application/vnd.oci.image.index.v1+json"};
  registry_->answers["/v2/it/app/manifests/" + referrer.str()] = {200, other, referrer.str()};

  Signals signals(*meta_, *blobs_, *source_, metrics_, false);
  policy::Policy policy;
  policy.version = "sha256:test";
  policy::Scope scope;
  scope.name = "signed";
  scope.signatures = policy::SignaturePolicy{};
  const cache::ManifestRecord image{std::string(manifest_type), manifest_, 0};
  bool done = false;
  asio::co_spawn(
      ioc_,
      [&]() -> asio::awaitable<void> {
        co_await signals.prepare(*registry_, repository_, manifest_digest_, image, policy, scope);
        done = true;
      },
      asio::detached);
  ioc_.restart();
  ioc_.run();
  ASSERT_TRUE(done);
  EXPECT_EQ(registry_->asked["/v2/it/app/manifests/" + sig_tag], 1);
  EXPECT_EQ(registry_->asked["/v2/it/app/manifests/" + referrer.str()], 1);
  expect_nothing_stored(other, lied, sig_tag);
  expect_nothing_stored(other, referrer);
  auto record = meta_->get_signals(manifest_digest_, "signed");
  ASSERT_TRUE(record);
  EXPECT_EQ(record->signature, "invalid") << record->signature_detail;
  EXPECT_NE(record->signature_detail.find(referrer.str() + " via the referrers API: could not be fetched"),
            std::string::npos)
      << record->signature_detail;
}

}  // namespace
}  // namespace pullgate::proxy
