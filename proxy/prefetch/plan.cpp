#include "proxy/prefetch/plan.hpp"

#include <cstdio>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "proxy/config.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::proxy::prefetch {

namespace {

bool is_platform_part(std::string_view part) {
  if (part.empty() || part.size() > 64) return false;
  for (char c : part)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

std::string variant_of(const registry::Platform& p) {
  return p.architecture == "arm64" && p.variant.empty() ? "v8" : p.variant;
}

}  // namespace

std::optional<registry::Platform> parse_platform(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    auto slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) return std::nullopt;
  for (auto& p : parts)
    if (!is_platform_part(p)) return std::nullopt;
  return registry::Platform{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
}

std::string platform_name(const std::optional<registry::Platform>& platform) {
  if (!platform) return "unknown";
  return platform->os + "/" + platform->architecture + (platform->variant.empty() ? "" : "/" + platform->variant);
}

bool platform_matches(const registry::Platform& wanted, const std::optional<registry::Platform>& entry) {
  if (!entry || entry->os != wanted.os || entry->architecture != wanted.architecture) return false;
  return wanted.variant.empty() || variant_of(wanted) == variant_of(*entry);
}

std::vector<registry::Descriptor> children_to_fetch(const registry::ParsedManifest& index,
                                                    const std::optional<registry::Platform>& wanted) {
  std::vector<registry::Descriptor> out;
  for (const auto& child : index.children)
    if (!wanted || platform_matches(*wanted, child.platform)) out.push_back(child);
  return out;
}

std::optional<std::string> mirror_url_of(const std::string& listen, bool tls) {
  auto hp = parse_host_port(listen);
  if (!hp) return std::nullopt;
  auto [host, port] = reachable_locally(*hp);
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return std::string(tls ? "https://" : "http://") + host + ":" + std::to_string(port);
}

std::string manifest_target(const ExplainQuery& image, std::string_view reference) {
  return "/v2/" + image.repository + "/manifests/" + std::string(reference) +
         "?ns=" + registry::percent_encode(image.upstream);
}

std::string blob_target(const ExplainQuery& image, const registry::Digest& digest) {
  return "/v2/" + image.repository + "/blobs/" + digest.str() + "?ns=" + registry::percent_encode(image.upstream);
}

std::string oci_error_message(std::string_view body) {
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_object()) return "";
  auto errors = doc.find("errors");
  if (errors == doc.end() || !errors->is_array() || errors->empty() || !(*errors)[0].is_object()) return "";
  const auto& first = (*errors)[0];
  auto text = [&first](const char* key) {
    auto it = first.find(key);
    return it != first.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string raw = text("code");
  if (auto message = text("message"); !message.empty()) raw += (raw.empty() ? "" : ": ") + message;
  std::string line;
  for (char c : raw.substr(0, 1000)) line += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
  return line;
}

std::vector<registry::Descriptor> blobs_of(const std::vector<registry::ParsedManifest>& manifests) {
  std::vector<registry::Descriptor> out;
  std::set<registry::Digest> seen;
  for (const auto& m : manifests)
    for (const auto& blob : m.blobs)
      if (seen.insert(blob.digest).second) out.push_back(blob);
  return out;
}

std::string ok_line(std::string_view image, const registry::Digest& digest, std::size_t blobs, std::uint64_t bytes) {
  return "ok " + std::string(image) + " " + digest.str() + " " + std::to_string(blobs) + " blobs, " +
         std::to_string(bytes) + " bytes";
}

std::string denied_line(std::string_view image, std::string_view digest, std::string_view reasons) {
  return "denied " + std::string(image) + " " + std::string(digest) + ": " + std::string(reasons);
}

std::string failed_line(std::string_view image, std::string_view why) {
  return "failed " + std::string(image) + ": " + std::string(why);
}

}  // namespace pullgate::proxy::prefetch
