#include "cache/evictor.hpp"

#include <algorithm>
#include <utility>
#include <variant>

#include "cache/key_locks.hpp"
#include "registry/manifest.hpp"

namespace pullgate::cache {

Evictor::Evictor(MetaStore& meta, BlobStore& blobs, PullTimes& pulls, EvictionLimits limits, WallClock clock)
    : meta_(meta), blobs_(blobs), pulls_(pulls), limits_(limits), clock_(std::move(clock)) {}

Evictor::Prepared Evictor::prepare() {
  Prepared out;
  std::unordered_map<std::string, std::int64_t> stored_pulls;
  for (auto& time : meta_.list_pull_times()) stored_pulls.emplace(std::move(time.key), time.at_ms);
  // The last pull noted in memory or stored, else `fallback` (when it was stored).
  auto last_pull = [&](const std::string& key, std::int64_t fallback) {
    std::optional<std::int64_t> at = pulls_.noted(key);
    if (auto it = stored_pulls.find(key); it != stored_pulls.end()) at = std::max(at.value_or(it->second), it->second);
    return at.value_or(fallback);
  };

  CacheContents contents;
  meta_.for_each_manifest([&](const Digest& digest, const ManifestRecord& record) {
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
  for (auto& [digest, record] : meta_.list_blobs()) {
    out.blob_records.emplace(digest.str(), record);
    contents.blobs.push_back(CacheContents::Blob{digest, record.size, record.stored_at_ms});
  }
  for (auto& response : meta_.list_responses()) {
    auto at = last_pull(response.key, response.fetched_at_ms);
    contents.responses.push_back(CacheContents::Response{std::move(response.key), response.bytes, at});
  }
  if (pins) contents.pinned = resolve_pins(meta_, pins());
  out.plan = plan_eviction(contents, limits_, ms_since_epoch(clock_()));
  out.before = CacheUsage{out.plan.bytes_before, contents.blobs.size()};
  return out;
}

Evictor::Result Evictor::carry_out(Prepared prepared) {
  auto& plan = prepared.plan;
  Result result{std::move(plan), CacheUsage{prepared.before.bytes, prepared.before.blob_files}};
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
  meta_.remove_cached(batch);
  for (const auto& digest : done.blobs) blobs_.remove(digest);
  held.clear();

  for (const auto& digest : done.manifests) pulls_.forget(digest.str());
  for (const auto& key : done.responses) pulls_.forget(key);
  result.after.blob_files -= std::min<std::uint64_t>(result.after.blob_files, done.blobs.size());
  result.after.bytes = done.bytes_after;
  if (on_evicted) on_evicted(done);
  return result;
}

}  // namespace pullgate::cache
