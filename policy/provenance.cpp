#include "policy/provenance.hpp"

#include <algorithm>
#include <cctype>
#include <initializer_list>

#include <nlohmann/json.hpp>

#include "policy/text.hpp"
#include "registry/glob.hpp"

namespace pullgate::policy {

using nlohmann::json;

namespace {

std::string in_quotes(std::string_view text) { return "\"" + printable(text, 200) + "\""; }

// The member at a path of object members, or null when any step is missing.
const json* at_path(const json& value, std::initializer_list<std::string_view> path) {
  const json* at = &value;
  for (auto key : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

// The string at `path`, or "" when it is missing or not a string.
std::string text_at(const json& value, std::initializer_list<std::string_view> path) {
  const json* at = at_path(value, path);
  return at && at->is_string() ? at->get<std::string>() : std::string();
}

// The "uri" of the first entry of the array at `path`.
std::string first_uri(const json& value, std::initializer_list<std::string_view> path) {
  const json* at = at_path(value, path);
  if (!at || !at->is_array() || at->empty()) return {};
  return text_at((*at)[0], {"uri"});
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// "git+https://github.com/acme/app.git@refs/tags/v1" -> ("github.com/acme/app", "refs/tags/v1").
void split_source(const std::string& uri, std::string& repository, std::string& ref) {
  std::string_view rest = uri;
  if (rest.starts_with("git+")) rest.remove_prefix(4);
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos) rest.remove_prefix(scheme + 3);
  if (auto at = rest.rfind('@'); at != std::string_view::npos && rest.find('/') < at) {
    if (ref.empty()) ref = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.ends_with(".git")) rest.remove_suffix(4);
  repository = std::string(rest);
}

}  // namespace

bool is_provenance_predicate(std::string_view predicate_type) {
  return predicate_type == slsa_provenance_v02 || predicate_type == slsa_provenance_v1;
}

std::variant<Provenance, std::string> read_provenance(std::string_view statement_json) {
  const json statement = json::parse(statement_json.begin(), statement_json.end(), nullptr, false);
  if (statement.is_discarded() || !statement.is_object()) return std::string("the provenance statement is not JSON");
  Provenance out;
  out.predicate_type = text_at(statement, {"predicateType"});
  if (!is_provenance_predicate(out.predicate_type))
    return "the statement's predicate " + in_quotes(out.predicate_type) + " is not SLSA provenance v0.2 or v1";
  auto predicate = statement.find("predicate");
  if (predicate == statement.end() || !predicate->is_object())
    return std::string("the provenance statement has no predicate object");
  const json& p = *predicate;
  if (out.predicate_type == slsa_provenance_v02) {
    out.builder_id = text_at(p, {"builder", "id"});
    out.build_type = text_at(p, {"buildType"});
    out.source_uri = text_at(p, {"invocation", "configSource", "uri"});
    if (out.source_uri.empty()) out.source_uri = first_uri(p, {"materials"});
  } else {
    out.builder_id = text_at(p, {"runDetails", "builder", "id"});
    out.build_type = text_at(p, {"buildDefinition", "buildType"});
    const std::string workflow_repository = text_at(p, {"buildDefinition", "externalParameters", "workflow", "repository"});
    if (!workflow_repository.empty()) {
      out.source_uri = workflow_repository;
      out.source_ref = text_at(p, {"buildDefinition", "externalParameters", "workflow", "ref"});
    } else {
      out.source_uri = first_uri(p, {"buildDefinition", "resolvedDependencies"});
    }
  }
  if (out.builder_id.empty()) return std::string("the provenance names no builder id");
  if (!out.source_uri.empty()) split_source(out.source_uri, out.source_repository, out.source_ref);
  return out;
}

std::string provenance_unmet(const ProvenancePolicy& required, const Provenance& provenance) {
  if (required.builder_id && !required.builder_id->matches(provenance.builder_id))
    return "builder " + in_quotes(provenance.builder_id) + " is not " + required.builder_id->describe();
  if (required.build_type && !required.build_type->matches(provenance.build_type))
    return "build type " + in_quotes(provenance.build_type) + " is not " + required.build_type->describe();
  if (!required.source_repository.empty()) {
    if (provenance.source_repository.empty()) return "the provenance names no source repository";
    if (!registry::glob_match(lowercase(required.source_repository), lowercase(provenance.source_repository)))
      return "source " + in_quotes(provenance.source_repository) + " is not " + in_quotes(required.source_repository);
  }
  if (required.source_ref && !required.source_ref->matches(provenance.source_ref))
    return "source ref " + (provenance.source_ref.empty() ? std::string("(none)") : in_quotes(provenance.source_ref)) +
           " is not " + required.source_ref->describe();
  return {};
}

std::string describe_provenance(const Provenance& provenance) {
  std::string out = "built by " + in_quotes(provenance.builder_id);
  if (!provenance.source_repository.empty()) {
    out += " from " + provenance.source_repository;
    if (!provenance.source_ref.empty()) out += "@" + provenance.source_ref;
  }
  if (!provenance.build_type.empty()) out += " (build type " + in_quotes(provenance.build_type) + ")";
  return out;
}

}  // namespace pullgate::policy
