#pragma once
// What the cache holds, for people: the totals `pullgate cache du` prints, and the
// images (eviction's unit, see eviction_plan.hpp) with their names, sizes, last pulls
// and pins, for GET /v1/cache and `pullgate cache ls`. Read from the stores the way
// an eviction run reads them (read_cache), so the listing shows what a run would see.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/eviction_plan.hpp"
#include "cache/meta_store.hpp"
#include "cache/pins.hpp"
#include "cache/pull_times.hpp"

namespace pullgate::cache {

// Blob files, manifests and cached answers (tags/list, referrers), with their bytes;
// `bytes` is what cache.max_size is compared with.
struct CacheTotals {
  std::uint64_t bytes = 0;
  std::uint64_t blob_files = 0;
  std::uint64_t blob_bytes = 0;
  std::uint64_t manifests = 0;
  std::uint64_t manifest_bytes = 0;
  std::uint64_t responses = 0;
  std::uint64_t response_bytes = 0;
};
CacheTotals totals_of(const CacheContents& contents);

// size: the largest image first; pulled: the least recently pulled first (the order
// eviction by size takes). Ties in root digest order.
enum class ImageOrder { size, pulled };
std::optional<ImageOrder> parse_image_order(std::string_view text);  // "size", "pulled"
std::string_view to_string(ImageOrder order);

// Where an image is known: an upstream and repository, with the tags there that
// resolve to its root (none: seen there, pulled by digest or listed by an index).
struct ImageName {
  std::string upstream;
  std::string repository;
  std::vector<std::string> tags;
};
struct ListedImage {
  CachedImage image;
  std::vector<ImageName> names;  // at most max_image_names
};
inline constexpr std::size_t max_image_names = 32;

struct CacheInventory {
  CacheTotals totals;
  std::uint64_t pinned_bytes = 0;
  std::size_t image_count = 0;     // every image cached
  std::vector<ListedImage> images;  // the first `limit` in the order asked
};

// The inventory of `contents` (read_cache's, with the resolved pins), names looked up
// in `meta` for the listed images only.
CacheInventory take_inventory(MetaStore& meta, const CacheContents& contents, ImageOrder order, std::size_t limit);

// read_cache, the pins resolved, then take_inventory: what a process without the
// server's in-memory pull times (the CLI) lists; Evictor::inventory for the server.
CacheInventory inventory_of(MetaStore& meta, const PullTimes& pulls, const std::vector<ImagePin>& pins,
                            ImageOrder order, std::size_t limit);

// The cached manifest `text` names: "UPSTREAM/REPOSITORY:TAG" (the tag's cached
// digest), "UPSTREAM/REPOSITORY@DIGEST" (a manifest seen in that repository) or a
// bare digest. `error` says why not in one line; `unknown` tells a well-formed name of
// nothing cached from a malformed one.
struct NamedManifest {
  std::optional<Digest> digest;
  bool unknown = false;
  std::string error;
};
NamedManifest find_cached_manifest(MetaStore& meta, std::string_view text);

}  // namespace pullgate::cache
