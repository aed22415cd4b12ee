#include "cache/pull_times.hpp"

#include <algorithm>

namespace pullgate::cache {

void PullTimes::note(std::string_view key, std::int64_t at_ms) {
  std::lock_guard lock(mutex_);
  auto it = times_.find(key);
  if (it == times_.end()) {
    times_.emplace(std::string(key), Entry{at_ms, true});
    return;
  }
  if (at_ms <= it->second.at_ms) return;
  it->second = Entry{at_ms, true};
}

std::vector<PullTime> PullTimes::take_noted() {
  std::vector<PullTime> out;
  std::lock_guard lock(mutex_);
  for (auto& [key, entry] : times_) {
    if (!entry.unstored) continue;
    entry.unstored = false;
    out.push_back(PullTime{key, entry.at_ms});
  }
  return out;
}

void PullTimes::forget(std::string_view key) {
  std::lock_guard lock(mutex_);
  if (auto it = times_.find(key); it != times_.end()) times_.erase(it);
}

std::optional<std::int64_t> PullTimes::noted(std::string_view key) const {
  std::lock_guard lock(mutex_);
  auto it = times_.find(key);
  if (it == times_.end()) return std::nullopt;
  return it->second.at_ms;
}

std::size_t PullTimes::flush_to(MetaStore& meta) {
  auto times = take_noted();
  try {
    meta.put_pull_times(times);
  } catch (...) {
    for (const auto& time : times) {
      std::lock_guard lock(mutex_);
      auto& entry = times_[time.key];
      entry.at_ms = std::max(entry.at_ms, time.at_ms);
      entry.unstored = true;
    }
    throw;
  }
  return times.size();
}

}  // namespace pullgate::cache
