#pragma once
// The cache's contents as JSON, one view for GET /v1/cache and `pullgate cache ls`
// (docs/cache.md, "Observing it").
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/inventory.hpp"
#include "cache/pins.hpp"

namespace pullgate::proxy {

// The totals, as `pullgate cache du` prints them.
nlohmann::json totals_json(const cache::CacheTotals& totals);
// One image: its root digest, names, size (bytes, bytes_alone, bytes_shared), counts,
// last pull (RFC 3339 and ms) and whether it is pinned.
nlohmann::json image_json(const cache::ListedImage& image);
// One pin of `pullgate pin ls --json` and GET /v1/pins: pin, source (config|store),
// keeps (the cached manifests it resolves to now), and a stored pin's by, since, note.
nlohmann::json pin_json(const cache::ListedPin& pin);
// The limits in force; an absent limit is null.
nlohmann::json limits_json(const cache::EvictionLimits& limits);
// Digests as a JSON array of strings.
nlohmann::json digests_json(const std::vector<registry::Digest>& digests);
// A manual eviction that was carried out, as POST /v1/cache/evict answers it and
// `pullgate cache evict` prints it: the images' roots, the manifests and blobs
// removed, the bytes freed, the pinned images evicted with force, and who.
nlohmann::json eviction_json(const std::vector<registry::Digest>& roots, const cache::EvictionPlan& plan,
                             const std::vector<registry::Digest>& forced_pinned, const std::string& by);

// GET /v1/cache's query: sort=size|pulled, limit=N (1..max_cache_listing).
struct CacheQuery {
  cache::ImageOrder order = cache::ImageOrder::size;
  std::size_t limit = 100;
};
inline constexpr std::size_t max_cache_listing = 10000;
// nullopt with `error` (one line) for an unknown parameter or a bad value.
std::optional<CacheQuery> parse_cache_query(const std::vector<std::pair<std::string, std::string>>& params,
                                            std::string& error);

// POST /v1/cache/evict's body: {"images": ["UPSTREAM/REPO:TAG" | "UPSTREAM/REPO@DIGEST" | DIGEST, ...],
// "force": bool, "by": "who"}.
struct EvictRequest {
  std::vector<std::string> images;
  bool force = false;
  std::string by;
};
inline constexpr std::size_t max_evict_images = 100;
std::optional<EvictRequest> parse_evict_request(const std::string& body, std::string& error);

}  // namespace pullgate::proxy
