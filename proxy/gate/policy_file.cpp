#include "proxy/gate/policy_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/signature.hpp"
#include "policy/trusted_root.hpp"
#include "proxy/telemetry/log.hpp"

namespace pullgate::proxy {

namespace {
constexpr std::size_t max_key_size = 64 * 1024;
constexpr std::size_t max_trusted_root_size = 4 * 1024 * 1024;  // Sigstore's own is about 10 KiB
constexpr std::size_t max_trust_store_size = 1024 * 1024;        // a few certificates of 1 to 2 KiB

struct NamedFile {
  std::filesystem::path path;
  std::string text;
};

// A file the policy names (a key, a trusted root, a trust store), relative to the
// policy file's directory, read whole but never past `limit` bytes. On failure the
// one-line reason, prefixed with `where`, goes to `errors`.
std::optional<NamedFile> read_named_file(const std::filesystem::path& base, const std::string& name,
                                         std::size_t limit, const std::string& where,
                                         std::vector<std::string>& errors) {
  NamedFile file{std::filesystem::path(name), {}};
  if (file.path.is_relative()) file.path = base / file.path;
  std::ifstream in(file.path, std::ios::binary);
  char chunk[16 * 1024];
  while (in && file.text.size() <= limit) {
    in.read(chunk, sizeof chunk);
    file.text.append(chunk, static_cast<std::size_t>(in.gcount()));
  }
  if (!in.is_open() || in.bad()) {
    errors.push_back(where + "cannot read " + file.path.string());
    return std::nullopt;
  }
  if (file.text.size() > limit) {
    errors.push_back(where + "cannot read " + file.path.string() + " (larger than " +
                     (limit % (1024 * 1024) == 0 ? std::to_string(limit >> 20) + " MiB"
                                                 : std::to_string(limit >> 10) + " KiB") +
                     ")");
    return std::nullopt;
  }
  return file;
}
}  // namespace

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
  // Files the policy names (keys, trusted roots, trust stores) are read now, relative to
  // the policy file; their content is part of the policy, so it is folded into the version.
  const auto base = std::filesystem::path(path).parent_path();
  std::string versioned = result.policy->version;
  for (auto& key : result.policy->keys) {
    if (!key.key) {
      const std::string where = "keys." + key.name + ".pem_file: ";
      auto file = read_named_file(base, key.pem_file, max_key_size, where, result.errors);
      if (!file) continue;
      auto parsed = policy::PublicKey::from_pem(key.name, file->text);
      if (auto* error = std::get_if<std::string>(&parsed)) {
        result.errors.push_back(where + file->path.string() + ": " + *error);
        continue;
      }
      key.key = std::make_shared<const policy::PublicKey>(std::move(std::get<policy::PublicKey>(parsed)));
    }
    versioned += "\n" + key.name + "=" + key.key->fingerprint();
  }
  for (auto& ref : result.policy->trusted_roots) {
    if (ref.root) continue;
    const std::string where = "trusted_roots." + ref.name + ".file: ";
    auto file = read_named_file(base, ref.file, max_trusted_root_size, where, result.errors);
    if (!file) continue;
    auto parsed = policy::sigstore::TrustedRoot::parse(file->text);
    if (auto* error = std::get_if<std::string>(&parsed)) {
      result.errors.push_back(where + file->path.string() + ": " + *error);
      continue;
    }
    auto& root = std::get<policy::sigstore::TrustedRoot>(parsed);
    for (const auto& warning : root.warnings()) result.warnings.push_back(where + file->path.string() + ": " + warning);
    ref.root = std::make_shared<const policy::sigstore::TrustedRoot>(std::move(root));
    versioned += "\n" + ref.name + "=" + policy::content_version(file->text);
  }
  for (auto& store : result.policy->trust_stores) {
    if (store.certificates) continue;
    const std::string where = "trust_stores." + store.name + ".file: ";
    auto file = read_named_file(base, store.file, max_trust_store_size, where, result.errors);
    if (!file) continue;
    auto read = policy::certificates_of_pem(file->text, file->path.string(), policy::max_trust_store_certificates);
    if (auto* error = std::get_if<std::string>(&read)) {
      result.errors.push_back(where + *error);
      continue;
    }
    store.certificates = std::make_shared<const std::vector<policy::Certificate>>(
        std::move(std::get<std::vector<policy::Certificate>>(read)));
    versioned += "\n" + store.name + "=" + policy::content_version(file->text);
  }
  if (!result.errors.empty()) {
    result.policy.reset();
    return result;
  }
  if (versioned != result.policy->version) result.policy->version = policy::content_version(versioned);
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

policy::ParseResult parse_fleet_policy(const std::string& text) {
  auto result = policy::parse_policy(text);
  if (!result.policy) return result;
  for (const auto& key : result.policy->keys)
    if (!key.key)
      result.errors.push_back("keys." + key.name +
                              ".pem_file: a policy kept in etcd carries its keys inline (\"pem\": the PEM text)");
  for (const auto& ref : result.policy->trusted_roots)
    if (!ref.root)
      result.errors.push_back("trusted_roots." + ref.name +
                              ".file: a policy kept in etcd carries its trusted roots inline (\"root\": the document)");
  for (const auto& store : result.policy->trust_stores)
    if (!store.certificates)
      result.errors.push_back("trust_stores." + store.name +
                              ".file: a policy kept in etcd carries its trust stores inline (\"pem\": the PEM text)");
  if (!result.errors.empty()) result.policy.reset();
  return result;
}

policy::Policy waiting_for_fleet_policy() {
  auto result = policy::parse_policy(R"({
    "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "deny"},
    "scopes": [{"name": "waiting-for-the-fleet-policy", "repository": "**",
                "rules": [{"action": "deny", "repository": "**",
                           "reason": "this mirror has not received its policy from the fleet store (etcd) yet"}]}]
  })");
  return std::move(*result.policy);
}

std::optional<policy::Policy> load_fleet_policy_copy(const std::filesystem::path& copy) {
  std::ifstream in(copy, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  auto result = parse_fleet_policy(text.str());
  if (!result.policy) {
    log_event("warn", "the kept copy of the fleet's policy does not validate; waiting for etcd's",
              {{"file", copy.string()}, {"errors", result.errors}});
    return std::nullopt;
  }
  return std::move(result.policy);
}

bool write_file_whole(const std::string& text, const std::filesystem::path& copy, std::string& error, mode_t mode) {
  auto tmp = copy;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    error = "open " + tmp.string() + ": " + std::strerror(errno);
    return false;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  bool ok = done == text.size() && ::fsync(fd) == 0;
  if (!ok) error = "write " + tmp.string() + ": " + std::strerror(errno);
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), copy.c_str()) != 0) {
    error = "rename to " + copy.string() + ": " + std::strerror(errno);
    ok = false;
  }
  if (!ok) ::unlink(tmp.c_str());
  return ok;
}

FleetPolicyOutcome apply_fleet_policy(const std::string& text, const std::filesystem::path& copy,
                                      PolicyHolder& holder) {
  auto result = parse_fleet_policy(text);
  if (!result.policy) {
    log_event("error", "the fleet's policy (etcd) does not validate; the previous policy stays in force",
              {{"errors", result.errors}, {"version", holder.get()->version}});
    return FleetPolicyOutcome::refused;
  }
  auto version = result.policy->version;
  if (version == holder.get()->version) return FleetPolicyOutcome::unchanged;
  std::string error;
  if (!write_file_whole(text, copy, error))
    log_event("warn", "the fleet's policy is in force but no copy was kept (a restart without etcd waits for it)",
              {{"error", error}});
  holder.set(std::move(*result.policy));
  log_event("info", "policy from the fleet store (etcd) in force", {{"version", version}, {"warnings", result.warnings}});
  return FleetPolicyOutcome::applied;
}

std::filesystem::path policy_in_force_path(const std::filesystem::path& data_dir) {
  return data_dir / "policy-in-force.json";
}

bool record_policy_in_force(const std::filesystem::path& data_dir, const PolicyInForce& record, std::string& error) {
  nlohmann::json j = {{"source", record.source}, {"file", record.file},    {"version", record.version},
                      {"since_ms", record.since_ms}, {"pid", record.pid}};
  // Readable by whoever may read the data directory: it names a file and a version,
  // nothing secret, and the command line may run as another user than the server.
  return write_file_whole(j.dump() + "\n", policy_in_force_path(data_dir), error, 0644);
}

std::optional<PolicyInForce> read_policy_in_force(const std::filesystem::path& data_dir, std::string& error) {
  auto path = policy_in_force_path(data_dir);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno != ENOENT) error = "cannot read " + path.string() + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, false);
  auto string_at = [&](const char* key) -> const std::string* {
    auto it = j.is_object() ? j.find(key) : j.end();
    return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  auto* source = string_at("source");
  auto* file = string_at("file");
  auto* version = string_at("version");
  if (!source || !file || !version || (*source != "file" && *source != "etcd" && *source != "built-in")) {
    error = path.string() + " is not a record of a policy in force";
    return std::nullopt;
  }
  auto int_at = [&](const char* key) -> std::int64_t {
    auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
  };
  PolicyInForce record{*source, *file, *version};
  record.since_ms = int_at("since_ms");
  record.pid = int_at("pid");
  return record;
}

}  // namespace pullgate::proxy
