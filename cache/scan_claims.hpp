#pragma once
// Claims on pending scans: a scanner claims a digest before it scans it, so that two
// scanners (taking work from one mirror or from several replicas of a fleet) do not
// scan one digest twice. A claim lasts `ttl` unless the scanner keeps it alive; a
// scanner that died loses its claims when they expire and the digest is anyone's
// again. Filing the report ends the wait; the scanner then releases its claim.
//
// Two books: this mirror's own (local_scan_claims, in memory: a restart forgets the
// claims, which then are simply taken again), and the fleet's (Fleet::scan_claims,
// cache/fleet.hpp: a key per claim in etcd, bound to an etcd lease with the claim's
// TTL, so etcd itself drops the claim of a scanner that stopped renewing it).
//
// A claim id is opaque to scanners; keeping alive or releasing a claim names the
// digest and the id, and only the holder of that digest's current claim (the id)
// can do either.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "registry/digest.hpp"

namespace pullgate::cache {

struct ScanClaim {
  std::string id;
  std::chrono::seconds ttl{0};
};

// The digest is claimed already, by `holder`.
struct ClaimedElsewhere {
  std::string holder;
};

// The digest is not (or no longer) awaiting a scan: its report was filed meanwhile.
struct NotPending {};

using ClaimAnswer = std::variant<ScanClaim, ClaimedElsewhere, NotPending>;

class ScanClaims {
 public:
  virtual ~ScanClaims() = default;
  // `holder` names the scanner (its host name and process, as it likes) for the
  // other scanners and for people looking at the queue. The caller has checked that
  // the digest is pending here; the fleet's book also checks that it still is in the
  // fleet's queue, in the same transaction that takes the claim.
  virtual ClaimAnswer claim(const registry::Digest& digest, std::chrono::seconds ttl, const std::string& holder) = 0;
  // The TTL the claim has again, or nullopt when it is gone (expired, released, or
  // another scanner's by now).
  virtual std::optional<std::chrono::seconds> keep_alive(const registry::Digest& digest, const std::string& id) = 0;
  // false: there was no such claim (expired, released, or another scanner's).
  virtual bool release(const registry::Digest& digest, const std::string& id) = 0;
  // Every digest claimed now, with its holder.
  virtual std::map<std::string, std::string> held() = 0;
  // Whether the book is across the network (the fleet's): its calls may wait on it
  // and may throw FleetUnavailable (cache/fleet.hpp).
  virtual bool remote() const = 0;
};

// A claim's TTL is between these (seconds).
constexpr std::int64_t min_claim_ttl_s = 5;
constexpr std::int64_t max_claim_ttl_s = 3600;

// A holder is 1 to 128 printable ASCII characters other than quotes and backslash.
bool valid_claim_holder(const std::string& holder);

// This mirror's book, in memory, on the steady clock.
std::unique_ptr<ScanClaims> local_scan_claims();

}  // namespace pullgate::cache
