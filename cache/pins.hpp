#pragma once
// A pinned image (docs/cache.md, "Pins"): eviction never removes it. Written
// "UPSTREAM/REPOSITORY:TAG" (what the tag points at when a run reads it is kept) or
// "UPSTREAM/REPOSITORY@DIGEST" (that manifest is kept). The repository and the tag
// may be globs (registry/glob.hpp: '*' within one path segment, '**' across them,
// '?' one character): "docker.io/library/**:stable" keeps what every cached tag
// matching it points at now. The upstream is a name, never a pattern.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/meta_store.hpp"
#include "registry/digest.hpp"

namespace pullgate::cache {

struct ImagePin {
  std::string upstream;
  std::string repository;                  // a name or a glob
  std::string tag;                         // a tag or a glob; empty: a digest pin
  std::optional<registry::Digest> digest;  // a digest pin's

  // A tag pin whose repository or tag is a glob (resolved against the tag records).
  bool is_pattern() const;
};

// nullopt when `text` is not UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@DIGEST
// (the repository and the tag valid by the distribution spec's grammar, or globs of
// their characters); then `problem`, when given, says why in one short phrase.
std::optional<ImagePin> parse_image_pin(std::string_view text, std::string* problem = nullptr);

// The pin's text as stored and compared: UPSTREAM/REPOSITORY:TAG or
// UPSTREAM/REPOSITORY@DIGEST (the digest as Digest writes it).
std::string format_image_pin(const ImagePin& pin);

// The pins in force: `config_pins` (cache.pin's text), then those stored by
// `pullgate pin add` (a pin that does not parse is skipped: the config's were checked
// when it was read, and a stored one cannot be added).
std::vector<ImagePin> pins_in_force(MetaStore& meta, const std::vector<std::string>& config_pins);

// One pin of `pullgate pin ls` (and GET /v1/pins): where it comes from, who stored it,
// and the cached manifests it resolves to now (a tag not cached keeps nothing).
struct ListedPin {
  std::string pin;                  // format_image_pin's
  bool from_config = false;         // else stored (`record`)
  std::optional<PinRecord> record;  // a stored pin's
  std::vector<registry::Digest> keeps;
};
// The config's pins (`config_pins`, cache.pin's text; those that do not parse
// skipped), then the stored ones in their order.
std::vector<ListedPin> list_pins_in_force(MetaStore& meta, const std::vector<std::string>& config_pins);

// The manifests `pins` keep now: a tag's current digest (a tag not cached keeps
// nothing), every cached tag a pattern matches (the tag records are read once, and
// only when a pattern needs them), a digest as given.
std::vector<registry::Digest> resolve_pins(MetaStore& meta, const std::vector<ImagePin>& pins);

}  // namespace pullgate::cache
