#include "cache/hot_cache.hpp"

#include <algorithm>

namespace pullgate::cache {

namespace {
// What a tag entry costs beyond its key, roughly.
constexpr std::size_t tag_entry_bytes = 160;

std::size_t manifest_cost(const std::string& key, const ManifestRecord& record) {
  return record.bytes.size() + key.size() + 64;
}
std::size_t tag_cost(const std::string& key) { return key.size() + tag_entry_bytes; }
// A seen-set entry: its key and the hash node around it, roughly.
std::size_t seen_cost(const std::string& key) { return key.size() + 64; }
}

std::string HotCache::tag_key(std::string_view upstream, std::string_view repository, std::string_view tag) {
  // The first two parts carry their lengths: no byte they contain can move the
  // boundary between parts, so two different triples never make one key.
  auto append_sized = [](std::string& key, std::string_view part) {
    const auto size = static_cast<std::uint32_t>(part.size());
    key.append(reinterpret_cast<const char*>(&size), sizeof size);
    key.append(part);
  };
  std::string key;
  key.reserve(upstream.size() + repository.size() + tag.size() + 8);
  append_sized(key, upstream);
  append_sized(key, repository);
  key.append(tag);
  return key;
}

std::shared_ptr<const ManifestRecord> HotCache::manifest(const Digest& digest) const {
  std::lock_guard lock(mutex_);
  auto it = manifests_.find(digest.str());
  return it == manifests_.end() ? nullptr : it->second;
}

void HotCache::remember_manifest(const Digest& digest, std::shared_ptr<const ManifestRecord> record) {
  auto cost = manifest_cost(digest.str(), *record);
  if (cost > budget_ / 8) return;  // one record never crowds out the rest
  std::lock_guard lock(mutex_);
  make_room_locked(cost);
  auto [it, inserted] = manifests_.try_emplace(digest.str(), std::move(record));
  if (inserted) bytes_ += cost;
}

std::optional<TagRecord> HotCache::tag(std::string_view upstream, std::string_view repository,
                                       std::string_view tag) const {
  auto key = tag_key(upstream, repository, tag);
  std::lock_guard lock(mutex_);
  auto it = tags_.find(key);
  if (it == tags_.end()) return std::nullopt;
  return it->second;
}

void HotCache::remember_tag(std::string_view upstream, std::string_view repository, std::string_view tag,
                            const TagRecord& record) {
  auto key = tag_key(upstream, repository, tag);
  auto cost = tag_cost(key);
  std::lock_guard lock(mutex_);
  auto it = tags_.find(key);
  if (it != tags_.end()) {
    it->second = record;
    return;
  }
  make_room_locked(cost);
  tags_.emplace(std::move(key), record);
  bytes_ += cost;
}

bool HotCache::seen(const Digest& digest, std::string_view upstream, std::string_view repository) const {
  auto key = tag_key(digest.str(), upstream, repository);
  std::lock_guard lock(mutex_);
  return seen_.contains(key);
}

void HotCache::remember_seen(const Digest& digest, std::string_view upstream, std::string_view repository) {
  auto key = tag_key(digest.str(), upstream, repository);
  const auto cost = seen_cost(key);
  std::lock_guard lock(mutex_);
  // At most a quarter of the budget; when full it starts again (each entry is one
  // LMDB read away).
  if (seen_bytes_ + cost > budget_ / 4) {
    seen_.clear();
    seen_bytes_ = 0;
  }
  if (seen_.insert(std::move(key)).second) seen_bytes_ += cost;
}

void HotCache::forget_manifests(std::span<const Digest> digests) {
  if (digests.empty()) return;
  std::unordered_set<std::string_view> gone;
  for (const auto& digest : digests) gone.insert(digest.str());
  std::lock_guard lock(mutex_);
  std::erase_if(manifests_, [&](const auto& e) {
    if (!gone.contains(e.first)) return false;
    bytes_ -= std::min(bytes_, manifest_cost(e.first, *e.second));
    return true;
  });
  std::erase_if(tags_, [&](const auto& e) {
    if (!gone.contains(e.second.digest.str())) return false;
    bytes_ -= std::min(bytes_, tag_cost(e.first));
    return true;
  });
  seen_.clear();
  seen_bytes_ = 0;
}

std::size_t HotCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_ + seen_bytes_;
}

void HotCache::make_room_locked(std::size_t incoming) {
  if (bytes_ + incoming <= budget_) return;
  // Drop about a quarter of each map; which entries go matters little, since every
  // one of them is still in LMDB.
  auto drop = [this](auto& map, auto cost_of) {
    std::size_t n = map.size() / 4 + 1;
    for (auto it = map.begin(); it != map.end() && n > 0; --n) {
      bytes_ -= std::min(bytes_, cost_of(*it));
      it = map.erase(it);
    }
  };
  drop(manifests_, [](const auto& e) { return manifest_cost(e.first, *e.second); });
  drop(tags_, [](const auto& e) { return tag_cost(e.first); });
}

}  // namespace pullgate::cache
