#pragma once
// What to evict from the cache, and why: a pure function of what is cached, when each
// part was last pulled, the limits and now (the evictor reads the stores, plans, then
// deletes). The unit is an image: a root manifest (one no cached index lists) with
// the child manifests it lists and the blobs they reference. Evicting an image removes
// its manifests and the blobs no kept manifest references; a blob shared with a kept
// image stays. Cached answers (tags/list, referrers) and blobs no manifest references
// are units of their own.
//
// Rules, in order:
//  - unpulled: a unit not pulled for max_unpulled goes, whatever the size;
//  - size: above the high watermark (percent of max_bytes), the least recently pulled
//    units go until the cache is at or below the low watermark.
// A pinned image (its root, or a manifest it lists, among CacheContents::pinned) is
// never evicted, by either rule: its manifests and every blob they reference stay.
// Its bytes count toward the cache size, so a run may end above the low watermark.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/digest.hpp"

namespace pullgate::cache {

using registry::Digest;

struct EvictionLimits {
  std::optional<std::uint64_t> max_bytes;  // none: no size limit
  unsigned high_watermark = 90;            // percent of max_bytes
  unsigned low_watermark = 80;             // percent of max_bytes
  std::optional<std::int64_t> max_unpulled_ms;  // none: content is never too old
};

// What is cached, as the planner needs it.
struct CacheContents {
  struct Manifest {
    Digest digest;
    std::uint64_t bytes = 0;       // the manifest's own bytes
    std::vector<Digest> children;  // child manifests it lists (an index's)
    std::vector<Digest> blobs;     // config and layers it references
    std::int64_t last_pull_ms = 0; // its last pull, else when it was stored
  };
  struct Blob {
    Digest digest;
    std::uint64_t bytes = 0;
    std::int64_t stored_at_ms = 0;  // a blob no manifest references ages from here
  };
  struct Response {
    std::string key;
    std::uint64_t bytes = 0;
    std::int64_t last_pull_ms = 0;  // its last use, else when it was fetched
  };
  std::vector<Manifest> manifests;
  std::vector<Blob> blobs;
  std::vector<Response> responses;
  std::vector<Digest> pinned;  // manifests whose image is never evicted (resolved pins)
};

// manual: named by a person (POST /v1/cache/evict, pullgate cache evict).
enum class EvictionReason { size, unpulled, manual };
std::string_view to_string(EvictionReason reason);

struct EvictionPlan {
  enum class Kind { image, response, blob };
  // One unit evicted: an image (named by its root manifest), a cached answer, or a
  // blob no manifest references.
  struct Unit {
    Kind kind = Kind::image;
    std::string name;  // the root manifest's digest, the response's key, the blob's digest
    EvictionReason reason = EvictionReason::size;
    std::uint64_t bytes = 0;  // what evicting it freed
    std::int64_t last_pull_ms = 0;
  };
  std::vector<Unit> units;  // in the order decided
  // What to delete.
  std::vector<Digest> manifests;
  std::vector<Digest> blobs;
  std::vector<std::string> responses;
  std::uint64_t bytes_before = 0;
  std::uint64_t bytes_after = 0;
  std::uint64_t pinned_bytes = 0;  // what the pinned images hold (manifests and blobs), counted once
};

std::string_view to_string(EvictionPlan::Kind kind);  // "image", "response", "blob"

EvictionPlan plan_eviction(const CacheContents& contents, const EvictionLimits& limits, std::int64_t now_ms);

// The images of `contents` as the planner sees them (GET /v1/cache, pullgate cache
// ls), in no particular order, with what the pinned ones hold.
struct CachedImage {
  Digest root;
  std::vector<Digest> manifests;  // the root first, then the child manifests it lists
  std::size_t blobs = 0;          // the cached blobs its manifests reference
  std::uint64_t bytes = 0;        // its manifests and those blobs, each counted once
  std::uint64_t bytes_alone = 0;  // what no other image holds: what evicting it now frees
  std::int64_t last_pull_ms = 0;  // the latest of its manifests'
  bool pinned = false;
};
struct CachedImages {
  std::vector<CachedImage> images;
  std::uint64_t pinned_bytes = 0;  // as EvictionPlan::pinned_bytes
};
CachedImages cached_images(const CacheContents& contents);

// Evicting the images whose roots are `roots` now, whatever the limits and the pins
// (reason manual): the unit is the one plan_eviction uses, so what other images hold
// stays.
EvictionPlan plan_image_eviction(const CacheContents& contents, const std::vector<Digest>& roots);

}  // namespace pullgate::cache
