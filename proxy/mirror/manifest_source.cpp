#include "proxy/mirror/manifest_source.hpp"

#include <chrono>

#include "cache/blocking.hpp"
#include "registry/manifest.hpp"

namespace pullgate::proxy {

using registry::Digest;
using registry::ErrorCode;
using Kind = ManifestFailure::Kind;
namespace http = registry::http;

namespace {

// The upstream sent something that is not the manifest asked for: no cached copy
// stands in for it (the upstream is up, and wrong).
ManifestFailure refused(Kind kind, ErrorCode code, std::string message) {
  return ManifestFailure{kind, 0, ErrorReply{502, code, std::move(message), "", false}, ""};
}

}  // namespace

registry::UpstreamRequest manifest_request(http::verb method, const std::string& repository,
                                           const std::string& reference) {
  registry::UpstreamRequest request;
  request.method = method;
  request.target = "/v2/" + repository + "/manifests/" + reference;
  request.scope = "repository:" + repository + ":pull";
  request.headers = {{"Accept", std::string(registry::media_type::accept_all)}};
  return request;
}

ManifestSource::ManifestSource(cache::MetaStore& meta, cache::HotCache& hot, PullgateMetrics& metrics,
                               asio::any_io_executor blocking, bool offline, WallClock clock)
    : meta_(meta),
      hot_(hot),
      metrics_(metrics),
      blocking_(std::move(blocking)),
      offline_(offline),
      clock_(std::move(clock)) {}

std::shared_ptr<const cache::ManifestRecord> ManifestSource::cached(const Digest& digest) {
  auto cached = hot_.manifest(digest);
  if (cached) return cached;
  auto stored = meta_.get_manifest(digest);
  if (!stored) return nullptr;
  cached = std::make_shared<const cache::ManifestRecord>(std::move(*stored));
  hot_.remember_manifest(digest, cached);
  return cached;
}

asio::awaitable<ManifestFetch> ManifestSource::fetch(const Request& request) {
  if (offline_)
    co_return ManifestFetch{ManifestFailure{Kind::offline, 0,
                                            ErrorReply{404, ErrorCode::manifest_unknown,
                                                       "manifest " + request.reference.str() +
                                                           " is not cached and this mirror is offline",
                                                       "", false},
                                            ""},
                            false};
  // One upstream GET per reference and repository at a time: a rollout's concurrent
  // cold pulls wait for the first and take what it got, a failure included.
  const std::string key =
      request.upstream.settings().name + "\n" + request.repository + "\n" + request.reference.str();
  bool asked = false;
  auto outcome = co_await cache::share_flight(flights_, key, [&] {
    asked = true;
    return ask(request);
  });
  co_return ManifestFetch{std::move(outcome), asked};
}

asio::awaitable<ManifestSource::Outcome> ManifestSource::ask(const Request& request) {
  const auto& name = request.upstream.settings().name;
  const std::string& named = request.named.empty() ? request.reference.str() : request.named;
  std::string unreachable;
  try {
    auto get = manifest_request(http::verb::get, request.repository, request.reference.str());
    std::unique_ptr<registry::UpstreamResponse> response;
    try {
      response = co_await request.upstream.send(std::move(get));
    } catch (const registry::UpstreamError& e) {
      metrics_.count_upstream(name, 0, e.what());
      throw;
    }
    if (!response->held()) metrics_.count_upstream(name, response->status());  // held: nothing was sent
    if (response->status() != 200) {
      auto answer = co_await upstream_answer(*response);
      co_return ManifestFailure{
          Kind::answered, answer.status,
          upstream_failure_reply(name, request.repository, named, answer, ErrorCode::manifest_unknown), ""};
    }
    std::string bytes;
    bool too_large = false;
    try {
      bytes = co_await registry::read_body(*response, registry::max_manifest_bytes);
    } catch (const registry::UpstreamError& e) {
      if (e.kind() != registry::UpstreamError::Kind::too_large) throw;
      too_large = true;
    }
    if (too_large)
      co_return refused(Kind::too_large, ErrorCode::manifest_invalid,
                        "upstream " + name + " sent more than the " + std::to_string(registry::max_manifest_bytes) +
                            " bytes a manifest may have for " + named);
    const auto content_type = std::string(response->headers()[http::field::content_type]);
    std::optional<Digest> digest;
    if (auto* asked = request.reference.digest()) {
      if (registry::digest_of(asked->algorithm(), bytes) != *asked)
        co_return refused(Kind::mismatch, ErrorCode::digest_invalid,
                          "upstream " + name + " sent a manifest that does not match " + asked->str());
      digest = *asked;
    } else if (auto header = Digest::parse(std::string(response->headers()["Docker-Content-Digest"]))) {
      // A tag's digest is what the upstream names, when it names one: the bytes must
      // hash to it (else the tag would be kept with a digest its bytes do not have).
      if (registry::digest_of(header->algorithm(), bytes) != *header)
        co_return refused(Kind::mismatch, ErrorCode::digest_invalid,
                          "upstream " + name + " sent a manifest for " + named + " that does not match its digest " +
                              header->str());
      digest = *header;
    } else {
      digest = registry::digest_of(registry::DigestAlgorithm::sha256, bytes);
    }
    auto parsed = registry::parse_manifest(bytes, content_type);
    if (auto* error = std::get_if<std::string>(&parsed))
      co_return refused(Kind::invalid, ErrorCode::manifest_invalid,
                        "upstream " + name + " sent an invalid manifest: " + *error);
    const auto& manifest = std::get<registry::ParsedManifest>(parsed);
    const auto now = now_ms();
    cache::ManifestBatch batch;
    batch.upstream = name;
    batch.repository = request.repository;
    // Fetched from this repository, and a registry keeps an index's children in the
    // index's repository: all of them are seen here.
    batch.seen.push_back(*digest);
    for (const auto& child : manifest.children) batch.seen.push_back(child.digest);
    if (auto* tag = request.reference.tag())
      batch.tag = cache::ManifestBatch::Tag{tag->str(), cache::TagRecord{*digest, manifest.media_type, now}};
    else if (request.tag && request.tag->record.digest == *digest)
      batch.tag = request.tag;
    batch.manifest = cache::ManifestBatch::Manifest{
        *digest, cache::ManifestRecord{manifest.media_type, std::move(bytes), now}, cache::references_of(manifest)};
    co_await store(batch);
    auto shared = std::make_shared<const cache::ManifestRecord>(std::move(batch.manifest->record));
    hot_.remember_manifest(*digest, shared);
    co_return FetchedManifest{*digest, std::move(shared)};
  } catch (const registry::UpstreamError& e) {
    unreachable = e.what();
  }
  UpstreamAnswer answer;
  answer.detail = unreachable;
  co_return ManifestFailure{Kind::unreachable, 0,
                            upstream_failure_reply(name, request.repository, named, answer, ErrorCode::unknown),
                            unreachable};
}

asio::awaitable<void> ManifestSource::store(const cache::ManifestBatch& batch) {
  auto write = [&] { meta_.write(batch); };
  co_await cache::run_blocking(blocking_, write);
  for (auto& d : batch.seen) hot_.remember_seen(d, batch.upstream, batch.repository);
  if (batch.tag) hot_.remember_tag(batch.upstream, batch.repository, batch.tag->name, batch.tag->record);
}

}  // namespace pullgate::proxy
