// pullgate: a pull-through OCI registry mirror.
#include <malloc.h>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "cache/blob_fetch.hpp"
#include "cache/blob_store.hpp"
#include "cache/data_lock.hpp"
#include "cache/evictor.hpp"
#include "cache/meta_store.hpp"
#include "cache/periodic.hpp"
#include "proxy/access/authenticator.hpp"
#include "proxy/admin/admin.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/command.hpp"
#include "proxy/cli/commands.hpp"
#include "policy/rfc3339.hpp"
#include "proxy/gate/policy_file.hpp"
#include "proxy/config.hpp"
#include "proxy/gate/gate.hpp"
#include "proxy/telemetry/log.hpp"
#include "proxy/mirror/mirror.hpp"
#include "proxy/doctor/doctor.hpp"
#include "proxy/prefetch/prefetch.hpp"
#include "proxy/server/server.hpp"

namespace {

using namespace pullgate;
using namespace pullgate::proxy;

constexpr const char* serve_help = R"(Usage: pullgate serve [--config FILE] [options]

Runs the mirror. Without --config it listens on 0.0.0.0:5000, keeps its cache in
./pullgate-data and mirrors Docker Hub (docker.io -> https://registry-1.docker.io).

Options (each overrides the config file):
  --config FILE        JSON config file (comments allowed); see README.md
  --listen ADDR:PORT   address to listen on, e.g. 127.0.0.1:5000
  --data DIR           data directory (LMDB cache and blob files)
  --upstream URL       mirror this one registry (http:// or https://) as the default
                       upstream, named by its host[:port] (for containerd's ?ns=)
  --offline            never contact an upstream; serve only what is cached
  --threads N          I/O threads (default 2)
  --policy FILE        the gate's policy (JSON); without one everything is allowed
  --admin-listen ADDR:PORT  the admin API's address (default 127.0.0.1:5001;
                       "" turns it off); its token is in <data>/admin.token
  --help               this text

Signals: SIGHUP reloads the policy file (a policy that does not validate is
refused and the old one stays in force). SIGTERM or SIGINT stops accepting, lets
requests and blob downloads in progress finish (limits.shutdown_grace_s, 30 s),
cancels what is left, flushes the audit log and exits 0.
)";

// The listeners' options, from the config (which has validated the addresses).
ServerOptions listener(const std::string& address, const Config& c) {
  auto hp = parse_host_port(address);
  if (!hp) throw std::runtime_error("listen: bad address " + address);
  ServerOptions options;
  options.host = hp->host;
  options.port = hp->port;
  options.max_header_bytes = c.max_header_bytes;
  options.max_requests_per_connection = c.max_requests_per_connection;
  options.idle_timeout_s = c.idle_timeout_s;
  options.header_timeout_s = c.header_timeout_s;
  return options;
}
ServerOptions mirror_listener(const Config& c) {
  auto options = listener(c.listen, c);
  options.tls_cert_file = c.tls_cert_file;
  options.tls_key_file = c.tls_key_file;
  options.tls_client_ca_file = c.clients.ca_file;
  options.tls_client_cert_required = c.clients.certificates == "require";
  return options;
}
ServerOptions admin_listener(const Config& c) {
  auto options = listener(c.admin_listen, c);
  options.max_body_bytes = 64 * 1024 * 1024;  // scanner reports are large
  return options;
}

// The LMDB map grew, or is past its growth threshold and cannot grow: say so, with
// the key to raise, while a quarter of the map is still free.
void log_map_event(const cache::MapEvent& e) {
  constexpr std::size_t mib = 1 << 20;
  nlohmann::json fields = {{"used_mb", e.before.used_bytes / mib}, {"map_mb", e.before.map_bytes / mib},
                           {"max_mb", e.before.max_bytes / mib}};
  switch (e.kind) {
    case cache::MapEvent::Kind::grown:
      fields["new_map_mb"] = e.new_map_bytes / mib;
      log_event("info", "LMDB map grown", std::move(fields));
      return;
    case cache::MapEvent::Kind::at_max:
      fields["fix"] = "raise cache.lmdb_max_map_size_mb above " + std::to_string(e.before.max_bytes / mib) +
                      " (it is address space, not disk), or evict (cache.max_size)";
      log_event("warn", "LMDB map is over 3/4 used and at its maximum: writes fail when it is full", std::move(fields));
      return;
    case cache::MapEvent::Kind::failed:
      fields["error"] = e.error;
      fields["new_map_mb"] = e.new_map_bytes / mib;
      fields["fix"] = "check the process's address-space limit (ulimit -v), or set cache.lmdb_max_map_size_mb to what it allows";
      log_event("warn", "LMDB map is over 3/4 used and could not grow: writes fail when it is full", std::move(fields));
      return;
  }
}

// What a run's garbage collection removed (docs/cache.md, "Garbage and verify"):
// counters, and one log line when it removed something.
void report_garbage(const cache::Evictor::Garbage& garbage, PullgateMetrics& metrics) {
  const auto& blobs = garbage.blobs;
  const std::pair<const char*, std::uint64_t> removed[] = {
      {"orphan_file", blobs.orphan_files}, {"missing_file", blobs.missing_files}, {"stale_temp", blobs.stale_temps},
      {"seen", garbage.records.seen},      {"signals", garbage.records.signals}};
  std::uint64_t total = 0;
  for (auto [what, n] : removed) {
    metrics.garbage_removed.with({what}).inc(n);
    total += n;
  }
  if (total == 0 && blobs.errors == 0) return;
  nlohmann::json line = {{"orphan_files", blobs.orphan_files}, {"missing_files", blobs.missing_files},
                         {"stale_temps", blobs.stale_temps},   {"bytes_removed", blobs.bytes_removed},
                         {"seen", garbage.records.seen},       {"signals", garbage.records.signals},
                         {"errors", blobs.errors}};
  if (!blobs.first_error.empty()) line["first_error"] = blobs.first_error;
  log_event(blobs.errors ? "warn" : "info", "garbage removed", line);
}

// Computed verdicts and signal findings of scopes the policy in force no longer has
// (at start and after each reload); manual and upstream verdicts stay.
void sweep_removed_scopes(cache::MetaStore& meta, const policy::Policy& policy, PullgateMetrics& metrics) {
  std::vector<std::string> live;
  for (const auto& scope : policy.scopes) live.push_back(scope.name);
  try {
    auto removed = meta.remove_records_of_other_scopes(live);
    metrics.garbage_removed.with({"verdicts"}).inc(removed.verdicts);
    metrics.garbage_removed.with({"signals"}).inc(removed.signals);
    if (removed.verdicts || removed.signals)
      log_event("info", "records of removed scopes removed",
                {{"verdicts", removed.verdicts}, {"signals", removed.signals}, {"policy_version", policy.version}});
  } catch (const std::exception& e) {
    log_event("error", "records of removed scopes not removed", {{"error", e.what()}});
  }
}

// After an eviction run: its working set (a record for every manifest and blob in the
// store, so it grows with the store) has been freed, but malloc keeps the pages in the
// arena of the thread that ran it. The soak showed them as anonymous memory growing by
// a step every run (bench/README.md, "Soak"); give them back to the system.
void release_eviction_memory() { ::malloc_trim(0); }

// An eviction run's gauges and counters, and one log line when it removed something:
// what, how much, why.
void report_eviction(const cache::Evictor::Result& result, std::chrono::steady_clock::duration took,
                     PullgateMetrics& metrics) {
  metrics.cache_bytes.set(static_cast<std::int64_t>(result.after.bytes));
  metrics.cache_blob_files.set(static_cast<std::int64_t>(result.after.blob_files));
  metrics.cache_pinned_bytes.set(static_cast<std::int64_t>(result.plan.pinned_bytes));
  metrics.eviction_last_run_seconds.store(std::chrono::duration<double>(took).count(), std::memory_order_relaxed);
  report_garbage(result.garbage, metrics);
  const auto& plan = result.plan;
  if (plan.units.empty()) return;
  constexpr std::size_t listed = 20;
  nlohmann::json units = nlohmann::json::array();
  for (const auto& unit : plan.units) {
    const auto what = std::string(cache::to_string(unit.kind));
    const auto reason = std::string(cache::to_string(unit.reason));
    metrics.evictions.with({what, reason}).inc();
    metrics.evicted_bytes.with({reason}).inc(unit.bytes);
    if (units.size() < listed)
      units.push_back({{"what", what}, {"name", unit.name}, {"reason", reason}, {"bytes", unit.bytes}});
  }
  log_event("info", "evicted",
            {{"units", plan.units.size()},
             {"manifests", plan.manifests.size()},
             {"blobs", plan.blobs.size()},
             {"responses", plan.responses.size()},
             {"bytes_freed", plan.bytes_before - plan.bytes_after},
             {"bytes_before", plan.bytes_before},
             {"bytes_after", plan.bytes_after},
             {"bytes_pinned", plan.pinned_bytes},
             {"first_units", units}});
}

// GET /readyz: ready while the cache answers; with the fleet store, "degraded" (still
// ready: the replica serves from its LMDB) while etcd is out of reach or not caught up.
nlohmann::json readiness_json(const Config& config, const cache::Fleet* fleet) {
  nlohmann::json out{{"status", "ok"}, {"replica", config.fleet.replica_id}};
  if (!fleet) return out;
  auto s = fleet->status();
  nlohmann::json replicas = nlohmann::json::object();
  for (auto& [id, at_ms] : s.replicas) replicas[id] = {{"heartbeat", policy::format_ms(at_ms)}};
  out["fleet"] = {{"in_step", s.in_step},
                  {"store_up", s.reachable},
                  {"revision", s.revision},
                  {"endpoint", s.endpoint},
                  {"on_store_down", config.fleet.on_store_down},
                  {"replicas", replicas}};
  if (!s.last_error.empty())
    out["fleet"]["last_error"] = {{"message", s.last_error}, {"at", policy::format_ms(s.last_error_ms)}};
  if (!s.in_step) {
    out["status"] = "degraded";
    out["reason"] = "the fleet store (etcd) is out of reach or not caught up: serving from this replica's decisions; "
                    "digests it never decided are " +
                    std::string(config.fleet.on_store_down == "fail_closed" ? "refused" : "decided by the local policy") +
                    " (fleet.on_store_down)";
  }
  return out;
}

int serve(const std::vector<std::string>& args) {
  std::optional<std::string> config_file;
  Overrides overrides;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&](const char* flag) -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << serve_help;
      return 0;
    } else if (a == "--offline") {
      overrides.offline = true;
    } else if (a == "--config" || a == "--listen" || a == "--data" || a == "--upstream" || a == "--threads" ||
               a == "--policy" || a == "--admin-listen") {
      auto v = value(a.c_str());
      if (!v) return cli::usage(a + " needs a value", "serve");
      if (a == "--config") config_file = *v;
      else if (a == "--listen") overrides.listen = *v;
      else if (a == "--data") overrides.data_dir = *v;
      else if (a == "--upstream") overrides.upstream_url = *v;
      else if (a == "--policy") overrides.policy_file = *v;
      else if (a == "--admin-listen") overrides.admin_listen = *v;
      else {
        char* end = nullptr;
        auto n = std::strtoul(v->c_str(), &end, 10);
        if (v->empty() || *end || n < 1 || n > 256) return cli::usage("--threads must be 1..256", "serve");
        overrides.threads = static_cast<unsigned>(n);
      }
    } else {
      return cli::usage("unknown option " + a, "serve");
    }
  }

  ConfigResult result;
  if (config_file) result = load_config_file(*config_file);
  else result.config = default_config();
  apply_overrides(result, overrides);
  if (!result.errors.empty()) {
    for (auto& e : result.errors) std::cerr << "pullgate: config: " << e << "\n";
    return 1;
  }
  const Config& config = result.config;

  policy::Policy initial = default_policy();
  if (!config.policy_file.empty()) {
    auto loaded = load_policy_file(config.policy_file);
    for (auto& w : loaded.warnings) std::cerr << "pullgate: policy: " << w << "\n";
    if (!loaded.policy) {
      for (auto& e : loaded.errors) std::cerr << "pullgate: policy: " << e << "\n";
      return 1;
    }
    initial = std::move(*loaded.policy);
  }

  // The fleet's policy (fleet.policy "etcd"): the copy this replica kept, else every
  // image denied until etcd's arrives.
  const auto fleet_policy_copy = config.data_dir / "fleet-policy.json";
  if (config.fleet.policy_in_etcd()) {
    if (auto kept = load_fleet_policy_copy(fleet_policy_copy)) initial = std::move(*kept);
    else initial = waiting_for_fleet_policy();
  }

  try {
    // Before anything opens a descriptor or a listener reads the limit (README,
    // "Limits"); logged once serving starts, so that a start that fails says one line.
    const auto nofile = raise_descriptor_limit();
    std::filesystem::create_directories(config.data_dir);
    // Held while the server runs: `pullgate cache evict` refuses to work under it.
    auto data_lock = cache::hold_data_dir_shared(config.data_dir);
    auto meta = open_meta_store(config);
    if (auto stale = meta->stale_readers_cleared())
      log_event("warn", "cleared stale LMDB readers (processes that died mid-read)", {{"count", stale}});
    meta->on_map_event(log_map_event);
    cache::BlobStore blobs(config.data_dir);
    // Blocking disk work (a filled blob's fsyncs, synced LMDB commits of manifests)
    // runs here, not on the I/O threads: a commit or an fsync of a large file would
    // stall every connection of the thread that made it.
    asio::thread_pool blocking(2);
    // The one wall clock every part records and compares times with.
    const WallClock clock = system_wall_clock();
    cache::BlobFetches fetches(blobs, *meta, blocking.get_executor(),
                               {config.max_blob_mb << 20, config.min_free_mb << 20}, clock);
    AccessLog access_log(config.access_log);
    PullgateMetrics metrics;
    AuditLog audit(config.audit_log_path(), config.audit_max_mb * 1024 * 1024, config.audit_keep,
                   config.audit_queue_max_mb << 20);
    audit.count_failures_in([&metrics] { metrics.audit_write_failures.inc(); });
    PolicyHolder policy(std::move(initial));
    // Where the command line finds the policy this server decides under.
    auto record_policy = [&] {
      PolicyInForce record;
      record.source = config.fleet.policy_in_etcd() ? "etcd" : config.policy_file.empty() ? "built-in" : "file";
      if (record.source == "etcd") record.file = std::filesystem::absolute(fleet_policy_copy).string();
      else if (record.source == "file") record.file = std::filesystem::absolute(config.policy_file).string();
      record.version = policy.get()->version;
      record.since_ms = ms_since_epoch(clock());
      record.pid = ::getpid();
      std::string error;
      if (!record_policy_in_force(config.data_dir, record, error))
        log_event("warn", "cannot record the policy in force for the command line (explain decides under --policy or "
                          "the config's)", {{"error", error}});
    };
    record_policy();
    Gate gate(*meta, policy, audit, metrics, config.audit_on_full == "serve", clock);
    gate.set_replica(config.fleet.replica_id);
    // Client authentication on the registry listener (README, "Who may pull"); with
    // fleet.tokens "etcd", from this replica's copy of the fleet's tokens until the
    // fleet's own arrive.
    std::unique_ptr<access::Authenticator> authenticator;
    if (config.client_auth())
      authenticator = std::make_unique<access::Authenticator>(access::ClientAuthSettings{
          config.fleet.tokens_in_etcd() ? config.fleet_tokens_path().string() : config.clients.tokens_file,
          !config.clients.ca_file.empty(), config.clients.anonymous, config.fleet.tokens_in_etcd()});
    // The fleet store (docs/fleet.md): etcd watched into LMDB; the gate decides from
    // LMDB whatever etcd does.
    std::unique_ptr<cache::Fleet> fleet;
    if (config.fleet.enabled()) {
      auto settings = fleet_settings(config);
      settings.log = [](const char* level, const std::string& message) { log_event(level, message); };
      if (config.fleet.policy_in_etcd()) {
        settings.on_policy = [&](const std::string& text) {
          auto outcome = apply_fleet_policy(text, fleet_policy_copy, policy);
          if (outcome == FleetPolicyOutcome::unchanged) return;
          metrics.policy_reloads.with({outcome == FleetPolicyOutcome::applied ? "ok" : "refused"}).inc();
          if (outcome == FleetPolicyOutcome::applied) record_policy();
          if (outcome == FleetPolicyOutcome::applied)
            asio::post(blocking, [&, in_force = policy.get()] { sweep_removed_scopes(*meta, *in_force, metrics); });
        };
      }
      if (config.fleet.tokens_in_etcd()) {
        // On the fleet's thread only: what was last put in force, so that a reconnect
        // bringing the same tokens says nothing.
        settings.on_tokens = [&, in_force = std::string()](const std::map<std::string, std::string>& keys) mutable {
          std::vector<std::string> refused;
          auto tokens = access::tokens_from_fleet(keys, refused);
          for (const auto& why : refused)
            log_event("error", "a client token in the fleet store was refused; the others are in force",
                      {{"error", why}});
          auto text = access::token_file_text(tokens);
          if (text == in_force) return;
          const auto count = tokens.entries().size();
          authenticator->replace(std::move(tokens));
          in_force = text;
          std::string error;
          if (!write_file_whole(text, config.fleet_tokens_path(), error))
            log_event("warn", "the fleet's client tokens are in force but no copy was kept (a restart without etcd "
                              "starts with the older copy)", {{"error", error}});
          log_event("info", "client tokens from the fleet store (etcd) in force", {{"tokens", count}});
        };
      }
      fleet = cache::Fleet::make(*meta, std::move(settings));
      std::function<bool()> store_down;
      if (config.fleet.on_store_down == "fail_closed") store_down = [f = fleet.get()] { return !f->in_step(); };
      gate.set_fleet_hooks(std::move(store_down), [f = fleet.get(), m = meta.get()](const registry::Digest& digest) {
        if (auto pending = m->get_pending(digest)) f->offer_pending(digest, *pending);
      });
    }
    DecisionWrites writes(*meta, fleet.get());
    fetches.on_download_end = [&metrics](const std::string& upstream, unsigned status, std::uint64_t bytes) {
      metrics.count_upstream(upstream, status);
      metrics.bytes_fetched.inc(bytes);
    };
    fetches.on_store_failure = [](const registry::Digest& digest, const std::string& error) {
      log_event("error", "blob not cached", {{"digest", digest.str()}, {"error", error}});
    };
    metrics.track_blob_fetches_in_flight([&fetches] { return static_cast<double>(fetches.in_flight()); });
    metrics.track_verdicts_stored([&meta] { return static_cast<double>(meta->verdict_count()); });
    metrics.registry.gauge_callback("pullgate_lmdb_map_bytes", "Size of the LMDB map now (it grows by itself).",
                                    [&meta] { return static_cast<double>(meta->map_usage().map_bytes); });
    metrics.registry.gauge_callback("pullgate_lmdb_map_max_bytes",
                                    "Size the LMDB map may grow to (cache.lmdb_max_map_size_mb).",
                                    [&meta] { return static_cast<double>(meta->map_usage().max_bytes); });
    metrics.registry.gauge_callback("pullgate_lmdb_used_bytes",
                                    "LMDB map bytes up to the last page in use (free pages inside included).",
                                    [&meta] { return static_cast<double>(meta->map_usage().used_bytes); });
    metrics.registry.gauge_callback("pullgate_pending_scans", "Digests awaiting a vulnerability report (GET /v1/pending).",
                                    [&meta] { return static_cast<double>(meta->pending_count()); });
    metrics.registry.gauge_callback("pullgate_reports_stored", "Vulnerability reports stored.",
                                    [&meta] { return static_cast<double>(meta->report_count()); });
    metrics.registry.gauge_callback("pullgate_audit_queue_bytes",
                                    "Audit lines waiting for the disk, in bytes (at gate.audit_queue_max_mb the "
                                    "gate refuses or drops, see gate.audit_on_full).",
                                    [&audit] { return static_cast<double>(audit.queued_bytes()); });
    metrics.track_policy_version([&policy] { return policy.get()->version; });
    metrics.registry.gauge_callback("pullgate_replica_info",
                                    "This replica's id (fleet.replica_id; join on it to tell a fleet's replicas apart).",
                                    {"replica"}, [id = config.fleet.replica_id] {
                                      return std::vector<LabelledValue>{{{id}, 1.0}};
                                    });
    if (fleet) {
      auto* f = fleet.get();
      metrics.registry.gauge_callback("pullgate_fleet_in_step",
                                      "1 while the fleet store (etcd) is watched and this replica has caught up.",
                                      [f] { return f->in_step() ? 1.0 : 0.0; });
      metrics.registry.gauge_callback("pullgate_fleet_store_up", "1 while etcd answers this replica's calls.",
                                      [f] { return f->status().reachable ? 1.0 : 0.0; });
      metrics.registry.gauge_callback("pullgate_fleet_revision", "The etcd revision this replica's LMDB holds.",
                                      [f] { return static_cast<double>(f->status().revision); });
      metrics.registry.gauge_callback("pullgate_fleet_batches_applied",
                                      "Watch answers from etcd applied to LMDB since start.",
                                      [f] { return static_cast<double>(f->status().batches); });
      metrics.registry.gauge_callback("pullgate_fleet_full_reads",
                                      "Whole-store reads from etcd applied since start (first sync, compaction).",
                                      [f] { return static_cast<double>(f->status().full_reads); });
    }
    auto reload = [&] {
      // The tokens file goes with the policy: one SIGHUP (or POST /v1/policy/reload)
      // puts both in force; a file with a mistake leaves the tokens in force.
      if (authenticator && !config.fleet.tokens_in_etcd()) {
        if (auto error = authenticator->reload()) log_event("error", "tokens file refused; the old tokens stay", {{"error", *error}});
        else if (!config.clients.tokens_file.empty())
          log_event("info", "tokens file reloaded", {{"tokens", authenticator->tokens()}});
      }
      if (config.fleet.policy_in_etcd()) {
        log_event("info", "policy reload: the policy is the fleet's (fleet.policy \"etcd\"); it is in force as etcd "
                          "has it; change it with `pullgate policy push FILE`",
                  {{"version", policy.get()->version}});
        return false;
      }
      bool ok = reload_policy(config.policy_file, policy);
      metrics.policy_reloads.with({ok ? "ok" : "refused"}).inc();
      if (ok) record_policy();
      if (ok) asio::post(blocking, [&, in_force = policy.get()] { sweep_removed_scopes(*meta, *in_force, metrics); });
      return ok;
    };

    asio::io_context ioc(static_cast<int>(config.threads));
    std::vector<UpstreamEntry> upstreams;
    for (auto& u : config.upstreams)
      upstreams.push_back(UpstreamEntry{u, registry::make_http_upstream(ioc.get_executor(), u.settings)});

    audit.start_writer();
    Mirror mirror(config, upstreams, *meta, blobs, fetches, access_log, gate, metrics, policy, blocking.get_executor(),
                  clock);
    metrics.registry.gauge_callback(
        "pullgate_memory_cache_bytes",
        "Memory held by the in-memory front of the hottest manifests and tags, roughly (cache.memory_mb bounds it).",
        [&mirror] { return static_cast<double>(mirror.memory_cache_bytes()); });
    mirror.set_authenticator(authenticator.get());
    Server server(ioc, mirror_listener(config), mirror);
    server.count_shed_in(metrics.connections_shed);
    mirror.set_readiness([&config, f = fleet.get()] { return readiness_json(config, f).dump(); });
    if (fleet) fleet->start_sync();
    server.start();
    // Pull times are noted in memory on every pull and stored in batches: eviction
    // by last pull then costs no write per warm request.
    auto flush_pull_times = [&] {
      try {
        mirror.pull_times().flush_to(*meta);
      } catch (const std::exception& e) {
        log_event("error", "pull times not stored", {{"error", e.what()}});
      }
    };
    cache::Periodic pull_time_flush(ioc, blocking.get_executor(), std::chrono::seconds(5), flush_pull_times);
    pull_time_flush.start();
    // Eviction by last pull (docs/cache.md), on the blocking pool. Each run also sets
    // the cache's size gauges, so it runs without limits too.
    cache::Evictor evictor(*meta, blobs, mirror.pull_times(),
                           cache::EvictionLimits{config.cache_max_bytes, config.cache_high_watermark,
                                                 config.cache_low_watermark, config.cache_max_unpulled_ms},
                           clock);
    evictor.on_evicted = [&mirror](const cache::EvictionPlan& plan) { mirror.forget_evicted(plan.manifests); };
    // The config's pins and those `pullgate pin add` stored, read at each run: a pin
    // added while the server runs protects its image from the next run on.
    evictor.pins = [&config, &meta] { return cache::pins_in_force(*meta, config.cache_pins); };
    asio::post(blocking, [&, in_force = policy.get()] { sweep_removed_scopes(*meta, *in_force, metrics); });
    evictor.on_garbage = [](const cache::GarbageFinding& f) {
      log_event("info", "garbage", {{"found", cache::to_string(f.kind)}, {"path", f.path.string()},
                                    {"removed", f.removed}});
    };
    auto evict = [&] {
      try {
        const auto started = std::chrono::steady_clock::now();
        auto result = evictor.run();
        report_eviction(result, std::chrono::steady_clock::now() - started, metrics);
        release_eviction_memory();
      } catch (const std::exception& e) {
        log_event("error", "eviction failed", {{"error", e.what()}});
      }
    };
    cache::Periodic eviction(ioc, blocking.get_executor(), std::chrono::seconds(config.cache_eviction_interval_s),
                             evict);
    eviction.start();

    std::unique_ptr<AdminApi> admin;
    std::unique_ptr<Server> admin_server;
    if (!config.admin_listen.empty()) {
      AdminApi::Hooks hooks;
      hooks.reload_policy = reload;
      hooks.metrics = [&metrics] { return metrics.render(); };
      hooks.telemetry = &metrics;
      hooks.readiness = [&config, f = fleet.get()] { return readiness_json(config, f).dump(); };
      hooks.evictor = &evictor;
      hooks.blocking = blocking.get_executor();
      hooks.writes = &writes;
      if (fleet) hooks.claims = &fleet->scan_claims();
      hooks.evicted = [&](const cache::Evictor::Result& result) {
        const auto run = evictor.last_run();
        report_eviction(result, std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(run ? run->seconds : 0)),
                        metrics);
        release_eviction_memory();
      };
      AdminApi::Tokens tokens{load_or_create_token(config.admin_token_path()),
                              load_or_create_token(config.scanner_token_path()),
                              load_or_create_token(config.metrics_token_path())};
      admin = std::make_unique<AdminApi>(config, std::move(tokens), *meta, policy, gate, mirror, std::move(hooks), clock);
      admin_server = std::make_unique<Server>(ioc, admin_listener(config), *admin);
      admin_server->count_shed_in(metrics.connections_shed);
      admin_server->start();
      auto a = admin_server->local_endpoint();
      log_event("info", "admin listening", {{"address", a.address().to_string() + ":" + std::to_string(a.port())},
                                            {"token_file", config.admin_token_path().string()},
                                            {"scanner_token_file", config.scanner_token_path().string()},
                                            {"metrics_token_file", config.metrics_token_path().string()}});
    }
    if (nofile.error.empty())
      log_event("info", "file descriptor limit", {{"limit", nofile.now}, {"was", nofile.before}});
    else
      log_event("warn", "file descriptor limit not raised", {{"limit", nofile.now}, {"error", nofile.error}});
    auto endpoint = server.local_endpoint();
    nlohmann::json names = nlohmann::json::array();
    for (auto& u : config.upstreams) names.push_back(u.settings.name + "=" + u.settings.url);
    log_event("info", "listening",
              {{"address", endpoint.address().to_string() + ":" + std::to_string(endpoint.port())},
               {"tls", !config.tls_cert_file.empty()},
               {"data_dir", config.data_dir.string()},
               {"offline", config.offline},
               {"policy", config.fleet.policy_in_etcd() ? "etcd " + config.fleet.etcd_prefix + "policy"
                          : config.policy_file.empty()   ? "(built-in: allow all)"
                                                         : config.policy_file},
               {"policy_version", policy.get()->version},
               {"audit_log", config.audit_log_path().string()},
               {"upstreams", names},
               {"cached_manifests", meta->manifest_count()},
               {"cached_blobs", meta->blob_count()},
               {"version", PULLGATE_VERSION}});
    if (auto open = open_listener_warning(config); !open.empty()) log_event("warn", open);
    else if (authenticator)
      log_event("info", "client authentication",
                {{"certificates", config.clients.ca_file.empty() ? "off" : config.clients.certificates},
                 {"tokens", authenticator->tokens()},
                 {"tokens_from", config.fleet.tokens_in_etcd() ? "etcd" : "file"},
                 {"anonymous", config.clients.anonymous}});

    asio::signal_set hangup(ioc, SIGHUP);
    std::function<void()> wait_hangup = [&] {
      hangup.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        reload();
        wait_hangup();
      });
    };
    wait_hangup();

    // Graceful shutdown: stop accepting; let requests and blob downloads finish
    // within the grace period, then cancel what is left; return from run() only when
    // every coroutine has ended, so none outlives what it uses (the upstream clients,
    // the stores, the audit log), which are destroyed after it.
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    asio::steady_timer drain(ioc);
    std::function<void()> wait_drained;
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now();
    std::optional<Clock::time_point> cancelled_at;
    auto running = [&] {
      return std::pair{server.active_sessions() + (admin_server ? admin_server->active_sessions() : 0),
                       fetches.downloads()};
    };
    wait_drained = [&] {
      auto [sessions, downloads] = running();
      if (sessions == 0 && downloads == 0) {
        log_event("info", "stopped", {{"cancelled", cancelled_at.has_value()}});
        signals.cancel();  // nothing is left to wait for: run() returns
        return;
      }
      auto now = Clock::now();
      if (!cancelled_at && now >= deadline) {
        log_event("warn", "cancelling what did not finish in the grace period",
                  {{"sessions", sessions}, {"downloads", downloads}, {"grace_s", config.shutdown_grace_s}});
        server.cancel_sessions();
        if (admin_server) admin_server->cancel_sessions();
        fetches.cancel_all();
        cancelled_at = now;
      } else if (cancelled_at && now - *cancelled_at > std::chrono::seconds(10)) {
        // Cancellation reaches every await; this is a bug's way out, not a plan.
        log_event("error", "stopped with work that would not end", {{"sessions", sessions}, {"downloads", downloads}});
        audit.flush();
        std::_Exit(1);
      }
      drain.expires_after(std::chrono::milliseconds(50));
      drain.async_wait([&](boost::system::error_code) { wait_drained(); });
    };
    signals.async_wait([&](boost::system::error_code ec, int signal) {
      if (ec) return;
      auto [sessions, downloads] = running();
      log_event("info", "stopping", {{"signal", signal}, {"open_sessions", sessions}, {"downloads", downloads}});
      hangup.cancel();
      pull_time_flush.stop();
      eviction.stop();
      server.stop();
      if (admin_server) admin_server->stop();
      deadline = Clock::now() + std::chrono::seconds(config.shutdown_grace_s);
      wait_drained();
    });

    std::vector<std::thread> threads;
    for (unsigned i = 1; i < config.threads; ++i) threads.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto& t : threads) t.join();
    // Blobs being made durable are published before the process ends.
    blocking.join();
    flush_pull_times();
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  using cli::Bare;
  // Every command, in the order `pullgate help` lists them; a new command is a file
  // of proxy/cli/ (or, if it needs the network, a room of its own like
  // proxy/prefetch/) and a row.
  static const cli::Command commands[] = {
      {"serve", "[options]", "run the mirror", serve_help, serve},
      {"check-config", "FILE", "validate a config file and exit", cli::check_config_help, cli::run_check_config},
      {"policy", "check|push FILE", "validate a policy file; push one to the fleet store (etcd)", cli::policy_help,
       cli::run_policy, Bare::shows_help},
      {"verdict", "set|get|ls|rm", "manage stored verdicts (works while the server runs)", cli::verdict_help,
       cli::run_verdict, Bare::shows_help},
      {"report", "import|get", "file and read scanner reports (Trivy, Grype JSON)", cli::report_help, cli::run_report,
       Bare::shows_help},
      {"pending", "ls", "digests awaiting a scan", cli::report_help, cli::run_pending, Bare::shows_help},
      {"vex", "import|get|rm", "file VEX documents (OpenVEX, CycloneDX) that set findings aside", cli::vex_help,
       cli::run_vex, Bare::shows_help},
      {"exception", "add|ls|rm", "manage run-time exceptions (works while the server runs)", cli::exception_help,
       cli::run_exception, Bare::shows_help},
      {"explain", "IMAGE|DIGEST", "what the gate decides now, and why (reads the cache only)", cli::explain_help,
       cli::run_explain, Bare::shows_help},
      {"audit", "[filters]", "print matching audit-log records", cli::audit_help, cli::run_audit},
      {"bundle", "export|import|verify", "air-gap bundles: cached images with their evidence", cli::bundle_help,
       cli::run_bundle, Bare::shows_help},
      {"token", "new|rm|ls", "client tokens for the registry listener (clients.tokens_file)", cli::token_help,
       cli::run_token, Bare::shows_help},
      {"pin", "add|ls|rm", "pin images so eviction keeps them (works while the server runs)", cli::pin_help,
       cli::run_pin, Bare::shows_help},
      {"cache", "du|ls|evict", "what the cache holds, by image; evict an image", cli::cache_help, cli::run_cache,
       Bare::shows_help},
      {"verify-bundle", "--bundle F ...", "verify a Sigstore bundle keyless, offline (why a signature is refused)",
       cli::verify_bundle_help, cli::run_verify_bundle, Bare::shows_help},
      {"verify-notation", "--envelope F ...", "verify a Notation signature envelope, offline (why it is refused)",
       cli::verify_notation_help, cli::run_verify_notation, Bare::shows_help},
      {"prefetch", "IMAGE...|--file LIST", "pull images into the cache through the running mirror's gate",
       prefetch::help, prefetch::run, Bare::shows_help},
      {"doctor", "[--mirror URL] [--json]", "on a node: can its container clients pull around the gate?",
       doctor::help, doctor::run},
  };
  return cli::run_command_line(commands, std::vector<std::string>(argv + 1, argv + argc));
}
