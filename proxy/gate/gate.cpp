#include "proxy/gate/gate.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "proxy/gate/explain.hpp"
#include "proxy/telemetry/json_line.hpp"
#include "proxy/telemetry/log.hpp"

namespace pullgate::proxy {

using policy::Decision;
using policy::Source;

namespace {

// "10.0.0.5:41234" -> "10.0.0.5"; "[::1]:5" style is not produced by the server.
std::string host_of(std::string_view client) { return std::string(client.substr(0, client.rfind(':'))); }

constexpr auto bypass_window = std::chrono::minutes(10);
constexpr std::size_t max_recent_denials = 4096;

}  // namespace

policy::Policy default_policy() {
  auto parsed = policy::parse_policy(R"({"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}})");
  return std::move(*parsed.policy);
}

Gate::Exceptions Gate::runtime_exceptions() {
  auto generation = meta_.generation();
  std::lock_guard lock(exceptions_mutex_);
  if (generation != exceptions_generation_) {
    exceptions_ = std::make_shared<const std::vector<policy::Exception>>(to_policy_exceptions(meta_.list_exceptions()));
    exceptions_generation_ = generation;
  }
  return exceptions_;
}

DecisionContext Gate::context(const policy::Policy& policy, const Exceptions& extra, policy::TimePoint now) {
  return DecisionContext{meta_, policy, *extra, now, true,
                         [this] {
                           ++evaluations_;
                           metrics_.gate_evaluations.inc();
                         },
                         [this](const registry::Digest& digest) { return evaluating_.lock(digest.str()); },
                         store_down_, queued_};
}

GateDecision Gate::decide(const policy::Policy& policy, const std::string& upstream, const std::string& repository,
                          const std::optional<std::string>& tag, const registry::Digest& digest) {
  auto extra = runtime_exceptions();
  return decide_manifest(context(policy, extra, clock_()),
                         policy::Subject{upstream, repository, tag, digest});
}

namespace {

std::atomic<std::uint64_t> next_gate_id{1};

// A digest's last eight characters as a number: hex of a cryptographic hash, so
// already as good a hash as any (nothing to compute per lookup).
std::uint64_t digest_key(const registry::Digest& d) {
  const auto& s = d.str();
  std::uint64_t key = 0;
  std::memcpy(&key, s.data() + s.size() - sizeof key, sizeof key);
  return key;
}

constexpr std::size_t max_memo_entries = 20'000;
// An entry counts for a second but stays until its request comes again: a thread's
// table is swept of the entries past their time once a second (when it holds more than
// memo_idle_entries), and within a second whenever it has doubled since the last sweep
// (from memo_sweep_floor), so memory follows the last second's requests, not every
// digest ever decided. Sweeping by count alone let a table of one-off decisions (a new
// image's manifest and blobs, pulled once) grow to the floor before its first sweep:
// minutes of growth in the soak, then flat.
constexpr std::size_t memo_sweep_floor = 1024;
constexpr std::size_t memo_idle_entries = 64;

}  // namespace

Gate::Gate(cache::MetaStore& meta, PolicyHolder& policy, AuditLog& audit, PullgateMetrics& metrics,
           bool serve_unaudited, Clock clock)
    : meta_(meta),
      policy_(policy),
      audit_(audit),
      metrics_(metrics),
      serve_unaudited_(serve_unaudited),
      clock_(std::move(clock)),
      id_(next_gate_id++) {}

struct Gate::MemoTable {
  std::uint64_t gate_id = 0;
  // By digest_key; the few entries for one digest (tags, methods, kinds) side by side.
  std::unordered_map<std::uint64_t, std::vector<Memo>> buckets;
  std::size_t size = 0;
  std::size_t sweep_at = memo_sweep_floor;
  std::chrono::system_clock::time_point swept{};
};

Gate::MemoTable& Gate::memo_table() {
  thread_local MemoTable table;
  if (table.gate_id != id_) {  // another gate's entries (tests make several): its gauge is its own
    table.buckets.clear();
    table.size = 0;
    table.sweep_at = memo_sweep_floor;
    table.swept = {};
    table.gate_id = id_;
  }
  return table;
}

bool Gate::Memo::answers(const GateRequest& r) const {
  return digest == r.digest.str() && repository == r.repository && kind == r.kind && method == r.method &&
         upstream == r.upstream && tag.has_value() == r.tag.has_value() && (!tag || *tag == *r.tag);
}

Gate::Memo* Gate::memo_find(MemoTable& table, const GateRequest& request, std::uint64_t generation,
                            const policy::Policy* policy, std::chrono::system_clock::time_point now) {
  auto bucket = table.buckets.find(digest_key(request.digest));
  if (bucket == table.buckets.end()) return nullptr;
  auto& entries = bucket->second;
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (!it->answers(request)) continue;
    if (it->generation == generation && it->policy.get() == policy && now >= it->made && now < it->until) return &*it;
    entries.erase(it);
    --table.size;
    metrics_.gate_memo_entries.add(-1);
    if (entries.empty()) table.buckets.erase(bucket);
    return nullptr;
  }
  return nullptr;
}

Gate::Memo Gate::prepare(SharedDecision decision, const GateRequest& request) {
  Memo m;
  JsonLine middle;
  middle.field("kind", to_string(request.kind)).field("method", request.method).field("upstream", request.upstream);
  middle.field("repository", request.repository);
  if (request.tag) middle.field("tag", *request.tag);
  middle.field("digest", request.digest.str()).raw(decision->audit_fields);
  auto text = middle.finish();  // "{...}\n": keep what is between the braces
  m.audit_middle = text.substr(1, text.size() - 3);
  m.decisions = &metrics_.gate_decisions.with(
      {to_string(request.kind), policy::to_string(decision->decision), policy::to_string(decision->mode), decision->source});
  if (!decision->serve) m.denials = &metrics_.gate_denials.with({to_string(request.kind), request.upstream});
  m.decision = std::move(decision);
  return m;
}

Gate::Memo& Gate::memo_put(MemoTable& table, SharedDecision decision, const GateRequest& request,
                           std::uint64_t generation, std::shared_ptr<const policy::Policy> policy,
                           std::chrono::system_clock::time_point now) {
  const bool second_past = table.size > memo_idle_entries && (now >= table.swept + std::chrono::seconds(1) ||
                                                               now < table.swept);
  if (table.size >= table.sweep_at || second_past) {
    const auto before = table.size;
    table.swept = now;
    for (auto bucket = table.buckets.begin(); bucket != table.buckets.end();) {
      table.size -= std::erase_if(bucket->second, [&](const Memo& e) { return now >= e.until || now < e.made; });
      bucket = bucket->second.empty() ? table.buckets.erase(bucket) : std::next(bucket);
    }
    // More than half the bound still within its second: a working set this table does
    // not keep (a miss only costs one evaluation). Clearing it keeps the next sweep a
    // doubling away and the table within max_memo_entries.
    if (table.size > max_memo_entries / 2) {
      table.buckets.clear();
      table.size = 0;
    }
    metrics_.gate_memo_entries.add(static_cast<std::int64_t>(table.size) - static_cast<std::int64_t>(before));
    table.sweep_at = std::max(memo_sweep_floor, 2 * table.size);
  }
  Memo m = prepare(std::move(decision), request);
  m.kind = request.kind;
  m.method = request.method;
  m.upstream = request.upstream;
  m.repository = request.repository;
  m.digest = request.digest.str();
  if (request.tag) m.tag = std::string(*request.tag);
  m.generation = generation;
  m.policy = std::move(policy);
  m.made = now;
  m.until = now + std::chrono::seconds(1);
  if (m.decision->valid_until && *m.decision->valid_until < m.until) m.until = *m.decision->valid_until;
  auto& entries = table.buckets[digest_key(request.digest)];
  for (auto& e : entries)
    if (e.answers(request)) return e = std::move(m);
  ++table.size;
  metrics_.gate_memo_entries.add(1);
  return entries.emplace_back(std::move(m));
}

SharedDecision Gate::finish(GateDecision decision) {
  JsonLine fields;
  fields.field("decision", policy::to_string(decision.decision))
      .field("served", decision.serve)
      .field("mode", policy::to_string(decision.mode))
      .field("source", decision.source)
      .field("reasons", decision.reasons)
      .field("policy_version", decision.policy_version);
  if (!decision.exception_id.empty()) fields.field("exception", decision.exception_id);
  if (decision.bypass_suspected) fields.field("bypass_suspected", true);
  auto text = fields.finish();  // "{...}\n": keep what is between the braces
  decision.audit_fields = text.substr(1, text.size() - 3);
  if (decision.decision != Decision::allow && decision.serve) {
    // The reasons, joined, in a quoted-string (RFC 9111 section 5.5) with nothing to
    // escape (quotes and backslashes become ') and no control character (a space).
    std::string quoted;
    for (auto& r : decision.reasons) {
      if (!quoted.empty()) quoted += "; ";
      for (char c : r) {
        auto u = static_cast<unsigned char>(c);
        quoted += (c == '"' || c == '\\') ? '\'' : (u < 0x20 || u == 0x7f) ? ' ' : c;
      }
    }
    decision.warning = "299 pullgate \"" + quoted + "\"";
  }
  return std::make_shared<const GateDecision>(std::move(decision));
}

bool Gate::remembers(const GateRequest& request) {
  return memo_find(memo_table(), request, meta_.generation(), policy_.current(), clock_()) !=
         nullptr;
}

SharedDecision Gate::check_manifest(const GateRequest& request) {
  auto started = clock_();
  // Read before deciding: a write made while deciding (the verdict stored) leaves
  // the entry stale rather than hiding a concurrent change.
  auto generation = meta_.generation();
  auto& table = memo_table();
  if (auto* hit = memo_find(table, request, generation, policy_.current(), started)) {
    if (!hit->decision->serve) remember_denial(request);
    return record(request, *hit, started);
  }
  // The policy the decision is made under is the one the memo entry holds.
  auto policy = policy_.get();
  auto decision = finish(decide(*policy, std::string(request.upstream), std::string(request.repository),
                                request.tag ? std::optional<std::string>(*request.tag) : std::nullopt, request.digest));
  if (!decision->serve) remember_denial(request);
  if (decision->hold_for.count() > 0) {
    // A hold is not remembered: the next look may find the report.
    return record(request, prepare(decision, request), started);
  }
  return record(request, memo_put(table, decision, request, generation, std::move(policy), started), started);
}

SharedDecision Gate::check_blob(const GateRequest& request) {
  auto started = clock_();
  auto generation = meta_.generation();
  auto& table = memo_table();
  if (auto* hit = memo_find(table, request, generation, policy_.current(), started))
    return record(request, *hit, started);
  auto policy = policy_.get();
  auto decision = finish(decide_blob(request, policy));
  // Only blobs that are served are remembered: a refusal is rare, and whether it
  // looks like a bypass depends on who asks and when.
  if (allows(*decision))
    return record(request, memo_put(table, decision, request, generation, std::move(policy), started), started);
  return record(request, prepare(decision, request), started);
}

SharedDecision Gate::pass_scanner(const GateRequest& request) {
  auto started = clock_();
  GateDecision d;
  d.source = "scanner";
  d.reasons = {"scanner pull on the admin listener (scanner token): served past the gate"};
  d.policy_version = policy_.get()->version;  // the audit names the policy in force, as for every decision
  return record(request, prepare(finish(std::move(d)), request), started);
}

GateDecision Gate::decide_blob(const GateRequest& request, const std::shared_ptr<const policy::Policy>& policy) {
  auto parents = meta_.referenced_by_in(request.digest, request.upstream, request.repository, blob_parent_limit);
  auto extra = runtime_exceptions();
  auto decision = proxy::decide_blob(context(*policy, extra, clock_()), request.upstream,
                                     request.repository, parents, request.digest);
  // Refused although manifests reference it: if this client was refused one of them
  // moments ago and now asks through ?ns=, it took that manifest from the upstream.
  if (!parents.empty() && decision.decision == Decision::deny && request.via_ns &&
      denied_lately(parents, host_of(request.client))) {
    decision.bypass_suspected = true;
    ++bypass_suspected_;
    metrics_.gate_bypass_suspected.with({request.upstream}).inc();
    decision.reasons.push_back("bypass suspected: this client was refused the manifest moments ago and now asks for "
                               "its blobs; it has probably taken the manifest from the upstream directly (close the "
                               "node's route to the upstream, see docs/clients.md)");
  }
  return decision;
}

void Gate::remember_denial(const GateRequest& request) {
  std::lock_guard lock(recent_mutex_);
  if (recent_denials_.size() >= max_recent_denials) {
    auto cutoff = std::chrono::steady_clock::now() - bypass_window;
    std::erase_if(recent_denials_, [&](const auto& e) { return e.second.at < cutoff; });
    if (recent_denials_.size() >= max_recent_denials) recent_denials_.clear();
  }
  recent_denials_[request.digest.str()] = RecentDenial{host_of(request.client), std::chrono::steady_clock::now()};
}

bool Gate::denied_lately(const std::vector<registry::Digest>& manifests, const std::string& client_host) {
  std::lock_guard lock(recent_mutex_);
  auto cutoff = std::chrono::steady_clock::now() - bypass_window;
  for (auto& m : manifests) {
    auto it = recent_denials_.find(m.str());
    if (it != recent_denials_.end() && it->second.at >= cutoff && it->second.client_host == client_host) return true;
  }
  return false;
}

void Gate::note_notable(const GateRequest& request, const GateDecision& decision,
                        std::chrono::system_clock::time_point started) {
  NotableDecision d;
  d.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(started.time_since_epoch()).count();
  d.client = request.client;
  d.kind = to_string(request.kind);
  d.method = request.method;
  d.upstream = request.upstream;
  d.repository = request.repository;
  if (request.tag) d.tag = *request.tag;
  d.digest = request.digest.str();
  d.decision = policy::to_string(decision.decision);
  d.mode = policy::to_string(decision.mode);
  d.served = decision.serve;
  d.bypass_suspected = decision.bypass_suspected;
  d.source = decision.source;
  d.reasons = decision.reasons;
  d.policy_version = decision.policy_version;
  recent_.add(std::move(d));
}

void Gate::set_replica(std::string_view id) {
  replica_field_ = ",\"replica\":";
  JsonLine::append_string(replica_field_, id);
}

SharedDecision Gate::record(const GateRequest& request, const Memo& memo,
                            std::chrono::system_clock::time_point started) {
  // The line is assembled straight into the audit queue: time, client and request
  // id are the request's own, the rest was rendered when the decision was made.
  const bool audited = audit_.write_with([&](std::string& line) {
    line.append("{\"time\":\"");
    append_utc_timestamp(line, started);
    line.push_back('"');
    line.append(replica_field_);
    line.append(",\"client\":");
    JsonLine::append_string(line, request.client);
    if (!request.identity.empty()) {
      line.append(",\"identity\":");
      JsonLine::append_string(line, request.identity);
    }
    line.push_back(',');
    line.append(memo.audit_middle);
    line.append(",\"request_id\":");
    JsonLine::append_string(line, request.request_id);
    line.append("}\n");
  });
  if (!audited) {
    // The queue is full: the disk is behind by the queue's size.
    if (!serve_unaudited_) {
      metrics_.audit_refused.inc();
      static const auto refused = [] {
        auto d = std::make_shared<GateDecision>();
        d->serve = false;
        d->audit_unavailable = true;
        return SharedDecision(std::move(d));
      }();
      return refused;
    }
    metrics_.audit_lines_dropped.inc();
  }
  memo.decisions->inc();
  if (memo.denials) memo.denials->inc();
  // Refusals and warnings are rare: copying one for the status page costs nothing
  // on the path allowed pulls take, which is this one comparison.
  if (memo.decision->decision != Decision::allow) note_notable(request, *memo.decision, started);
  // Wall clock for both ends (the line's time is the start): one clock read per
  // decision fewer. A step of the clock during the decision counts as zero.
  auto took = clock_() - started;
  metrics_.gate_decision_seconds.observe(took.count() > 0 ? std::chrono::duration<double>(took).count() : 0.0);
  return memo.decision;
}

bool Gate::audit_access_refusal(const AccessRefusal& refusal) {
  const auto started = clock_();
  JsonLine line;
  line.field("client", refusal.client).field("identity", refusal.identity).field("kind", refusal.kind);
  line.field("method", refusal.method).field("upstream", refusal.upstream).field("repository", refusal.repository);
  if (!refusal.reference.empty()) line.field("reference", refusal.reference);
  line.field("decision", "deny").field("served", false).field("source", "access");
  line.field("status", static_cast<std::uint64_t>(refusal.status));
  line.field("reasons", std::vector<std::string>{std::string(refusal.reason)});
  line.field("policy_version", policy_.get()->version).field("request_id", refusal.request_id);
  const auto text = line.finish();  // "{...}\n"
  const bool audited = audit_.write_with([&](std::string& out) {
    out.append("{\"time\":\"");
    append_utc_timestamp(out, started);
    out.push_back('"');
    out.append(replica_field_);
    out.push_back(',');
    out.append(std::string_view(text).substr(1));
  });
  if (!audited) metrics_.audit_lines_dropped.inc();
  metrics_.gate_decisions.with({refusal.kind, "deny", "enforce", "access"}).inc();
  metrics_.gate_denials.with({refusal.kind, refusal.upstream}).inc();
  return audited;
}

}  // namespace pullgate::proxy
