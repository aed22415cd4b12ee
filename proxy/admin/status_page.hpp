#pragma once
// The admin listener's status page (GET /): one HTML document, rendered on the
// server from a model the admin handler gathers, for the on-call engineer. No
// script, no external asset (inline CSS only), so it works offline and under
// `Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'`.
//
// Everything shown that came from outside (image names, reasons, clients, upstream
// errors, the fleet's replica names) is HTML-escaped: a hostile image name or
// reason renders as text.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/gate/recent_decisions.hpp"
#include "proxy/telemetry/upstream_health.hpp"

namespace pullgate::proxy {

struct StatusPage {
  std::int64_t now_ms = 0;  // ages are counted from here
  std::string version;      // pullgate's
  std::string replica;      // fleet.replica_id

  struct Policy {
    std::string version;
    std::string source;  // the file, etcd, or the built-in policy
    std::int64_t loaded_at_ms = 0;
  } policy;

  std::vector<NotableDecision> denials;        // newest first
  std::uint64_t notable_total = 0;             // denials and warnings since start
  std::vector<NotableDecision> bypass_alarms;  // newest first
  std::uint64_t bypass_total = 0;              // since start

  struct Pending {
    std::string digest;
    std::vector<std::string> references;
    std::int64_t first_seen_ms = 0;
    std::int64_t last_seen_ms = 0;
    std::uint32_t requests = 0;
    std::string claimed_by;  // empty: no scanner holds it
  };
  std::vector<Pending> pending;  // oldest first
  std::uint64_t pending_count = 0;

  struct Traffic {
    std::uint64_t cache_hits = 0, cache_misses = 0, cache_stale = 0;
    std::uint64_t allowed = 0, warned = 0, denied = 0;  // gate decisions
    std::uint64_t http_requests = 0;
    std::uint64_t bytes_served = 0, bytes_fetched = 0;
  } traffic;

  struct Image {
    std::string root;
    std::vector<std::string> names;  // upstream/repository[:tag,...]
    std::uint64_t bytes = 0, bytes_alone = 0;
    std::int64_t last_pull_ms = 0;
    bool pinned = false;
  };
  struct Cache {
    std::uint64_t bytes = 0, blob_files = 0, manifests = 0, pinned_bytes = 0;
    std::size_t image_count = 0;
    std::optional<std::uint64_t> max_bytes;
    std::vector<Image> biggest;
  };
  std::optional<Cache> cache;  // nullopt: the server runs without an evictor

  std::vector<UpstreamHealth::Entry> upstreams;  // every configured upstream, by name

  // What GET /readyz says.
  struct Readiness {
    std::string status;  // ok | degraded
    std::string reason;
    struct Fleet {
      bool in_step = false, store_up = false;
      std::int64_t revision = 0;
      std::string endpoint, on_store_down;
      std::vector<std::pair<std::string, std::string>> replicas;  // id, last heartbeat
      std::string last_error, last_error_at;
    };
    std::optional<Fleet> fleet;  // nullopt: no fleet store
  } readiness;
};

// & < > " ' as entities.
std::string html_escape(std::string_view text);
// "5s", "3m 12s", "2h 5m", "4d 3h": how long ago (or 0s when `then` is ahead).
std::string age_text(std::int64_t now_ms, std::int64_t then_ms);
// The page.
std::string render_status_page(const StatusPage& page);

}  // namespace pullgate::proxy
