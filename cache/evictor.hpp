#pragma once
// Eviction: reads what is cached (the MetaStore's manifests, blob records and cached
// answers, with the pull times noted in memory and stored), plans with plan_eviction
// and removes what the plan names: the records in one transaction, then the blob
// files. Decisions are not cache and stay (manual and upstream verdicts, exceptions,
// reports); evicted content is fetched again on its next pull and the gate decides it
// again. A client streaming an evicted blob keeps its open file (unlink leaves it
// readable); a blob published again between planning and removal is kept (its record
// is checked again under the blob's lock, which publishing holds too).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/blob_store.hpp"
#include "cache/eviction_plan.hpp"
#include "cache/meta_store.hpp"
#include "cache/pins.hpp"
#include "cache/pull_times.hpp"
#include "registry/clock.hpp"

namespace pullgate::cache {

// What is cached after a run (for gauges).
struct CacheUsage {
  std::uint64_t bytes = 0;
  std::uint64_t blob_files = 0;
};

class Evictor {
 public:
  Evictor(MetaStore& meta, BlobStore& blobs, PullTimes& pulls, EvictionLimits limits,
          WallClock clock = system_wall_clock());

  // A plan with what carrying it out needs to know of the stores as they were read.
  struct Prepared {
    EvictionPlan plan;
    CacheUsage before;
    std::unordered_map<std::string, std::vector<Digest>> references;  // manifest -> what it references
    std::unordered_map<std::string, BlobRecord> blob_records;         // blob -> its record as read
  };
  Prepared prepare();
  // Removes what the plan names and returns what was removed (a blob published again
  // since prepare is dropped from the plan) with the usage after.
  struct Result {
    EvictionPlan plan;
    CacheUsage after;
  };
  Result carry_out(Prepared prepared);
  Result run() { return carry_out(prepare()); }

  // Called after a run that removed something (the hot cache forgets it). Set before
  // the first run.
  std::function<void(const EvictionPlan&)> on_evicted;
  // The pins, read at the start of each run and resolved then (a pinned tag that
  // moved keeps its new digest, no longer the old one). Set before the first run.
  std::function<std::vector<ImagePin>()> pins;

 private:
  MetaStore& meta_;
  BlobStore& blobs_;
  PullTimes& pulls_;
  const EvictionLimits limits_;
  const WallClock clock_;
};

}  // namespace pullgate::cache
