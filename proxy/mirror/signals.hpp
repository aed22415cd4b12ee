#pragma once
// Signatures and SBOMs at pull time. Before the gate decides a manifest in a scope
// that requires a signature or an SBOM, the mirror asks this to find what is attached
// to the digest in its repository (cosign's legacy tags, the OCI 1.1 referrers API and
// its fallback tag), verify signatures against the policy's keys, and store what it
// found as the digest's signal record in LMDB. The gate then reads the record (and
// those of the indexes that list the digest: a signature on an index covers its
// children). The artifacts themselves go through the cache like any content (their
// manifests through the mirror's manifest source), so the check works with the
// upstream gone.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "cache/blob_store.hpp"
#include "cache/meta_store.hpp"
#include "cache/single_flight.hpp"
#include "policy/policy.hpp"
#include "proxy/gate/signal_findings.hpp"
#include "proxy/mirror/manifest_source.hpp"
#include "proxy/telemetry/metrics.hpp"
#include "registry/upstream.hpp"
#include "registry/clock.hpp"

namespace pullgate::proxy {

namespace asio = boost::asio;

// The key under which a referrers answer is cached (the mirror's referrers route and
// the signal lookup share it, so either finds what the other stored).
inline std::string referrers_cache_key(std::string_view upstream, std::string_view repository,
                                       const registry::Digest& digest) {
  return cache::referrers_response_key(upstream, repository, digest);
}

class Signals {
 public:
  Signals(cache::MetaStore& meta, cache::BlobStore& blobs, ManifestSource& manifests, PullgateMetrics& metrics,
          bool offline, WallClock clock = system_wall_clock())
      : meta_(meta),
        blobs_(blobs),
        manifests_(manifests),
        metrics_(metrics),
        offline_(offline),
        clock_(std::move(clock)) {}

  // Makes sure `digest` (a manifest of `repository` on `upstream`, whose bytes are
  // `manifest`) has a current signal record for the scope, unless an index listing
  // it already answers for it. Never throws for what the upstream does; a failure to
  // look is recorded as a finding ("could not look ...") and rechecked later.
  asio::awaitable<void> prepare(registry::Upstream& upstream, const std::string& repository,
                                const registry::Digest& digest, const cache::ManifestRecord& manifest,
                                const policy::Policy& policy, const policy::Scope& scope);

 private:
  struct Lookup;  // one digest's search
  asio::awaitable<cache::SignalRecord> examine(Lookup& lookup, const cache::ManifestRecord& manifest);
  void count(const cache::SignalRecord& record);  // pullgate_signal_checks_total

  cache::MetaStore& meta_;
  cache::BlobStore& blobs_;
  ManifestSource& manifests_;
  PullgateMetrics& metrics_;
  bool offline_;
  const WallClock clock_;
  std::int64_t now_ms() const { return ms_since_epoch(clock_()); }
  cache::SingleFlight<> flights_;  // by upstream, digest and policy version
};

}  // namespace pullgate::proxy
