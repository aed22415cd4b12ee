#include "cache/inventory.hpp"

#include <algorithm>
#include <map>
#include <tuple>
#include <unordered_map>

#include "cache/evictor.hpp"

namespace pullgate::cache {

CacheTotals totals_of(const CacheContents& contents) {
  CacheTotals out;
  for (const auto& m : contents.manifests) {
    ++out.manifests;
    out.manifest_bytes += m.bytes;
  }
  for (const auto& b : contents.blobs) {
    ++out.blob_files;
    out.blob_bytes += b.bytes;
  }
  for (const auto& r : contents.responses) {
    ++out.responses;
    out.response_bytes += r.bytes;
  }
  out.bytes = out.blob_bytes + out.manifest_bytes + out.response_bytes;
  return out;
}

std::optional<ImageOrder> parse_image_order(std::string_view text) {
  if (text == "size") return ImageOrder::size;
  if (text == "pulled") return ImageOrder::pulled;
  return std::nullopt;
}

std::string_view to_string(ImageOrder order) { return order == ImageOrder::size ? "size" : "pulled"; }

namespace {

// The names of each listed image: the tags resolving to its root, grouped by
// repository, then the repositories it was seen in without a tag.
void name_images(MetaStore& meta, std::vector<ListedImage>& listed) {
  std::unordered_map<std::string, ListedImage*> by_root;
  for (auto& entry : listed) by_root.emplace(entry.image.root.str(), &entry);
  // (upstream, repository) -> tags, per root, in key order.
  std::unordered_map<std::string, std::map<std::pair<std::string, std::string>, std::vector<std::string>>> tagged;
  for (auto& tag : meta.list_tags())
    if (by_root.contains(tag.record.digest.str()))
      tagged[tag.record.digest.str()][{std::move(tag.upstream), std::move(tag.repository)}].push_back(
          std::move(tag.tag));
  for (auto& [root, entry] : by_root) {
    auto& names = entry->names;
    auto& repositories = tagged[root];
    for (auto& [where, tags] : repositories) {
      if (names.size() == max_image_names) break;
      names.push_back(ImageName{where.first, where.second, std::move(tags)});
    }
    for (auto& [upstream, repository] : meta.seen_where(entry->image.root, max_image_names)) {
      if (names.size() == max_image_names) break;
      if (!repositories.contains({upstream, repository}))
        names.push_back(ImageName{std::move(upstream), std::move(repository), {}});
    }
  }
}

}  // namespace

CacheInventory take_inventory(MetaStore& meta, const CacheContents& contents, ImageOrder order, std::size_t limit) {
  CacheInventory out;
  out.totals = totals_of(contents);
  auto cached = cached_images(contents);
  out.pinned_bytes = cached.pinned_bytes;
  out.image_count = cached.images.size();
  auto& images = cached.images;
  auto before = [order](const CachedImage& l, const CachedImage& r) {
    if (order == ImageOrder::size)
      return std::tuple(r.bytes, l.root.str()) < std::tuple(l.bytes, r.root.str());  // largest first
    return std::tuple(l.last_pull_ms, l.root.str()) < std::tuple(r.last_pull_ms, r.root.str());
  };
  const auto shown = std::min(limit, images.size());
  std::partial_sort(images.begin(), images.begin() + static_cast<std::ptrdiff_t>(shown), images.end(), before);
  images.erase(images.begin() + static_cast<std::ptrdiff_t>(shown), images.end());
  for (auto& image : images) out.images.push_back(ListedImage{std::move(image), {}});
  name_images(meta, out.images);
  return out;
}

CacheInventory inventory_of(MetaStore& meta, const PullTimes& pulls, const std::vector<ImagePin>& pins,
                            ImageOrder order, std::size_t limit) {
  auto snapshot = read_cache(meta, pulls);
  snapshot.contents.pinned = resolve_pins(meta, pins);
  return take_inventory(meta, snapshot.contents, order, limit);
}

NamedManifest find_cached_manifest(MetaStore& meta, std::string_view text) {
  NamedManifest out;
  const std::string shown(text.substr(0, 300));
  if (auto digest = Digest::parse(text)) {
    if (meta.get_manifest(*digest)) {
      out.digest = std::move(*digest);
    } else {
      out.unknown = true;
      out.error = "no manifest " + shown + " is cached";
    }
    return out;
  }
  // Pins and images share a grammar, but a pattern names no one image.
  auto pin = parse_image_pin(text);
  if (!pin || pin->is_pattern()) {
    out.error = "not an image: " + shown + " (give UPSTREAM/REPOSITORY:TAG, UPSTREAM/REPOSITORY@DIGEST or a digest)";
    return out;
  }
  auto resolved = resolve_pins(meta, {*pin});
  if (resolved.empty() || !meta.get_manifest(resolved.front()) ||
      !meta.seen_in(resolved.front(), pin->upstream, pin->repository)) {
    out.unknown = true;
    out.error = shown + " is not cached";
    return out;
  }
  out.digest = std::move(resolved.front());
  return out;
}

}  // namespace pullgate::cache
