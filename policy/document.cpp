// parse_policy: the policy document (JSON with comments) to a Policy, or errors
// that each name the JSON path they are about.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <initializer_list>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_set>

#include "policy/access.hpp"
#include "policy/keyless.hpp"
#include "policy/patterns.hpp"
#include "policy/policy.hpp"
#include "policy/report.hpp"
#include "policy/rfc3339.hpp"
#include "policy/signature.hpp"
#include "policy/trusted_root.hpp"
#include "registry/text.hpp"

namespace pullgate::policy {
namespace {

using json = nlohmann::json;

constexpr std::size_t max_document_bytes = std::size_t{1} << 20;
constexpr int max_nesting = 64;

std::string version_of(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), hash.data(), &length, EVP_sha256(), nullptr) != 1) return {};
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[hash[i] >> 4];
    out += hex[hash[i] & 0xf];
  }
  return out;
}

// Counts brackets outside strings and comments, before the parser sees the text, so a
// hostile document cannot make anything recurse deeply.
bool nested_too_deep(std::string_view text) {
  enum class State { code, string, line_comment, block_comment } state = State::code;
  int depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    switch (state) {
      case State::code:
        if (c == '"') {
          state = State::string;
        } else if (c == '/' && next == '/') {
          state = State::line_comment;
          ++i;
        } else if (c == '/' && next == '*') {
          state = State::block_comment;
          ++i;
        } else if (c == '[' || c == '{') {
          if (++depth > max_nesting) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
          --depth;
        }
        break;
      case State::string:
        if (c == '\\') {
          ++i;  // the escaped character cannot end the string
        } else if (c == '"') {
          state = State::code;
        }
        break;
      case State::line_comment:
        // As nlohmann's lexer: a line comment also ends at a carriage return or NUL.
        if (c == '\n' || c == '\r' || c == '\0') state = State::code;
        break;
      case State::block_comment:
        if (c == '*' && next == '/') {
          state = State::code;
          ++i;
        }
        break;
    }
  }
  return false;
}

// nlohmann keeps the last of duplicate keys silently; in a security policy a second
// "action" quietly replacing the first is a trap, so duplicates are errors.
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        frames_.push_back({true, {}, 0, {}});
        break;
      case json::parse_event_t::array_start:
        frames_.push_back({false, {}, 0, {}});
        break;
      case json::parse_event_t::key:
        if (!frames_.empty() && parsed.is_string()) {
          Frame& top = frames_.back();
          top.key = parsed.get<std::string>();
          if (!top.keys.insert(top.key).second) {
            duplicates_.push_back(path() + ": duplicate key \"" + top.key + "\"");
          }
        }
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        element_done();
        break;
      case json::parse_event_t::value:
        element_done();
        break;
    }
    return true;
  }

  const std::vector<std::string>& duplicates() const { return duplicates_; }

 private:
  struct Frame {
    bool object;
    std::string key;
    std::size_t index;
    std::unordered_set<std::string> keys;
  };

  void element_done() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
  }

  std::string path() const {
    std::string out;
    for (const Frame& frame : frames_) {
      out += frame.object ? "." + frame.key : "[" + std::to_string(frame.index) + "]";
    }
    return out.starts_with('.') ? out.substr(1) : out;
  }

  std::vector<Frame> frames_;
  std::vector<std::string> duplicates_;
};

std::string in_quotes(std::string_view text) { return "\"" + std::string(text) + "\""; }

// The policy's own spelling of severities: the scanners' uppercase names, exactly.
// (Read here rather than through parse_severity, which is lenient about case.)
constexpr std::array<std::pair<std::string_view, Severity>, 6> severity_names{{
    {"CRITICAL", Severity::critical},
    {"HIGH", Severity::high},
    {"MEDIUM", Severity::medium},
    {"LOW", Severity::low},
    {"NEGLIGIBLE", Severity::negligible},
    {"UNKNOWN", Severity::unknown},
}};
constexpr std::string_view severity_choices = "CRITICAL, HIGH, MEDIUM, LOW, NEGLIGIBLE or UNKNOWN";

std::optional<Severity> severity_named(std::string_view text) {
  for (const auto& [name, severity] : severity_names) {
    if (text == name) return severity;
  }
  return std::nullopt;
}

std::string_view name_of(Severity severity) {
  for (const auto& [name, candidate] : severity_names) {
    if (candidate == severity) return name;
  }
  return "UNKNOWN";
}

// Longest report age and hold the document may ask for: ten years, ten minutes (a
// client waiting longer than that has long since given up).
constexpr std::int64_t max_age_seconds = std::int64_t{3650} * 24 * 3600;
constexpr std::int64_t max_hold_seconds = 600;

// "90s", "30m", "12h", "7d": a positive whole number and one unit.
std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text.size() < 2 || text.size() > 12) return std::nullopt;
  std::int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return std::nullopt;
  }
  std::int64_t count = 0;
  for (const char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    count = count * 10 + (c - '0');  // at most 11 digits: no overflow
  }
  if (count == 0 || count > max_age_seconds / unit) return std::nullopt;
  return std::chrono::seconds(count * unit);
}

// CVE-2024-1234, GHSA-xqr8-7jwr-rhp7, GO-2022-0001, RUSTSEC-2021-0001, DLA-1234-1, ...:
// a letter first, then letters, digits and . _ : -; a CVE id in its strict form.
bool is_valid_vulnerability_id(std::string_view id) {
  if (id.empty() || id.size() > 128 || !std::isalpha(static_cast<unsigned char>(id.front()))) return false;
  for (const char c : id) {
    const auto byte = static_cast<unsigned char>(c);
    if (!std::isalnum(byte) && c != '.' && c != '_' && c != ':' && c != '-') return false;
  }
  std::string upper(id);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!upper.starts_with("CVE-")) return true;
  // CVE-YYYY-NNNN with four or more digits in the sequence number.
  const std::string_view rest = std::string_view(upper).substr(4);
  if (rest.size() < 9 || rest[4] != '-') return false;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (i != 4 && (rest[i] < '0' || rest[i] > '9')) return false;
  }
  return true;
}

std::string upper_case(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Reads the parsed JSON into a Policy, collecting every problem rather than stopping
// at the first, so one `policy check` run shows them all.
class DocumentReader {
 public:
  DocumentReader(std::vector<std::string>& errors, std::vector<std::string>& warnings)
      : errors_(errors), warnings_(warnings) {}

  void read(const json& root, Policy& policy) {
    if (!check_object(root, "document",
                      {"default", "scopes", "exceptions", "cve_exceptions", "keys", "trusted_roots", "trust_stores",
                       "access"}))
      return;
    if (root.contains("access")) policy.access = read_access(root.at("access"), errors_, warnings_);
    if (root.contains("keys")) read_keys(root.at("keys"), policy);
    if (root.contains("trusted_roots")) read_trusted_roots(root.at("trusted_roots"), policy);
    if (root.contains("trust_stores")) read_trust_stores(root.at("trust_stores"), policy);
    policy_ = &policy;

    if (const json* scopes = array_field(root, "scopes", "scopes")) {
      std::map<std::string, std::string> first_path;
      for (std::size_t i = 0; i < scopes->size(); ++i) {
        const std::string path = "scopes[" + std::to_string(i) + "]";
        auto scope = read_scope((*scopes)[i], path);
        if (!scope) continue;
        scope->order = i;
        if (!scope->name.empty()) {
          const auto [it, inserted] = first_path.emplace(scope->name, path);
          if (!inserted) fail(path + ".name", "duplicate scope name " + in_quotes(scope->name) + " (first at " + it->second + ")");
        }
        policy.scopes.push_back(std::move(*scope));
      }
    }

    Scope catch_all;
    catch_all.name = "default";
    if (root.contains("default")) {
      const json& value = root.at("default");
      if (check_object(value, "default",
                       {"mode", "unknown", "fallback", "rules", "vulnerabilities", "signatures", "sbom", "provenance"})) {
        read_settings(value, "default", catch_all);
      }
    }
    catch_all.order = policy.scopes.size();
    policy.scopes.push_back(std::move(catch_all));
    for (const auto& scope : policy.scopes) policy.needs_signals |= scope.signatures || scope.sbom || scope.provenance;

    if (const json* exceptions = array_field(root, "exceptions", "exceptions")) {
      std::map<std::string, std::string> first_path;
      for (std::size_t i = 0; i < exceptions->size(); ++i) {
        const std::string path = "exceptions[" + std::to_string(i) + "]";
        auto exception = read_exception((*exceptions)[i], path);
        if (!exception) continue;
        if (!exception->id.empty()) {
          const auto [it, inserted] = first_path.emplace(exception->id, path);
          if (!inserted) fail(path + ".id", "duplicate exception id " + in_quotes(exception->id) + " (first at " + it->second + ")");
        }
        policy.exceptions.push_back(std::move(*exception));
      }
    }

    if (const json* exceptions = array_field(root, "cve_exceptions", "cve_exceptions")) {
      // (upper-case id, package, scope) -> where it was first seen
      std::map<std::tuple<std::string, std::string, std::string>, std::string> first_path;
      for (std::size_t i = 0; i < exceptions->size(); ++i) {
        const std::string path = "cve_exceptions[" + std::to_string(i) + "]";
        auto exception = read_cve_exception((*exceptions)[i], path, policy.scopes);
        if (!exception) continue;
        const auto [it, inserted] =
            first_path.emplace(std::tuple{upper_case(exception->id), exception->package, exception->scope}, path);
        if (!inserted) {
          fail(path, "duplicate cve exception for " + exception->id +
                         (exception->package.empty() ? "" : " in package " + in_quotes(exception->package)) +
                         (exception->scope.empty() ? "" : " in scope " + in_quotes(exception->scope)) +
                         " (first at " + it->second + ")");
        }
        policy.cve_exceptions.push_back(std::move(*exception));
      }
    }
  }

 private:
  void fail(const std::string& path, std::string_view message) { errors_.push_back(path + ": " + std::string(message)); }
  void warn(const std::string& path, std::string_view message) { warnings_.push_back(path + ": " + std::string(message)); }

  bool check_object(const json& value, const std::string& path, std::initializer_list<std::string_view> fields) {
    if (!value.is_object()) {
      fail(path, "must be an object");
      return false;
    }
    for (const auto& [key, unused] : value.items()) {
      bool known = false;
      for (const std::string_view field : fields) known = known || key == field;
      if (!known) {
        std::string expected;
        for (const std::string_view field : fields) expected += (expected.empty() ? "" : ", ") + std::string(field);
        fail(path == "document" ? key : path + "." + key, "unknown field; expected one of " + expected);
      }
    }
    return true;
  }

  const json* array_field(const json& object, const std::string& key, const std::string& path) {
    if (!object.contains(key)) return nullptr;
    const json& value = object.at(key);
    if (!value.is_array()) {
      fail(path, "must be an array");
      return nullptr;
    }
    return &value;
  }

  // Absent: nullopt. Wrong type or a control character: an error and nullopt. Text
  // from the document ends up in one-line reasons and audit records.
  std::optional<std::string> text_field(const json& object, const std::string& key, const std::string& path) {
    if (!object.contains(key)) return std::nullopt;
    const json& value = object.at(key);
    if (!value.is_string()) {
      fail(path, "must be a string");
      return std::nullopt;
    }
    std::string text = value.get<std::string>();
    for (const char c : text) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20 || byte == 0x7f) {
        fail(path, "must not contain control characters");
        return std::nullopt;
      }
    }
    return text;
  }

  std::optional<std::string> glob_field(const json& object, const std::string& key, const std::string& path,
                                        detail::GlobKind kind) {
    auto text = text_field(object, key, path);
    if (!text) return std::nullopt;
    if (const auto problem = detail::glob_problem(*text, kind)) {
      fail(path, "invalid glob " + in_quotes(text->substr(0, 80)) + ": " + *problem);
      return std::nullopt;
    }
    return text;
  }

  std::optional<registry::Digest> digest_field(const json& object, const std::string& key, const std::string& path) {
    auto text = text_field(object, key, path);
    if (!text) return std::nullopt;
    auto digest = registry::Digest::parse(*text);
    if (!digest) fail(path, "must be a digest, sha256:<64 lowercase hex> or sha512:<128 lowercase hex>");
    return digest;
  }

  template <typename Value>
  std::optional<Value> choice_field(const json& object, const std::string& key, const std::string& path,
                                    std::initializer_list<std::pair<std::string_view, Value>> choices,
                                    std::string_view expected) {
    if (!object.contains(key)) return std::nullopt;
    const json& value = object.at(key);
    if (value.is_string()) {
      const auto& text = value.get_ref<const std::string&>();
      for (const auto& [name, choice] : choices) {
        if (text == name) return choice;
      }
    }
    fail(path, "must be " + std::string(expected));
    return std::nullopt;
  }

  std::optional<Decision> decision_field(const json& object, const std::string& key, const std::string& path) {
    return choice_field<Decision>(object, key, path,
                                  {{"allow", Decision::allow}, {"warn", Decision::warn}, {"deny", Decision::deny}},
                                  "allow, warn or deny");
  }

  // mode, unknown, fallback and rules: what the default scope and named scopes share.
  void read_settings(const json& object, const std::string& path, Scope& scope) {
    if (auto mode = choice_field<Mode>(object, "mode", path + ".mode",
                                       {{"enforce", Mode::enforce}, {"warn", Mode::warn}, {"audit", Mode::audit}},
                                       "enforce, warn or audit")) {
      scope.mode = *mode;
    }
    if (auto unknown = choice_field<Unknown>(
            object, "unknown", path + ".unknown",
            {{"evaluate", Unknown::evaluate}, {"allow", Unknown::allow}, {"warn", Unknown::warn}, {"deny", Unknown::deny}},
            "evaluate, allow, warn or deny")) {
      scope.unknown = *unknown;
    }
    if (auto fallback = decision_field(object, "fallback", path + ".fallback")) scope.fallback = *fallback;
    if (const json* rules = array_field(object, "rules", path + ".rules")) {
      std::optional<std::size_t> match_all;  // the first rule without conditions
      for (std::size_t i = 0; i < rules->size(); ++i) {
        const std::string rule_path = path + ".rules[" + std::to_string(i) + "]";
        auto rule = read_rule((*rules)[i], rule_path);
        if (!rule) continue;
        if (match_all) {
          warn(rule_path, "can never match: rules[" + std::to_string(*match_all) + "] before it matches every image");
        } else if (rule->repository.empty() && rule->tag.empty() && !rule->digest) {
          match_all = i;
        }
        warn_if_outside_scope(*rule, scope, rule_path);
        scope.rules.push_back(std::move(*rule));
      }
    }
    if (object.contains("vulnerabilities")) {
      scope.vulnerabilities = read_vulnerabilities(object.at("vulnerabilities"), path + ".vulnerabilities");
    }
    if (object.contains("signatures")) scope.signatures = read_signatures(object.at("signatures"), path + ".signatures");
    if (object.contains("sbom")) scope.sbom = read_sbom(object.at("sbom"), path + ".sbom");
    if (object.contains("provenance")) scope.provenance = read_provenance(object.at("provenance"), path + ".provenance");
  }

  static bool is_key_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
    return true;
  }

  // The entries of a top-level object of named things (keys, trusted_roots,
  // trust_stores): each name checked, each entry an object of `fields` only; `read`
  // gets the well-formed ones with their path.
  template <typename Read>
  void for_each_named(const json& value, const std::string& section, const std::string& shape,
                      const std::string& what, std::initializer_list<std::string_view> fields, Read read) {
    if (!value.is_object()) {
      fail(section, "must be an object: " + shape);
      return;
    }
    for (const auto& [name, entry] : value.items()) {
      const std::string path = section + "." + name;
      if (!is_key_name(name)) {
        fail(path, what + " is 1 to 64 letters, digits, '.', '_' or '-'");
        continue;
      }
      if (check_object(entry, path, fields)) read(name, entry, path);
    }
  }

  // Exactly one of `inline_field` and `file_field`; the file's path, not empty, when
  // it is the one given (nullopt with an error otherwise, and when inline is).
  std::optional<std::string> file_or_inline(const json& entry, const std::string& path, const std::string& inline_field,
                                            const std::string& file_field, const std::string& choice) {
    if (entry.contains(inline_field) == entry.contains(file_field)) {
      fail(path, "give exactly one of " + choice);
      return std::nullopt;
    }
    if (entry.contains(inline_field)) return std::nullopt;
    auto file = text_field(entry, file_field, path + "." + file_field);
    if (file && file->empty()) {
      fail(path + "." + file_field, "must not be empty");
      return std::nullopt;
    }
    return file;
  }

  void read_keys(const json& value, Policy& policy) {
    for_each_named(value, "keys", "key name -> {\"pem\": ...} or {\"pem_file\": ...}", "a key name", {"pem", "pem_file"},
                   [&](const std::string& name, const json& entry, const std::string& path) {
      VerificationKey key;
      key.name = name;
      const std::size_t errors_before = errors_.size();
      if (auto file = file_or_inline(entry, path, "pem", "pem_file",
                                     "pem (the PEM text) or pem_file (a path)")) {
        key.pem_file = std::move(*file);
      } else if (errors_.size() != errors_before) {
        return;
      } else {
        const json& pem = entry.at("pem");
        if (!pem.is_string()) {
          fail(path + ".pem", "must be a string");
          return;
        }
        auto parsed = PublicKey::from_pem(name, pem.get<std::string>());
        if (auto* error = std::get_if<std::string>(&parsed)) {
          fail(path + ".pem", *error);
          return;
        }
        key.key = std::make_shared<const PublicKey>(std::move(std::get<PublicKey>(parsed)));
      }
      policy.keys.push_back(std::move(key));
    });
  }

  void read_trusted_roots(const json& value, Policy& policy) {
    for_each_named(value, "trusted_roots", "root name -> {\"file\": ...} or {\"root\": {...}}", "a trusted root's name",
                   {"file", "root"}, [&](const std::string& name, const json& entry, const std::string& path) {
      TrustedRootRef ref;
      ref.name = name;
      const std::size_t errors_before = errors_.size();
      if (auto file = file_or_inline(entry, path, "root", "file",
                                     "file (a trusted_root.json) or root (its document inline)")) {
        ref.file = std::move(*file);
      } else if (errors_.size() != errors_before) {
        return;
      } else {
        const json& inline_root = entry.at("root");
        if (!inline_root.is_object()) {
          fail(path + ".root", "must be a trusted root document (an object)");
          return;
        }
        auto parsed = sigstore::TrustedRoot::parse(inline_root.dump());
        if (auto* error = std::get_if<std::string>(&parsed)) {
          fail(path + ".root", *error);
          return;
        }
        auto& root = std::get<sigstore::TrustedRoot>(parsed);
        for (const auto& warning : root.warnings()) warnings_.push_back(path + ".root: " + warning);
        ref.root = std::make_shared<const sigstore::TrustedRoot>(std::move(root));
      }
      policy.trusted_roots.push_back(std::move(ref));
    });
  }

  void read_trust_stores(const json& value, Policy& policy) {
    for_each_named(value, "trust_stores", "store name -> {\"type\": ..., \"file\": ...} or {\"type\": ..., \"pem\": ...}",
                   "a trust store's name", {"type", "file", "pem"},
                   [&](const std::string& name, const json& entry, const std::string& path) {
      NotationTrustStore store;
      store.name = name;
      if (!entry.contains("type")) {
        fail(path + ".type", "is required: ca, signingAuthority or tsa");
        return;
      }
      auto type = text_field(entry, "type", path + ".type");
      if (!type) return;
      if (*type == "ca") store.type = NotationTrustStore::Type::ca;
      else if (*type == "signingAuthority") store.type = NotationTrustStore::Type::signing_authority;
      else if (*type == "tsa") store.type = NotationTrustStore::Type::tsa;
      else {
        fail(path + ".type", "must be ca, signingAuthority or tsa (Notation's trust store types)");
        return;
      }
      const std::size_t errors_before = errors_.size();
      if (auto file = file_or_inline(entry, path, "pem", "file",
                                     "file (a PEM file of certificates) or pem (the PEM text)")) {
        store.file = std::move(*file);
      } else if (errors_.size() != errors_before) {
        return;
      } else {
        if (!entry.at("pem").is_string()) {
          fail(path + ".pem", "must be a string");
          return;
        }
        auto read = certificates_of_pem(entry.at("pem").get<std::string>(), "the text", max_trust_store_certificates);
        if (auto* error = std::get_if<std::string>(&read)) {
          fail(path + ".pem", *error);
          return;
        }
        store.certificates =
            std::make_shared<const std::vector<Certificate>>(std::move(std::get<std::vector<Certificate>>(read)));
      }
      policy.trust_stores.push_back(std::move(store));
    });
  }

  // One Notation trust policy statement of a scope's signatures.
  std::optional<NotationStatement> read_notation_statement(const json& value, const std::string& path) {
    if (!check_object(value, path, {"trust_stores", "trusted_identities", "level", "verify_timestamp"}))
      return std::nullopt;
    NotationStatement statement;
    bool good = true;
    for (const char* required : {"trust_stores", "trusted_identities"})
      if (!value.contains(required)) {
        fail(path + "." + required, "is required");
        good = false;
      }
    if (!good) return std::nullopt;
    const json* stores = array_field(value, "trust_stores", path + ".trust_stores");
    if (!stores) return std::nullopt;
    bool signer_store = false;
    for (std::size_t i = 0; i < stores->size(); ++i) {
      const std::string item_path = path + ".trust_stores[" + std::to_string(i) + "]";
      const json& item = (*stores)[i];
      const NotationTrustStore* store = item.is_string() ? policy_->trust_store_named(item.get<std::string>()) : nullptr;
      if (!store) {
        fail(item_path, item.is_string() ? "no trust store named " + in_quotes(item.get<std::string>().substr(0, 64)) +
                                               " in the top-level \"trust_stores\""
                                         : std::string("must be a trust store's name"));
        good = false;
      } else if (std::find(statement.trust_stores.begin(), statement.trust_stores.end(), store->name) !=
                 statement.trust_stores.end()) {
        fail(item_path, "duplicate trust store " + in_quotes(store->name));
        good = false;
      } else {
        signer_store = signer_store || store->type != NotationTrustStore::Type::tsa;
        statement.trust_stores.push_back(store->name);
      }
    }
    if (good && !signer_store) {
      fail(path + ".trust_stores", "must name at least one trust store of type ca or signingAuthority");
      good = false;
    }
    const json* identities = array_field(value, "trusted_identities", path + ".trusted_identities");
    if (!identities) return std::nullopt;
    for (std::size_t i = 0; i < identities->size(); ++i) {
      const json& item = (*identities)[i];
      if (!item.is_string()) {
        fail(path + ".trusted_identities[" + std::to_string(i) + "]", "must be \"*\" or \"x509.subject: ...\"");
        good = false;
        continue;
      }
      statement.trusted_identities.push_back(item.get<std::string>());
    }
    if (good) {
      if (auto refusal = notation::trusted_identities_refusal(statement.trusted_identities)) {
        fail(path + ".trusted_identities", *refusal);
        good = false;
      }
    }
    if (value.contains("level")) {
      auto level = text_field(value, "level", path + ".level");
      if (!level) return std::nullopt;
      if (*level == "strict") statement.level = notation::VerificationLevel::strict;
      else if (*level == "permissive") statement.level = notation::VerificationLevel::permissive;
      else if (*level == "audit") statement.level = notation::VerificationLevel::audit;
      else if (*level == "skip") {
        fail(path + ".level", "skip verifies nothing: a scope that needs no signature has no \"signatures\"");
        good = false;
      } else {
        fail(path + ".level", "must be strict, permissive or audit (Notation's signature verification levels)");
        good = false;
      }
    }
    if (value.contains("verify_timestamp")) {
      auto when = text_field(value, "verify_timestamp", path + ".verify_timestamp");
      if (!when) return std::nullopt;
      if (*when == "always") statement.verify_timestamp = notation::VerifyTimestamp::always;
      else if (*when == "afterCertExpiry") statement.verify_timestamp = notation::VerifyTimestamp::after_cert_expiry;
      else {
        fail(path + ".verify_timestamp", "must be always or afterCertExpiry");
        good = false;
      }
    }
    if (!good) return std::nullopt;
    return statement;
  }

  // `field` exact or `field`_regexp: one of them, or (optional) neither.
  std::optional<TextMatch> text_match(const json& object, const std::string& field, const std::string& path,
                                      bool optional = false) {
    const std::string regexp_field = field + "_regexp";
    const bool exact = object.contains(field), pattern = object.contains(regexp_field);
    if (optional && !exact && !pattern) return std::nullopt;
    if (exact == pattern) {
      fail(path, "give exactly one of " + field + " (the exact text) or " + regexp_field + " (an expression)");
      return std::nullopt;
    }
    const std::string& which = exact ? field : regexp_field;
    auto text = text_field(object, which, path + "." + which);
    if (!text) return std::nullopt;
    if (text->empty()) {
      fail(path + "." + which, "must not be empty");
      return std::nullopt;
    }
    TextMatch match{*text, nullptr};
    if (pattern) {
      // std::regex compiles and matches by recursion: a bounded expression keeps a
      // policy from exhausting the stack.
      std::size_t depth = 0, deepest = 0;
      for (char c : *text) {
        if (c == '(') deepest = std::max(deepest, ++depth);
        if (c == ')' && depth > 0) --depth;
      }
      if (text->size() > 1024 || deepest > 16) {
        fail(path + "." + which, "an expression of at most 1024 characters and 16 nested groups");
        return std::nullopt;
      }
      try {
        match.regex = std::make_shared<const std::regex>(*text, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        fail(path + "." + which, std::string("not a regular expression (ECMAScript): ") + e.what());
        return std::nullopt;
      }
    }
    return match;
  }

  std::optional<KeylessIdentity> read_identity(const json& value, const std::string& path) {
    std::vector<std::string_view> fields{"trusted_root", "issuer", "issuer_regexp", "subject", "subject_regexp"};
    for (auto name : keyless_extension_names) fields.push_back(name);
    if (!value.is_object()) {
      fail(path, "must be an object");
      return std::nullopt;
    }
    bool good = true;
    for (const auto& [key, _] : value.items()) {
      if (std::find(fields.begin(), fields.end(), key) == fields.end()) {
        std::string expected;
        for (auto name : fields) expected += (expected.empty() ? "" : ", ") + std::string(name);
        fail(path + "." + key, "unknown field; expected one of " + expected);
        good = false;
      }
    }
    KeylessIdentity identity;
    if (value.contains("trusted_root")) {
      auto name = text_field(value, "trusted_root", path + ".trusted_root");
      if (!name) return std::nullopt;
      if (!policy_->trusted_root_named(*name)) {
        fail(path + ".trusted_root", "no trusted root named " + in_quotes(name->substr(0, 64)) +
                                         " in the top-level \"trusted_roots\"");
        return std::nullopt;
      }
      identity.trusted_root = *name;
    } else if (policy_->trusted_roots.size() == 1) {
      identity.trusted_root = policy_->trusted_roots.front().name;
    } else {
      fail(path + ".trusted_root", policy_->trusted_roots.empty()
                                       ? "a keyless identity needs a trusted root: none in the top-level \"trusted_roots\""
                                       : "name one of the top-level \"trusted_roots\" (there are several)");
      return std::nullopt;
    }
    auto issuer = text_match(value, "issuer", path);
    auto subject = text_match(value, "subject", path);
    if (!issuer || !subject) return std::nullopt;
    identity.issuer = std::move(*issuer);
    identity.subject = std::move(*subject);
    for (auto name : keyless_extension_names) {
      if (!value.contains(name)) continue;
      auto text = text_field(value, std::string(name), path + "." + std::string(name));
      if (!text) return std::nullopt;
      identity.extensions.emplace_back(name, std::move(*text));
    }
    if (!good) return std::nullopt;
    return identity;
  }

  std::optional<std::chrono::seconds> recheck_field(const json& object, const std::string& path) {
    if (!object.contains("recheck_s")) return std::nullopt;
    const json& value = object.at("recheck_s");
    if (!value.is_number_integer() || value.get<std::int64_t>() < 1 || value.get<std::int64_t>() > 86400) {
      fail(path, "must be a whole number of seconds from 1 to 86400");
      return std::nullopt;
    }
    return std::chrono::seconds(value.get<std::int64_t>());
  }

  std::optional<SignaturePolicy> read_signatures(const json& value, const std::string& path) {
    if (!check_object(value, path, {"keys", "identities", "notation", "recheck_s"})) return std::nullopt;
    std::vector<NotationStatement> notation;
    bool good = true;
    if (value.contains("notation")) {
      const json* statements = array_field(value, "notation", path + ".notation");
      if (!statements) return std::nullopt;
      for (std::size_t i = 0; i < statements->size(); ++i) {
        auto statement = read_notation_statement((*statements)[i], path + ".notation[" + std::to_string(i) + "]");
        if (statement) notation.push_back(std::move(*statement));
        else good = false;
      }
    }
    auto signatures = read_signers(value, path, !notation.empty() || !good);
    if (!signatures || !good) return std::nullopt;
    signatures->notation = std::move(notation);
    return signatures;
  }

  std::optional<ProvenancePolicy> read_provenance(const json& value, const std::string& path) {
    if (!check_object(value, path,
                      {"keys", "identities", "recheck_s", "builder_id", "builder_id_regexp", "build_type",
                       "build_type_regexp", "source_repository", "source_ref", "source_ref_regexp"}))
      return std::nullopt;
    const std::size_t errors_before = errors_.size();
    ProvenancePolicy provenance;
    auto signers = read_signers(value, path);
    provenance.builder_id = text_match(value, "builder_id", path, true);
    provenance.build_type = text_match(value, "build_type", path, true);
    provenance.source_ref = text_match(value, "source_ref", path, true);
    if (value.contains("source_repository")) {
      if (auto glob = text_field(value, "source_repository", path + ".source_repository")) {
        if (glob->empty() || glob->find("://") != std::string::npos)
          fail(path + ".source_repository", "a glob on host/path without a scheme, e.g. \"github.com/acme/*\"");
        else
          provenance.source_repository = std::move(*glob);
      }
    }
    if (!signers || errors_.size() != errors_before) return std::nullopt;
    provenance.signers = std::move(*signers);
    return provenance;
  }

  // keys, identities and recheck_s: who may sign (signatures, provenance).
  // `other_signers`: the caller has signers of another kind (Notation statements).
  std::optional<SignaturePolicy> read_signers(const json& value, const std::string& path, bool other_signers = false) {
    SignaturePolicy signatures;
    const json* keys = value.contains("keys") ? array_field(value, "keys", path + ".keys") : nullptr;
    const json* identities = value.contains("identities") ? array_field(value, "identities", path + ".identities") : nullptr;
    if ((value.contains("keys") && !keys) || (value.contains("identities") && !identities)) return std::nullopt;
    if ((!keys || keys->empty()) && (!identities || identities->empty()) && !other_signers) {
      fail(path, "must list at least one key name from the top-level \"keys\" or one keyless identity" +
                     std::string(value.contains("notation") ? " or Notation statement" : ""));
      return std::nullopt;
    }
    bool good = true;
    if (identities) {
      for (std::size_t i = 0; i < identities->size(); ++i) {
        auto identity = read_identity((*identities)[i], path + ".identities[" + std::to_string(i) + "]");
        if (identity) signatures.identities.push_back(std::move(*identity));
        else good = false;
      }
    }
    for (std::size_t i = 0; keys && i < keys->size(); ++i) {
      const std::string item_path = path + ".keys[" + std::to_string(i) + "]";
      const json& item = (*keys)[i];
      if (!item.is_string()) {
        fail(item_path, "must be a key name");
        good = false;
        continue;
      }
      const auto& name = item.get_ref<const std::string&>();
      if (!policy_->key_named(name)) {
        fail(item_path, "no key named " + in_quotes(name.substr(0, 64)) + " in the top-level \"keys\"");
        good = false;
      } else if (std::find(signatures.keys.begin(), signatures.keys.end(), name) != signatures.keys.end()) {
        fail(item_path, "duplicate key " + in_quotes(name));
        good = false;
      } else {
        signatures.keys.push_back(name);
      }
    }
    if (auto recheck = recheck_field(value, path + ".recheck_s")) signatures.recheck = *recheck;
    if (!good) return std::nullopt;
    return signatures;
  }

  // Which VEX documents the scope believes: imported ones (pullgate vex import). VEX
  // attached to images as signed attestations is not looked for yet: a policy naming
  // signers for it is refused rather than read as if it were.
  std::optional<VexTrust> read_vex(const json& value, const std::string& path) {
    if (!check_object(value, path, {"imported", "keys", "identities", "recheck_s"})) return std::nullopt;
    for (const char* field : {"keys", "identities", "recheck_s"})
      if (value.contains(field)) {
        fail(path + "." + field,
             "attached VEX attestations are not looked for yet; only imported documents (pullgate vex import) "
             "are believed");
        return std::nullopt;
      }
    VexTrust trust;
    if (value.contains("imported")) {
      if (!value.at("imported").is_boolean()) {
        fail(path + ".imported", "must be true or false");
        return std::nullopt;
      }
      trust.imported = value.at("imported").get<bool>();
    }
    if (!trust.imported) {
      fail(path, "trusts no VEX: set \"imported\" to true (attached VEX attestations are not looked for yet)");
      return std::nullopt;
    }
    return trust;
  }

  std::optional<SbomPolicy> read_sbom(const json& value, const std::string& path) {
    if (!check_object(value, path, {"required", "recheck_s"})) return std::nullopt;
    SbomPolicy sbom;
    bool required = true;
    if (value.contains("required")) {
      if (!value.at("required").is_boolean()) fail(path + ".required", "must be true or false");
      else required = value.at("required").get<bool>();
    }
    if (auto recheck = recheck_field(value, path + ".recheck_s")) sbom.recheck = *recheck;
    if (!required) return std::nullopt;
    return sbom;
  }

  // A list of distinct severities; nullopt (with errors) when any entry is bad.
  std::optional<std::vector<Severity>> severity_list(const json& object, const std::string& key,
                                                     const std::string& path) {
    const json* list = array_field(object, key, path);
    if (!list) return std::nullopt;
    std::vector<Severity> out;
    bool good = true;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      const json& item = (*list)[i];
      const auto severity = item.is_string() ? severity_named(item.get_ref<const std::string&>()) : std::nullopt;
      if (!severity) {
        fail(item_path, "must be " + std::string(severity_choices));
        good = false;
      } else if (std::find(out.begin(), out.end(), *severity) != out.end()) {
        fail(item_path, "duplicate severity " + std::string(name_of(*severity)));
        good = false;
      } else {
        out.push_back(*severity);
      }
    }
    if (!good) return std::nullopt;
    return out;
  }

  std::optional<VulnerabilityPolicy> read_vulnerabilities(const json& value, const std::string& path) {
    if (!check_object(value, path,
                      {"block", "warn", "max", "ignore_unfixed", "max_report_age", "unscanned", "hold_s", "vex"})) {
      return std::nullopt;
    }
    VulnerabilityPolicy vulnerabilities;
    vulnerabilities.block = {Severity::critical, Severity::high};
    vulnerabilities.warn = {Severity::medium};
    const bool has_block = value.contains("block");
    const bool has_warn = value.contains("warn");
    if (auto block = severity_list(value, "block", path + ".block")) vulnerabilities.block = std::move(*block);
    if (auto warns = severity_list(value, "warn", path + ".warn")) vulnerabilities.warn = std::move(*warns);
    if (has_block || has_warn) {
      // With only one list written, the other's defaults give way rather than clash:
      // "block": ["CRITICAL","HIGH","MEDIUM"] alone means MEDIUM no longer just warns.
      auto& keep = has_block ? vulnerabilities.block : vulnerabilities.warn;
      auto& other = has_block ? vulnerabilities.warn : vulnerabilities.block;
      const bool both = has_block && has_warn;
      for (auto it = other.begin(); it != other.end();) {
        if (std::find(keep.begin(), keep.end(), *it) == keep.end()) {
          ++it;
        } else if (both) {
          fail(path + ".warn", "severity " + std::string(name_of(*it)) + " is also in block; list it in one only");
          ++it;
        } else {
          it = other.erase(it);
        }
      }
    }
    if (value.contains("max")) {
      const json& max = value.at("max");
      if (!max.is_object()) {
        fail(path + ".max", "must be an object such as {\"HIGH\": 3}");
      } else {
        for (const auto& [key, count] : max.items()) {
          const std::string item_path = path + ".max." + key;
          const auto severity = severity_named(key);
          if (!severity) {
            fail(item_path, "unknown severity; expected " + std::string(severity_choices));
          } else if (!count.is_number_unsigned() ||
                     count.get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max()) {
            fail(item_path, "must be a whole number from 0 to 4294967295");
          } else {
            vulnerabilities.max[*severity] = static_cast<std::uint32_t>(count.get<std::uint64_t>());
          }
        }
      }
    }
    if (value.contains("ignore_unfixed")) {
      const json& flag = value.at("ignore_unfixed");
      if (flag.is_boolean()) {
        vulnerabilities.ignore_unfixed = flag.get<bool>();
      } else {
        fail(path + ".ignore_unfixed", "must be true or false");
      }
    }
    if (value.contains("max_report_age")) {
      const json& age = value.at("max_report_age");
      const auto parsed = age.is_string() ? parse_duration(age.get_ref<const std::string&>()) : std::nullopt;
      if (parsed) {
        vulnerabilities.max_report_age = *parsed;
      } else {
        fail(path + ".max_report_age",
             "must be a duration such as \"90s\", \"30m\", \"12h\" or \"7d\" (at most 3650d)");
      }
    }
    if (auto unscanned = choice_field<Unscanned>(
            value, "unscanned", path + ".unscanned",
            {{"deny", Unscanned::deny}, {"allow", Unscanned::allow}, {"warn", Unscanned::warn}, {"hold", Unscanned::hold}},
            "deny, allow, warn or hold")) {
      vulnerabilities.unscanned = *unscanned;
    }
    if (value.contains("hold_s")) {
      const json& hold = value.at("hold_s");
      if (!hold.is_number_unsigned() || hold.get<std::uint64_t>() == 0 ||
          hold.get<std::uint64_t>() > static_cast<std::uint64_t>(max_hold_seconds)) {
        fail(path + ".hold_s", "must be a whole number of seconds from 1 to " + std::to_string(max_hold_seconds));
      } else {
        vulnerabilities.hold_for = std::chrono::seconds(hold.get<std::int64_t>());
        if (vulnerabilities.unscanned != Unscanned::hold) {
          warn(path + ".hold_s", "has no effect unless \"unscanned\" is \"hold\"");
        }
      }
    }
    if (value.contains("vex")) vulnerabilities.vex = read_vex(value.at("vex"), path + ".vex");
    return vulnerabilities;
  }

  std::optional<CveException> read_cve_exception(const json& value, const std::string& path,
                                                  const std::vector<Scope>& scopes) {
    if (!check_object(value, path, {"id", "package", "scope", "reason", "who", "expires"})) return std::nullopt;
    CveException exception;
    bool good = true;
    if (!value.contains("id")) {
      fail(path + ".id", "missing; must name the vulnerability, such as CVE-2024-1234");
      good = false;
    } else if (auto id = text_field(value, "id", path + ".id")) {
      if (!is_valid_vulnerability_id(*id)) {
        fail(path + ".id", "must be a vulnerability id such as CVE-2024-1234 or GHSA-xqr8-7jwr-rhp7, got " +
                               in_quotes(id->substr(0, 64)));
        good = false;
      } else {
        exception.id = std::move(*id);
      }
    } else {
      good = false;
    }
    if (auto package = text_field(value, "package", path + ".package")) {
      if (package->empty()) {
        fail(path + ".package", "must not be empty; leave it out to match any package");
        good = false;
      } else {
        exception.package = std::move(*package);
      }
    } else if (value.contains("package")) {
      good = false;
    }
    if (auto scope = text_field(value, "scope", path + ".scope")) {
      const bool known = std::any_of(scopes.begin(), scopes.end(),
                                     [&](const Scope& candidate) { return candidate.name == *scope; });
      if (!known) {
        fail(path + ".scope", "names no scope: " + in_quotes(scope->substr(0, 64)));
        good = false;
      } else {
        exception.scope = std::move(*scope);
      }
    } else if (value.contains("scope")) {
      good = false;
    }
    if (auto reason = text_field(value, "reason", path + ".reason")) exception.reason = std::move(*reason);
    if (auto who = text_field(value, "who", path + ".who")) exception.who = std::move(*who);
    if (!value.contains("expires")) {
      fail(path + ".expires", "missing; a cve exception must expire");
      good = false;
    } else if (auto expires = text_field(value, "expires", path + ".expires")) {
      if (auto time = parse_rfc3339(*expires)) {
        exception.expires = *time;
      } else {
        fail(path + ".expires", "must be an RFC 3339 time such as 2026-12-01T00:00:00Z (years 1678 to 2261), got " +
                                    in_quotes(expires->substr(0, 64)));
        good = false;
      }
    } else {
      good = false;
    }
    // A half-read exception would only add confusing duplicate errors.
    if (!good) return std::nullopt;
    return exception;
  }

  // Cheap and certain only when one of the two patterns is a plain name.
  void warn_if_outside_scope(const Rule& rule, const Scope& scope, const std::string& path) {
    if (rule.repository.empty()) return;
    const bool disjoint = (detail::is_literal(scope.repository) && !glob_match(rule.repository, scope.repository)) ||
                          (detail::is_literal(rule.repository) && !glob_match(scope.repository, rule.repository));
    if (disjoint) {
      warn(path, "can never match: repository " + in_quotes(rule.repository) + " lies outside the scope's repository " +
                     in_quotes(scope.repository));
    }
  }

  std::optional<Scope> read_scope(const json& value, const std::string& path) {
    if (!check_object(value, path,
                      {"name", "upstream", "repository", "mode", "unknown", "fallback", "rules", "vulnerabilities",
                       "signatures", "sbom", "provenance"})) {
      return std::nullopt;
    }
    Scope scope;
    if (!value.contains("name")) {
      fail(path + ".name", "missing; every scope needs a name for reasons and audit");
    } else if (auto name = text_field(value, "name", path + ".name")) {
      if (name->empty()) {
        fail(path + ".name", "must not be empty");
      } else if (name->size() > 128) {
        // It keys the scope's stored verdicts and signal findings with the digest.
        fail(path + ".name", "longer than 128 bytes");
      } else if (*name == "default") {
        fail(path + ".name", "\"default\" is the catch-all scope; configure it under the top-level \"default\"");
      } else {
        scope.name = std::move(*name);
      }
    }
    if (auto upstream = glob_field(value, "upstream", path + ".upstream", detail::GlobKind::upstream)) {
      scope.upstream = std::move(*upstream);
    }
    if (auto repository = glob_field(value, "repository", path + ".repository", detail::GlobKind::repository)) {
      scope.repository = std::move(*repository);
    }
    read_settings(value, path, scope);
    return scope;
  }

  std::optional<Rule> read_rule(const json& value, const std::string& path) {
    if (!check_object(value, path, {"action", "repository", "tag", "digest", "reason"})) return std::nullopt;
    Rule rule;
    if (!value.contains("action")) {
      fail(path + ".action", "missing; must be allow, warn or deny");
    } else if (auto action = decision_field(value, "action", path + ".action")) {
      rule.action = *action;
    }
    if (auto repository = glob_field(value, "repository", path + ".repository", detail::GlobKind::repository)) {
      rule.repository = std::move(*repository);
    }
    if (auto tag = glob_field(value, "tag", path + ".tag", detail::GlobKind::tag)) rule.tag = std::move(*tag);
    rule.digest = digest_field(value, "digest", path + ".digest");
    if (auto reason = text_field(value, "reason", path + ".reason")) rule.reason = std::move(*reason);
    return rule;
  }

  std::optional<Exception> read_exception(const json& value, const std::string& path) {
    if (!check_object(value, path, {"id", "digest", "repository", "upstream", "reason", "who", "expires"})) {
      return std::nullopt;
    }
    Exception exception;
    if (!value.contains("id")) {
      fail(path + ".id", "missing; every exception needs an id for audit and removal");
    } else if (auto id = text_field(value, "id", path + ".id")) {
      if (id->empty()) {
        fail(path + ".id", "must not be empty");
      } else {
        exception.id = std::move(*id);
      }
    }
    const bool has_digest = value.contains("digest");
    const bool has_repository = value.contains("repository");
    exception.digest = digest_field(value, "digest", path + ".digest");
    if (auto repository = glob_field(value, "repository", path + ".repository", detail::GlobKind::repository)) {
      exception.repository = std::move(*repository);
    }
    if (!has_digest && !has_repository) {
      fail(path, "needs a digest or a repository; an exception for everything would switch the gate off");
    }
    if (auto upstream = glob_field(value, "upstream", path + ".upstream", detail::GlobKind::upstream)) {
      exception.upstream = std::move(*upstream);
    }
    if (auto reason = text_field(value, "reason", path + ".reason")) exception.reason = std::move(*reason);
    if (auto who = text_field(value, "who", path + ".who")) exception.who = std::move(*who);
    if (value.contains("expires")) {
      if (auto expires = text_field(value, "expires", path + ".expires")) {
        exception.expires = parse_rfc3339(*expires);
        if (!exception.expires) {
          fail(path + ".expires",
               "must be an RFC 3339 time such as 2026-12-01T00:00:00Z (years 1678 to 2261), got " +
                   in_quotes(expires->substr(0, 64)));
        }
      }
    } else {
      const std::string name = exception.id.empty() ? path : path + " (" + exception.id + ")";
      warn(name, "no \"expires\"; it applies until someone removes it");
    }
    return exception;
  }

  std::vector<std::string>& errors_;
  std::vector<std::string>& warnings_;
  const Policy* policy_ = nullptr;  // the document's keys are read before the scopes
};

}  // namespace

std::string content_version(std::string_view bytes) { return version_of(bytes); }

namespace {

ParseResult parse_document(std::string_view document) {
  ParseResult result;
  if (document.size() > max_document_bytes) {
    result.errors.push_back("document: " + std::to_string(document.size()) + " bytes, more than the limit of " +
                            std::to_string(max_document_bytes) + " (1 MiB)");
    return result;
  }
  if (nested_too_deep(document)) {
    result.errors.push_back("document: nested deeper than " + std::to_string(max_nesting) + " levels");
    return result;
  }

  DuplicateKeyFinder duplicates;
  json root;
  try {
    root = json::parse(document.begin(), document.end(), std::ref(duplicates), /*allow_exceptions=*/true,
                       /*ignore_comments=*/true);
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." minus the tag.
    std::string message = e.what();
    if (const auto end = message.find("] "); message.starts_with("[json.") && end != std::string::npos) {
      message.erase(0, end + 2);
    }
    result.errors.push_back("document: invalid JSON: " + message);
    return result;
  }
  result.errors = duplicates.duplicates();

  Policy policy;
  DocumentReader(result.errors, result.warnings).read(root, policy);
  if (!result.errors.empty()) return result;
  policy.version = version_of(document);
  if (policy.version.empty()) {
    result.errors.push_back("document: could not compute its sha256 (OpenSSL failed)");
    return result;
  }
  result.policy = std::move(policy);
  return result;
}

}  // namespace

ParseResult parse_policy(std::string_view document) {
  auto result = parse_document(document);
  // A mistake is one line whatever the document holds (a key or a value it quotes may
  // carry line breaks).
  registry::one_line_each(result.errors);
  registry::one_line_each(result.warnings);
  return result;
}

}  // namespace pullgate::policy
