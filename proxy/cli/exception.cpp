// `pullgate exception add|ls|rm`
#include <iostream>
#include <set>

#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/records.hpp"

namespace pullgate::proxy::cli {

const char exception_help[] = R"(Usage:
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

int run_exception(const std::vector<std::string>& all) {
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
    if (command == "add" || command == "rm") {
      auto writes = cli_writes(*config, *meta);
      if (!writes) return 1;
      if (command == "add") {
        if (!writes->writes->add_exception(record)) {
          std::cerr << "pullgate: an exception with id " << record.id << " exists; remove it first\n";
          return 1;
        }
        std::cout << exception_json(record, now_ms()).dump() << "\n";
        return 0;
      }
      if (!writes->writes->remove_exception(cli.positional[0])) {
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

}  // namespace pullgate::proxy::cli
