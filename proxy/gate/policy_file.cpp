#include "proxy/gate/policy_file.hpp"

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <variant>

#include "policy/signature.hpp"
#include "proxy/telemetry/log.hpp"

namespace pullgate::proxy {

policy::ParseResult load_policy_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    policy::ParseResult result;
    result.errors.push_back("cannot read policy file " + path);
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto result = policy::parse_policy(text.str());
  if (!result.policy) return result;
  // Keys given as files: read now, relative to the policy file; their content is
  // part of the policy, so it is folded into the version.
  auto base = std::filesystem::path(path).parent_path();
  std::string versioned = result.policy->version;
  for (auto& key : result.policy->keys) {
    if (!key.key) {
      auto file = std::filesystem::path(key.pem_file);
      if (file.is_relative()) file = base / file;
      std::ifstream pem_in(file, std::ios::binary);
      std::stringstream pem;
      if (pem_in) pem << pem_in.rdbuf();
      if (!pem_in || pem.str().size() > 64 * 1024) {
        result.errors.push_back("keys." + key.name + ".pem_file: cannot read " + file.string() +
                                (pem_in ? " (larger than 64 KiB)" : ""));
        continue;
      }
      auto parsed = policy::PublicKey::from_pem(key.name, pem.str());
      if (auto* error = std::get_if<std::string>(&parsed)) {
        result.errors.push_back("keys." + key.name + ".pem_file: " + file.string() + ": " + *error);
        continue;
      }
      key.key = std::make_shared<const policy::PublicKey>(std::move(std::get<policy::PublicKey>(parsed)));
    }
    versioned += "\n" + key.name + "=" + key.key->fingerprint();
  }
  if (!result.errors.empty()) {
    result.policy.reset();
    return result;
  }
  if (!result.policy->keys.empty()) result.policy->version = policy::content_version(versioned);
  return result;
}

bool reload_policy(const std::string& policy_file, PolicyHolder& holder) {
  if (policy_file.empty()) {
    log_event("info", "policy reload: no policy file configured; the built-in policy stays");
    return false;
  }
  auto loaded = load_policy_file(policy_file);
  if (!loaded.policy) {
    log_event("error", "policy reload refused; the previous policy stays in force",
              {{"file", policy_file}, {"errors", loaded.errors}, {"version", holder.get()->version}});
    return false;
  }
  auto version = loaded.policy->version;
  holder.set(std::move(*loaded.policy));
  log_event("info", "policy reloaded", {{"file", policy_file}, {"version", version}, {"warnings", loaded.warnings}});
  return true;
}

}  // namespace pullgate::proxy
