#include "proxy/server/waiting_sessions.hpp"

namespace pullgate::proxy {

std::string_view to_string(Wait wait) { return wait == Wait::header ? "header" : "idle"; }

WaitingSessions::Ticket WaitingSessions::add(Wait wait, Close close) {
  std::lock_guard lock(mutex_);
  const Ticket ticket = next_++;
  entries_.emplace_hint(entries_.end(), ticket, Entry{wait, std::move(close)});
  return ticket;
}

void WaitingSessions::remove(Ticket ticket) {
  std::lock_guard lock(mutex_);
  entries_.erase(ticket);
}

WaitingSessions::Shed WaitingSessions::shed_oldest(std::size_t count) {
  Shed shed;
  std::lock_guard lock(mutex_);
  while (count-- > 0 && !entries_.empty()) {
    auto oldest = entries_.begin();
    (oldest->second.wait == Wait::header ? shed.header : shed.idle) += 1;
    oldest->second.close(oldest->first);
    entries_.erase(oldest);
  }
  return shed;
}

void WaitingSessions::close_all() {
  std::lock_guard lock(mutex_);
  for (auto& [ticket, entry] : entries_) entry.close(ticket);
  entries_.clear();
}

std::size_t WaitingSessions::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace pullgate::proxy
