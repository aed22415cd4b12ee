#pragma once
// The fleet store (docs/fleet.md): what several replicas must agree on — manual
// verdicts, exceptions, vulnerability reports and the pending-scan queue — kept in
// etcd, and each replica's LMDB kept current from it by a watch. The gate never
// waits on etcd: it decides from LMDB as a single mirror does; etcd is read into
// LMDB in the background and written to by people (CLI, admin API), first, so that
// a write that returned is the fleet's.
//
// Keys under the prefix (default "/pullgate/"):
//   verdicts/<digest>     a manual verdict (cache::encode_record of a VerdictRecord)
//   exceptions/<id>       an exception
//   reports/<digest>      a vulnerability report's stored summary
//   pending/<digest>      a digest awaiting a scan
//   replicas/<id>         each replica's heartbeat: {"replica","revision","at_ms"}
//   policy                the policy document (fleet.policy: etcd), as its file would hold it
//   tokens/<name>         a client token's hash (fleet.tokens: etcd), "sha256:<hex>" as the
//                         tokens file writes it (proxy/access/tokens.hpp); the token is nowhere
//   claims/<digest>       a scanner's claim on a pending digest: {"holder","replica","at_ms"},
//                         bound to an etcd lease with the claim's TTL (cache/scan_claims.hpp)
// The values are the records as LMDB keeps them, so a replica applies them as they are.
//
// Sync: at start, a replica that has never synced (or whose revision does not read)
// reads the whole prefix at one revision and applies it as one full batch; then it
// watches from the revision after the last one it applied, applying each watch
// answer in one transaction with its revision. etcd answering "compacted" (the
// replica was away longer than etcd keeps history) means another full read; until it
// is applied nothing revoked meanwhile is served as allowed from a stale LMDB,
// because the gate treats a replica that is not in step as the store being down
// (on_store_down). In step: the watch runs and has brought this replica's own
// heartbeat back, so everything written before it has been applied.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "cache/etcd_settings.hpp"
#include "cache/meta_store.hpp"
#include "cache/scan_claims.hpp"

namespace pullgate::cache {

struct FleetSettings {
  etcd::Settings etcd;
  std::string prefix = "/pullgate/";
  std::string replica_id;
  // How often the replica writes its heartbeat (and so notices etcd going away even
  // when the watch's connection hangs rather than breaks).
  std::chrono::milliseconds heartbeat{2000};
  // Where the fleet says what happens to it ("info", "warn", "error"; one line): the
  // server's log. Called on the fleet's own thread. Unset: nothing is said.
  std::function<void(const char* level, const std::string& message)> log;
  // The policy document kept in etcd (fleet.policy: etcd): called with its text each
  // time the sync (re)connects and each time the key is written, on the fleet's own
  // thread (so possibly with a text already applied). Unset: the key is not read.
  std::function<void(const std::string& text)> on_policy;
  // The client tokens kept in etcd (fleet.tokens: etcd), all of them, name -> hash
  // text: called each time the sync (re)connects and after each watch answer that
  // changes one, on the fleet's own thread. Unset: the keys are not read.
  std::function<void(const std::map<std::string, std::string>& tokens)> on_tokens;
};

struct FleetStatus {
  bool in_step = false;       // watching, with everything up to the last heartbeat applied
  bool reachable = false;     // etcd answered the last call
  std::int64_t revision = 0;  // the etcd revision LMDB holds
  std::string endpoint;       // the member that answered last
  std::string last_error;     // why the last call failed ("" when it did not)
  std::int64_t last_error_ms = 0;
  std::uint64_t batches = 0;     // watch answers applied
  std::uint64_t full_reads = 0;  // whole-prefix reads applied (first sync, compaction, a reset store)
  std::uint64_t records = 0;     // records written or removed by them
  // The replicas whose heartbeat this one has seen, with when they wrote it.
  std::map<std::string, std::int64_t> replicas;
};

// A write the fleet store did not take; nothing was written anywhere.
class FleetUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The key's record kind and subject ("verdicts/sha256:..." -> verdict, digest), or
// nullopt for keys that are not records (heartbeats, anything unknown).
struct FleetKey {
  FleetRecord::Kind kind;
  std::string subject;
};
std::optional<FleetKey> parse_fleet_key(std::string_view key_after_prefix);
std::string fleet_key(FleetRecord::Kind kind, std::string_view subject);

class Fleet {
 public:
  // Starts the fleet's own I/O thread (writes work from here on; the sync starts with
  // start_sync). Throws std::invalid_argument for settings etcd::Client refuses.
  static std::unique_ptr<Fleet> make(MetaStore& meta, FleetSettings settings);
  virtual ~Fleet() = default;

  // Starts keeping LMDB in step with etcd (the server; the CLI only writes).
  virtual void start_sync() = 0;
  // Whether LMDB holds what the fleet decided: the sync is watching and caught up.
  virtual bool in_step() const = 0;
  virtual FleetStatus status() const = 0;

  // Writes: etcd first, then this replica's LMDB (the others get them from their
  // watch). Throw FleetUnavailable with one line when etcd does not take them.
  virtual void put_verdict(const Digest& digest, const VerdictRecord& record) = 0;
  virtual bool remove_verdict(const Digest& digest) = 0;          // false: the fleet has none
  virtual bool add_exception(const ExceptionRecord& record) = 0;  // false: the id is taken
  virtual bool remove_exception(const std::string& id) = 0;       // false: no such exception
  // Also ends the digest's wait in the pending queue.
  virtual void put_report(const Digest& digest, const ReportRecord& record) = 0;
  // The gate queued a digest for scanners: offered to the fleet's queue unless a
  // report or an entry for it is there. Does not wait; a failure is logged, and the
  // entry is offered again at the next full read.
  virtual void offer_pending(const Digest& digest, const PendingRecord& record) = 0;
  // Writes the policy document (its text, checked by the caller); returns etcd's
  // revision of the write. Every replica with on_policy set applies it.
  virtual std::int64_t put_policy(const std::string& text) = 0;
  // Client tokens (fleet.tokens: etcd), one key per name holding the token's hash
  // text. add_token: false when the name has one already (nothing written).
  // remove_token: false when it has none. tokens: all of them, name -> hash text.
  virtual bool add_token(const std::string& name, const std::string& hash) = 0;
  virtual bool remove_token(const std::string& name) = 0;
  virtual std::map<std::string, std::string> tokens() = 0;
  // Scanners' claims on pending digests, in etcd (remote(); calls throw
  // FleetUnavailable when etcd does not answer). The claim id is the etcd lease's.
  virtual ScanClaims& scan_claims() = 0;
};

}  // namespace pullgate::cache
