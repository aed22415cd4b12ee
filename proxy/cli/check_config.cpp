// `pullgate check-config FILE`
#include <iostream>

#include "proxy/access/tokens.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/config.hpp"

namespace pullgate::proxy::cli {

const char check_config_help[] = R"(Usage: pullgate check-config FILE

Validates FILE as pullgate would at start-up (the tokens file of
clients.tokens_file included) and prints one line per mistake. A registry
listener other hosts can reach with no client authentication is a warning.
Exit status: 0 valid, 1 invalid, 2 usage error.
)";

int run_check_config(const std::vector<std::string>& args) {
  if (args.size() == 1 && args[0].rfind("-", 0) == 0) return usage("unknown option " + args[0], "check-config");
  if (args.size() != 1) return usage("check-config takes exactly one FILE", "check-config");
  auto result = load_config_file(args[0]);
  if (result.errors.empty()) {
    std::vector<registry::PublicKey> keys;
    for (auto& e : load_bundle_keys(result.config, keys)) result.errors.push_back(std::move(e));
    if (!result.config.clients.tokens_file.empty()) {
      auto tokens = access::load_token_file(result.config.clients.tokens_file);
      if (auto* error = std::get_if<std::string>(&tokens)) result.errors.push_back("clients.tokens_file: " + *error);
    }
  }
  for (auto& e : result.errors) std::cerr << args[0] << ": " << e << "\n";
  if (!result.errors.empty()) return 1;
  if (auto open = open_listener_warning(result.config); !open.empty())
    std::cerr << args[0] << ": warning: " << open << "\n";
  std::cout << args[0] << ": ok (" << result.config.upstreams.size() << " upstream"
            << (result.config.upstreams.size() == 1 ? "" : "s") << ")\n";
  return 0;
}

}  // namespace pullgate::proxy::cli
