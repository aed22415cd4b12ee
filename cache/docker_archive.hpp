#pragma once
// docker-archive (what `docker save` and `skopeo copy ... docker-archive:` write) as
// pure functions for bundle import (docs/bundles.md): manifest.json's shape, the
// config's diff_ids, RepoTags as repository and tag, and the OCI image manifest an
// image becomes. A docker-archive holds uncompressed layers only, so the manifest
// names them as application/vnd.oci.image.layer.v1.tar: the layer's digest is its
// diff_id and nothing is recompressed.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/digest.hpp"

namespace pullgate::cache::docker_archive {

using registry::Digest;

inline constexpr const char* manifest_path = "manifest.json";
inline constexpr const char* layer_media_type = "application/vnd.oci.image.layer.v1.tar";

// One entry of manifest.json: archive paths (cleaned: relative, no "." or ".."
// components) and the names it was saved under.
struct Image {
  std::string config;
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;
};

// manifest.json, checked: a non-empty list of {Config, RepoTags, Layers} whose paths
// stay inside the archive. Throws BundleError with one line saying what is wrong.
std::vector<Image> parse_manifest(std::string_view text);

// The config's rootfs.diff_ids (rootfs.type "layers"). Throws BundleError.
std::vector<Digest> diff_ids(std::string_view config_text, const std::string& what);

struct Name {
  std::string repository, tag;
};
// [HOST/]REPOSITORY:TAG split, the host dropped (a first component with '.' or ':',
// or localhost), nothing validated; nullopt when there is no ":TAG".
std::optional<Name> split_name(std::string_view name);
// A RepoTags entry ([HOST/]REPOSITORY:TAG) as the mirror files it: the host dropped,
// and for a Docker Hub upstream a one-component name under library/ (as the mirror
// asks Docker Hub for it). Throws BundleError for what is not REPOSITORY:TAG.
Name parse_repo_tag(std::string_view repo_tag, bool docker_hub);

struct Blob {
  Digest digest;
  std::uint64_t size = 0;
};
// The OCI image manifest of a config and its (uncompressed) layers, serialized
// deterministically: the same image always gets the same digest.
std::string oci_manifest(const Blob& config, const std::vector<Blob>& layers);

}  // namespace pullgate::cache::docker_archive
