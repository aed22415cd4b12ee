// VEX documents read and normalized, and which statement decides about a finding.
#include "policy/vex.hpp"

#include <algorithm>
#include <array>
#include <map>

#include <nlohmann/json.hpp>

#include "policy/json_reading.hpp"
#include "policy/report.hpp"
#include "policy/text.hpp"
#include "registry/digest.hpp"

namespace pullgate::policy {
namespace {

using namespace detail;  // reading checked JSON values (policy/json_reading.hpp)

constexpr std::size_t max_document_bytes = std::size_t{16} << 20;
constexpr int max_nesting = 64;
constexpr std::size_t max_statements = 100'000;
// What CycloneDX refs may resolve to in all: each ref names its component's purl, so
// many refs to one long purl must not multiply it past what the document itself held.
constexpr std::size_t max_resolved_bytes = max_document_bytes;
// Stored records are our own normalized encoding: they may be larger than the
// document they came from (escapes, resolved refs), never nested deeper.
constexpr std::size_t max_record_bytes = std::size_t{256} << 20;
constexpr std::size_t max_field_length = 128;  // of document text quoted in a reason

constexpr std::string_view openvex_namespace = "https://openvex.dev/ns";
constexpr std::array<std::string_view, 5> openvex_versions = {"", "/v0.0.1", "/v0.0.2", "/v0.1.0", "/v0.2.0"};
constexpr std::string_view cyclonedx_vex_predicate = "https://cyclonedx.org/vex";
constexpr std::string_view cyclonedx_bom_predicate = "https://cyclonedx.org/bom";
constexpr std::array<std::string_view, 2> in_toto_statement_types = {"https://in-toto.io/Statement/v0.1",
                                                                      "https://in-toto.io/Statement/v1"};
constexpr std::array<std::string_view, 5> openvex_justifications = {
    "component_not_present", "vulnerable_code_not_present", "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary", "inline_mitigations_already_exist"};
constexpr std::array<VexStatus, 4> all_statuses = {VexStatus::not_affected, VexStatus::affected, VexStatus::fixed,
                                                   VexStatus::under_investigation};

std::optional<VexStatus> status_named(std::string_view text) {
  for (VexStatus status : all_statuses) {
    if (text == to_string(status)) return status;
  }
  return std::nullopt;
}

std::optional<VexStatus> cyclonedx_state(std::string_view state) {
  if (state == "not_affected" || state == "false_positive") return VexStatus::not_affected;
  if (state == "resolved" || state == "resolved_with_pedigree") return VexStatus::fixed;
  if (state == "exploitable") return VexStatus::affected;
  if (state == "in_triage") return VexStatus::under_investigation;
  return std::nullopt;
}

bool is_openvex_context(const json& root) {
  const json* context = field(root, "@context");
  return context && context->is_string() && context->get_ref<const std::string&>().starts_with(openvex_namespace);
}

// An array of strings, each one checked.
std::vector<std::string> strings(const json& value, const std::string& path) {
  as_array(value, path);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < value.size(); ++i) out.push_back(as_string(value[i], index(path, i)));
  return out;
}

void limit_statements(const json& list, const std::string& path) {
  if (list.size() > max_statements) fail(path, "more than " + std::to_string(max_statements) + " statements");
}

// ---- OpenVEX

// A product or subcomponent: a string (v0.0.x), or {@id, identifiers{purl, cpe23, ...}}.
std::vector<std::string> openvex_names(const json& value, const std::string& path) {
  if (value.is_string()) {
    std::string name = value.get<std::string>();
    if (name.empty()) fail(path, "must not be empty");
    return {std::move(name)};
  }
  as_object(value, path);
  std::vector<std::string> names;
  if (std::string id = optional_string(value, "@id", path); !id.empty()) names.push_back(std::move(id));
  if (const json* identifiers = field(value, "identifiers")) {
    const std::string identifiers_path = join(path, "identifiers");
    for (const auto& [kind, name] : as_object(*identifiers, identifiers_path).items()) {
      std::string text = as_string(name, join(identifiers_path, kind));
      if (!text.empty()) names.push_back(std::move(text));
    }
  }
  if (names.empty()) fail(path, "names nothing (no @id or identifiers)");
  return names;
}

std::vector<VexComponent> openvex_subcomponents(const json& object, const std::string& path) {
  std::vector<VexComponent> out;
  const json* list = field(object, "subcomponents");
  if (!list) return out;
  const std::string list_path = join(path, "subcomponents");
  as_array(*list, list_path);
  for (std::size_t i = 0; i < list->size(); ++i) out.push_back({openvex_names((*list)[i], index(list_path, i))});
  return out;
}

void read_openvex_vulnerability(const json& statement, const std::string& path, VexStatement& out) {
  const std::string vulnerability_path = join(path, "vulnerability");
  const json& vulnerability = required(statement, "vulnerability", path);
  if (vulnerability.is_string()) {  // v0.0.x
    out.vulnerability = vulnerability.get<std::string>();
  } else {
    as_object(vulnerability, vulnerability_path);
    out.vulnerability = optional_string(vulnerability, "name", vulnerability_path);
    if (out.vulnerability.empty()) out.vulnerability = optional_string(vulnerability, "@id", vulnerability_path);
    if (const json* aliases = field(vulnerability, "aliases")) {
      out.aliases = strings(*aliases, join(vulnerability_path, "aliases"));
    }
  }
  if (out.vulnerability.empty()) fail(vulnerability_path, "names no vulnerability (name or @id)");
}

VexStatement read_openvex_statement(const json& statement, const std::string& path, const VexDocument& document) {
  as_object(statement, path);
  VexStatement out;
  read_openvex_vulnerability(statement, path, out);
  if (const json* products = field(statement, "products")) {
    const std::string products_path = join(path, "products");
    as_array(*products, products_path);
    for (std::size_t i = 0; i < products->size(); ++i) {
      const std::string product_path = index(products_path, i);
      const json& product = (*products)[i];
      VexProduct read;
      read.names = openvex_names(product, product_path);
      if (product.is_object()) read.subcomponents = openvex_subcomponents(product, product_path);
      out.products.push_back(std::move(read));
    }
  }
  out.subcomponents = openvex_subcomponents(statement, path);  // v0.0.x

  const std::string status_text = required_string(statement, "status", path);
  const auto status = status_named(status_text);
  if (!status) {
    fail(join(path, "status"),
         shown(status_text) + " is not a VEX status (not_affected, affected, fixed or under_investigation)");
  }
  out.status = *status;
  out.justification = optional_string(statement, "justification", path);
  if (!out.justification.empty() && std::find(openvex_justifications.begin(), openvex_justifications.end(),
                                              out.justification) == openvex_justifications.end()) {
    fail(join(path, "justification"), shown(out.justification) + " is not an OpenVEX justification");
  }
  out.impact_statement = optional_string(statement, "impact_statement", path);
  out.action_statement = optional_string(statement, "action_statement", path);
  if (out.status == VexStatus::not_affected && out.justification.empty() && out.impact_statement.empty()) {
    fail(path, "not_affected needs a justification or an impact_statement");
  }
  out.timestamp = time_field(statement, "last_updated", path);
  if (!out.timestamp) out.timestamp = time_field(statement, "timestamp", path);
  if (!out.timestamp) out.timestamp = document.timestamp;
  return out;
}

void read_openvex(const json& root, const std::string& path, VexDocument& document) {
  const std::string context = as_string(required(root, "@context", path), join(path, "@context"));
  const std::string_view version = std::string_view(context).substr(openvex_namespace.size());
  if (std::find(openvex_versions.begin(), openvex_versions.end(), version) == openvex_versions.end()) {
    fail(join(path, "@context"), shown(context) + " is not an OpenVEX version this reader knows (v0.0.1 to v0.2.0)");
  }
  document.format = VexFormat::openvex;
  document.id = optional_string(root, "@id", path);
  document.author = optional_string(root, "author", path);
  document.timestamp = time_field(root, "last_updated", path);
  if (!document.timestamp) document.timestamp = time_field(root, "timestamp", path);
  const std::string statements_path = join(path, "statements");
  const json& statements = as_array(required(root, "statements", path), statements_path);
  limit_statements(statements, statements_path);
  for (std::size_t i = 0; i < statements.size(); ++i) {
    document.statements.push_back(read_openvex_statement(statements[i], index(statements_path, i), document));
  }
}

// ---- CycloneDX

// bom-ref -> purl, over metadata.component and every component, nested ones too.
class ComponentRefs {
 public:
  void add(const json& component, const std::string& path) {
    as_object(component, path);
    const std::string ref = optional_string(component, "bom-ref", path);
    const std::string purl = optional_string(component, "purl", path);
    if (!ref.empty() && !purl.empty()) purls_.emplace(ref, purl);
    if (const json* nested = field(component, "components")) add_all(*nested, join(path, "components"));
  }

  void add_all(const json& components, const std::string& path) {
    as_array(components, path);
    for (std::size_t i = 0; i < components.size(); ++i) add(components[i], index(path, i));
  }

  // The ref and the purl of the component it names (a BOM-Link,
  // "urn:cdx:<serial>/<version>#<bom-ref>", by its fragment).
  std::vector<std::string> names(const std::string& ref, const std::string& path) {
    std::vector<std::string> out{ref};
    auto found = purls_.find(ref);
    if (const auto hash = ref.rfind('#'); found == purls_.end() && ref.starts_with("urn:cdx:") && hash != std::string::npos) {
      found = purls_.find(ref.substr(hash + 1));
    }
    if (found != purls_.end() && found->second != ref) {
      resolved_bytes_ += found->second.size();
      if (resolved_bytes_ > max_resolved_bytes) {
        fail(path, "refs resolve to more than " + std::to_string(max_resolved_bytes) + " bytes of purls");
      }
      out.push_back(found->second);
    }
    return out;
  }

 private:
  std::map<std::string, std::string, std::less<>> purls_;
  std::size_t resolved_bytes_ = 0;
};

std::string first_name(const json& object, std::string_view key, const std::string& path) {
  const json* entity = field(object, key);
  if (!entity) return {};
  const std::string entity_path = join(path, key);
  if (entity->is_array()) {  // metadata.authors
    for (std::size_t i = 0; i < entity->size(); ++i) {
      const std::string item_path = index(entity_path, i);
      std::string name = optional_string(as_object((*entity)[i], item_path), "name", item_path);
      if (!name.empty()) return name;
    }
    return {};
  }
  return optional_string(as_object(*entity, entity_path), "name", entity_path);
}

// references[].id and aliases[] (strings, or objects with an id), as a vulnerability lists them.
std::vector<std::string> cyclonedx_aliases(const json& vulnerability, const std::string& path) {
  std::vector<std::string> out;
  for (std::string_view key : {"references", "aliases"}) {
    const json* list = field(vulnerability, key);
    if (!list) continue;
    const std::string list_path = join(path, key);
    as_array(*list, list_path);
    for (std::size_t i = 0; i < list->size(); ++i) {
      const json& item = (*list)[i];
      std::string alias = item.is_string() ? item.get<std::string>()
                                           : optional_string(as_object(item, index(list_path, i)), "id", index(list_path, i));
      if (!alias.empty()) out.push_back(std::move(alias));
    }
  }
  return out;
}

// nullopt for a vulnerability without an analysis state: a finding, not a VEX statement.
std::optional<VexStatement> read_cyclonedx_vulnerability(const json& vulnerability, const std::string& path,
                                                         const VexProduct* subject, ComponentRefs& refs,
                                                         const VexDocument& document) {
  as_object(vulnerability, path);
  const json* analysis = field(vulnerability, "analysis");
  if (!analysis) return std::nullopt;
  const std::string analysis_path = join(path, "analysis");
  as_object(*analysis, analysis_path);
  const std::string state = optional_string(*analysis, "state", analysis_path);
  if (state.empty()) return std::nullopt;

  VexStatement out;
  out.vulnerability = required_string(vulnerability, "id", path);
  out.aliases = cyclonedx_aliases(vulnerability, path);
  const auto status = cyclonedx_state(state);
  if (!status) {
    fail(join(analysis_path, "state"),
         shown(state) + " is not a CycloneDX analysis state (resolved, resolved_with_pedigree, exploitable, "
                        "in_triage, false_positive or not_affected)");
  }
  out.status = *status;
  out.justification = optional_string(*analysis, "justification", analysis_path);
  out.impact_statement = optional_string(*analysis, "detail", analysis_path);
  if (const json* response = field(*analysis, "response")) {
    for (const std::string& action : strings(*response, join(analysis_path, "response"))) {
      out.action_statement += (out.action_statement.empty() ? "" : ", ") + action;
    }
  }
  out.timestamp = time_field(*analysis, "lastUpdated", analysis_path);
  if (!out.timestamp) out.timestamp = time_field(vulnerability, "updated", path);
  if (!out.timestamp) out.timestamp = document.timestamp;

  // Each affected ref is a product; refs other than the BOM's own subject are also
  // parts of that subject (a package in the image the BOM describes).
  VexProduct parts_of_subject;
  if (const json* affects = field(vulnerability, "affects")) {
    const std::string affects_path = join(path, "affects");
    as_array(*affects, affects_path);
    for (std::size_t i = 0; i < affects->size(); ++i) {
      const std::string item_path = index(affects_path, i);
      const std::string ref = required_string(as_object((*affects)[i], item_path), "ref", item_path);
      VexProduct product{refs.names(ref, join(item_path, "ref")), {}};
      const bool is_subject = subject && std::find(subject->names.begin(), subject->names.end(), ref) != subject->names.end();
      if (subject && !is_subject) parts_of_subject.subcomponents.push_back({product.names});
      out.products.push_back(std::move(product));
    }
  }
  if (subject && (out.products.empty() || !parts_of_subject.subcomponents.empty())) {
    parts_of_subject.names = subject->names;
    out.products.push_back(std::move(parts_of_subject));
  }
  return out;
}

void read_cyclonedx(const json& root, const std::string& path, VexDocument& document) {
  const std::string spec = required_string(root, "specVersion", path);
  const bool known = spec.size() >= 3 && spec.starts_with("1.") &&
                     std::all_of(spec.begin() + 2, spec.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                     (spec.size() > 3 || spec[2] >= '4');
  if (!known) fail(join(path, "specVersion"), shown(spec) + " is not a CycloneDX version with VEX (1.4 or later)");
  document.format = VexFormat::cyclonedx;
  document.id = optional_string(root, "serialNumber", path);

  ComponentRefs refs;
  std::optional<VexProduct> subject;
  if (const json* metadata = field(root, "metadata")) {
    const std::string metadata_path = join(path, "metadata");
    as_object(*metadata, metadata_path);
    document.timestamp = time_field(*metadata, "timestamp", metadata_path);
    for (std::string_view key : {"authors", "supplier", "manufacturer", "manufacture"}) {
      if (document.author.empty()) document.author = first_name(*metadata, key, metadata_path);
    }
    if (const json* component = field(*metadata, "component")) {
      const std::string component_path = join(metadata_path, "component");
      refs.add(*component, component_path);
      const std::string ref = optional_string(*component, "bom-ref", component_path);
      const std::string purl = optional_string(*component, "purl", component_path);
      subject.emplace();
      if (!ref.empty()) subject->names.push_back(ref);
      if (!purl.empty() && purl != ref) subject->names.push_back(purl);
      if (subject->names.empty()) subject.reset();
    }
  }
  if (const json* components = field(root, "components")) refs.add_all(*components, join(path, "components"));

  const std::string list_path = join(path, "vulnerabilities");
  const json* vulnerabilities = field(root, "vulnerabilities");
  if (!vulnerabilities) fail(list_path, "missing: a CycloneDX BOM without vulnerabilities holds no VEX");
  as_array(*vulnerabilities, list_path);
  limit_statements(*vulnerabilities, list_path);
  for (std::size_t i = 0; i < vulnerabilities->size(); ++i) {
    auto statement = read_cyclonedx_vulnerability((*vulnerabilities)[i], index(list_path, i),
                                                  subject ? &*subject : nullptr, refs, document);
    if (statement) document.statements.push_back(std::move(*statement));
  }
}

// ---- in-toto

void read_bare(const json& root, const std::string& path, VexDocument& document) {
  if (is_openvex_context(root)) {
    read_openvex(root, path, document);
  } else if (field(root, "bomFormat")) {
    const std::string format = as_string(*field(root, "bomFormat"), join(path, "bomFormat"));
    if (format != "CycloneDX") fail(join(path, "bomFormat"), shown(format) + " is not \"CycloneDX\"");
    read_cyclonedx(root, path, document);
  } else {
    fail(path, "not an OpenVEX document (@context " + std::string(openvex_namespace) +
                   "...), a CycloneDX BOM (bomFormat) or an in-toto statement (_type) holding one");
  }
}

// cosign writes the document as the predicate; older releases wrapped a CycloneDX BOM
// as {"Data": BOM}, and a predicate may also be a string holding the JSON.
json unwrapped_predicate(const json& statement) {
  const json* predicate = &required(statement, "predicate", "");
  std::string path = "predicate";
  if (predicate->is_object() && predicate->size() == 1 && predicate->contains("Data")) {
    predicate = &predicate->at("Data");
    path = "predicate.Data";
  }
  if (predicate->is_string()) {
    std::string error;
    auto parsed = parse_bounded(predicate->get_ref<const std::string&>(), max_document_bytes, "16 MiB", max_nesting, error);
    if (!parsed) fail(path, "a string that is not a document: " + error);
    return std::move(*parsed);
  }
  as_object(*predicate, path);
  return *predicate;
}

void read_in_toto(const json& root, VexDocument& document) {
  const std::string type = as_string(required(root, "_type", ""), "_type");
  if (std::find(in_toto_statement_types.begin(), in_toto_statement_types.end(), type) == in_toto_statement_types.end()) {
    fail("_type", shown(type) + " is not an in-toto statement type (https://in-toto.io/Statement/v0.1 or v1)");
  }
  const std::string predicate_type = required_string(root, "predicateType", "");
  if (!is_vex_predicate(predicate_type)) fail("predicateType", shown(predicate_type) + " is not a VEX predicate type");
  document.in_toto = true;
  const json& subjects = as_array(required(root, "subject", ""), "subject");
  for (std::size_t i = 0; i < subjects.size(); ++i) {
    const std::string subject_path = index("subject", i);
    const json* digests = field(as_object(subjects[i], subject_path), "digest");
    if (!digests) continue;
    const std::string sha256 = optional_string(as_object(*digests, join(subject_path, "digest")), "sha256",
                                               join(subject_path, "digest"));
    if (sha256.empty()) continue;
    const std::string digest = "sha256:" + sha256;
    if (!registry::Digest::parse(digest)) fail(join(subject_path, "digest.sha256"), shown(sha256) + " is not 64 lowercase hex");
    document.subjects.push_back(digest);
  }
  const json predicate = unwrapped_predicate(root);
  const bool openvex_type = predicate_type.starts_with(openvex_namespace);
  if (openvex_type != is_openvex_context(predicate)) {
    fail("predicate", openvex_type ? "predicateType says OpenVEX, but this is not an OpenVEX document"
                                   : "predicateType says CycloneDX, but this is an OpenVEX document");
  }
  read_bare(predicate, "predicate", document);
}

// ---- matching

// "pkg:deb/debian/openssl@3.0.11?arch=amd64" -> its qualifiers and subpath cut off.
std::string_view purl_core(std::string_view purl) {
  return purl.substr(0, std::min(purl.find('?'), purl.find('#')));
}

std::string percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto digit = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (text[i] == '%' && i + 2 < text.size() && digit(text[i + 1]) >= 0 && digit(text[i + 2]) >= 0) {
      out += static_cast<char>(digit(text[i + 1]) * 16 + digit(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

bool ends_with_ignoring_case(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && equal_ignoring_case(text.substr(text.size() - suffix.size()), suffix);
}

// `hex`: the 64 hex digits of the image's sha256 manifest digest.
bool names_digest(std::string_view name, std::string_view hex) {
  if (equal_ignoring_case(name, "sha256:" + std::string(hex))) return true;
  if (name.starts_with("pkg:oci/")) {
    const std::string_view core = purl_core(name);
    return ends_with_ignoring_case(core, "@sha256%3A" + std::string(hex)) ||
           ends_with_ignoring_case(core, "@sha256:" + std::string(hex));
  }
  return name.find('@') != std::string_view::npos && ends_with_ignoring_case(name, "@sha256:" + std::string(hex));
}

bool product_names_image(const std::vector<std::string>& names, std::string_view hex) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& name) { return names_digest(name, hex); });
}

// A purl's package: "pkg:TYPE/NAMESPACE/NAME@VERSION" names NAME, NAMESPACE/NAME and
// NAMESPACE:NAME (how scanners write Go modules and Maven artifacts).
bool purl_names_package(std::string_view purl, const Finding& finding) {
  if (!purl.starts_with("pkg:")) return false;
  std::string_view core = purl_core(purl).substr(4);
  std::string version;
  if (const auto at = core.rfind('@'); at != std::string_view::npos) {
    version = percent_decoded(core.substr(at + 1));
    core = core.substr(0, at);
  }
  const auto type_end = core.find('/');
  if (type_end == std::string_view::npos) return false;
  const std::string_view path = core.substr(type_end + 1);
  const auto last = path.rfind('/');
  const std::string name = percent_decoded(last == std::string_view::npos ? path : path.substr(last + 1));
  const std::string space = last == std::string_view::npos ? std::string() : percent_decoded(path.substr(0, last));
  const bool named = equal_ignoring_case(name, finding.package) ||
                     (!space.empty() && (equal_ignoring_case(space + "/" + name, finding.package) ||
                                         equal_ignoring_case(space + ":" + name, finding.package)));
  if (!named) return false;
  return version.empty() || finding.installed_version.empty() || version == finding.installed_version;
}

bool parts_cover(const std::vector<VexComponent>& own, const std::vector<VexComponent>& shared, const Finding& finding) {
  if (own.empty() && shared.empty()) return true;
  for (const auto* parts : {&own, &shared}) {
    for (const VexComponent& part : *parts) {
      for (const std::string& name : part.names) {
        if (purl_names_package(name, finding)) return true;
      }
    }
  }
  return false;
}

std::string_view sha256_hex(std::string_view digest) {
  constexpr std::string_view prefix = "sha256:";
  if (!digest.starts_with(prefix) || digest.size() != prefix.size() + 64) return {};
  return digest.substr(prefix.size());
}

bool loosens(VexStatus status) { return status == VexStatus::not_affected || status == VexStatus::fixed; }

// ---- encoding

json components_json(const std::vector<VexComponent>& components) {
  json out = json::array();
  for (const VexComponent& component : components) out.push_back(json(component.names));
  return out;
}

std::vector<VexComponent> components_of(const json& value, const std::string& path) {
  std::vector<VexComponent> out;
  as_array(value, path);
  for (std::size_t i = 0; i < value.size(); ++i) out.push_back({strings(value[i], index(path, i))});
  return out;
}

}  // namespace

std::string_view to_string(VexStatus status) {
  switch (status) {
    case VexStatus::not_affected: return "not_affected";
    case VexStatus::affected: return "affected";
    case VexStatus::fixed: return "fixed";
    case VexStatus::under_investigation: return "under_investigation";
  }
  return "under_investigation";
}

std::string_view to_string(VexFormat format) { return format == VexFormat::cyclonedx ? "cyclonedx" : "openvex"; }

bool is_vex_predicate(std::string_view predicate_type) {
  if (predicate_type == cyclonedx_vex_predicate || predicate_type == cyclonedx_bom_predicate) return true;
  if (!predicate_type.starts_with(openvex_namespace)) return false;
  const std::string_view version = predicate_type.substr(openvex_namespace.size());
  return std::find(openvex_versions.begin(), openvex_versions.end(), version) != openvex_versions.end();
}

VexParse parse_vex(std::string_view text) {
  VexParse result;
  auto root = parse_bounded(text, max_document_bytes, "16 MiB", max_nesting, result.error);
  if (!root) return result;
  if (!root->is_object()) {
    result.error = "document: must be an object, not " + std::string(type_name(*root));
    return result;
  }
  try {
    VexDocument document;
    if (root->contains("_type")) {
      read_in_toto(*root, document);
    } else {
      read_bare(*root, "", document);
    }
    result.document = std::move(document);
  } catch (const Failure& failure) {
    result.error = failure.message;
  } catch (const json::exception& e) {
    // Reading only checked values should never get here; if it does, it is still a
    // refusal of the document, not a crash.
    result.error = one_line("document: " + std::string(e.what()));
  }
  return result;
}

bool vex_names_image(const VexStatement& statement, const VexDocument& document, std::string_view manifest_digest) {
  const std::string_view hex = sha256_hex(manifest_digest);
  if (hex.empty()) return false;
  if (statement.products.empty()) {
    return document.in_toto && std::any_of(document.subjects.begin(), document.subjects.end(), [&](const std::string& s) {
             return equal_ignoring_case(s, manifest_digest);
           });
  }
  return std::any_of(statement.products.begin(), statement.products.end(),
                     [&](const VexProduct& product) { return product_names_image(product.names, hex); });
}

bool vex_covers(const VexStatement& statement, const VexDocument& document, std::string_view manifest_digest,
                const Finding& finding) {
  const bool same_vulnerability =
      equal_ignoring_case(statement.vulnerability, finding.id) ||
      std::any_of(statement.aliases.begin(), statement.aliases.end(),
                  [&](const std::string& alias) { return equal_ignoring_case(alias, finding.id); });
  if (!same_vulnerability || !vex_names_image(statement, document, manifest_digest)) return false;
  if (statement.products.empty()) return parts_cover({}, statement.subcomponents, finding);
  const std::string_view hex = sha256_hex(manifest_digest);
  return std::any_of(statement.products.begin(), statement.products.end(), [&](const VexProduct& product) {
    return product_names_image(product.names, hex) && parts_cover(product.subcomponents, statement.subcomponents, finding);
  });
}

std::optional<VexDecision> vex_decision(std::span<const VexSource> sources, std::string_view manifest_digest,
                                        const Finding& finding) {
  std::optional<VexDecision> best;
  for (const VexSource& source : sources) {
    if (!source.document) continue;
    for (const VexStatement& statement : source.document->statements) {
      if (!vex_covers(statement, *source.document, manifest_digest, finding)) continue;
      const bool wins = !best || statement.timestamp > best->statement->timestamp ||
                        (statement.timestamp == best->statement->timestamp && loosens(best->statement->status) &&
                         !loosens(statement.status));
      if (wins) best = VexDecision{&statement, &source};
    }
  }
  return best;
}

bool sets_aside(const VexDecision& decision) { return decision.statement && loosens(decision.statement->status); }

std::string describe_vex(const Finding& finding, const VexDecision& decision) {
  const auto shown_text = [](std::string_view text) { return printable(text, max_field_length); };
  const VexStatement& statement = *decision.statement;
  const VexDocument& document = *decision.source->document;
  std::string line = shown_text(finding.id);
  if (!finding.package.empty()) line += " (" + shown_text(finding.package) + ")";
  line += " " + std::string(to_string(statement.status)) + " per VEX from ";
  line += document.author.empty() ? std::string("an unnamed author") : "\"" + shown_text(document.author) + "\"";
  std::string where = shown_text(document.id);
  if (!decision.source->origin.empty()) where += (where.empty() ? "" : ", ") + shown_text(decision.source->origin);
  if (!where.empty()) line += " (" + where + ")";
  std::string why;
  for (const std::string* part : {&statement.justification, &statement.impact_statement}) {
    if (!part->empty()) why += (why.empty() ? "" : ": ") + shown_text(*part);
  }
  if (why.empty() && !statement.action_statement.empty()) why = shown_text(statement.action_statement);
  if (!why.empty()) line += ": " + why;
  return line;
}

std::string encode_vex(const VexDocument& document) {
  json statements = json::array();
  for (const VexStatement& statement : document.statements) {
    json products = json::array();
    for (const VexProduct& product : statement.products) {
      products.push_back({{"names", json(product.names)}, {"subcomponents", components_json(product.subcomponents)}});
    }
    json entry = {{"vulnerability", statement.vulnerability},
                  {"aliases", json(statement.aliases)},
                  {"products", std::move(products)},
                  {"subcomponents", components_json(statement.subcomponents)},
                  {"status", to_string(statement.status)},
                  {"justification", statement.justification},
                  {"impact_statement", statement.impact_statement},
                  {"action_statement", statement.action_statement}};
    if (statement.timestamp) entry["timestamp"] = format_rfc3339(*statement.timestamp);
    statements.push_back(std::move(entry));
  }
  json out = {{"v", 1},
              {"format", to_string(document.format)},
              {"id", document.id},
              {"author", document.author},
              {"in_toto", document.in_toto},
              {"subjects", json(document.subjects)},
              {"statements", std::move(statements)}};
  if (document.timestamp) out["timestamp"] = format_rfc3339(*document.timestamp);
  // Replace, not throw, on bytes that are not UTF-8: the strings came from a parsed
  // document, so this only matters for documents built by hand.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<VexDocument> decode_vex(std::string_view text) {
  std::string error;
  auto root = parse_bounded(text, max_record_bytes, "256 MiB", max_nesting, error);
  if (!root || !root->is_object()) return std::nullopt;
  try {
    const json& v = required(*root, "v", "");
    if (!v.is_number_integer() || v != 1) return std::nullopt;
    VexDocument document;
    const std::string format = required_string(*root, "format", "");
    if (format != to_string(VexFormat::openvex) && format != to_string(VexFormat::cyclonedx)) return std::nullopt;
    document.format = format == to_string(VexFormat::cyclonedx) ? VexFormat::cyclonedx : VexFormat::openvex;
    document.id = optional_string(*root, "id", "");
    document.author = optional_string(*root, "author", "");
    document.timestamp = time_field(*root, "timestamp", "");
    const json& in_toto = required(*root, "in_toto", "");
    expect(in_toto.is_boolean(), in_toto, "in_toto", "a boolean");
    document.in_toto = in_toto.get<bool>();
    document.subjects = strings(required(*root, "subjects", ""), "subjects");
    const json& statements = as_array(required(*root, "statements", ""), "statements");
    if (statements.size() > max_statements) return std::nullopt;
    for (std::size_t i = 0; i < statements.size(); ++i) {
      const std::string path = index("statements", i);
      const json& entry = as_object(statements[i], path);
      VexStatement statement;
      statement.vulnerability = required_string(entry, "vulnerability", path);
      statement.aliases = strings(required(entry, "aliases", path), join(path, "aliases"));
      const json& products = as_array(required(entry, "products", path), join(path, "products"));
      for (std::size_t p = 0; p < products.size(); ++p) {
        const std::string product_path = index(join(path, "products"), p);
        const json& product = as_object(products[p], product_path);
        statement.products.push_back({strings(required(product, "names", product_path), join(product_path, "names")),
                                      components_of(required(product, "subcomponents", product_path),
                                                    join(product_path, "subcomponents"))});
      }
      statement.subcomponents = components_of(required(entry, "subcomponents", path), join(path, "subcomponents"));
      const auto status = status_named(required_string(entry, "status", path));
      if (!status) return std::nullopt;
      statement.status = *status;
      statement.justification = optional_string(entry, "justification", path);
      statement.impact_statement = optional_string(entry, "impact_statement", path);
      statement.action_statement = optional_string(entry, "action_statement", path);
      statement.timestamp = time_field(entry, "timestamp", path);
      document.statements.push_back(std::move(statement));
    }
    return document;
  } catch (const Failure&) {
    return std::nullopt;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace pullgate::policy
