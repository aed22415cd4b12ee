#pragma once
// What `pullgate prefetch` asks the mirror for, as values: the platform filter, the
// mirror's address, the request targets that name an image as a client names it,
// which of an index's children to fetch, and how a result and the progress read.
// No I/O here (the unit tests call these directly); proxy/prefetch/prefetch.cpp
// makes the requests.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/gate/explain.hpp"
#include "registry/digest.hpp"
#include "registry/manifest.hpp"

namespace pullgate::proxy::prefetch {

// "OS/ARCH" or "OS/ARCH/VARIANT" ("linux/arm64", "linux/arm/v7"); nullopt otherwise.
std::optional<registry::Platform> parse_platform(std::string_view text);

// "linux/arm/v7", "linux/amd64"; "unknown" for a descriptor without a platform.
std::string platform_name(const std::optional<registry::Platform>& platform);

// Whether an index entry's platform is the one asked for: os and architecture
// equal; the variant too when one was asked for (arm64's unnamed variant is v8, as
// containerd normalizes it). An entry without a platform matches nothing.
bool platform_matches(const registry::Platform& wanted, const std::optional<registry::Platform>& entry);

// The children of an index to fetch: all of them without `wanted`, else those that
// match it (empty when none does).
std::vector<registry::Descriptor> children_to_fetch(const registry::ParsedManifest& index,
                                                    const std::optional<registry::Platform>& wanted);

// The mirror's URL from its listen address: "0.0.0.0:5000" -> "http://127.0.0.1:5000"
// (a wildcard address is reached on loopback), "[::]:5000" -> "http://[::1]:5000";
// https when the mirror serves TLS. nullopt for an address that does not parse.
std::optional<std::string> mirror_url_of(const std::string& listen, bool tls);

// Request targets as a containerd client sends them to a mirror: the repository as
// the mirror names it upstream and the upstream in ?ns=, so that any configured
// upstream is reached, the default one or not.
std::string manifest_target(const ExplainQuery& image, std::string_view reference);
std::string blob_target(const ExplainQuery& image, const registry::Digest& digest);

// The first error of an OCI error body, "CODE: message" on one printable line of at
// most 1000 characters; empty when the body is not one.
std::string oci_error_message(std::string_view body);

// The config and layers of `manifests`, each digest once, in order.
std::vector<registry::Descriptor> blobs_of(const std::vector<registry::ParsedManifest>& manifests);

// The result lines: "ok IMAGE DIGEST N blobs, M bytes", "denied IMAGE DIGEST:
// REASONS", "failed IMAGE: WHY".
std::string ok_line(std::string_view image, const registry::Digest& digest, std::size_t blobs, std::uint64_t bytes);
std::string denied_line(std::string_view image, std::string_view digest, std::string_view reasons);
std::string failed_line(std::string_view image, std::string_view why);

}  // namespace pullgate::proxy::prefetch
