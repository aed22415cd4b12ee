#include "cache/fleet.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <nlohmann/json.hpp>

#include "cache/etcd.hpp"

namespace pullgate::cache {

namespace asio = boost::asio;
using Kind = FleetRecord::Kind;

namespace {

constexpr std::array<std::pair<Kind, std::string_view>, 4> record_dirs{{{Kind::verdict, "verdicts/"},
                                                                        {Kind::exception, "exceptions/"},
                                                                        {Kind::report, "reports/"},
                                                                        {Kind::pending, "pending/"}}};
constexpr std::string_view replicas_dir = "replicas/";
constexpr std::string_view claims_dir = "claims/";
constexpr std::string_view policy_name = "policy";
constexpr std::string_view tokens_dir = "tokens/";
// How many of this replica's own pending entries a full read offers to the fleet.
constexpr std::size_t pending_offered_at_full_read = 10'000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<FleetKey> parse_fleet_key(std::string_view key) {
  for (auto [kind, dir] : record_dirs)
    if (key.size() > dir.size() && key.starts_with(dir)) return FleetKey{kind, std::string(key.substr(dir.size()))};
  return std::nullopt;
}

std::string fleet_key(Kind kind, std::string_view subject) {
  for (auto [k, dir] : record_dirs)
    if (k == kind) return std::string(dir) + std::string(subject);
  return std::string(subject);  // every kind has a folder above
}

class EtcdFleet final : public Fleet, private ScanClaims {
 public:
  EtcdFleet(MetaStore& meta, FleetSettings settings);
  ~EtcdFleet() override;

  void start_sync() override;
  bool in_step() const override { return in_step_.load(std::memory_order_acquire); }
  FleetStatus status() const override;
  void put_verdict(const Digest& digest, const VerdictRecord& record) override;
  bool remove_verdict(const Digest& digest) override;
  bool add_exception(const ExceptionRecord& record) override;
  bool remove_exception(const std::string& id) override;
  void put_report(const Digest& digest, const ReportRecord& record) override;
  void offer_pending(const Digest& digest, const PendingRecord& record) override;
  ScanClaims& scan_claims() override { return *this; }
  std::int64_t put_policy(const std::string& text) override;
  bool add_token(const std::string& name, const std::string& hash) override;
  bool remove_token(const std::string& name) override;
  std::map<std::string, std::string> tokens() override;

 private:
  ClaimAnswer claim(const Digest& digest, std::chrono::seconds ttl, const std::string& holder) override;
  // Puts the digest in the fleet's queue unless it is there, or the fleet holds a
  // report this replica has not applied yet (its watch brings it, and the gate decides
  // again). An aged report does not stop it: a report this replica has too is
  // guarded unchanged, so one filed meanwhile wins. True when the entry is there.
  asio::awaitable<bool> offer(etcd::Client& client, const Digest& digest, std::string record,
                              std::optional<std::string> local_report);
  std::optional<std::chrono::seconds> keep_alive(const Digest& digest, const std::string& id) override;
  bool release(const Digest& digest, const std::string& id) override;
  std::map<std::string, std::string> held() override;
  bool remote() const override { return true; }
  std::string claim_key(const Digest& digest) const { return settings_.prefix + std::string(claims_dir) + digest.str(); }

  // Runs `f(client)` on the fleet's thread and waits for it; etcd errors become
  // FleetUnavailable naming `what`.
  template <class T, class F>
  T call(const char* what, F&& f);
  asio::awaitable<void> sync();
  void deliver_policy(const std::string& text);
  // Reads every token key and hands them to on_tokens; events at or before the read's
  // revision are in it, so the watch's replay of them is skipped.
  asio::awaitable<void> read_tokens(etcd::Client& client);
  void deliver_tokens();
  asio::awaitable<void> full_read(etcd::Client& client);
  asio::awaitable<void> share_what_was_here(etcd::Client& client);
  asio::awaitable<void> watch_until_broken(etcd::Client& client);
  void apply(FleetBatch batch, bool full);
  void note_error(const std::string& what);
  void note_heartbeat(const etcd::KeyValue& kv);
  std::string key(Kind kind, std::string_view subject) const;
  void echo(FleetRecord record);

  MetaStore& meta_;
  const FleetSettings settings_;
  asio::io_context io_;
  std::unique_ptr<etcd::Client> client_;  // writes; the sync makes its own
  // The fleet's client tokens as the sync last read them (the fleet's thread only).
  std::map<std::string, std::string> tokens_;
  std::int64_t tokens_revision_ = 0;
  std::atomic<bool> in_step_{false};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;  // guards status_
  FleetStatus status_;
  std::thread thread_;
};

EtcdFleet::EtcdFleet(MetaStore& meta, FleetSettings settings) : meta_(meta), settings_(std::move(settings)) {
  client_ = etcd::Client::make(io_.get_executor(), settings_.etcd);
  status_.revision = meta_.fleet_revision();
  thread_ = std::thread([this] {
    auto work = asio::make_work_guard(io_);
    io_.run();
  });
}

EtcdFleet::~EtcdFleet() {
  stopping_ = true;
  io_.stop();
  thread_.join();
}

void EtcdFleet::start_sync() {
  asio::co_spawn(io_, sync(), asio::detached);
}

FleetStatus EtcdFleet::status() const {
  std::lock_guard lock(mutex_);
  FleetStatus s = status_;
  s.in_step = in_step();
  return s;
}

std::string EtcdFleet::key(Kind kind, std::string_view subject) const {
  return settings_.prefix + fleet_key(kind, subject);
}

void EtcdFleet::note_error(const std::string& what) {
  std::lock_guard lock(mutex_);
  status_.reachable = false;
  status_.last_error = what;
  status_.last_error_ms = now_ms();
}

template <class T, class F>
T EtcdFleet::call(const char* what, F&& f) {
  auto work = [&]() -> asio::awaitable<T> { co_return co_await f(*client_); };
  auto result = asio::co_spawn(io_, std::move(work), asio::use_future);
  try {
    T value = result.get();
    std::lock_guard lock(mutex_);
    status_.reachable = true;
    status_.endpoint = client_->endpoint();
    return value;
  } catch (const etcd::Error& e) {
    note_error(e.what());
    throw FleetUnavailable(std::string("the fleet store (etcd) did not take the ") + what + ": " + e.what() +
                           "; nothing was written");
  }
}

void EtcdFleet::echo(FleetRecord record) {
  // etcd has it; this replica applies it now rather than when its watch brings it
  // back, so that the writer's next pull here already follows it. Revision 0: the
  // watch still brings it in order with everyone else's writes.
  FleetBatch batch;
  batch.records.push_back(std::move(record));
  try {
    meta_.apply_fleet(batch);
  } catch (const std::exception& e) {
    if (settings_.log)
      settings_.log("warn", std::string("fleet: a write etcd took was not applied here at once (the watch brings it): ") +
                                e.what());
  }
}

void EtcdFleet::put_verdict(const Digest& digest, const VerdictRecord& record) {
  auto value = encode_record(record);
  call<std::int64_t>("verdict", [&](etcd::Client& c) { return c.put(key(Kind::verdict, digest.str()), value); });
  echo({Kind::verdict, digest.str(), value});
}

bool EtcdFleet::remove_verdict(const Digest& digest) {
  auto k = key(Kind::verdict, digest.str());
  bool existed = call<bool>("verdict removal", [&](etcd::Client& c) -> asio::awaitable<bool> {
    auto found = co_await c.get(k);
    if (!found) co_return false;
    co_await c.erase(k);
    co_return true;
  });
  if (existed) echo({Kind::verdict, digest.str(), std::nullopt});
  return existed;
}

bool EtcdFleet::add_exception(const ExceptionRecord& record) {
  auto value = encode_record(record);
  auto k = key(Kind::exception, record.id);
  std::vector<etcd::Write> writes{{etcd::Write::Type::put, k, value, 0}};
  auto done = call<std::optional<std::int64_t>>("exception", [&](etcd::Client& c) { return c.commit(writes, {k}); });
  if (!done) return false;
  echo({Kind::exception, record.id, value});
  return true;
}

bool EtcdFleet::remove_exception(const std::string& id) {
  auto k = key(Kind::exception, id);
  bool existed = call<bool>("exception removal", [&](etcd::Client& c) -> asio::awaitable<bool> {
    auto found = co_await c.get(k);
    if (!found) co_return false;
    co_await c.erase(k);
    co_return true;
  });
  if (existed) echo({Kind::exception, id, std::nullopt});
  return existed;
}

void EtcdFleet::put_report(const Digest& digest, const ReportRecord& record) {
  auto value = encode_record(record);
  // The wait is over: the entry and any scanner's claim on it go with the report.
  std::vector<etcd::Write> writes{{etcd::Write::Type::put, key(Kind::report, digest.str()), value, 0},
                                  {etcd::Write::Type::erase, key(Kind::pending, digest.str()), "", 0},
                                  {etcd::Write::Type::erase, claim_key(digest), "", 0}};
  call<std::optional<std::int64_t>>("report", [&](etcd::Client& c) { return c.commit(writes, {}); });
  echo({Kind::report, digest.str(), value});
}

std::int64_t EtcdFleet::put_policy(const std::string& text) {
  auto k = settings_.prefix + std::string(policy_name);
  return call<std::int64_t>("policy", [&](etcd::Client& c) { return c.put(k, text); });
}

bool EtcdFleet::add_token(const std::string& name, const std::string& hash) {
  auto k = settings_.prefix + std::string(tokens_dir) + name;
  std::vector<etcd::Write> writes{{etcd::Write::Type::put, k, hash, 0}};
  auto done = call<std::optional<std::int64_t>>("token", [&](etcd::Client& c) { return c.commit(writes, {k}); });
  return done.has_value();
}

bool EtcdFleet::remove_token(const std::string& name) {
  auto k = settings_.prefix + std::string(tokens_dir) + name;
  return call<bool>("token removal", [&](etcd::Client& c) -> asio::awaitable<bool> {
    auto found = co_await c.get(k);
    if (!found) co_return false;
    co_await c.erase(k);
    co_return true;
  });
}

std::map<std::string, std::string> EtcdFleet::tokens() {
  auto dir = settings_.prefix + std::string(tokens_dir);
  auto range = call<etcd::Range>("token listing", [&](etcd::Client& c) { return c.range_prefix(dir); });
  std::map<std::string, std::string> out;
  for (auto& kv : range.kvs) out[kv.key.substr(dir.size())] = std::move(kv.value);
  return out;
}

asio::awaitable<void> EtcdFleet::read_tokens(etcd::Client& client) {
  auto dir = settings_.prefix + std::string(tokens_dir);
  auto range = co_await client.range_prefix(dir);
  tokens_.clear();
  for (auto& kv : range.kvs) tokens_[kv.key.substr(dir.size())] = std::move(kv.value);
  tokens_revision_ = range.revision;
  deliver_tokens();
}

void EtcdFleet::deliver_tokens() {
  try {
    settings_.on_tokens(tokens_);
  } catch (const std::exception& e) {
    if (settings_.log) settings_.log("error", std::string("fleet: the tokens from etcd were not applied: ") + e.what());
  }
}

void EtcdFleet::deliver_policy(const std::string& text) {
  try {
    settings_.on_policy(text);
  } catch (const std::exception& e) {
    if (settings_.log) settings_.log("error", std::string("fleet: the policy from etcd was not applied: ") + e.what());
  }
}

asio::awaitable<bool> EtcdFleet::offer(etcd::Client& client, const Digest& digest, std::string record,
                                       std::optional<std::string> local_report) {
  auto pk = key(Kind::pending, digest.str()), rk = key(Kind::report, digest.str());
  auto fleet_report = co_await client.get(rk);
  if (fleet_report && fleet_report->value != local_report) co_return false;
  std::vector<etcd::Write> writes{{etcd::Write::Type::put, pk, std::move(record), 0}};
  std::vector<std::string> absent{pk};
  std::vector<etcd::Unchanged> unchanged{{rk, fleet_report ? fleet_report->mod_revision : 0}};
  if (co_await client.commit(std::move(writes), std::move(absent), std::move(unchanged))) co_return true;
  co_return (co_await client.get(pk)).has_value();
}

void EtcdFleet::offer_pending(const Digest& digest, const PendingRecord& record) {
  std::optional<std::string> local_report;
  if (auto r = meta_.get_report(digest)) local_report = encode_record(*r);
  auto sharing = [this, digest, value = encode_record(record), local_report]() -> asio::awaitable<void> {
    try {
      co_await offer(*client_, digest, value, local_report);
    } catch (const etcd::Error& e) {
      note_error(e.what());
      if (settings_.log)
        settings_.log("warn", std::string("fleet: a pending scan was not shared (offered again at the next full read "
                                          "or scan claim): ") +
                                  e.what());
    }
  };
  asio::co_spawn(io_, std::move(sharing), asio::detached);
}

namespace {

std::string holder_of(const std::optional<etcd::KeyValue>& kv) {
  if (kv) {
    auto doc = nlohmann::json::parse(kv->value, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && doc.contains("holder") && doc["holder"].is_string()) return doc["holder"].get<std::string>();
  }
  return "another scanner";  // released or expired just now, or written by something else
}

std::optional<std::int64_t> lease_of(const std::string& id) {
  std::int64_t lease = 0;
  auto [end, error] = std::from_chars(id.data(), id.data() + id.size(), lease);
  if (error != std::errc() || end != id.data() + id.size() || lease <= 0) return std::nullopt;
  return lease;
}

}  // namespace

ClaimAnswer EtcdFleet::claim(const Digest& digest, std::chrono::seconds ttl, const std::string& holder) {
  auto ck = claim_key(digest), pk = key(Kind::pending, digest.str());
  auto value = nlohmann::json{{"holder", holder}, {"replica", settings_.replica_id}, {"at_ms", now_ms()}}.dump();
  std::optional<std::string> local_record, local_report;
  if (auto p = meta_.get_pending(digest)) local_record = encode_record(*p);
  if (auto r = meta_.get_report(digest)) local_report = encode_record(*r);
  return call<ClaimAnswer>("scan claim", [&](etcd::Client& c) -> asio::awaitable<ClaimAnswer> {
    auto pending = co_await c.get(pk);
    if (!pending && local_record) {
      // Queued here while etcd was out of reach: into the fleet's queue first.
      if (co_await offer(c, digest, *local_record, local_report)) pending = co_await c.get(pk);
    }
    if (!pending) co_return NotPending{};
    // The lease first: the claim exists only bound to it, so a scanner that stops
    // renewing loses it even if this replica goes away too. The queue entry guarded
    // as read: a report filed meanwhile (which takes the entry away) wins.
    auto lease = co_await c.grant(ttl);
    std::vector<etcd::Write> writes{{etcd::Write::Type::put, ck, value, lease}};
    std::vector<std::string> absent{ck};
    std::vector<etcd::Unchanged> unchanged{{pk, pending->mod_revision}};
    if (co_await c.commit(std::move(writes), std::move(absent), std::move(unchanged)))
      co_return ScanClaim{std::to_string(lease), ttl};
    co_await c.revoke(lease);  // unused; it would expire on its own
    auto current = co_await c.get(ck);
    if (current) co_return ClaimedElsewhere{holder_of(current)};
    co_return NotPending{};
  });
}

std::optional<std::chrono::seconds> EtcdFleet::keep_alive(const Digest& digest, const std::string& id) {
  auto lease = lease_of(id);
  if (!lease) return std::nullopt;
  auto k = claim_key(digest);
  auto ttl = call<std::int64_t>("claim renewal", [&](etcd::Client& c) -> asio::awaitable<std::int64_t> {
    auto current = co_await c.get(k);
    if (!current || current->lease != *lease) co_return 0;  // not this claim (any more)
    co_return co_await c.keep_alive(*lease);
  });
  if (ttl <= 0) return std::nullopt;
  return std::chrono::seconds(ttl);
}

bool EtcdFleet::release(const Digest& digest, const std::string& id) {
  auto lease = lease_of(id);
  if (!lease) return false;
  auto k = claim_key(digest);
  return call<bool>("claim release", [&](etcd::Client& c) -> asio::awaitable<bool> {
    auto current = co_await c.get(k);
    if (!current || current->lease != *lease) co_return false;
    co_await c.revoke(*lease);  // and with it the key
    co_return true;
  });
}

std::map<std::string, std::string> EtcdFleet::held() {
  auto dir = settings_.prefix + std::string(claims_dir);
  auto range = call<etcd::Range>("claim listing", [&](etcd::Client& c) { return c.range_prefix(dir); });
  std::map<std::string, std::string> out;
  for (auto& kv : range.kvs) out[kv.key.substr(dir.size())] = holder_of(kv);
  return out;
}

void EtcdFleet::note_heartbeat(const etcd::KeyValue& kv) {
  auto doc = nlohmann::json::parse(kv.value, nullptr, /*allow_exceptions=*/false);
  auto id = std::string_view(kv.key).substr(settings_.prefix.size() + replicas_dir.size());
  if (id.empty() || id.size() > 63) return;
  std::int64_t at = 0;
  if (doc.is_object() && doc.contains("at_ms") && doc["at_ms"].is_number_integer()) at = doc["at_ms"].get<std::int64_t>();
  std::lock_guard lock(mutex_);
  if (status_.replicas.size() < 1000 || status_.replicas.contains(std::string(id))) status_.replicas[std::string(id)] = at;
}

void EtcdFleet::apply(FleetBatch batch, bool full) {
  const auto revision = batch.revision;
  auto applied = meta_.apply_fleet(batch);
  std::lock_guard lock(mutex_);
  if (applied.stale) return;
  status_.revision = revision;
  status_.records += applied.written + applied.removed;
  if (full) ++status_.full_reads;
  else ++status_.batches;
}

asio::awaitable<void> EtcdFleet::full_read(etcd::Client& client) {
  auto range = co_await client.range_prefix(settings_.prefix);
  FleetBatch batch;
  batch.full = true;
  batch.revision = range.revision;
  std::set<std::string> shared_pending, reported;
  for (auto& kv : range.kvs) {
    std::string_view rest = std::string_view(kv.key).substr(settings_.prefix.size());
    if (rest.starts_with(replicas_dir)) {
      note_heartbeat(kv);
      continue;
    }
    auto parsed = parse_fleet_key(rest);
    if (!parsed) continue;
    if (parsed->kind == Kind::pending) shared_pending.insert(parsed->subject);
    if (parsed->kind == Kind::report) reported.insert(parsed->subject);
    batch.records.push_back({parsed->kind, std::move(parsed->subject), std::move(kv.value)});
  }
  apply(std::move(batch), true);
  if (settings_.log)
    settings_.log("info", "fleet: read the whole store at revision " + std::to_string(range.revision) + " (" +
                              std::to_string(range.kvs.size()) + " keys)");
  // This replica's own queue entries that the fleet does not have (queued while etcd
  // was out of reach, or before the fleet store was on) go to the fleet's queue.
  for (auto& [digest, record] : meta_.list_pending(pending_offered_at_full_read))
    if (!shared_pending.contains(digest.str()) && !reported.contains(digest.str())) offer_pending(digest, record);
}

// A mirror joining a fleet for the first time keeps what people decided on it:
// its manual verdicts and exceptions go to etcd where etcd has none for the key
// (the fleet's own win), before the first full read would remove them from LMDB. A
// manual deny lost on the way into a fleet would be an image let through.
asio::awaitable<void> EtcdFleet::share_what_was_here(etcd::Client& client) {
  VerdictFilter manual;
  manual.source = "manual";
  manual.limit = std::numeric_limits<std::size_t>::max();
  std::size_t offered = 0, shared = 0;
  for (auto& [digest, record] : meta_.list_verdicts(manual)) {
    std::vector<std::string> absent{key(Kind::verdict, digest.str())};
    std::vector<etcd::Write> writes{{etcd::Write::Type::put, absent.front(), encode_record(record), 0}};
    ++offered;
    // Named, not temporaries: GCC 12 destroys temporaries of a co_await expression twice.
    if (co_await client.commit(std::move(writes), std::move(absent))) ++shared;
  }
  for (auto& record : meta_.list_exceptions()) {
    std::vector<std::string> absent{key(Kind::exception, record.id)};
    std::vector<etcd::Write> writes{{etcd::Write::Type::put, absent.front(), encode_record(record), 0}};
    ++offered;
    if (co_await client.commit(std::move(writes), std::move(absent))) ++shared;
  }
  if (offered && settings_.log)
    settings_.log("info", "fleet: joining, shared " + std::to_string(shared) + " of this mirror's " +
                              std::to_string(offered) + " manual verdicts and exceptions (the fleet had the rest)");
}

asio::awaitable<void> EtcdFleet::watch_until_broken(etcd::Client& client) {
  const std::string heartbeat_key = settings_.prefix + std::string(replicas_dir) + settings_.replica_id;
  auto heartbeat_value = [&] {
    return nlohmann::json{{"replica", settings_.replica_id}, {"revision", meta_.fleet_revision()}, {"at_ms", now_ms()}}
        .dump();
  };
  auto from = meta_.fleet_revision();
  // The heartbeat's revision says where etcd is: behind this replica means the store
  // was replaced (restored from a backup, or a new cluster) and is read again in full.
  auto beat_value = heartbeat_value();
  auto beat = co_await client.put(heartbeat_key, beat_value);
  if (beat <= from) {
    if (settings_.log)
      settings_.log("warn", "fleet: etcd is at revision " + std::to_string(beat) + ", behind this replica's " +
                                std::to_string(from) + " (a restored or new store); reading it in full");
    co_await full_read(client);
    from = meta_.fleet_revision();
    beat_value = heartbeat_value();
    beat = co_await client.put(heartbeat_key, beat_value);
  }
  {
    std::lock_guard lock(mutex_);
    status_.reachable = true;
    status_.endpoint = client.endpoint();
  }
  // The policy as etcd has it now (a write while this replica was away, or a copy
  // lost here); later writes come through the watch.
  if (settings_.on_policy) {
    auto document = co_await client.get(settings_.prefix + std::string(policy_name));
    if (document) deliver_policy(document->value);
    else if (settings_.log)
      settings_.log("warn", "fleet: etcd holds no policy document yet (fleet.policy: etcd); push one with "
                            "`pullgate policy push FILE`");
  }
  if (settings_.on_tokens) co_await read_tokens(client);
  const std::int64_t caught_up_at = beat;
  auto on_batch = [&](const etcd::WatchBatch& answer) {
    FleetBatch batch;
    bool caught_up = false, tokens_changed = false;
    for (const auto& event : answer.events) {
      std::string_view k = event.kv.key;
      if (!k.starts_with(settings_.prefix)) continue;
      k.remove_prefix(settings_.prefix.size());
      batch.revision = std::max(batch.revision, event.kv.mod_revision);
      if (k == policy_name && settings_.on_policy) {
        if (event.type == etcd::Event::Type::put) deliver_policy(event.kv.value);
        else if (settings_.log)
          settings_.log("warn", "fleet: the policy document was deleted from etcd; the one in force stays");
        continue;
      }
      if (k.starts_with(tokens_dir) && k.size() > tokens_dir.size()) {
        if (!settings_.on_tokens || event.kv.mod_revision <= tokens_revision_) continue;
        std::string name(k.substr(tokens_dir.size()));
        if (event.type == etcd::Event::Type::put) tokens_[name] = event.kv.value;
        else tokens_.erase(name);
        tokens_changed = true;
        continue;
      }
      if (k.starts_with(replicas_dir)) {
        if (event.type == etcd::Event::Type::put) note_heartbeat(event.kv);
        if (event.kv.key == heartbeat_key && event.kv.mod_revision >= caught_up_at) caught_up = true;
        continue;
      }
      if (auto parsed = parse_fleet_key(k)) {
        std::optional<std::string> value;
        if (event.type == etcd::Event::Type::put) value = event.kv.value;
        batch.records.push_back({parsed->kind, std::move(parsed->subject), std::move(value)});
      }
    }
    if (batch.revision > 0) apply(std::move(batch), false);
    if (tokens_changed) deliver_tokens();
    if (caught_up && !in_step_.exchange(true) && settings_.log)
      settings_.log("info", "fleet: in step with etcd at revision " + std::to_string(meta_.fleet_revision()) + " via " +
                                client.endpoint());
  };
  // The heartbeat on its own client: a watch's connection that hangs instead of
  // breaking is noticed when a heartbeat fails, which ends the watch too.
  auto beats = etcd::Client::make(io_.get_executor(), settings_.etcd);
  auto heartbeat = [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(io_);
    for (;;) {
      timer.expires_after(settings_.heartbeat);
      co_await timer.async_wait(asio::use_awaitable);
      auto value = heartbeat_value();
      co_await beats->put(heartbeat_key, value);
      std::lock_guard lock(mutex_);
      status_.reachable = true;
    }
  };
  // Named, not temporaries: GCC 12 destroys temporaries of a co_await expression twice.
  std::function<void(const etcd::WatchBatch&)> batches = on_batch;
  auto watching = client.watch(settings_.prefix, from + 1, std::move(batches));
  auto beating = heartbeat();
  // Whichever ends first ends both, and its own error is the one thrown. (Asio's ||
  // waits for one *success*: a watch that failed compacted would wait for a heartbeat
  // that never ends, and two failures become multiple_exceptions, hiding the kind.)
  auto executor = co_await asio::this_coro::executor;
  auto [order, watch_error, beat_error] =
      co_await asio::experimental::make_parallel_group(asio::co_spawn(executor, std::move(watching), asio::deferred),
                                                       asio::co_spawn(executor, std::move(beating), asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  auto first = order[0] == 0 ? watch_error : beat_error;
  if (first) std::rethrow_exception(first);
}

asio::awaitable<void> EtcdFleet::sync() {
  auto client = etcd::Client::make(io_.get_executor(), settings_.etcd);
  asio::steady_timer timer(io_);
  const std::chrono::milliseconds first_backoff{200}, max_backoff{5000};
  auto backoff = first_backoff;
  std::string last_said;
  while (!stopping_) {
    std::string failure;
    bool compacted = false;
    try {
      if (meta_.fleet_revision() == 0) {
        co_await share_what_was_here(*client);
        co_await full_read(*client);
      }
      co_await watch_until_broken(*client);
      failure = "the watch ended";
    } catch (const etcd::Error& e) {
      failure = e.what();
      compacted = e.kind() == etcd::Error::Kind::compacted;
    } catch (const std::exception& e) {
      failure = e.what();  // LMDB refusing a batch, or a bug: retried the same way
    }
    if (compacted) {
      // Away longer than etcd keeps history: the whole store again. Until it is
      // applied this replica is not in step, so unknown digests follow on_store_down.
      in_step_ = false;
      if (settings_.log)
        settings_.log("warn", "fleet: etcd compacted the revisions this replica missed (" + failure +
                                  "); reading the whole store again");
      try {
        co_await full_read(*client);
        backoff = first_backoff;
        continue;
      } catch (const std::exception& again) {
        failure = again.what();
      }
    }
    const bool was_in_step = in_step_.exchange(false);
    if (was_in_step) backoff = first_backoff;
    note_error(failure);
    // Said when it starts and when the reason changes, not at every retry.
    if (settings_.log && (was_in_step || failure != last_said)) {
      settings_.log("warn", "fleet: etcd out of reach, serving from this replica's decisions (" + failure +
                                "); retrying with backoff up to " + std::to_string(max_backoff.count()) + " ms");
      last_said = failure;
    }
    timer.expires_after(backoff);
    co_await timer.async_wait(asio::use_awaitable);
    backoff = std::min(backoff * 2, max_backoff);
  }
}

std::unique_ptr<Fleet> Fleet::make(MetaStore& meta, FleetSettings settings) {
  return std::make_unique<EtcdFleet>(meta, std::move(settings));
}

}  // namespace pullgate::cache
