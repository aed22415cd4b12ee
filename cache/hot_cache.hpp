#pragma once
// A small in-memory front for the hottest LMDB records: manifests by digest (they
// never change) and tag records (replaced, never edited). Warm manifest requests are
// answered from here without decoding a record. Bounded by bytes (cache.memory_mb);
// when full, about a quarter of the entries are dropped (they are still in LMDB).
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "cache/meta_store.hpp"

namespace pullgate::cache {

class HotCache {
 public:
  explicit HotCache(std::size_t budget_bytes) : budget_(budget_bytes) {}

  std::shared_ptr<const ManifestRecord> manifest(const Digest& digest) const;
  void remember_manifest(const Digest& digest, std::shared_ptr<const ManifestRecord> record);

  std::optional<TagRecord> tag(std::string_view upstream, std::string_view repository, std::string_view tag) const;
  void remember_tag(std::string_view upstream, std::string_view repository, std::string_view tag,
                    const TagRecord& record);

  // Where manifests were seen (MetaStore::seen_in), as far as this process knows: the
  // warm path asks on every manifest request. Bounded by a quarter of the budget
  // (forgetting costs one LMDB read).
  bool seen(const Digest& digest, std::string_view upstream, std::string_view repository) const;
  void remember_seen(const Digest& digest, std::string_view upstream, std::string_view repository);

  // Evicted manifests (cache/evictor.hpp) are forgotten with the tags naming them, so
  // the next pull fetches them again; what is known of where manifests were seen is
  // forgotten too (it is learnt again from LMDB).
  void forget_manifests(std::span<const Digest> digests);

  // What the entries cost, roughly (keys, values and their nodes): manifests and tags
  // together stay within the budget, the seen set within a quarter of it.
  std::size_t bytes() const;
  std::size_t budget() const { return budget_; }

 private:
  static std::string tag_key(std::string_view upstream, std::string_view repository, std::string_view tag);
  void make_room_locked(std::size_t incoming);

  const std::size_t budget_;
  mutable std::mutex mutex_;
  std::size_t bytes_ = 0;       // manifests and tags
  std::size_t seen_bytes_ = 0;
  std::unordered_map<std::string, std::shared_ptr<const ManifestRecord>> manifests_;
  std::unordered_map<std::string, TagRecord> tags_;
  std::unordered_set<std::string> seen_;  // "<digest>\0<upstream>\0<repository>"
};

}  // namespace pullgate::cache
