// docker-archive's manifest.json and config, checked; the OCI manifest an image becomes.
#include "cache/docker_archive.hpp"

#include <nlohmann/json.hpp>

#include "cache/bundle.hpp"
#include "cache/tar.hpp"
#include "registry/manifest.hpp"
#include "registry/names.hpp"
#include "registry/text.hpp"

namespace pullgate::cache::docker_archive {
namespace {

using json = nlohmann::json;

constexpr std::string_view config_media_type = "application/vnd.oci.image.config.v1+json";

std::string archive_path(const json& value, const std::string& what) {
  if (!value.is_string()) throw BundleError(std::string(manifest_path) + ": " + what + " is not a path");
  const auto& text = value.get_ref<const std::string&>();
  auto clean = tar::clean_name(text);
  if (!clean) throw BundleError(std::string(manifest_path) + ": " + what + " \"" + registry::printable(text, 200) + "\" leaves the archive");
  return *clean;
}

json descriptor(std::string_view media_type, const Blob& blob) {
  return json{{"mediaType", media_type}, {"digest", blob.digest.str()}, {"size", blob.size}};
}

}  // namespace

std::vector<Image> parse_manifest(std::string_view text) {
  const std::string where = manifest_path;
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array() || j.empty())
    throw BundleError(where + " is not a non-empty JSON list of images");
  std::vector<Image> images;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const auto& entry = j[i];
    const std::string what = "image " + std::to_string(i + 1);
    if (!entry.is_object() || !entry.contains("Config") || !entry.contains("Layers") || !entry["Layers"].is_array())
      throw BundleError(where + ": " + what + " lacks Config or a Layers list");
    Image image;
    image.config = archive_path(entry["Config"], what + "'s Config");
    for (const auto& layer : entry["Layers"]) image.layers.push_back(archive_path(layer, what + "'s layer"));
    if (entry.contains("RepoTags") && !entry["RepoTags"].is_null()) {
      if (!entry["RepoTags"].is_array()) throw BundleError(where + ": " + what + "'s RepoTags is not a list");
      for (const auto& name : entry["RepoTags"]) {
        if (!name.is_string()) throw BundleError(where + ": " + what + " has a RepoTags entry that is not a string");
        image.repo_tags.push_back(name.get<std::string>());
      }
    }
    images.push_back(std::move(image));
  }
  return images;
}

std::vector<Digest> diff_ids(std::string_view config_text, const std::string& what) {
  auto j = json::parse(config_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw BundleError(what + " is not a JSON object");
  // json::value() throws when the key holds another type: the type is compared as JSON.
  if (!j.contains("rootfs") || !j["rootfs"].is_object() || !j["rootfs"].contains("type") ||
      j["rootfs"]["type"] != "layers" || !j["rootfs"].contains("diff_ids") || !j["rootfs"]["diff_ids"].is_array())
    throw BundleError(what + " has no rootfs of type layers with diff_ids");
  std::vector<Digest> out;
  for (const auto& id : j["rootfs"]["diff_ids"]) {
    auto digest = id.is_string() ? Digest::parse(id.get<std::string>()) : std::nullopt;
    if (!digest) throw BundleError(what + " has a diff_id that is not a digest");
    out.push_back(*digest);
  }
  return out;
}

std::optional<Name> split_name(std::string_view name) {
  auto slash = name.find('/');
  if (slash != std::string_view::npos) {
    auto first = name.substr(0, slash);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost") name.remove_prefix(slash + 1);
  }
  auto colon = name.rfind(':');
  if (colon == std::string_view::npos || name.find('/', colon) != std::string_view::npos) return std::nullopt;
  return Name{std::string(name.substr(0, colon)), std::string(name.substr(colon + 1))};
}

Name parse_repo_tag(std::string_view repo_tag, bool docker_hub) {
  const std::string what = std::string(manifest_path) + ": RepoTags \"" + registry::printable(repo_tag, 200) + "\"";
  auto name = split_name(repo_tag);
  if (!name) throw BundleError(what + " is not REPOSITORY:TAG");
  auto repository = registry::Repository::parse(name->repository);
  if (!repository) throw BundleError(what + " does not name a repository");
  if (!registry::Tag::parse(name->tag)) throw BundleError(what + " does not name a tag");
  if (docker_hub && repository->components() == 1) name->repository = "library/" + name->repository;
  return *name;
}

std::string oci_manifest(const Blob& config, const std::vector<Blob>& layers) {
  json list = json::array();
  for (const auto& layer : layers) list.push_back(descriptor(layer_media_type, layer));
  // nlohmann's object keeps its keys sorted: the same input gives the same bytes.
  return json{{"schemaVersion", 2},
              {"mediaType", registry::media_type::oci_manifest},
              {"config", descriptor(config_media_type, config)},
              {"layers", list}}
      .dump();
}

}  // namespace pullgate::cache::docker_archive
