#include "proxy/gate/decision_writes.hpp"

#include <stdexcept>

namespace pullgate::proxy {

void DecisionWrites::put_verdict(const registry::Digest& digest, const cache::VerdictRecord& record) {
  if (fleet_) fleet_->put_verdict(digest, record);
  else meta_.put_verdict(digest, record);
}

bool DecisionWrites::remove_verdict(const registry::Digest& digest) {
  return fleet_ ? fleet_->remove_verdict(digest) : meta_.remove_verdict(digest);
}

bool DecisionWrites::add_exception(const cache::ExceptionRecord& record) {
  if (fleet_) return fleet_->add_exception(record);
  // One process writes at a time here (the admin API's thread, or a CLI); the check
  // and the write are not one transaction, as before the fleet store.
  if (meta_.get_exception(record.id)) return false;
  meta_.put_exception(record);
  return true;
}

bool DecisionWrites::remove_exception(const std::string& id) {
  return fleet_ ? fleet_->remove_exception(id) : meta_.remove_exception(id);
}

bool DecisionWrites::put_report(const registry::Digest& digest, const cache::ReportRecord& record) {
  if (!fleet_) {
    meta_.put_report(digest, record);  // also ends the digest's wait in the pending queue
    return meta_.remove_computed_verdicts(digest);
  }
  // Dropped before etcd has the report: if etcd refuses it, the digest is only
  // decided again, the same way, at its next pull.
  bool replaced = meta_.remove_computed_verdicts(digest);
  fleet_->put_report(digest, record);
  return replaced;
}

namespace {
void vex_needs_one_mirror(const cache::Fleet* fleet) {
  if (fleet)
    throw std::runtime_error(
        "imported VEX documents are not shared through the fleet store yet: import them on a mirror without "
        "fleet, or attach them to the image as signed attestations");
}
}  // namespace

bool DecisionWrites::put_vex(const registry::Digest& digest, const cache::VexRecord& record) {
  vex_needs_one_mirror(fleet_);
  meta_.put_vex(digest, record);
  return meta_.remove_computed_verdicts(digest);
}

std::size_t DecisionWrites::remove_vex(const registry::Digest& digest, std::string_view name) {
  vex_needs_one_mirror(fleet_);
  auto removed = meta_.remove_vex(digest, name);
  if (removed) meta_.remove_computed_verdicts(digest);
  return removed;
}

}  // namespace pullgate::proxy
