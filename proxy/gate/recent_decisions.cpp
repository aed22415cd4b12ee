#include "proxy/gate/recent_decisions.hpp"

namespace pullgate::proxy {

namespace {

void push_bounded(std::deque<NotableDecision>& ring, NotableDecision d, std::size_t capacity) {
  if (ring.size() >= capacity) ring.pop_front();
  ring.push_back(std::move(d));
}

std::vector<NotableDecision> newest_first(const std::deque<NotableDecision>& ring) {
  return std::vector<NotableDecision>(ring.rbegin(), ring.rend());
}

}  // namespace

void RecentDecisions::add(NotableDecision decision) {
  std::lock_guard lock(mutex_);
  ++added_;
  if (decision.bypass_suspected) push_bounded(bypass_, decision, capacity_);
  push_bounded(decisions_, std::move(decision), capacity_);
}

std::vector<NotableDecision> RecentDecisions::decisions() const {
  std::lock_guard lock(mutex_);
  return newest_first(decisions_);
}

std::vector<NotableDecision> RecentDecisions::bypass_alarms() const {
  std::lock_guard lock(mutex_);
  return newest_first(bypass_);
}

std::uint64_t RecentDecisions::added() const {
  std::lock_guard lock(mutex_);
  return added_;
}

}  // namespace pullgate::proxy
