// `pullgate explain IMAGE|DIGEST`
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "policy/access.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/explain.hpp"
#include "proxy/gate/policy_file.hpp"
#include "proxy/gate/records.hpp"

namespace pullgate::proxy::cli {

const char explain_help[] = R"(Usage:
  pullgate explain UPSTREAM/REPOSITORY:TAG [options]
  pullgate explain UPSTREAM/REPOSITORY@DIGEST [options]
  pullgate explain DIGEST [--upstream NAME] [--repository REPO] [options]
Options: --config FILE, or --data DIR; --policy FILE to decide under another policy;
--identity NAME to decide too whether NAME (or "anonymous") may pull it under the
policy's access section (README, "Who may pull").

It decides under the policy the server on that data directory runs (recorded there
each time one comes into force: its file, or the fleet's policy it keeps); without
such a record, under the config's policy, else the built-in allow-all policy. A note
on stderr says so when the policy it decided under is not the server's, or when the
server's file changed since the server loaded it.

Prints, as JSON, what the gate decides now for the image and why: the tag as this
mirror cached it (the upstream is never contacted), the decision, whether it is
served, the scope, mode, source and reasons, the exception that applied, the stored
verdict and whether it still counts, and the manifests that reference the digest.
UPSTREAM is a configured upstream name (e.g. docker.io or 127.0.0.1:5000); without
--config, the first component is taken as the upstream when it looks like a host.
Exit status: 0 explained, 1 unknown image or bad input, 2 usage error.
)";

namespace {

struct ChosenPolicy {
  policy::Policy policy;
  nlohmann::json about;  // which one, and the server's: the answer's "policy"
};

std::optional<ChosenPolicy> load_chosen(const std::string& file, nlohmann::json about) {
  auto loaded = load_policy_file(file);
  if (!loaded.policy) {
    std::cerr << "pullgate: " << file << ": " << loaded.errors.front() << "\n";
    return std::nullopt;
  }
  about["version"] = loaded.policy->version;
  return ChosenPolicy{std::move(*loaded.policy), std::move(about)};
}

std::string describe(const nlohmann::json& about) {
  std::string file = about.value("file", "");
  return (file.empty() ? std::string("the built-in allow-all policy") : file) + " (version " +
         about.value("version", "") + ")";
}

// --policy, else the server's (policy-in-force.json in the data directory), else the
// config's, else the built-in one; each case but the server's own says so on stderr.
std::optional<ChosenPolicy> choose_policy(const Config& config, const std::string* flag) {
  std::string error;
  auto server = read_policy_in_force(config.data_dir, error);
  if (!error.empty()) std::cerr << "pullgate: note: " << error << "\n";
  nlohmann::json server_json = nullptr;
  if (server) {
    bool running = server->pid > 0 && (::kill(static_cast<pid_t>(server->pid), 0) == 0 || errno == EPERM);
    server_json = {{"source", server->source}, {"file", server->file}, {"version", server->version},
                   {"since", audit_time(policy::TimePoint(std::chrono::milliseconds(server->since_ms)))},
                   {"running", running}};
  }
  auto about = [&](const char* used, const std::string& file) {
    return nlohmann::json{{"decided_under", used}, {"file", file}, {"server", server_json}};
  };
  const std::string where = config.data_dir.string();

  std::optional<ChosenPolicy> chosen;
  if (flag) {
    chosen = load_chosen(*flag, about("--policy", std::filesystem::absolute(*flag).string()));
  } else if (server && server->source == "built-in") {
    chosen = ChosenPolicy{default_policy(), about("server", "")};
    chosen->about["version"] = chosen->policy.version;
  } else if (server && server->source == "etcd") {
    auto kept = load_fleet_policy_copy(server->file);
    chosen = ChosenPolicy{kept ? std::move(*kept) : waiting_for_fleet_policy(), about("server", server->file)};
    chosen->about["version"] = chosen->policy.version;
  } else if (server) {
    chosen = load_chosen(server->file, about("server", server->file));
    if (!chosen) std::cerr << "pullgate: that is the policy the server on " << where << " runs; give --policy FILE\n";
  } else {
    std::string file = config.policy_file.empty() ? "" : std::filesystem::absolute(config.policy_file).string();
    chosen = file.empty() ? ChosenPolicy{default_policy(), about("built-in", "")}
                          : load_chosen(file, about("config", file));
    if (chosen && file.empty()) chosen->about["version"] = chosen->policy.version;
    if (chosen)
      std::cerr << "pullgate: note: no server has recorded its policy in " << where << "; deciding under "
                << describe(chosen->about) << "\n";
  }
  if (!chosen || !server) return chosen;

  const std::string& version = chosen->about["version"].get_ref<const std::string&>();
  if (flag && version != server->version)
    std::cerr << "pullgate: note: deciding under " << describe(chosen->about) << "; the server on " << where
              << " decides under " << describe(server_json) << "\n";
  else if (!flag && version != server->version)
    std::cerr << "pullgate: note: " << describe(chosen->about) << " is not what the server on " << where
              << " loaded (version " << server->version << "): it changed since; deciding under it as it is now. "
              << "The server applies it on reload (SIGHUP or POST /v1/policy/reload)\n";
  return chosen;
}

}  // namespace

int run_explain(const std::vector<std::string>& all) {
  auto cli = parse_cli(all, 0, {"--data", "--config", "--policy", "--upstream", "--repository", "--identity"});
  if (cli.help) {
    std::cout << explain_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "explain");
  if (cli.positional.size() != 1) return usage("explain takes exactly one IMAGE or DIGEST", "explain");
  const std::string& target = cli.positional[0];
  const bool bare_digest = registry::Digest::parse(target).has_value();
  if (!bare_digest && (cli.get("--upstream") || cli.get("--repository")))
    return usage("--upstream and --repository are for a bare DIGEST; an IMAGE names its own", "explain");

  auto config = cli_config(cli);
  if (!config) return 1;

  auto chosen = choose_policy(*config, cli.get("--policy"));
  if (!chosen) return 1;
  policy::Policy& policy = chosen->policy;

  auto upstreams = upstream_names(*config, !cli.get("--config"), target);
  auto parsed = parse_explain_query(target, upstreams, cli.get("--upstream") ? *cli.get("--upstream") : "",
                                    cli.get("--repository") ? *cli.get("--repository") : "");
  if (!parsed.query) {
    std::cerr << "pullgate: " << parsed.error << "\n";
    return 1;
  }
  if (auto* identity = cli.get("--identity")) {
    if (*identity != policy::anonymous_identity && !policy::is_identity_name(*identity))
      return usage("--identity takes an identity name (1 to 128 letters, digits, '.', '_', '-' or '@') or "
                   "anonymous, not \"" + *identity + "\"", "explain");
    if (parsed.query->repository.empty())
      return usage("--identity needs the repository: an IMAGE, or a DIGEST with --upstream and --repository",
                   "explain");
    parsed.query->identity = *identity;
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
    answer["policy"] = chosen->about;
    std::cout << answer.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace pullgate::proxy::cli
