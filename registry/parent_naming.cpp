#include "registry/parent_naming.hpp"

#include "registry/upstream_url.hpp"

namespace pullgate::registry {

std::optional<ParentNaming::Form> parse_parent_naming(std::string_view text) {
  if (text == "ns") return ParentNaming::Form::ns;
  if (text == "path") return ParentNaming::Form::path;
  return std::nullopt;
}

std::string_view to_string(ParentNaming::Form form) { return form == ParentNaming::Form::ns ? "ns" : "path"; }

std::string query_without_ns(std::string_view query) {
  std::string kept;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    if (!param.empty() && param.substr(0, 3) != "ns=") kept += (kept.empty() ? "" : "&") + std::string(param);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
  }
  return kept;
}

std::string name_for_parent(std::string_view target, const ParentNaming& naming) {
  auto query_at = target.find('?');
  std::string_view path = target.substr(0, query_at);
  std::string_view query = query_at == std::string_view::npos ? std::string_view{} : target.substr(query_at + 1);
  if (naming.form == ParentNaming::Form::path) {
    constexpr std::string_view v2 = "/v2/";
    // Only a target that names a repository has one to lead.
    if (path.substr(0, v2.size()) != v2 || path.size() == v2.size()) return std::string(target);
    return std::string(v2) + naming.upstream + "/" + std::string(target.substr(v2.size()));
  }
  // An ns= of the caller's would name another upstream: the parent's is the one sent.
  std::string kept = query_without_ns(query);
  kept += (kept.empty() ? "" : "&") + std::string("ns=") + percent_encode(naming.upstream);
  return std::string(path) + "?" + kept;
}

std::string scope_for_parent(std::string_view scope, const ParentNaming& naming) {
  constexpr std::string_view prefix = "repository:";
  if (naming.form != ParentNaming::Form::path || scope.substr(0, prefix.size()) != prefix) return std::string(scope);
  return std::string(prefix) + naming.upstream + "/" + std::string(scope.substr(prefix.size()));
}

std::string repository_at_parent(std::string_view repository, const ParentNaming& naming) {
  if (naming.form == ParentNaming::Form::path) return naming.upstream + "/" + std::string(repository);
  return std::string(repository);
}

}  // namespace pullgate::registry
