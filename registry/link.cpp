#include "registry/link.hpp"

#include <vector>

#include "registry/parent_naming.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::registry {
namespace {

// Splits at commas outside <...>.
std::vector<std::string_view> link_values(std::string_view link) {
  std::vector<std::string_view> out;
  bool in_target = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < link.size(); ++i) {
    if (link[i] == '<') in_target = true;
    else if (link[i] == '>') in_target = false;
    else if (link[i] == ',' && !in_target) {
      out.push_back(link.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(link.substr(start));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<std::string> rewrite(std::string_view value, std::string_view upstream_repository,
                                   std::string_view client_repository, std::optional<std::string_view> ns) {
  value = trim(value);
  if (value.empty() || value.front() != '<') return std::nullopt;
  auto close = value.find('>');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view target = value.substr(1, close - 1);
  std::string_view params = value.substr(close + 1);
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '<' || c == '"') return std::nullopt;
  for (char c : params)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
  // An absolute URL: keep the path and query only.
  if (auto scheme = target.find("://"); scheme != std::string_view::npos && target.find('/') > scheme) {
    auto path = target.find('/', scheme + 3);
    if (path == std::string_view::npos) return std::nullopt;
    target = target.substr(path);
  }
  auto query_at = target.find('?');
  std::string_view path = target.substr(0, query_at);
  std::string_view query = query_at == std::string_view::npos ? std::string_view{} : target.substr(query_at + 1);
  const std::string prefix = "/v2/" + std::string(upstream_repository) + "/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view endpoint = path.substr(prefix.size());
  if (endpoint != "tags/list" && endpoint.substr(0, 10) != "referrers/") return std::nullopt;
  std::string out = "</v2/" + std::string(client_repository) + "/" + std::string(endpoint);
  // An ns= in the upstream's link is how a parent mirror was told the upstream (see
  // parent_naming.hpp): it names the parent's upstream, not this mirror's; the
  // client's own ns is added below.
  std::string new_query = query_without_ns(query);
  if (ns) new_query += (new_query.empty() ? "" : "&") + std::string("ns=") + percent_encode(*ns);
  if (!new_query.empty()) out += "?" + new_query;
  out += ">";
  out += params;
  return out;
}

}  // namespace

std::optional<std::string> mirror_link(std::string_view link, std::string_view upstream_repository,
                                       std::string_view client_repository, std::optional<std::string_view> ns) {
  std::string out;
  for (auto value : link_values(link)) {
    if (auto rewritten = rewrite(value, upstream_repository, client_repository, ns))
      out += (out.empty() ? "" : ", ") + *rewritten;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace pullgate::registry
