#pragma once
// When cached content was last pulled, for eviction by last pull. A warm request must
// not cost a synced LMDB write, so a pull is noted here, in memory (a hash-map update
// under a mutex; no allocation once a key is known), and what was noted is written to
// the MetaStore in one transaction every few seconds and at shutdown (flush_to). After
// a restart the stored times keep the order roughly right: at most one flush period
// of pulls is lost.
//
// Keys: a manifest's digest (served by tag or by digest), a cached response's key
// (tags/list, referrers).
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/meta_store.hpp"

namespace pullgate::cache {

class PullTimes {
 public:
  // `key` was served at `at_ms`; a time never moves back.
  void note(std::string_view key, std::int64_t at_ms);
  // The times noted since the last take, to be stored.
  std::vector<PullTime> take_noted();
  // Evicted content is forgotten (a later pull notes it again).
  void forget(std::string_view key);
  // The time noted for `key` since this process started.
  std::optional<std::int64_t> noted(std::string_view key) const;

  // Stores what was noted since the last flush in one transaction; what fails to be
  // stored is noted again (and the error thrown), so the next flush tries again.
  // Returns how many times were stored.
  std::size_t flush_to(MetaStore& meta);

 private:
  struct Entry {
    std::int64_t at_ms = 0;
    bool unstored = false;
  };
  // Looked up by string_view: a warm pull of a known key allocates nothing.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept { return std::hash<std::string_view>{}(key); }
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> times_;
};

}  // namespace pullgate::cache
