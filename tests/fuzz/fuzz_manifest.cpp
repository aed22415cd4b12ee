// Manifests and indexes from an upstream or a bundle (registry/manifest.hpp), and the
// Accept lines a client sends. Input: one byte choosing the Content-Type it came
// with, then the document.
#include <array>

#include "registry/manifest.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::registry;
using pullgate::fuzz::require;

namespace {

constexpr std::array<std::string_view, 6> content_types = {
    "", media_type::oci_manifest, media_type::oci_index, media_type::docker_manifest, media_type::docker_list,
    "application/json; charset=utf-8"};

void check_descriptor(const Descriptor& d) {
  require(d.size >= 0, "a size that is not negative", d.digest.str());
  auto again = Digest::parse(d.digest.str());
  require(again && *again == d.digest, "a descriptor's digest re-parses to itself", d.digest.str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto content_type = content_types[data[0] % content_types.size()];
  const auto bytes = pullgate::fuzz::as_text(data + 1, size - 1);
  auto parsed = parse_manifest(bytes, content_type);
  if (auto* manifest = std::get_if<ParsedManifest>(&parsed)) {
    const bool index = manifest->media_type == media_type::oci_index || manifest->media_type == media_type::docker_list;
    require(index || manifest->media_type == media_type::oci_manifest ||
                manifest->media_type == media_type::docker_manifest,
            "one of the four media types", manifest->media_type);
    require(manifest->is_index == index, "is_index follows the media type", manifest->media_type);
    if (index) require(manifest->blobs.empty(), "an index references no blobs");
    else require(!manifest->blobs.empty() && manifest->children.empty(), "an image has a config and no children");
    for (const auto& d : manifest->blobs) check_descriptor(d);
    for (const auto& d : manifest->children) check_descriptor(d);
    if (manifest->subject) check_descriptor(*manifest->subject);
    // What was parsed is what a client asked for when it sent that media type.
    require(accepts({std::string(manifest->media_type)}, manifest->media_type), "a type accepts itself");
  } else {
    require(pullgate::fuzz::one_line(std::get<std::string>(parsed)), "a one-line refusal",
            std::get<std::string>(parsed));
  }

  // The same bytes as a client's Accept lines.
  std::vector<std::string> accept;
  for (auto line : pullgate::fuzz::fields(bytes, 4)) accept.emplace_back(line);
  for (auto type : content_types) (void)accepts(accept, type);
  require(accepts({}, media_type::oci_index), "no Accept accepts everything");
  return 0;
}
