// `pullgate explain IMAGE|DIGEST`
#include <iostream>

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

int run_explain(const std::vector<std::string>& all) {
  auto cli = parse_cli(all, 0, {"--data", "--config", "--policy", "--upstream", "--repository"});
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

  auto upstreams = upstream_names(*config, !cli.get("--config"), target);
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

}  // namespace pullgate::proxy::cli
