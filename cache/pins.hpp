#pragma once
// A pinned image (docs/cache.md, "Pins"): eviction never removes it. Written
// "UPSTREAM/REPOSITORY:TAG" (what the tag points at when a run reads it is kept) or
// "UPSTREAM/REPOSITORY@DIGEST" (that manifest is kept).
#include <optional>
#include <string>
#include <string_view>

#include "registry/digest.hpp"

namespace pullgate::cache {

struct ImagePin {
  std::string upstream;
  std::string repository;
  std::string tag;                         // empty: a digest pin
  std::optional<registry::Digest> digest;  // a digest pin's
};

// nullopt when `text` is not UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@DIGEST
// (the repository and the tag valid by the distribution spec's grammar).
std::optional<ImagePin> parse_image_pin(std::string_view text);

}  // namespace pullgate::cache
