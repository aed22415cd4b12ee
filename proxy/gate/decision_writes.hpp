#pragma once
// Where a person's decisions go — manual verdicts, exceptions, imported reports —
// from the CLI and the admin API alike: this mirror's LMDB, or, with the fleet store
// (cache/fleet.hpp), etcd first and then LMDB, so that a write that returned is the
// whole fleet's. With the fleet store, a write etcd does not take throws
// cache::FleetUnavailable and lands nowhere: not on one replica only.
#include <string>

#include "cache/fleet.hpp"
#include "cache/meta_store.hpp"

namespace pullgate::proxy {

class DecisionWrites {
 public:
  // fleet: null for a single mirror.
  DecisionWrites(cache::MetaStore& meta, cache::Fleet* fleet) : meta_(meta), fleet_(fleet) {}

  bool shared() const { return fleet_ != nullptr; }
  cache::MetaStore& meta() { return meta_; }

  void put_verdict(const registry::Digest& digest, const cache::VerdictRecord& record);
  bool remove_verdict(const registry::Digest& digest);          // false: none stored
  bool add_exception(const cache::ExceptionRecord& record);     // false: the id is taken
  bool remove_exception(const std::string& id);                 // false: none with that id
  // Stores the report, ends the digest's wait for a scan and drops its computed
  // verdicts (decided again with the report). True when there were some.
  bool put_report(const registry::Digest& digest, const cache::ReportRecord& record);
  // Stores an imported VEX document for the digest and drops its computed verdicts
  // (true when there were some). Not shared through the fleet store yet: with one, it
  // refuses (std::runtime_error, nothing stored) rather than let one replica decide
  // on evidence the others lack.
  bool put_vex(const registry::Digest& digest, const cache::VexRecord& record);
  // Removes the digest's VEX document `name` (empty: all of them); how many, and
  // when any, its computed verdicts go too.
  std::size_t remove_vex(const registry::Digest& digest, std::string_view name);

 private:
  cache::MetaStore& meta_;
  cache::Fleet* fleet_;
};

}  // namespace pullgate::proxy
