#pragma once
// pullgate's configuration: a JSON file (comments allowed), then command-line flags
// on top. Validation collects every mistake, one line each, before anything starts.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/fleet.hpp"
#include "registry/upstream.hpp"

namespace pullgate::cache {
class MetaStore;
}

namespace pullgate::proxy {

struct UpstreamConfig {
  registry::UpstreamSettings settings;  // name, url, credentials, TLS, timeouts
  std::vector<std::string> aliases;     // more names for ?ns= and the path prefix
  std::int64_t tag_ttl_s = 300;         // -1: a cached tag is never re-checked
  bool is_default = false;
  bool docker_hub = false;              // one-segment names get "library/"
};

// The fleet store (docs/fleet.md): what must be one truth for several replicas
// (manual verdicts, exceptions, reports, the pending queue) kept in etcd and watched
// into each replica's LMDB. Off when no endpoint is named.
struct FleetConfig {
  std::string replica_id;  // in every audit line and metric; empty in the file: the host name
  std::vector<std::string> etcd_endpoints;
  std::string etcd_prefix = "/pullgate/";
  std::string etcd_ca_file;
  std::string etcd_cert_file;
  std::string etcd_key_file;
  std::string etcd_username;
  std::string etcd_password;  // or read from etcd.password_file
  unsigned etcd_request_timeout_s = 5;
  // While etcd is out of reach (or this replica has not caught up with it), a digest
  // this replica has never decided may have a verdict elsewhere in the fleet that it
  // cannot see: "fail_closed" refuses such digests until the store is back,
  // "serve_cached" decides them from the local policy as a single mirror would.
  std::string on_store_down = "fail_closed";
  // Where the policy document comes from: "file" (gate.policy_file, each replica its
  // own) or "etcd" (the key <prefix>policy, one for the fleet, written with
  // `pullgate policy push`; each replica keeps its last copy in the data directory).
  std::string policy = "file";
  // Where client tokens come from: "file" (clients.tokens_file, each replica its own)
  // or "etcd" (the keys <prefix>tokens/<name>, one set for the fleet, written with
  // `pullgate token new NAME --config CONFIG`; each replica keeps its last copy in the
  // data directory and authenticates from it while etcd is away).
  std::string tokens = "file";

  bool enabled() const { return !etcd_endpoints.empty(); }
  bool policy_in_etcd() const { return policy == "etcd"; }
  bool tokens_in_etcd() const { return tokens == "etcd"; }
};

// Who may connect to the registry listener (README, "Who may pull"). Off when
// neither a client CA nor tokens (a file, or the fleet's) are named: every client is
// "anonymous" (Config::client_auth).
struct ClientsConfig {
  std::string ca_file;              // mutual TLS: client certificates issued by these CAs (needs tls.*)
  std::string certificates = "optional";  // "require": no handshake without one; "optional": tokens too
  std::string tokens_file;          // NAME sha256:<hex> lines (`pullgate token new`)
  bool anonymous = false;           // with auth on: clients without credentials get in as "anonymous"
};

struct Config {
  std::string listen = "0.0.0.0:5000";
  std::filesystem::path data_dir = "pullgate-data";
  unsigned threads = 2;
  bool offline = false;
  std::string access_log = "-";
  std::string tls_cert_file;
  std::string tls_key_file;
  std::size_t max_header_bytes = 16 * 1024;
  unsigned max_requests_per_connection = 10'000;
  unsigned idle_timeout_s = 60;
  unsigned header_timeout_s = 15;
  // SIGTERM: how long requests and downloads in progress may finish before they are cancelled.
  unsigned shutdown_grace_s = 30;
  std::size_t lmdb_map_size_mb = 4096;       // the LMDB map's size at start
  std::size_t lmdb_max_map_size_mb = 1 << 20;  // it grows up to this (1 TiB of address space)
  std::uint64_t max_blob_mb = 64 * 1024;  // larger blobs are not fetched (nor streamed without a size)
  std::uint64_t min_free_mb = 1024;       // blob fills leave this much of the disk free
  std::vector<UpstreamConfig> upstreams;
  // The gate.
  bool gate_enabled = true;         // false: a plain pull-through mirror (no verdicts, no audit)
  std::string policy_file;          // empty: everything is allowed (and audited)
  std::string audit_log;            // empty: <data_dir>/audit.log
  std::uint64_t audit_max_mb = 100; // rotate above this size
  unsigned audit_keep = 5;          // rotated files kept
  std::uint64_t audit_queue_max_mb = 32;  // audit lines waiting for the disk, at most
  // When that many are waiting: "refuse" the request (503, nothing served unaudited)
  // or "serve" it and count the line as dropped.
  std::string audit_on_full = "refuse";
  std::string denial_hint = "To ask for an exception, contact your platform team";
  // The admin listener (verdicts, exceptions, policy reload, explain, metrics).
  std::string admin_listen = "127.0.0.1:5001";  // empty: no admin listener
  std::string admin_token_file;                  // empty: <data_dir>/admin.token, created when missing
  // Scanners pull through the admin listener, past the gate, with this token.
  std::string scanner_token_file;                // empty: <data_dir>/scanner.token, created when missing
  // Prometheus scrapes /metrics with this token: it opens /metrics and /healthz and
  // nothing else, so a scraper's credential cannot change what the gate decides.
  std::string metrics_token_file;                // empty: <data_dir>/metrics.token, created when missing
  // Cache lifecycle (docs/cache.md): eviction by last pull.
  std::optional<std::uint64_t> cache_max_bytes;        // none: no size limit
  unsigned cache_high_watermark = 90;                  // percent of cache_max_bytes: eviction starts above
  unsigned cache_low_watermark = 80;                   // and stops at or below this
  std::optional<std::int64_t> cache_max_unpulled_ms;   // none: content is never evicted for age
  unsigned cache_eviction_interval_s = 300;
  // Memory for the hottest manifests and tags (cache/hot_cache.hpp), in MiB: what the
  // process grows by as new images are pulled, until it is full.
  std::size_t cache_memory_mb = 32;
  // Images eviction never removes: "UPSTREAM/REPOSITORY:TAG" or "UPSTREAM/REPOSITORY@DIGEST".
  std::vector<std::string> cache_pins;
  // Air-gap bundles (docs/bundles.md): PEM public key files a bundle may be signed
  // with, and whether an unsigned bundle is refused (none: when keys are listed).
  std::vector<std::string> bundle_trusted_keys;
  std::optional<bool> bundle_require_signature;
  FleetConfig fleet;
  ClientsConfig clients;

  std::filesystem::path admin_token_path() const {
    return admin_token_file.empty() ? data_dir / "admin.token" : std::filesystem::path(admin_token_file);
  }
  std::filesystem::path scanner_token_path() const {
    return scanner_token_file.empty() ? data_dir / "scanner.token" : std::filesystem::path(scanner_token_file);
  }
  std::filesystem::path metrics_token_path() const {
    return metrics_token_file.empty() ? data_dir / "metrics.token" : std::filesystem::path(metrics_token_file);
  }
  std::filesystem::path audit_log_path() const {
    return audit_log.empty() ? data_dir / "audit.log" : std::filesystem::path(audit_log);
  }
  // Whether the registry listener authenticates its clients at all.
  bool client_auth() const { return !clients.ca_file.empty() || !clients.tokens_file.empty() || fleet.tokens_in_etcd(); }
  // This replica's copy of the fleet's client tokens (fleet.tokens "etcd"), in the
  // tokens file's format: what it authenticates with while etcd is away.
  std::filesystem::path fleet_tokens_path() const { return data_dir / "fleet-tokens"; }
};

// "200GiB", "500MiB", "10KiB", "1024B" or "1024" (bytes); nullopt when it is not one
// (or is zero, or overflows).
std::optional<std::uint64_t> parse_byte_size(std::string_view text);
// "30d", "12h", "15m", "90s" in milliseconds; nullopt when it is not one (or is zero).
std::optional<std::int64_t> parse_duration_ms(std::string_view text);

// Command-line overrides of `pullgate serve`.
struct Overrides {
  std::optional<std::string> listen;
  std::optional<std::string> data_dir;
  std::optional<std::string> upstream_url;
  std::optional<unsigned> threads;
  std::optional<std::string> policy_file;
  std::optional<std::string> admin_listen;
  bool offline = false;
};

struct ConfigResult {
  Config config;
  std::vector<std::string> errors;  // one line per mistake; empty means valid
};

// The built-in default: Docker Hub as the one upstream.
Config default_config();

// Parses a config document (JSON with comments). Unknown fields are mistakes, so a
// typo is not silently ignored.
ConfigResult parse_config(const std::string& text);
// Reads and parses a file; a missing or unreadable file is one error line.
ConfigResult load_config_file(const std::filesystem::path& path);
// Applies flags to a config and validates the result again.
void apply_overrides(ConfigResult& result, const Overrides& overrides);

// Opens the config's metadata store (<data_dir>/lmdb, map size and growth limit from
// the config). Throws std::runtime_error with one line, as MetaStore::open.
std::unique_ptr<cache::MetaStore> open_meta_store(const Config& config);

// The fleet store's settings from the config (fleet.*), for cache::Fleet::make.
cache::FleetSettings fleet_settings(const Config& config);

// Splits "host:port" / "[v6]:port"; nullopt when malformed.
struct HostPort {
  std::string host;
  std::uint16_t port;
};
std::optional<HostPort> parse_host_port(const std::string& text);
// Where a client on this machine reaches a listener: a wildcard host ("0.0.0.0",
// "::") on loopback, any other as it is.
HostPort reachable_locally(HostPort listen);

// The warning for a registry listener any other host can reach with no client
// authentication (check-config and the start-up log say it); empty when there is none.
std::string open_listener_warning(const Config& config);

}  // namespace pullgate::proxy
