#pragma once
// The pull side of the registry API: routing a parsed request to its upstream,
// resolving tags to digests, serving manifests and blobs from the cache or through
// it, and answering every failure with an OCI error. Each manifest request resolves
// its reference to a digest before anything is served: that is where the gate sits.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cache/blob_fetch.hpp"
#include "cache/blob_store.hpp"
#include "cache/hot_cache.hpp"
#include "cache/meta_store.hpp"
#include "cache/pull_times.hpp"
#include "cache/single_flight.hpp"
#include "proxy/access/authenticator.hpp"
#include "proxy/config.hpp"
#include "proxy/gate/gate.hpp"
#include "proxy/server/handler.hpp"
#include "proxy/telemetry/log.hpp"
#include "proxy/telemetry/metrics.hpp"
#include "proxy/mirror/manifest_source.hpp"
#include "proxy/mirror/signals.hpp"
#include "proxy/mirror/upstream_failure.hpp"
#include "registry/manifest.hpp"
#include "registry/route.hpp"
#include "registry/upstream.hpp"
#include "registry/clock.hpp"

namespace pullgate::proxy {

struct UpstreamEntry {
  UpstreamConfig config;
  std::unique_ptr<registry::Upstream> client;
};

class Mirror final : public Handler {
 public:
  // `blocking`: where synced LMDB commits run, off the I/O threads.
  Mirror(const Config& config, std::vector<UpstreamEntry>& upstreams, cache::MetaStore& meta,
         cache::BlobStore& blobs, cache::BlobFetches& fetches, AccessLog& access_log, Gate& gate,
         PullgateMetrics& metrics, PolicyHolder& policy, asio::any_io_executor blocking,
         WallClock clock = system_wall_clock());

  asio::awaitable<Outcome> handle(const Request& request, ClientStream& client,
                                  const RequestContext& context) override;

  // When the manifests and cached responses it served were last pulled (main flushes
  // them to the MetaStore; eviction reads them).
  cache::PullTimes& pull_times() { return pulls_; }
  // Evicted manifests are forgotten by the hot cache in front of LMDB.
  void forget_evicted(std::span<const registry::Digest> manifests) { hot_.forget_manifests(manifests); }
  std::size_t memory_cache_bytes() const { return hot_.bytes(); }
  // The body of GET /readyz (a JSON object; unset: {"status":"ok"}). Set before serving.
  void set_readiness(std::function<std::string()> readiness) { readiness_ = std::move(readiness); }
  // Client authentication on this listener (proxy/access); unset: every client is
  // anonymous. Set before serving; it outlives the mirror.
  void set_authenticator(const access::Authenticator* authenticator) { authenticator_ = authenticator; }

 private:
  struct Exchange;  // one request in progress
  asio::awaitable<void> dispatch(Exchange& x);
  // Who the client is (a verified certificate, a token, or anonymous). False, with a
  // 401 and the registry's Basic challenge prepared, when it is refused: a credential
  // that does not check out, or none where one is required.
  bool authenticate(Exchange& x);
  // Whether the policy's access section lets the client's identity pull from the
  // request's upstream and repository. False, with a 403 DENIED (an identity) or a
  // 401 (anonymous: clients that can log in are asked to) prepared and audited.
  bool authorized(Exchange& x);
  void refuse_access(Exchange& x, unsigned status, std::string message);
  asio::awaitable<void> serve_manifest(Exchange& x);
  asio::awaitable<void> serve_blob(Exchange& x);
  asio::awaitable<void> serve_cached_blob(Exchange& x, cache::BlobStore::Opened& blob);
  asio::awaitable<void> serve_filling_blob(Exchange& x);
  asio::awaitable<void> head_upstream_blob(Exchange& x);
  registry::UpstreamRequest blob_head_request(const Exchange& x, const registry::Digest& digest) const;
  // Whether a blob exists (cached, or the upstream has it in the request's
  // repository); writes the 404 itself when it does not.
  asio::awaitable<bool> blob_exists(Exchange& x, const registry::Digest& digest);
  // What of a forwarded answer (tags/list, referrers) is kept for offline use and
  // upstream trouble: only answers under keys a client cannot vary without bound (a
  // tag list without n or last, a digest's referrers unfiltered), so that no client
  // grows the store by asking with `last=` values of its choosing.
  struct ForwardCache {
    std::string key;                           // empty: nothing cached answers this request
    bool store = true;                         // the upstream's answer is the one kept under key
    std::optional<std::string> artifact_type;  // answered from the cache: the kept index, filtered
  };
  asio::awaitable<void> serve_forwarded(Exchange& x, std::string target, ForwardCache keep,
                                        registry::ErrorCode not_found_code);

  // What an upstream check of a tag came to: shared by a single flight's leader with
  // its followers.
  using TagOutcome = std::variant<registry::Digest, ErrorReply>;

  // Tag → digest: the cached record while fresh, else the upstream's HEAD, else
  // (upstream trouble) the stale record. Writes the error response itself and
  // returns nullopt when there is no digest to be had.
  asio::awaitable<std::optional<registry::Digest>> resolve_tag(Exchange& x, const registry::Tag& tag);
  // The upstream's word on a tag (a single flight's leader asks it).
  asio::awaitable<TagOutcome> check_tag(Exchange& x, const registry::Tag& tag);
  // A manifest by tag or digest in the request's repository from the manifest source
  // (with the tag the request resolved, when the source stores it with the manifest);
  // what the request learns of the upstream from it is noted, by the call that asked.
  asio::awaitable<ManifestFetch> fetch_manifest(Exchange& x, registry::Reference reference);
  // The manifest bytes for a digest in the request's repository: LMDB if it was seen
  // there (else the upstream confirms with a HEAD that the repository has it), else
  // the upstream (verified, stored).
  asio::awaitable<std::shared_ptr<const cache::ManifestRecord>> manifest_bytes(Exchange& x,
                                                                               const registry::Digest& digest);
  // Whether the manifest was seen in the request's upstream and repository (or a tag
  // there just resolved to it).
  bool seen_here(const Exchange& x, const registry::Digest& digest);
  // A batch that marks a cached manifest seen there, and the child manifests it lists
  // (a registry keeps an index's children in its repository): the cached bytes are
  // read if it is an index not yet known to be seen here. (A fetched manifest's batch
  // is the manifest source's.)
  cache::ManifestBatch seen_batch(const Exchange& x, const registry::Digest& digest);
  // Asks the upstream whether the request's repository has a manifest cached from
  // elsewhere; true (and marked seen) if it does. Writes the error response itself.
  asio::awaitable<bool> confirm_here(Exchange& x, const registry::Digest& digest);
  // Stores in LMDB (with the manifest when that is not cached yet: the request fetches
  // it next, and both go in one transaction) and in the hot cache.
  asio::awaitable<void> remember_tag(Exchange& x, const registry::Tag& tag, const cache::TagRecord& record);
  GateRequest gate_request(const Exchange& x, ArtifactKind kind, const registry::Digest& digest) const;
  // The signatures and SBOM the request's scope requires, looked up (when not known
  // yet) before the gate decides; called only when the policy requires them anywhere.
  asio::awaitable<void> prepare_signals(Exchange& x, const registry::Digest& digest,
                                        const cache::ManifestRecord& manifest);
  // The gate's decision on a manifest or a blob: none when the gate is off, the
  // scanner's pass on the admin listener, else the gate's check.
  SharedDecision gate_check(const Exchange& x, ArtifactKind kind, const registry::Digest& digest);
  // With the gate off (an edge trusting its parent), the one decision kept: a parent
  // pullgate's denial of a manifest (its verdict, see note_upstream_denial), and
  // behind a configured parent of the blobs only denied manifests list; else
  // `otherwise`. The gate is off, so it is logged, not audited.
  SharedDecision upstream_decision(const registry::Digest& digest, const SharedDecision& otherwise);
  void reply_denied(Exchange& x, const GateDecision& decision, const registry::Digest& digest);

  // A pullgate upstream's denial of a manifest is kept as the digest's verdict
  // (source "upstream"; see policy::Source), so that the bytes cached before it are
  // not served by tag, by digest or as blobs; it goes when the upstream serves the
  // digest again (a tag check, a fetch, or the HEAD a refused request sends).
  void note_upstream_denial(const Exchange& x, const registry::Digest& digest, const std::string& message);
  void forget_upstream_denial(const Exchange& x, const registry::Digest& digest);
  // After a HEAD that said deny: its reasons, from the GET's 403.
  asio::awaitable<void> learn_upstream_denial(Exchange& x, const registry::Digest& digest);
  // Behind a parent mirror: its current word on a cached digest, noted (a denial kept
  // as the verdict, a served digest's verdict forgotten); unreachable, nothing changes.
  asio::awaitable<void> recheck_with_parent(Exchange& x, const registry::Digest& digest);
  // A HEAD of a manifest a pullgate upstream denies and this mirror has no bytes of:
  // the upstream's own HEAD answer (200 with its length and Pullgate-Decision: deny)
  // replaces the 403, when it gives one.
  asio::awaitable<void> announce_parent_denial(Exchange& x, const registry::Digest& digest);
  // Whether the upstream serves a digest it had refused (and the verdict is gone).
  asio::awaitable<bool> upstream_lifted(Exchange& x, const registry::Digest& digest);

  asio::awaitable<void> send(Exchange& x, http::response<http::string_body>& response);
  // Every upstream request of a client request goes through here (counted by status).
  asio::awaitable<std::unique_ptr<registry::UpstreamResponse>> ask_upstream(Exchange& x,
                                                                            registry::UpstreamRequest request);
  // Errors are prepared here and written when the step returns. (Besides keeping
  // the steps short, this keeps string temporaries out of co_await expressions,
  // which GCC 12 destroys twice.)
  void reply_error(Exchange& x, unsigned status, registry::ErrorCode code, std::string message);
  void reply(Exchange& x, const ErrorReply& failure);
  // Maps an upstream status that is not a success to the client's answer.
  void reply_upstream_failure(Exchange& x, unsigned upstream_status, registry::ErrorCode not_found_code,
                              std::string_view retry_after = {});
  // The client's answer to an upstream response that is not a success (its error
  // body is read when it may be a pullgate upstream's denial).
  asio::awaitable<ErrorReply> refusal(Exchange& x, registry::UpstreamResponse& response,
                                      registry::ErrorCode not_found_code);
  ErrorReply failure_reply(const Exchange& x, const UpstreamAnswer& answer, registry::ErrorCode not_found_code) const;
  ErrorReply unreachable_reply(Exchange& x, const std::string& why) const;

  const UpstreamEntry* select_upstream(const registry::Route& route, std::string& error) const;
  std::string upstream_repository(const UpstreamEntry& upstream, const registry::Repository& repository) const;

  const Config& config_;
  std::vector<UpstreamEntry>& upstreams_;
  cache::MetaStore& meta_;
  cache::BlobStore& blobs_;
  cache::BlobFetches& fetches_;
  AccessLog& access_log_;
  Gate& gate_;
  PullgateMetrics& metrics_;
  PolicyHolder& policy_;
  asio::any_io_executor blocking_;
  const WallClock clock_;  // tag TTLs, when records are stored
  std::int64_t now_ms() const { return ms_since_epoch(clock_()); }
  cache::HotCache hot_;  // cache.memory_mb
  cache::PullTimes pulls_;
  ManifestSource manifests_;
  cache::SingleFlight<TagOutcome> tag_flights_;  // by upstream, repository and tag
  Signals signals_;
  std::function<std::string()> readiness_;
  const access::Authenticator* authenticator_ = nullptr;
};

}  // namespace pullgate::proxy
