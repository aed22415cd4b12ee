// `pullgate policy check FILE`, `pullgate policy push FILE --config FILE`
#include <fstream>
#include <iostream>
#include <sstream>

#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/policy_file.hpp"

namespace pullgate::proxy::cli {

const char policy_help[] = R"(Usage:
  pullgate policy check FILE
  pullgate policy push FILE --config CONFIG

check validates a policy file as `serve` would (see docs/policy.md) and prints its
version (the sha256 of its bytes), its scopes, and one line per mistake.

push validates it as a policy kept in etcd (keys inline, "pem", not "pem_file") and
writes it to the fleet store named by CONFIG's fleet section (the key
<fleet.etcd.prefix>policy); every replica whose config says fleet.policy "etcd" puts it
in force as soon as its watch brings it (docs/fleet.md). Nothing is written when it
does not validate or etcd does not take it.
Exit status: 0 valid (and pushed), 1 invalid or not pushed, 2 usage error.
)";

namespace {

// etcd takes requests up to 1.5 MiB by default; a policy is far smaller.
constexpr std::size_t max_pushed_policy_bytes = 1 << 20;

int push_policy(const std::vector<std::string>& args) {
  auto cli = parse_cli(args, 1, {"--config", "--data"});
  if (cli.help) {
    std::cout << policy_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "policy");
  if (cli.positional.size() != 1) return usage("policy push takes exactly one FILE", "policy");
  if (!cli.get("--config")) return usage("policy push needs --config (its fleet section names etcd)", "policy");
  const auto& file = cli.positional[0];
  auto config = cli_config(cli);
  if (!config) return 1;
  if (!config->fleet.enabled()) {
    std::cerr << "pullgate: " << *cli.get("--config") << " has no fleet store (fleet.etcd.endpoints) to push to\n";
    return 1;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << file << ": cannot read the policy file\n";
    return 1;
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().size() > max_pushed_policy_bytes) {
    std::cerr << file << ": larger than 1 MiB; etcd would refuse it\n";
    return 1;
  }
  auto result = parse_fleet_policy(text.str());
  for (auto& w : result.warnings) std::cerr << file << ": warning: " << w << "\n";
  for (auto& e : result.errors) std::cerr << file << ": " << e << "\n";
  if (!result.policy) return 1;
  auto meta = open_existing_store(*config);
  if (!meta) return 1;
  auto writes = cli_writes(*config, *meta);
  if (!writes) return 1;
  try {
    auto revision = writes->fleet->put_policy(text.str());
    std::cout << file << ": pushed, version " << result.policy->version << " (etcd revision " << revision
              << "); replicas with fleet.policy \"etcd\" put it in force as their watch brings it\n";
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
  if (!config->fleet.policy_in_etcd())
    std::cerr << "pullgate: note: " << *cli.get("--config")
              << " says fleet.policy \"file\": the mirror it configures keeps reading gate.policy_file\n";
  return 0;
}

}  // namespace

int run_policy(const std::vector<std::string>& args) {
  if (args[0] == "push") return push_policy(args);
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

}  // namespace pullgate::proxy::cli
