#pragma once
// Manifests and indexes: media types, parsing of what they reference, Accept matching.
// Manifest bytes are never re-serialized; parsing only reads them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "registry/digest.hpp"

namespace pullgate::registry {

namespace media_type {
inline constexpr std::string_view oci_manifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view oci_index = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
// The Accept value the mirror sends upstream: all four, so the cache holds the
// upstream's canonical manifest whatever the client asked.
inline constexpr std::string_view accept_all =
    "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
}  // namespace media_type

inline constexpr std::size_t max_manifest_bytes = 4 * 1024 * 1024;  // Distribution's limit

struct Platform {
  std::string os, architecture, variant;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  std::int64_t size = 0;
  std::optional<Platform> platform;  // index entries only
  std::string artifact_type;
};

struct ParsedManifest {
  std::string media_type;          // from the document's mediaType, else from content type
  bool is_index = false;
  std::vector<Descriptor> blobs;     // config first, then layers (image manifests)
  std::vector<Descriptor> children;  // manifests (indexes)
  std::optional<Descriptor> subject;
  std::string artifact_type;
};

// bytes: the manifest; content_type: the Content-Type it came with (may be empty).
// Accepts the four media types above (and a document without mediaType when the
// content type names one of them). Refuses: invalid JSON, more than 4 MiB, wrong
// field types, invalid digests, schemaVersion other than 2, unknown media types.
// The error string is one line saying what is wrong.
std::variant<ParsedManifest, std::string> parse_manifest(std::string_view bytes,
                                                         std::string_view content_type);

// accept_values: every Accept header line the client sent (each may be comma-joined,
// with parameters such as ;q=0.5). True when media_type, "*/*", "application/*" is listed
// with q > 0, or when no values were sent at all.
bool accepts(const std::vector<std::string>& accept_values, std::string_view media_type);

}  // namespace pullgate::registry
