#pragma once
// Eviction: reads what is cached (the MetaStore's manifests, blob records and cached
// answers, with the pull times noted in memory and stored), plans with plan_eviction
// and removes what the plan names: the records in one transaction, then the blob
// files. Decisions are not cache and stay (manual and upstream verdicts, exceptions,
// reports); evicted content is fetched again on its next pull and the gate decides it
// again. A client streaming an evicted blob keeps its open file (unlink leaves it
// readable); a blob published again between planning and removal is kept (its record
// is checked again under the blob's lock, which publishing holds too).
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/blob_store.hpp"
#include "cache/eviction_plan.hpp"
#include "cache/garbage.hpp"
#include "cache/inventory.hpp"
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

// What is cached, read from the stores as the planner needs it (the pins left to the
// caller), with what carrying out a plan needs to know of the stores as they were read.
// Last pulls are those noted in `pulls` or stored, else when the content was stored.
struct CacheSnapshot {
  CacheContents contents;
  std::unordered_map<std::string, std::vector<Digest>> references;  // manifest -> what it references
  std::unordered_map<std::string, BlobRecord> blob_records;         // blob -> its record as read
};
CacheSnapshot read_cache(MetaStore& meta, const PullTimes& pulls);

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
  // What a run's garbage collection removed (cache/garbage.hpp): blob files without
  // a record, records without a file, stale temp files; seen entries and signal
  // findings of manifests no longer cached.
  struct Garbage {
    GarbageReport blobs;
    MetaStore::RecordsRemoved records;
  };
  struct Result {
    EvictionPlan plan;
    CacheUsage after;
    Garbage garbage;
  };
  Result carry_out(Prepared prepared);
  Garbage collect_garbage();
  // prepare, carry_out, then collect_garbage, one run at a time (evict_images waits
  // for it too).
  Result run();

  // Evicts now the images that hold each of `manifests` (a root, or a child manifest:
  // every image listing it), the unit a run uses, with reason manual. Nothing is
  // evicted when one of them is not cached (missing) or, without `force`, when one of
  // the images is pinned (pinned).
  struct ManualEviction {
    std::vector<Digest> missing;
    std::vector<Digest> pinned;  // roots of pinned images named
    std::vector<Digest> images;  // roots of the images named
    std::optional<Result> result;  // set when carried out
  };
  ManualEviction evict_images(const std::vector<Digest>& manifests, bool force);

  // What is cached now, by image (GET /v1/cache): waits for a run in progress.
  CacheInventory inventory(ImageOrder order, std::size_t limit);

  // The last run that was carried out (scheduled or manual), for GET /v1/cache.
  struct LastRun {
    std::int64_t started_at_ms = 0;
    double seconds = 0;
    bool manual = false;
    std::size_t units = 0;
    std::uint64_t bytes_freed = 0;
    std::uint64_t bytes_after = 0;
  };
  std::optional<LastRun> last_run() const;
  const EvictionLimits& limits() const { return limits_; }

  // Garbage younger than this is left (a publish or an import in progress). Set
  // before the first run.
  std::int64_t garbage_grace_ms = 3600 * 1000;
  // Called for each piece of garbage found (for logs). Set before the first run.
  std::function<void(const GarbageFinding&)> on_garbage;

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
  std::mutex run_mutex_;  // one run (scheduled or manual) at a time
  mutable std::mutex last_run_mutex_;
  std::optional<LastRun> last_run_;
  void note_run(std::int64_t started_at_ms, std::chrono::steady_clock::time_point started, const Result& result,
                bool manual);
};

}  // namespace pullgate::cache
