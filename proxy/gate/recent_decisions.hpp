#pragma once
// The gate's last refusals and warnings, in memory, for the admin status page: an
// on-call engineer sees what was refused, to whom and why without reading the
// audit log. Only decisions other than allow are kept (rare next to allows, so the
// lock taken here is off the path nearly every pull takes), in two bounded rings:
// the last `capacity` of them, and apart the last `capacity` bypass alarms, so that
// a run of ordinary denials does not push an alarm off the page.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace pullgate::proxy {

struct NotableDecision {
  std::int64_t at_ms = 0;  // when the request was decided (the audit line's time)
  std::string client;      // address:port, as the audit line has it
  std::string kind;        // manifest | blob
  std::string method;
  std::string upstream;
  std::string repository;
  std::string tag;  // empty when asked by digest
  std::string digest;
  std::string decision;  // deny | warn
  std::string mode;      // enforce | warn | audit
  bool served = false;
  bool bypass_suspected = false;
  std::string source;
  std::vector<std::string> reasons;
  std::string policy_version;
};

class RecentDecisions {
 public:
  static constexpr std::size_t default_capacity = 50;
  explicit RecentDecisions(std::size_t capacity = default_capacity) : capacity_(capacity ? capacity : 1) {}

  void add(NotableDecision decision);
  // Newest first.
  std::vector<NotableDecision> decisions() const;
  std::vector<NotableDecision> bypass_alarms() const;
  // Every decision added since start (the rings forget; this does not).
  std::uint64_t added() const;

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<NotableDecision> decisions_;
  std::deque<NotableDecision> bypass_;
  std::uint64_t added_ = 0;
};

}  // namespace pullgate::proxy
