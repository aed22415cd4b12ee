// `pullgate verdict set|get|ls|rm`
#include <cstdlib>
#include <iostream>

#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/records.hpp"

namespace pullgate::proxy::cli {

const char verdict_help[] = R"(Usage:
  pullgate verdict set DIGEST allow|warn|deny [--reason TEXT] [--by WHO] [--expires-in DURATION]
  pullgate verdict get DIGEST
  pullgate verdict ls [--decision allow|warn|deny] [--source SOURCE] [--limit N]
  pullgate verdict rm DIGEST
Each takes --data DIR or --config FILE to find the cache (default ./pullgate-data).

A manual verdict decides its digest until it is removed or expires (DURATION: 30m,
12h, 7d). It applies to the next pull, also while the server runs. Computed
verdicts (one per policy scope) are computed again when the policy changes.
)";

int run_verdict(const std::vector<std::string>& all) {
  const std::string command = all[0];
  auto cli = parse_cli(all, 1,
                       {"--data", "--config", "--reason", "--by", "--decision", "--source", "--expires-in", "--limit"});
  if (cli.help) {
    std::cout << verdict_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "verdict");
  auto limit = limit_option(cli, 1000);
  if (!limit) return usage("--limit must be a positive number", "verdict");
  auto config = cli_config(cli);
  if (!config) return 1;
  // As given, "" when not given (which an empty value means too).
  auto text = [&cli](const char* name) { return cli.get(name) ? *cli.get(name) : std::string(); };
  const std::string reason = text("--reason"), by = text("--by"), expires_in = text("--expires-in");

  const auto& positional = cli.positional;
  std::size_t want = command == "set" ? 2 : command == "ls" ? 0 : 1;
  if (command != "set" && command != "get" && command != "ls" && command != "rm")
    return usage("unknown verdict command " + command, "verdict");
  if (positional.size() != want)
    return usage("verdict " + command + " takes " + (want == 0 ? std::string("no arguments")
                                                               : want == 1 ? "DIGEST" : "DIGEST and a decision"),
                 "verdict");
  std::optional<registry::Digest> digest;
  if (want >= 1) {
    digest = registry::Digest::parse(positional[0]);
    if (!digest) return usage("not a digest: " + positional[0] + " (sha256:<64 hex> or sha512:<128 hex>)", "verdict");
  }

  auto meta = open_existing_store(*config);
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
    auto writes = cli_writes(*config, *meta);
    if (!writes) return 1;
    try {
      writes->writes->put_verdict(*digest, record);
    } catch (const std::exception& e) {
      std::cerr << "pullgate: " << e.what() << "\n";
      return 1;
    }
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
    auto writes = cli_writes(*config, *meta);
    if (!writes) return 1;
    try {
      if (!writes->writes->remove_verdict(*digest)) {
        std::cerr << "pullgate: no verdict stored for " << digest->str() << "\n";
        return 1;
      }
    } catch (const std::exception& e) {
      std::cerr << "pullgate: " << e.what() << "\n";
      return 1;
    }
    std::cout << "removed verdict for " << digest->str() << "\n";
    return 0;
  }
  cache::VerdictFilter filter;
  if (!text("--decision").empty()) filter.decision = text("--decision");
  if (!text("--source").empty()) filter.source = text("--source");
  filter.limit = *limit;
  for (auto& [d, v] : meta->list_verdicts(filter)) std::cout << verdict_json(d, v).dump() << "\n";
  return 0;
}

}  // namespace pullgate::proxy::cli
