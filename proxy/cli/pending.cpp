// `pullgate pending ls`
#include <iostream>

#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/records.hpp"

namespace pullgate::proxy::cli {

int run_pending(const std::vector<std::string>& all) {
  if (all[0] != "ls") return usage("unknown pending command " + all[0], "pending");
  auto cli = parse_cli(all, 1, {"--data", "--config", "--limit"});
  if (cli.help) {
    std::cout << report_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "pending");
  if (!cli.positional.empty()) return usage("pending ls takes no arguments", "pending");
  auto limit = limit_option(cli, 1000);
  if (!limit) return usage("--limit must be a positive number", "pending");
  auto config = cli_config(cli);
  if (!config) return 1;
  auto meta = open_existing_store(*config);
  if (!meta) return 1;
  for (auto& [digest, record] : meta->list_pending(*limit)) std::cout << pending_json(digest.str(), record).dump() << "\n";
  return 0;
}

}  // namespace pullgate::proxy::cli
