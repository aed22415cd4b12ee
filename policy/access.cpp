// The policy's "access" section: who may pull from which upstreams and repositories.
#include "policy/access.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "policy/patterns.hpp"
#include "registry/glob.hpp"

namespace pullgate::policy {

bool is_identity_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name == anonymous_identity) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '@';
  });
}

namespace {

bool names(const AccessPolicy& access, const std::vector<std::string>& who, std::string_view identity) {
  const bool anonymous = identity == anonymous_identity;
  for (const auto& entry : who) {
    if (entry == identity) return true;
    if (entry == "*" && !anonymous) return true;
    if (anonymous) continue;
    auto group = access.groups.find(entry);
    if (group != access.groups.end() &&
        std::find(group->second.begin(), group->second.end(), identity) != group->second.end())
      return true;
  }
  return false;
}

std::string in_quotes(std::string_view text) { return "\"" + std::string(text.substr(0, 80)) + "\""; }

class AccessReader {
 public:
  AccessReader(std::vector<std::string>& errors, std::vector<std::string>& warnings)
      : errors_(errors), warnings_(warnings) {}

  std::optional<AccessPolicy> read(const nlohmann::json& value) {
    const auto before = errors_.size();
    if (!object(value, "access", {"groups", "rules", "others"})) return std::nullopt;
    AccessPolicy access;
    if (value.contains("groups")) {
      const auto& groups = value.at("groups");
      if (!groups.is_object()) {
        fail("access.groups", "must be an object: group name -> list of identity names");
      } else {
        for (const auto& [name, members] : groups.items()) {
          const std::string path = "access.groups." + name;
          if (!is_identity_name(name) || name == "*") {
            fail(path, "a group name is 1 to 128 letters, digits, '.', '_', '-' or '@' (not \"anonymous\")");
            continue;
          }
          auto list = name_list(members, path, /*groups_allowed=*/false);
          if (list) access.groups.emplace(name, std::move(*list));
        }
      }
    }
    if (value.contains("rules")) {
      const auto& rules = value.at("rules");
      if (!rules.is_array()) {
        fail("access.rules", "must be an array");
      } else {
        for (std::size_t i = 0; i < rules.size(); ++i) {
          const std::string path = "access.rules[" + std::to_string(i) + "]";
          if (auto rule = read_rule(rules[i], path)) access.rules.push_back(std::move(*rule));
        }
      }
    }
    if (value.contains("others")) {
      if (auto list = name_list(value.at("others"), "access.others", true)) access.others = std::move(*list);
    }
    if (errors_.size() != before) return std::nullopt;
    return access;
  }

 private:
  void fail(const std::string& path, std::string_view message) { errors_.push_back(path + ": " + std::string(message)); }

  bool object(const nlohmann::json& value, const std::string& path, std::initializer_list<std::string_view> fields) {
    if (!value.is_object()) {
      fail(path, "must be an object");
      return false;
    }
    for (const auto& [key, unused] : value.items()) {
      if (std::find(fields.begin(), fields.end(), key) != fields.end()) continue;
      std::string expected;
      for (auto field : fields) expected += (expected.empty() ? "" : ", ") + std::string(field);
      fail(path + "." + key, "unknown field; expected one of " + expected);
    }
    return true;
  }

  std::optional<std::string> glob(const nlohmann::json& object, const char* key, const std::string& path,
                                  registry::GlobKind kind) {
    if (!object.contains(key)) return std::nullopt;
    const auto& value = object.at(key);
    if (!value.is_string()) {
      fail(path, "must be a string");
      return std::nullopt;
    }
    auto text = value.get<std::string>();
    if (auto problem = registry::glob_problem(text, kind)) {
      fail(path, "invalid glob " + in_quotes(text) + ": " + *problem);
      return std::nullopt;
    }
    return text;
  }

  // A list of identity names; with groups_allowed (a rule's `who`) also "*",
  // "anonymous" and group names (which share the identities' namespace).
  std::optional<std::vector<std::string>> name_list(const nlohmann::json& value, const std::string& path,
                                                    bool groups_allowed) {
    if (!value.is_array()) {
      fail(path, "must be a list of names");
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool good = true;
    for (std::size_t i = 0; i < value.size(); ++i) {
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      if (!value[i].is_string()) {
        fail(item_path, "must be a string");
        good = false;
        continue;
      }
      auto name = value[i].get<std::string>();
      const bool special = name == "*" || name == anonymous_identity;
      if (special && groups_allowed) {
        out.push_back(std::move(name));
        continue;
      }
      if (!is_identity_name(name)) {
        fail(item_path, groups_allowed
                            ? "must be an identity name, a group, \"*\" or \"anonymous\", got " + in_quotes(name)
                            : "must be an identity name (1 to 128 letters, digits, '.', '_', '-' or '@'), got " +
                                  in_quotes(name));
        good = false;
        continue;
      }
      out.push_back(std::move(name));
    }
    if (!good) return std::nullopt;
    return out;
  }

  std::optional<AccessRule> read_rule(const nlohmann::json& value, const std::string& path) {
    if (!object(value, path, {"upstream", "repository", "who"})) return std::nullopt;
    AccessRule rule;
    rule.path = path;
    if (auto upstream = glob(value, "upstream", path + ".upstream", registry::GlobKind::upstream))
      rule.upstream = std::move(*upstream);
    if (auto repository = glob(value, "repository", path + ".repository", registry::GlobKind::repository))
      rule.repository = std::move(*repository);
    if (!value.contains("who")) {
      fail(path + ".who", "missing; the identities and groups that may pull what the rule matches ([] for nobody)");
      return std::nullopt;
    }
    auto who = name_list(value.at("who"), path + ".who", true);
    if (!who) return std::nullopt;
    rule.who = std::move(*who);
    if (rule.upstream == "**" && rule.repository == "**")
      warnings_.push_back(path + ": matches every request, so access.others and the rules after it never decide");
    return rule;
  }

  std::vector<std::string>& errors_;
  std::vector<std::string>& warnings_;
};

}  // namespace

AccessDecision may_pull(const AccessPolicy& access, std::string_view identity, std::string_view upstream,
                        std::string_view repository) {
  for (const auto& rule : access.rules) {
    if (!registry::glob_match(rule.upstream, upstream) || !registry::glob_match(rule.repository, repository)) continue;
    return {names(access, rule.who, identity), rule.path};
  }
  return {names(access, access.others, identity), "access.others"};
}

std::optional<AccessPolicy> read_access(const nlohmann::json& value, std::vector<std::string>& errors,
                                        std::vector<std::string>& warnings) {
  return AccessReader(errors, warnings).read(value);
}

}  // namespace pullgate::policy
