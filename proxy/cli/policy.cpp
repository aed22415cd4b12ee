// `pullgate policy check FILE`
#include <iostream>

#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/policy_file.hpp"

namespace pullgate::proxy::cli {

const char policy_help[] = R"(Usage: pullgate policy check FILE

Validates a policy file as `serve` would (see docs/policy.md) and prints its
version (the sha256 of its bytes), its scopes, and one line per mistake.
Exit status: 0 valid, 1 invalid, 2 usage error.
)";

int run_policy(const std::vector<std::string>& args) {
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
