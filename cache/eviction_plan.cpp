#include "cache/eviction_plan.hpp"

#include <algorithm>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace pullgate::cache {
namespace {

using Manifest = CacheContents::Manifest;

// Bytes at `percent` of `max`, without overflowing.
std::uint64_t percent_of(std::uint64_t max, unsigned percent) {
  return static_cast<std::uint64_t>(static_cast<unsigned __int128>(max) * percent / 100);
}

// The distinct digests of a list (a manifest may name one blob twice).
std::vector<std::string> distinct(const std::vector<Digest>& digests) {
  std::vector<std::string> out;
  out.reserve(digests.size());
  for (const auto& d : digests) out.push_back(d.str());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

struct Candidate {
  EvictionPlan::Kind kind;
  std::string name;
  std::int64_t last_pull_ms = 0;
  std::vector<const Manifest*> members;  // an image's manifests, root first
  std::uint64_t bytes = 0;               // a response's or a lone blob's
  bool evicted = false;
  bool pinned = false;                   // an image with a pinned manifest: never evicted
};

class Planner {
 public:
  Planner(const CacheContents& contents, EvictionPlan& plan) : plan_(plan) {
    for (const auto& m : contents.manifests) manifests_.emplace(m.digest.str(), &m);
    for (const auto& b : contents.blobs) blobs_.emplace(b.digest.str(), &b);
    std::unordered_set<std::string> pinned;
    for (const auto& d : contents.pinned) pinned.insert(d.str());
    std::unordered_set<std::string> pinned_manifests, pinned_blobs;  // what pinned images hold
    std::unordered_set<std::string> listed;  // manifests a cached index lists
    for (const auto& m : contents.manifests)
      for (const auto& child : m.children)
        if (child != m.digest && manifests_.contains(child.str())) listed.insert(child.str());
    for (const auto& m : contents.manifests) {
      plan_.bytes_before += m.bytes;
      for (const auto& blob : distinct(m.blobs)) ++blob_users_[blob];
      if (listed.contains(m.digest.str())) continue;
      Candidate image{EvictionPlan::Kind::image, m.digest.str()};
      collect(m, image);
      for (const auto* member : image.members) {
        ++manifest_users_[member->digest.str()];
        image.last_pull_ms = std::max(image.last_pull_ms, member->last_pull_ms);
        if (pinned.contains(member->digest.str())) image.pinned = true;
      }
      if (image.pinned)
        for (const auto* member : image.members) {
          if (pinned_manifests.insert(member->digest.str()).second) plan_.pinned_bytes += member->bytes;
          for (const auto& blob : distinct(member->blobs))
            if (auto it = blobs_.find(blob); it != blobs_.end() && pinned_blobs.insert(blob).second)
              plan_.pinned_bytes += it->second->bytes;
        }
      candidates_.push_back(std::move(image));
    }
    for (const auto& b : contents.blobs) {
      plan_.bytes_before += b.bytes;
      if (!blob_users_.contains(b.digest.str()))
        candidates_.push_back(Candidate{EvictionPlan::Kind::blob, b.digest.str(), b.stored_at_ms, {}, b.bytes});
    }
    for (const auto& r : contents.responses) {
      plan_.bytes_before += r.bytes;
      candidates_.push_back(Candidate{EvictionPlan::Kind::response, r.key, r.last_pull_ms, {}, r.bytes});
    }
    plan_.bytes_after = plan_.bytes_before;
    // Least recently pulled first; the name breaks ties, so a plan is reproducible.
    std::sort(candidates_.begin(), candidates_.end(), [](const Candidate& l, const Candidate& r) {
      return std::tie(l.last_pull_ms, l.name) < std::tie(r.last_pull_ms, r.name);
    });
  }

  std::vector<Candidate>& candidates() { return candidates_; }

  void evict(Candidate& c, EvictionReason reason) {
    c.evicted = true;
    std::uint64_t freed = c.bytes;
    switch (c.kind) {
      case EvictionPlan::Kind::response:
        plan_.responses.push_back(c.name);
        break;
      case EvictionPlan::Kind::blob:
        plan_.blobs.push_back(blobs_.at(c.name)->digest);
        break;
      case EvictionPlan::Kind::image:
        for (const auto* member : c.members) {
          if (--manifest_users_[member->digest.str()] > 0) continue;  // another kept image lists it
          plan_.manifests.push_back(member->digest);
          freed += member->bytes;
          for (const auto& blob : distinct(member->blobs)) {
            if (--blob_users_[blob] > 0) continue;  // a kept manifest references it
            if (auto it = blobs_.find(blob); it != blobs_.end()) {
              plan_.blobs.push_back(it->second->digest);
              freed += it->second->bytes;
            }
          }
        }
        break;
    }
    plan_.bytes_after -= freed;
    plan_.units.push_back(EvictionPlan::Unit{c.kind, c.name, reason, freed, c.last_pull_ms});
  }

  std::uint64_t bytes() const { return plan_.bytes_after; }

  // An image candidate as it is now; bytes_alone is what evict would free, counted
  // without evicting.
  CachedImage describe(const Candidate& image) const {
    CachedImage out{image.members.front()->digest, {}, 0, 0, 0, image.last_pull_ms, image.pinned};
    std::unordered_map<std::string, std::size_t> alone_users;  // blob -> manifests only this image holds that reference it
    std::unordered_set<std::string> counted;
    for (const auto* member : image.members) {
      out.manifests.push_back(member->digest);
      out.bytes += member->bytes;
      const bool alone = manifest_users_.at(member->digest.str()) == 1;
      if (alone) out.bytes_alone += member->bytes;
      for (const auto& blob : distinct(member->blobs)) {
        auto it = blobs_.find(blob);
        if (it == blobs_.end()) continue;  // not cached
        if (counted.insert(blob).second) {
          ++out.blobs;
          out.bytes += it->second->bytes;
        }
        if (alone) ++alone_users[blob];
      }
    }
    for (const auto& [blob, users] : alone_users)
      if (users == blob_users_.at(blob)) out.bytes_alone += blobs_.at(blob)->bytes;
    return out;
  }

 private:
  // The manifest and, depth first, the cached manifests it lists (each once).
  void collect(const Manifest& m, Candidate& image) {
    if (std::find(image.members.begin(), image.members.end(), &m) != image.members.end()) return;
    image.members.push_back(&m);
    for (const auto& child : m.children)
      if (auto it = manifests_.find(child.str()); it != manifests_.end()) collect(*it->second, image);
  }

  EvictionPlan& plan_;
  std::unordered_map<std::string, const Manifest*> manifests_;
  std::unordered_map<std::string, const CacheContents::Blob*> blobs_;
  std::unordered_map<std::string, std::size_t> manifest_users_;  // kept images that hold it
  std::unordered_map<std::string, std::size_t> blob_users_;      // kept manifests that reference it
  std::vector<Candidate> candidates_;
};

}  // namespace

std::string_view to_string(EvictionReason reason) {
  switch (reason) {
    case EvictionReason::size:
      return "size";
    case EvictionReason::unpulled:
      return "unpulled";
    case EvictionReason::manual:
      return "manual";
  }
  return "size";
}

std::string_view to_string(EvictionPlan::Kind kind) {
  switch (kind) {
    case EvictionPlan::Kind::image:
      return "image";
    case EvictionPlan::Kind::response:
      return "response";
    case EvictionPlan::Kind::blob:
      return "blob";
  }
  return "image";
}

CachedImages cached_images(const CacheContents& contents) {
  EvictionPlan plan;
  Planner planner(contents, plan);
  CachedImages out;
  out.pinned_bytes = plan.pinned_bytes;
  for (const auto& c : planner.candidates())
    if (c.kind == EvictionPlan::Kind::image) out.images.push_back(planner.describe(c));
  return out;
}

EvictionPlan plan_image_eviction(const CacheContents& contents, const std::vector<Digest>& roots) {
  EvictionPlan plan;
  Planner planner(contents, plan);
  std::unordered_set<std::string> named;
  for (const auto& root : roots) named.insert(root.str());
  for (auto& c : planner.candidates())
    if (c.kind == EvictionPlan::Kind::image && named.contains(c.name)) planner.evict(c, EvictionReason::manual);
  return plan;
}

EvictionPlan plan_eviction(const CacheContents& contents, const EvictionLimits& limits, std::int64_t now_ms) {
  EvictionPlan plan;
  Planner planner(contents, plan);
  if (limits.max_unpulled_ms) {
    for (auto& c : planner.candidates())
      if (!c.pinned && now_ms - c.last_pull_ms >= *limits.max_unpulled_ms) planner.evict(c, EvictionReason::unpulled);
  }
  if (limits.max_bytes && planner.bytes() > percent_of(*limits.max_bytes, limits.high_watermark)) {
    const auto low = percent_of(*limits.max_bytes, limits.low_watermark);
    for (auto& c : planner.candidates()) {
      if (planner.bytes() <= low) break;
      if (!c.evicted && !c.pinned) planner.evict(c, EvictionReason::size);
    }
  }
  return plan;
}

}  // namespace pullgate::cache
