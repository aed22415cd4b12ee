// A docker-archive's own JSON (cache/docker_archive.hpp): manifest.json, the config's
// diff_ids and RepoTags, which bundle import reads before any of it is checked
// against the archive. Input: one byte choosing the reader, then the text.
#include "cache/bundle.hpp"
#include "cache/docker_archive.hpp"
#include "cache/tar.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::cache;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto text = pullgate::fuzz::as_text(data + 1, size - 1);
  try {
    switch (data[0] % 3) {
      case 0:
        for (const auto& image : docker_archive::parse_manifest(text)) {
          // Every path it names stays inside the archive, already in its clean form.
          require(tar::clean_name(image.config) == image.config, "a clean config path", image.config);
          for (const auto& layer : image.layers) require(tar::clean_name(layer) == layer, "a clean layer path", layer);
        }
        break;
      case 1:
        for (const auto& digest : docker_archive::diff_ids(text, "config"))
          require(pullgate::registry::Digest::parse(digest.str()) == digest, "diff_ids re-parse", digest.str());
        break;
      default: {
        const auto name = docker_archive::parse_repo_tag(text, data[0] & 4);
        require(!name.repository.empty() && !name.tag.empty(), "a repository and a tag", text);
        require(text.ends_with(":" + name.tag), "the tag is the name's end", text);
      }
    }
  } catch (const BundleError& e) {
    require(one_line(e.what()), "a one-line refusal", e.what());
  }
  return 0;
}
