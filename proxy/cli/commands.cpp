#include "proxy/cli/commands.hpp"

#include "proxy/gate/reports.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "cache/meta_store.hpp"
#include "policy/signature.hpp"
#include "proxy/gate/explain.hpp"
#include "proxy/gate/policy_file.hpp"
#include "proxy/gate/records.hpp"
#include "proxy/telemetry/log.hpp"

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
verdicts (one per policy scope) are computed again when the policy changes.
)";

int usage(const std::string& message, const char* command) {
  std::cerr << "pullgate: " << message << " (see `pullgate " << command << " --help`)\n";
  return 2;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using policy::format_ms;

// "30m", "12h", "7d", "90s" -> milliseconds; positive and at most 100 years
// (policy::max_expiry_ms), else nullopt.
std::optional<std::int64_t> parse_duration(const std::string& text) {
  if (text.size() < 2 || text.size() > 12) return std::nullopt;
  std::int64_t n = 0;  // at most 11 digits: no overflow here
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    n = n * 10 + (text[i] - '0');
  }
  std::int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1000; break;
    case 'm': unit = 60'000; break;
    case 'h': unit = 3'600'000; break;
    case 'd': unit = 86'400'000; break;
    default: return std::nullopt;
  }
  if (n <= 0 || n > policy::max_expiry_ms / unit) return std::nullopt;
  return n * unit;
}

constexpr const char* exception_help = R"(Usage:
  pullgate exception add --id ID (--digest DIGEST | --repository GLOB) [--upstream GLOB]
                         --reason TEXT --by WHO (--expires-in DURATION | --expires RFC3339)
  pullgate exception ls
  pullgate exception rm ID
Each takes --data DIR or --config FILE to find the cache (default ./pullgate-data).

A run-time exception allows matching images regardless of rules and verdicts until
it expires, exactly like one written in the policy (see docs/policy.md); the policy's
own exceptions are consulted first. It applies to the next pull, also while the
server runs. DURATION: 90s, 30m, 12h, 7d. `ls` prints one JSON line per exception.
)";

constexpr const char* explain_help = R"(Usage:
  pullgate explain UPSTREAM/REPOSITORY:TAG [options]
  pullgate explain UPSTREAM/REPOSITORY@DIGEST [options]
  pullgate explain DIGEST [--upstream NAME] [--repository REPO] [options]
Options: --config FILE, or --data DIR and --policy FILE (default: the config's
policy, else the built-in allow-all policy).

Prints, as JSON, what the gate decides now for the image and why: the tag as this
mirror cached it (the upstream is never contacted), the decision, whether it is
served, the scope, mode, source and reasons, the exception that applied, the stored
verdict and whether it still counts, and the manifests that reference the digest.
UPSTREAM is a configured upstream name (e.g. docker.io or 127.0.0.1:5000); without
--config, the first component is taken as the upstream when it looks like a host.
Exit status: 0 explained, 1 unknown image or bad input, 2 usage error.
)";

constexpr const char* audit_help = R"(Usage: pullgate audit [--file PATH | --config FILE | --data DIR] [filters]
Filters (all must hold):
  --digest DIGEST        the request's digest
  --repository GLOB      the repository (globs as in docs/policy.md)
  --decision D           allow, warn or deny
  --client ADDR          the client, as ADDR:PORT or ADDR alone
  --since RFC3339        at or after this time
  --served true|false    whether it was served
  --limit N              only the last N matching records

Prints the matching audit records (JSON lines), oldest first, reading the rotated
files <path>.N .. <path>.1 before <path>. Malformed lines are skipped and counted
on stderr.
)";

// Options of the form --name VALUE, each at most once, and positional arguments.
struct CliArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
  bool help = false;
  std::string error;  // a usage error, one line

  const std::string* get(const std::string& name) const {
    auto it = options.find(name);
    return it == options.end() ? nullptr : &it->second;
  }
};

CliArgs parse_cli(const std::vector<std::string>& args, std::size_t start, const std::set<std::string>& known) {
  CliArgs out;
  for (std::size_t i = start; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--help" || a == "-h") {
      out.help = true;
      return out;
    }
    if (a.rfind("--", 0) == 0) {
      if (!known.count(a)) {
        out.error = "unknown option " + a;
        return out;
      }
      if (i + 1 >= args.size()) {
        out.error = a + " needs a value";
        return out;
      }
      if (!out.options.emplace(a, args[++i]).second) {
        out.error = a + " given twice";
        return out;
      }
    } else {
      out.positional.push_back(a);
    }
  }
  return out;
}

// The config named by --config (or the defaults), with --data applied. Prints the
// error and returns nullopt when the config file is unusable.
std::optional<Config> cli_config(const CliArgs& cli) {
  Config config = default_config();
  if (auto* file = cli.get("--config")) {
    auto loaded = load_config_file(*file);
    if (!loaded.errors.empty()) {
      std::cerr << "pullgate: " << *file << ": " << loaded.errors.front() << "\n";
      return std::nullopt;
    }
    config = loaded.config;
  }
  if (auto* dir = cli.get("--data")) config.data_dir = *dir;
  return config;
}

// The existing LMDB environment of the config; never creates one (a typo in --data
// must not look like an empty cache). Prints the error and returns null.
std::unique_ptr<cache::MetaStore> open_existing_store(const Config& config) {
  if (!std::filesystem::exists(config.data_dir / "lmdb")) {
    std::cerr << "pullgate: no cache at " << config.data_dir.string() << " (give --data DIR or --config FILE)\n";
    return nullptr;
  }
  try {
    auto meta = cache::MetaStore::open(config.data_dir / "lmdb", config.lmdb_map_size_mb * 1024 * 1024);
    if (auto stale = meta->stale_readers_cleared())
      std::cerr << "pullgate: cleared " << stale << " stale LMDB reader(s) of processes that died mid-read\n";
    return meta;
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return nullptr;
  }
}

}  // namespace

namespace {

// The audit log's own time format: fixed width UTC with milliseconds, so that
// comparing the strings compares the times.
std::string audit_time(policy::TimePoint t) { return policy::format_rfc3339(t, policy::Fraction::milliseconds); }

bool is_audit_time(const std::string& s) {
  // YYYY-MM-DDTHH:MM:SS.mmmZ
  return s.size() == 24 && s[10] == 'T' && s[19] == '.' && s[23] == 'Z' && policy::parse_rfc3339(s);
}
}  // namespace

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

  auto meta = open_existing_store(config);
  if (!meta) return 1;

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
      if (!ms) return usage("--expires-in takes a duration such as 30m, 12h or 7d (more than 0, at most 100 years)",
                            "verdict");
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

int run_exception_command(const std::vector<std::string>& all) {
  if (all.empty() || all[0] == "--help" || all[0] == "-h") {
    std::cout << exception_help;
    return all.empty() ? 2 : 0;
  }
  const std::string command = all[0];
  if (command != "add" && command != "ls" && command != "rm")
    return usage("unknown exception command " + command, "exception");
  std::set<std::string> known = {"--data", "--config"};
  if (command == "add")
    known.insert({"--id", "--digest", "--repository", "--upstream", "--reason", "--by", "--expires-in", "--expires"});
  auto cli = parse_cli(all, 1, known);
  if (cli.help) {
    std::cout << exception_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "exception");
  const std::size_t want = command == "rm" ? 1 : 0;
  if (cli.positional.size() != want)
    return usage("exception " + command + " takes " + (want ? "exactly one ID" : std::string("no arguments")) +
                     (cli.positional.size() > want ? ", not " + cli.positional[want] : std::string()),
                 "exception");

  nlohmann::json fields;
  cache::ExceptionRecord record;
  if (command == "add") {
    for (const char* required : {"--id", "--reason", "--by"})
      if (!cli.get(required)) return usage(std::string("exception add needs ") + required, "exception");
    if (!cli.get("--digest") && !cli.get("--repository"))
      return usage("exception add needs --digest or --repository (or both)", "exception");
    if (!!cli.get("--expires-in") == !!cli.get("--expires"))
      return usage("exception add needs exactly one of --expires-in and --expires", "exception");
    record.created_at_ms = now_ms();
    std::string expires;
    if (auto* in = cli.get("--expires-in")) {
      auto ms = parse_duration(*in);
      if (!ms)
        return usage("--expires-in takes a duration such as 90s, 30m, 12h or 7d (more than 0, at most 100 years)",
                     "exception");
      expires = audit_time(policy::time_from_ms(record.created_at_ms + *ms));
    } else {
      expires = *cli.get("--expires");
    }
    fields = {{"id", *cli.get("--id")}, {"reason", *cli.get("--reason")}, {"who", *cli.get("--by")},
              {"expires", expires}};
    for (const char* name : {"--digest", "--repository", "--upstream"})
      if (auto* v = cli.get(name)) fields[std::string(name + 2)] = *v;
    CheckedException checked;
    try {
      checked = check_exception(fields);
    } catch (const nlohmann::json::exception&) {
      // dump() refuses text that is not UTF-8.
      std::cerr << "pullgate: exception fields must be UTF-8 text\n";
      return 1;
    }
    if (!checked.errors.empty()) {
      std::cerr << "pullgate: " << checked.errors.front() << "\n";
      return 1;
    }
    auto expires_ms = policy::ms_of(*checked.expires);
    if (expires_ms <= record.created_at_ms) {
      std::cerr << "pullgate: --expires " << expires << " is in the past; the exception would never apply\n";
      return 1;
    }
    record.id = *cli.get("--id");
    record.reason = *cli.get("--reason");
    record.who = *cli.get("--by");
    if (auto* v = cli.get("--digest")) record.digest = *v;
    if (auto* v = cli.get("--repository")) record.repository = *v;
    if (auto* v = cli.get("--upstream")) record.upstream = *v;
    record.expires_at_ms = expires_ms;
  }

  auto config = cli_config(cli);
  if (!config) return 1;
  auto meta = open_existing_store(*config);
  if (!meta) return 1;

  try {
    if (command == "add") {
      if (meta->get_exception(record.id)) {
        std::cerr << "pullgate: an exception with id " << record.id << " exists; remove it first\n";
        return 1;
      }
      meta->put_exception(record);
      std::cout << exception_json(record, now_ms()).dump() << "\n";
      return 0;
    }
    if (command == "rm") {
      if (!meta->remove_exception(cli.positional[0])) {
        std::cerr << "pullgate: no exception with id " << cli.positional[0] << "\n";
        return 1;
      }
      std::cout << "removed exception " << cli.positional[0] << "\n";
      return 0;
    }
    const auto now = now_ms();
    for (auto& r : meta->list_exceptions()) std::cout << exception_json(r, now).dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int run_explain_command(const std::vector<std::string>& all) {
  auto cli = parse_cli(all, 0, {"--data", "--config", "--policy", "--upstream", "--repository"});
  if (cli.help) {
    std::cout << explain_help;
    return 0;
  }
  if (all.empty()) {
    std::cout << explain_help;
    return 2;
  }
  if (!cli.error.empty()) return usage(cli.error, "explain");
  if (cli.positional.size() != 1) return usage("explain takes exactly one IMAGE or DIGEST", "explain");
  const std::string& target = cli.positional[0];
  const bool bare_digest = registry::Digest::parse(target).has_value();
  if (!bare_digest && (cli.get("--upstream") || cli.get("--repository")))
    return usage("--upstream and --repository are for a bare DIGEST; an IMAGE names its own", "explain");

  auto config = cli_config(cli);
  if (!config) return 1;

  policy::Policy policy = default_policy();
  std::string policy_file = cli.get("--policy") ? *cli.get("--policy") : config->policy_file;
  if (!policy_file.empty()) {
    auto loaded = load_policy_file(policy_file);
    if (!loaded.policy) {
      std::cerr << "pullgate: " << policy_file << ": " << loaded.errors.front() << "\n";
      return 1;
    }
    policy = std::move(*loaded.policy);
  }

  std::vector<UpstreamName> upstreams;
  for (auto& u : config->upstreams) upstreams.push_back(UpstreamName{u.settings.name, u.aliases, u.docker_hub});
  if (!cli.get("--config")) {
    // No config to name the upstreams: as docker does, a first component with a
    // '.' or ':' (or "localhost") is a registry host.
    auto slash = target.find('/');
    auto first = target.substr(0, slash == std::string::npos ? 0 : slash);
    if (first.find_first_of(".:") != std::string::npos || first == "localhost")
      upstreams.push_back(UpstreamName{first, {}, false});
  }
  auto parsed = parse_explain_query(target, upstreams, cli.get("--upstream") ? *cli.get("--upstream") : "",
                                    cli.get("--repository") ? *cli.get("--repository") : "");
  if (!parsed.query) {
    std::cerr << "pullgate: " << parsed.error << "\n";
    return 1;
  }

  auto meta = open_existing_store(*config);
  if (!meta) return 1;
  try {
    auto extra = to_policy_exceptions(meta->list_exceptions());
    auto answer = explain(*meta, policy, extra, *parsed.query, policy::Clock::now());
    if (answer.contains("error")) {
      std::cerr << "pullgate: " << answer["error"].get<std::string>() << "\n";
      return 1;
    }
    std::cout << answer.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int run_audit_command(const std::vector<std::string>& all) {
  auto cli = parse_cli(all, 0,
                       {"--file", "--config", "--data", "--digest", "--repository", "--decision", "--client",
                        "--since", "--served", "--limit"});
  if (cli.help) {
    std::cout << audit_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "audit");
  if (!cli.positional.empty()) return usage("audit takes no arguments, not " + cli.positional[0], "audit");
  if (cli.get("--file") && (cli.get("--config") || cli.get("--data")))
    return usage("--file names the log itself; give it without --config or --data", "audit");

  // Filters, checked before anything is read.
  auto* digest = cli.get("--digest");
  if (digest && !registry::Digest::parse(*digest)) return usage("not a digest: " + *digest, "audit");
  auto* decision = cli.get("--decision");
  if (decision && !policy::parse_decision(*decision))
    return usage("--decision must be allow, warn or deny, not " + *decision, "audit");
  auto* repository = cli.get("--repository");
  auto* client = cli.get("--client");
  std::optional<std::string> since;
  if (auto* s = cli.get("--since")) {
    auto t = policy::parse_rfc3339(*s);
    if (!t) return usage("--since takes an RFC 3339 time such as 2026-12-01T00:00:00Z, not " + *s, "audit");
    since = audit_time(*t);
  }
  std::optional<bool> served;
  if (auto* s = cli.get("--served")) {
    if (*s != "true" && *s != "false") return usage("--served must be true or false", "audit");
    served = *s == "true";
  }
  std::size_t limit = 0;  // 0: all
  if (auto* l = cli.get("--limit")) {
    char* end = nullptr;
    errno = 0;
    limit = std::strtoul(l->c_str(), &end, 10);
    if (l->empty() || *end || errno || limit == 0 || (*l)[0] == '-')
      return usage("--limit must be a positive number", "audit");
  }

  std::filesystem::path path;
  if (auto* f = cli.get("--file")) {
    path = *f;
  } else {
    auto config = cli_config(cli);
    if (!config) return 1;
    path = config->audit_log_path();
  }

  // Rotated files first, oldest (highest number) first.
  std::vector<std::filesystem::path> files;
  for (unsigned n = 1; n < 10000; ++n) {
    std::filesystem::path rotated = path.string() + "." + std::to_string(n);
    if (!std::filesystem::exists(rotated)) break;
    files.insert(files.begin(), rotated);
  }
  if (std::filesystem::exists(path)) files.push_back(path);
  if (files.empty()) {
    std::cerr << "pullgate: no audit log at " << path.string() << "\n";
    return 1;
  }

  auto text_is = [](const nlohmann::json& j, const char* name, const std::string& want) {
    auto it = j.find(name);
    return it != j.end() && it->is_string() && it->get_ref<const std::string&>() == want;
  };
  std::deque<std::string> matches;
  std::uint64_t malformed = 0;
  for (auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "pullgate: cannot read " << file.string() << "\n";
      return 1;
    }
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      auto time = j.is_object() ? j.find("time") : j.end();
      if (!j.is_object() || time == j.end() || !time->is_string() || !is_audit_time(time->get<std::string>())) {
        ++malformed;
        continue;
      }
      if (digest && !text_is(j, "digest", *digest)) continue;
      if (decision && !text_is(j, "decision", *decision)) continue;
      if (repository) {
        auto it = j.find("repository");
        if (it == j.end() || !it->is_string() || !policy::glob_match(*repository, it->get<std::string>())) continue;
      }
      if (client) {
        auto it = j.find("client");
        if (it == j.end() || !it->is_string()) continue;
        const auto& c = it->get_ref<const std::string&>();
        // ADDR alone matches ADDR:PORT (the last ':' separates the port).
        auto colon = c.rfind(':');
        if (c != *client && (colon == std::string::npos || c.substr(0, colon) != *client)) continue;
      }
      if (since && time->get<std::string>() < *since) continue;
      if (served) {
        auto it = j.find("served");
        if (it == j.end() || !it->is_boolean() || it->get<bool>() != *served) continue;
      }
      matches.push_back(std::move(line));
      if (limit && matches.size() > limit) matches.pop_front();
    }
  }
  for (auto& m : matches) std::cout << m << "\n";
  if (malformed)
    std::cerr << "pullgate: skipped " << malformed << " malformed line" << (malformed == 1 ? "" : "s") << "\n";
  return 0;
}

namespace {

constexpr const char* report_help = R"(Usage:
  pullgate report import FILE [--digest DIGEST]   file a Trivy or Grype JSON report ("-": stdin)
  pullgate report get DIGEST                      the stored summary with its findings
  pullgate pending ls [--limit N]                 digests awaiting a scan, oldest first
Each takes --data DIR or --config FILE to find the cache (default ./pullgate-data).

A report is filed under the MANIFEST digest it names (Trivy: Metadata.RepoDigests,
never ImageID, which is the config digest; Grype: source.target.manifestDigest).
--digest files a report that names none, and must match one that does. Importing
ends the digest's wait in the pending queue and makes the next pull decide again.
Works while the server runs.
)";

}  // namespace

int run_report_command(const std::vector<std::string>& all) {
  if (all.empty() || all[0] == "--help" || all[0] == "-h") {
    std::cout << report_help;
    return all.empty() ? 2 : 0;
  }
  const std::string command = all[0];
  if (command != "import" && command != "get") return usage("unknown report command " + command, "report");
  auto cli = parse_cli(all, 1, {"--data", "--config", "--digest"});
  if (cli.help) {
    std::cout << report_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "report");
  if (cli.positional.size() != 1)
    return usage("report " + command + " takes exactly one " + (command == "import" ? "FILE" : "DIGEST"), "report");
  auto config = cli_config(cli);
  if (!config) return 1;

  if (command == "import") {
    std::string document;
    if (cli.positional[0] == "-") {
      std::stringstream in;
      in << std::cin.rdbuf();
      document = in.str();
    } else {
      std::ifstream in(cli.positional[0], std::ios::binary);
      if (!in) {
        std::cerr << "pullgate: cannot read report " << cli.positional[0] << "\n";
        return 1;
      }
      std::stringstream text;
      text << in.rdbuf();
      document = text.str();
    }
    auto meta = open_existing_store(*config);
    if (!meta) return 1;
    auto override_digest = cli.get("--digest") ? *cli.get("--digest") : std::string();
    auto result = import_report(*meta, document, override_digest, now_ms());
    if (!result.ok) {
      std::cerr << "pullgate: " << cli.positional[0] << ": " << result.error << "\n";
      return 1;
    }
    nlohmann::json out = result.summary;
    out["digest"] = result.digest;
    out["verdict_reset"] = result.replaced_verdict;
    std::cout << out.dump() << "\n";
    return 0;
  }
  auto digest = registry::Digest::parse(cli.positional[0]);
  if (!digest) return usage("not a digest: " + cli.positional[0], "report");
  auto meta = open_existing_store(*config);
  if (!meta) return 1;
  auto record = meta->get_report(*digest);
  if (!record) {
    std::cerr << "pullgate: no report stored for " << digest->str() << "\n";
    return 1;
  }
  std::cout << report_json(digest->str(), *record, true).dump(2) << "\n";
  return 0;
}

int run_pending_command(const std::vector<std::string>& all) {
  if (all.empty() || all[0] == "--help" || all[0] == "-h") {
    std::cout << report_help;
    return all.empty() ? 2 : 0;
  }
  if (all[0] != "ls") return usage("unknown pending command " + all[0], "pending");
  auto cli = parse_cli(all, 1, {"--data", "--config", "--limit"});
  if (cli.help) {
    std::cout << report_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "pending");
  if (!cli.positional.empty()) return usage("pending ls takes no arguments", "pending");
  std::size_t limit = 1000;
  if (auto* v = cli.get("--limit")) {
    char* end = nullptr;
    limit = std::strtoul(v->c_str(), &end, 10);
    if (v->empty() || *end || limit == 0) return usage("--limit must be a positive number", "pending");
  }
  auto config = cli_config(cli);
  if (!config) return 1;
  auto meta = open_existing_store(*config);
  if (!meta) return 1;
  for (auto& [digest, record] : meta->list_pending(limit)) std::cout << pending_json(digest.str(), record).dump() << "\n";
  return 0;
}

}  // namespace pullgate::proxy
