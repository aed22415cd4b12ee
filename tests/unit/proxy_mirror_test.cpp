// The mirror's writes to LMDB, with a scripted upstream and the real stores: a cold
// pull of a manifest by tag costs one transaction for what it learned (tag, manifest,
// references, where it was seen) and one for the gate's first verdict; a blob served
// from the cache writes nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "cache/blob_fetch.hpp"
#include "cache/blob_store.hpp"
#include "cache/meta_store.hpp"
#include "proxy/telemetry/audit_log.hpp"
#include "proxy/gate/gate.hpp"
#include "proxy/telemetry/log.hpp"
#include "proxy/telemetry/metrics.hpp"
#include "proxy/mirror/mirror.hpp"
#include "registry/manifest.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::proxy {
namespace {

namespace fs = std::filesystem;
using registry::Digest;

constexpr std::string_view manifest_type = "application/vnd.oci.image.manifest.v1+json";

class Answer final : public registry::UpstreamResponse {
 public:
  Answer(unsigned status, registry::http::fields headers, std::string body)
      : status_(status), headers_(std::move(headers)), body_(std::move(body)) {}
  unsigned status() const override { return status_; }
  const registry::http::fields& headers() const override { return headers_; }
  std::optional<std::uint64_t> content_length() const override { return body_.size(); }
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
};

// A registry with one repository: manifests by tag and digest (HEAD and GET), blobs.
class ScriptedRegistry final : public registry::Upstream {
 public:
  ScriptedRegistry() { settings_.name = "up"; }
  const registry::UpstreamSettings& settings() const override { return settings_; }
  asio::awaitable<std::unique_ptr<registry::UpstreamResponse>> send(registry::UpstreamRequest request) override {
    ++requests;
    registry::http::fields headers;
    std::string body;
    unsigned status = 404;
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
  std::map<std::string, std::string> manifests;  // by target
  std::map<std::string, std::string> blobs;
  int requests = 0;

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
    fetches_ = std::make_unique<cache::BlobFetches>(*blobs_, *meta_, ioc_.get_executor());
    audit_ = std::make_unique<AuditLog>(dir_ / "audit.log", 0, 2);
    gate_ = std::make_unique<Gate>(*meta_, policy_, *audit_, metrics_);

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
                                       policy_, ioc_.get_executor());
  }
  void TearDown() override {
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

  fs::path dir_;
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

}  // namespace
}  // namespace pullgate::proxy
