#pragma once
// What a request was about and how the cache answered it: typed wherever they travel,
// spelled once here for logs, metrics and the audit line.
#include <cstdint>
#include <string_view>

namespace pullgate::proxy {

// What the gate decides about.
enum class ArtifactKind : std::uint8_t { manifest, blob };

// What the cache was asked for: a manifest by digest, a tag, a blob, or a small
// upstream answer kept for offline use (tags/list, referrers).
enum class Lookup : std::uint8_t { manifest, tag, blob, response };

// How the cache answered: not asked, from the cache, from the upstream, or from the
// cache because the upstream could not answer (a tag past its TTL).
enum class CacheResult : std::uint8_t { none, hit, miss, stale };

constexpr std::string_view to_string(ArtifactKind kind) {
  return kind == ArtifactKind::manifest ? "manifest" : "blob";
}

constexpr std::string_view to_string(Lookup lookup) {
  switch (lookup) {
    case Lookup::manifest: return "manifest";
    case Lookup::tag: return "tag";
    case Lookup::blob: return "blob";
    case Lookup::response: return "response";
  }
  return "response";
}

constexpr std::string_view to_string(CacheResult result) {
  switch (result) {
    case CacheResult::none: return "none";
    case CacheResult::hit: return "hit";
    case CacheResult::miss: return "miss";
    case CacheResult::stale: return "stale";
  }
  return "none";
}

}  // namespace pullgate::proxy
