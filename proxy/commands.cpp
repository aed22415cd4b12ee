#include "proxy/commands.hpp"

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cache/meta_store.hpp"
#include "proxy/log.hpp"

namespace pullgate::proxy {

namespace {

constexpr const char* policy_help = R"(Usage: pullgate policy check FILE

Validates a policy file as `serve` would (see docs/policy.md) and prints its
version (the sha256 of its bytes), its scopes, and one line per mistake.
Exit status: 0 valid, 1 invalid, 2 usage error.
)";

constexpr const char* verdict_help = R"(Usage:
  pullgate verdict set DIGEST allow|warn|deny [--reason TEXT] [--by WHO] [--expires-in DURATION]
  pullgate verdict get DIGEST
  pullgate verdict ls [--decision allow|warn|deny] [--source SOURCE] [--limit N]
  pullgate verdict rm DIGEST
Each takes --data DIR or --config FILE to find the cache (default ./pullgate-data).

A manual verdict decides its digest until it is removed or expires (DURATION: 30m,
12h, 7d). It applies to the next pull, also while the server runs. Computed
verdicts (source rule, default, unknown) are replaced when the policy changes.
)";

int usage(const std::string& message, const char* command) {
  std::cerr << "pullgate: " << message << " (see `pullgate " << command << " --help`)\n";
  return 2;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string format_ms(std::int64_t ms) {
  auto t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// "30m", "12h", "7d", "90s" -> milliseconds.
std::optional<std::int64_t> parse_duration(const std::string& text) {
  if (text.size() < 2 || text.size() > 12) return std::nullopt;
  std::int64_t n = 0;
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    n = n * 10 + (text[i] - '0');
  }
  switch (text.back()) {
    case 's': return n * 1000;
    case 'm': return n * 60'000;
    case 'h': return n * 3'600'000;
    case 'd': return n * 86'400'000;
    default: return std::nullopt;
  }
}

nlohmann::json verdict_json(const registry::Digest& digest, const cache::VerdictRecord& v) {
  nlohmann::json j = {{"digest", digest.str()},       {"decision", v.decision},
                      {"source", v.source},           {"reasons", v.reasons},
                      {"policy_version", v.policy_version}, {"evaluated_at", format_ms(v.evaluated_at_ms)}};
  if (!v.set_by.empty()) j["set_by"] = v.set_by;
  j["expires_at"] = v.expires_at_ms ? nlohmann::json(format_ms(*v.expires_at_ms)) : nlohmann::json(nullptr);
  return j;
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
  return policy::parse_policy(text.str());
}

bool reload_policy(const Config& config, PolicyHolder& holder) {
  if (config.policy_file.empty()) {
    log_event("info", "policy reload: no policy file configured; the built-in policy stays");
    return false;
  }
  auto loaded = load_policy_file(config.policy_file);
  if (!loaded.policy) {
    log_event("error", "policy reload refused; the previous policy stays in force",
              {{"file", config.policy_file}, {"errors", loaded.errors}, {"version", holder.get()->version}});
    return false;
  }
  auto version = loaded.policy->version;
  holder.set(std::move(*loaded.policy));
  log_event("info", "policy reloaded", {{"file", config.policy_file}, {"version", version}, {"warnings", loaded.warnings}});
  return true;
}

int run_policy_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << policy_help;
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "check") return usage("unknown policy command " + args[0], "policy");
  if (args.size() != 2 || args[1].rfind("-", 0) == 0) return usage("policy check takes exactly one FILE", "policy");
  auto result = load_policy_file(args[1]);
  for (auto& w : result.warnings) std::cerr << args[1] << ": warning: " << w << "\n";
  for (auto& e : result.errors) std::cerr << args[1] << ": " << e << "\n";
  if (!result.policy) return 1;
  std::cout << args[1] << ": ok, version " << result.policy->version << "\n";
  for (auto& scope : result.policy->scopes)
    std::cout << "  scope " << scope.name << ": upstream " << scope.upstream << ", repository " << scope.repository
              << ", mode " << policy::to_string(scope.mode) << ", unknown " << policy::to_string(scope.unknown)
              << ", " << scope.rules.size() << " rule" << (scope.rules.size() == 1 ? "" : "s") << "\n";
  std::cout << "  " << result.policy->exceptions.size() << " exception"
            << (result.policy->exceptions.size() == 1 ? "" : "s") << "\n";
  return 0;
}

int run_verdict_command(const std::vector<std::string>& all) {
  if (all.empty() || all[0] == "--help" || all[0] == "-h") {
    std::cout << verdict_help;
    return all.empty() ? 2 : 0;
  }
  const std::string command = all[0];
  std::vector<std::string> positional;
  std::string data_dir, config_file, reason, by, decision_filter, source_filter, expires_in;
  std::size_t limit = 1000;
  for (std::size_t i = 1; i < all.size(); ++i) {
    const auto& a = all[i];
    if (a == "--help" || a == "-h") {
      std::cout << verdict_help;
      return 0;
    }
    if (a.rfind("--", 0) == 0) {
      if (i + 1 >= all.size()) return usage(a + " needs a value", "verdict");
      const auto& v = all[++i];
      if (a == "--data") data_dir = v;
      else if (a == "--config") config_file = v;
      else if (a == "--reason") reason = v;
      else if (a == "--by") by = v;
      else if (a == "--decision") decision_filter = v;
      else if (a == "--source") source_filter = v;
      else if (a == "--expires-in") expires_in = v;
      else if (a == "--limit") {
        char* end = nullptr;
        limit = std::strtoul(v.c_str(), &end, 10);
        if (v.empty() || *end || limit == 0) return usage("--limit must be a positive number", "verdict");
      } else {
        return usage("unknown option " + a, "verdict");
      }
    } else {
      positional.push_back(a);
    }
  }

  Config config = default_config();
  if (!config_file.empty()) {
    auto loaded = load_config_file(config_file);
    if (!loaded.errors.empty()) {
      std::cerr << "pullgate: " << config_file << ": " << loaded.errors.front() << "\n";
      return 1;
    }
    config = loaded.config;
  }
  if (!data_dir.empty()) config.data_dir = data_dir;

  auto digest_arg = [&]() -> std::optional<registry::Digest> {
    if (positional.empty()) return std::nullopt;
    return registry::Digest::parse(positional[0]);
  };
  std::size_t want = command == "set" ? 2 : command == "ls" ? 0 : 1;
  if (command != "set" && command != "get" && command != "ls" && command != "rm")
    return usage("unknown verdict command " + command, "verdict");
  if (positional.size() != want)
    return usage("verdict " + command + " takes " + (want == 0 ? std::string("no arguments")
                                                               : want == 1 ? "DIGEST" : "DIGEST and a decision"),
                 "verdict");
  std::optional<registry::Digest> digest;
  if (want >= 1) {
    digest = digest_arg();
    if (!digest) return usage("not a digest: " + positional[0] + " (sha256:<64 hex> or sha512:<128 hex>)", "verdict");
  }

  if (!std::filesystem::exists(config.data_dir / "lmdb")) {
    std::cerr << "pullgate: no cache at " << config.data_dir.string() << " (give --data DIR or --config FILE)\n";
    return 1;
  }
  std::unique_ptr<cache::MetaStore> meta;
  try {
    meta = cache::MetaStore::open(config.data_dir / "lmdb", config.lmdb_map_size_mb * 1024 * 1024);
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }

  if (command == "set") {
    auto decision = policy::parse_decision(positional[1]);
    if (!decision) return usage("the decision must be allow, warn or deny, not " + positional[1], "verdict");
    cache::VerdictRecord record;
    record.decision = positional[1];
    record.source = "manual";
    record.reasons = {reason.empty() ? "manual verdict" : reason};
    record.set_by = by.empty() ? (std::getenv("USER") ? std::getenv("USER") : "cli") : by;
    record.evaluated_at_ms = now_ms();
    if (!expires_in.empty()) {
      auto ms = parse_duration(expires_in);
      if (!ms) return usage("--expires-in takes a duration such as 30m, 12h or 7d", "verdict");
      record.expires_at_ms = record.evaluated_at_ms + *ms;
    }
    meta->put_verdict(*digest, record);
    std::cout << verdict_json(*digest, record).dump() << "\n";
    return 0;
  }
  if (command == "get") {
    auto record = meta->get_verdict(*digest);
    if (!record) {
      std::cerr << "pullgate: no verdict stored for " << digest->str() << "\n";
      return 1;
    }
    std::cout << verdict_json(*digest, *record).dump(2) << "\n";
    return 0;
  }
  if (command == "rm") {
    if (!meta->remove_verdict(*digest)) {
      std::cerr << "pullgate: no verdict stored for " << digest->str() << "\n";
      return 1;
    }
    std::cout << "removed verdict for " << digest->str() << "\n";
    return 0;
  }
  cache::VerdictFilter filter;
  if (!decision_filter.empty()) filter.decision = decision_filter;
  if (!source_filter.empty()) filter.source = source_filter;
  filter.limit = limit;
  for (auto& [d, v] : meta->list_verdicts(filter)) std::cout << verdict_json(d, v).dump() << "\n";
  return 0;
}

}  // namespace pullgate::proxy
