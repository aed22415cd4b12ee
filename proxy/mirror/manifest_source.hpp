#pragma once
// Where every manifest the mirror takes from an upstream comes from: a client's pull
// by digest, a tag whose upstream names no digest in its HEAD, a manifest cached from
// another repository that the upstream is asked to confirm, a pullgate upstream's
// reasons for a denial its HEAD announced, and the signatures, attestations and SBOMs
// the signal look-up reads. A fetch asks the upstream for a
// reference in a repository, refuses what is larger than a manifest may be, what does
// not hash to its digest (the one asked for, or the Docker-Content-Digest the
// upstream named for a tag) and what does not parse, and stores what passes in one
// transaction: the manifest, what it references, that it and the manifests it lists
// were seen in the repository, and the tag it was fetched by. Concurrent fetches of
// one reference in one repository of one upstream make one upstream request; the
// others take its outcome, a failure included.
//
// What stays with the callers: the cache in front (a client's pull serves a cached
// manifest only if seen in its repository; a signal look-up takes one from anywhere),
// a pullgate upstream's denials (kept as verdicts by the mirror), and what a failure
// means to them (a stale tag, a signature not found).
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "cache/hot_cache.hpp"
#include "cache/meta_store.hpp"
#include "cache/single_flight.hpp"
#include "proxy/mirror/upstream_failure.hpp"
#include "proxy/telemetry/metrics.hpp"
#include "registry/names.hpp"
#include "registry/upstream.hpp"
#include "registry/clock.hpp"

namespace pullgate::proxy {

namespace asio = boost::asio;

// An upstream request for a manifest by tag or digest in `repository` (as the
// upstream names it), accepting every manifest type.
registry::UpstreamRequest manifest_request(registry::http::verb method, const std::string& repository,
                                           const std::string& reference);

struct FetchedManifest {
  registry::Digest digest;
  std::shared_ptr<const cache::ManifestRecord> record;  // the bytes and their media type
};

struct ManifestFailure {
  enum class Kind {
    answered,     // the upstream answered otherwise (404, its own auth, 429, 5xx, a parent's denial)
    unreachable,  // no answer: network, TLS, timeout, a body cut short
    too_large,    // more than registry::max_manifest_bytes
    mismatch,     // the bytes do not hash to the digest asked for, or to the one the upstream named
    invalid,      // not a manifest the mirror could serve
    offline,      // the mirror does not ask its upstreams
  };
  Kind kind = Kind::unreachable;
  unsigned upstream_status = 0;  // answered: the upstream's status
  ErrorReply reply;              // what a client is told
  std::string detail;            // unreachable: why
};

struct ManifestFetch {
  std::variant<FetchedManifest, ManifestFailure> outcome;
  // This call asked the upstream (it led the flight); a follower took the leader's
  // outcome and asked nothing.
  bool asked = false;

  const FetchedManifest* fetched() const { return std::get_if<FetchedManifest>(&outcome); }
  const ManifestFailure* failure() const { return std::get_if<ManifestFailure>(&outcome); }
};

class ManifestSource {
 public:
  struct Request {
    registry::Upstream& upstream;
    const std::string& repository;  // as the upstream names it
    registry::Reference reference;
    std::string named;  // what failure messages name (a client's reference); empty: `reference`
    // A tag that resolved to the digest asked for, stored with its manifest in one
    // transaction when this call fetches it (a follower's is not: it stores its own).
    std::optional<cache::ManifestBatch::Tag> tag;
  };

  // `blocking`: where synced LMDB commits run, off the I/O threads. `hot` is told what
  // is stored.
  ManifestSource(cache::MetaStore& meta, cache::HotCache& hot, PullgateMetrics& metrics,
                 asio::any_io_executor blocking, bool offline, WallClock clock = system_wall_clock());

  // A cached manifest by digest (the hot cache, else LMDB), whatever repository it
  // was seen in; null when there is none.
  std::shared_ptr<const cache::ManifestRecord> cached(const registry::Digest& digest);

  // The manifest from the upstream, verified and stored, or why not. Never asks the
  // upstream of an offline mirror.
  asio::awaitable<ManifestFetch> fetch(const Request& request);

  // Writes a batch in one transaction off the I/O thread, then tells the hot cache.
  asio::awaitable<void> store(const cache::ManifestBatch& batch);

 private:
  using Outcome = std::variant<FetchedManifest, ManifestFailure>;
  asio::awaitable<Outcome> ask(const Request& request);

  cache::MetaStore& meta_;
  cache::HotCache& hot_;
  PullgateMetrics& metrics_;
  asio::any_io_executor blocking_;
  bool offline_;
  const WallClock clock_;
  std::int64_t now_ms() const { return ms_since_epoch(clock_()); }
  cache::SingleFlight<Outcome> flights_;  // by upstream, repository and reference
};

}  // namespace pullgate::proxy
