#include "cache/evictor.hpp"

#include <algorithm>
#include <utility>
#include <variant>

#include "cache/key_locks.hpp"
#include "registry/manifest.hpp"

namespace pullgate::cache {

Evictor::Evictor(MetaStore& meta, BlobStore& blobs, PullTimes& pulls, EvictionLimits limits, WallClock clock)
    : meta_(meta), blobs_(blobs), pulls_(pulls), limits_(limits), clock_(std::move(clock)) {}

CacheSnapshot read_cache(MetaStore& meta, const PullTimes& pulls) {
  CacheSnapshot out;
  std::unordered_map<std::string, std::int64_t> stored_pulls;
  for (auto& time : meta.list_pull_times()) stored_pulls.emplace(std::move(time.key), time.at_ms);
  // The last pull noted in memory or stored, else `fallback` (when it was stored).
  auto last_pull = [&](const std::string& key, std::int64_t fallback) {
    std::optional<std::int64_t> at = pulls.noted(key);
    if (auto it = stored_pulls.find(key); it != stored_pulls.end()) at = std::max(at.value_or(it->second), it->second);
    return at.value_or(fallback);
  };

  auto& contents = out.contents;
  meta.for_each_manifest([&](const Digest& digest, const ManifestRecord& record) {
    CacheContents::Manifest m{digest, record.bytes.size(), {}, {}, last_pull(digest.str(), record.stored_at_ms)};
    // A manifest that does not parse references nothing the planner can know of: it
    // goes on its own.
    auto parsed = registry::parse_manifest(record.bytes, record.media_type);
    if (auto* p = std::get_if<registry::ParsedManifest>(&parsed)) {
      for (const auto& blob : p->blobs) m.blobs.push_back(blob.digest);
      for (const auto& child : p->children) m.children.push_back(child.digest);
      out.references.emplace(digest.str(), references_of(*p));
    }
    contents.manifests.push_back(std::move(m));
  });
  for (auto& [digest, record] : meta.list_blobs()) {
    out.blob_records.emplace(digest.str(), record);
    contents.blobs.push_back(CacheContents::Blob{digest, record.size, record.stored_at_ms});
  }
  for (auto& response : meta.list_responses()) {
    auto at = last_pull(response.key, response.fetched_at_ms);
    contents.responses.push_back(CacheContents::Response{std::move(response.key), response.bytes, at});
  }
  return out;
}

Evictor::Prepared Evictor::prepare() {
  auto snapshot = read_cache(meta_, pulls_);
  auto& contents = snapshot.contents;
  if (pins) contents.pinned = resolve_pins(meta_, pins());
  Prepared out;
  out.plan = plan_eviction(contents, limits_, ms_since_epoch(clock_()));
  out.before = CacheUsage{out.plan.bytes_before, contents.blobs.size()};
  out.references = std::move(snapshot.references);
  out.blob_records = std::move(snapshot.blob_records);
  return out;
}

Evictor::Result Evictor::carry_out(Prepared prepared) {
  auto& plan = prepared.plan;
  Result result{std::move(plan), CacheUsage{prepared.before.bytes, prepared.before.blob_files}, {}};
  auto& done = result.plan;
  if (done.units.empty()) return result;

  // Each blob's lock, in digest order (publishing holds one lock at a time: no cycle),
  // held until its record and its file are gone.
  std::sort(done.blobs.begin(), done.blobs.end(), [](const Digest& l, const Digest& r) { return l.str() < r.str(); });
  std::vector<KeyLocks::Held> held;
  held.reserve(done.blobs.size());
  std::vector<Digest> blobs;
  for (auto& digest : done.blobs) {
    held.push_back(blobs_.lock(digest));
    auto record = meta_.get_blob(digest);
    const auto& planned = prepared.blob_records.at(digest.str());
    if (record && record->stored_at_ms != planned.stored_at_ms) {
      done.bytes_after += planned.size;  // published again since the plan was made: it stays
      continue;
    }
    blobs.push_back(std::move(digest));
  }
  done.blobs = std::move(blobs);

  EvictionBatch batch;
  for (const auto& digest : done.manifests) {
    auto it = prepared.references.find(digest.str());
    batch.manifests.push_back(
        EvictedManifest{digest, it == prepared.references.end() ? std::vector<Digest>{} : std::move(it->second)});
  }
  batch.blobs = done.blobs;
  batch.responses = done.responses;
  // Files before records: a crash in between leaves records without a file, which
  // the next run's garbage collection removes at once (a file without a record would
  // have to wait out the grace, as it could be a publish in progress).
  for (const auto& digest : done.blobs) blobs_.remove(digest);
  meta_.remove_cached(batch);
  held.clear();

  for (const auto& digest : done.manifests) pulls_.forget(digest.str());
  for (const auto& key : done.responses) pulls_.forget(key);
  result.after.blob_files -= std::min<std::uint64_t>(result.after.blob_files, done.blobs.size());
  result.after.bytes = done.bytes_after;
  if (on_evicted) on_evicted(done);
  return result;
}

Evictor::Garbage Evictor::collect_garbage() {
  GarbageOptions options;
  options.now_ms = ms_since_epoch(clock_());
  options.grace_ms = garbage_grace_ms;
  Garbage garbage;
  garbage.blobs = collect_blob_garbage(blobs_, meta_, options, on_garbage);
  garbage.records = meta_.remove_orphan_manifest_records(options.now_ms - garbage_grace_ms);
  return garbage;
}

Evictor::Result Evictor::run() {
  std::lock_guard lock(run_mutex_);
  const auto started_at_ms = ms_since_epoch(clock_());
  const auto started = std::chrono::steady_clock::now();
  auto result = carry_out(prepare());
  result.garbage = collect_garbage();
  const auto& removed = result.garbage.blobs;
  result.after.blob_files -= std::min(result.after.blob_files, removed.missing_files);
  note_run(started_at_ms, started, result, false);
  return result;
}

Evictor::ManualEviction Evictor::evict_images(const std::vector<Digest>& manifests, bool force) {
  std::lock_guard lock(run_mutex_);
  const auto started_at_ms = ms_since_epoch(clock_());
  const auto started = std::chrono::steady_clock::now();
  auto snapshot = read_cache(meta_, pulls_);
  auto& contents = snapshot.contents;
  if (pins) contents.pinned = resolve_pins(meta_, pins());
  ManualEviction out;
  auto add = [](std::vector<Digest>& list, const Digest& digest) {
    if (std::find(list.begin(), list.end(), digest) == list.end()) list.push_back(digest);
  };
  const auto cached = cached_images(contents);
  for (const auto& manifest : manifests) {
    bool found = false;
    for (const auto& image : cached.images) {
      if (std::find(image.manifests.begin(), image.manifests.end(), manifest) == image.manifests.end()) continue;
      found = true;
      add(out.images, image.root);
      if (image.pinned) add(out.pinned, image.root);
    }
    if (!found) add(out.missing, manifest);
  }
  if (!out.missing.empty() || (!force && !out.pinned.empty()) || out.images.empty()) return out;
  Prepared prepared;
  prepared.plan = plan_image_eviction(contents, out.images);
  prepared.before = CacheUsage{prepared.plan.bytes_before, contents.blobs.size()};
  prepared.references = std::move(snapshot.references);
  prepared.blob_records = std::move(snapshot.blob_records);
  out.result = carry_out(std::move(prepared));
  note_run(started_at_ms, started, *out.result, true);
  return out;
}

CacheInventory Evictor::inventory(ImageOrder order, std::size_t limit) {
  std::lock_guard lock(run_mutex_);
  return inventory_of(meta_, pulls_, pins ? pins() : std::vector<ImagePin>{}, order, limit);
}

std::optional<Evictor::LastRun> Evictor::last_run() const {
  std::lock_guard lock(last_run_mutex_);
  return last_run_;
}

void Evictor::note_run(std::int64_t started_at_ms, std::chrono::steady_clock::time_point started,
                       const Result& result, bool manual) {
  const auto& plan = result.plan;
  LastRun run{started_at_ms,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
              manual,
              plan.units.size(),
              plan.bytes_before - plan.bytes_after,
              result.after.bytes};
  std::lock_guard lock(last_run_mutex_);
  last_run_ = run;
}

}  // namespace pullgate::cache
