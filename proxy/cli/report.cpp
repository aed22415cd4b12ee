// `pullgate report import|get`
#include <iostream>

#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/reports.hpp"

namespace pullgate::proxy::cli {

const char report_help[] = R"(Usage:
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

int run_report(const std::vector<std::string>& all) {
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
    auto document = read_document(cli.positional[0]);
    if (!document) {
      std::cerr << "pullgate: cannot read report " << cli.positional[0] << "\n";
      return 1;
    }
    auto meta = open_existing_store(*config);
    if (!meta) return 1;
    auto override_digest = cli.get("--digest") ? *cli.get("--digest") : std::string();
    auto writes = cli_writes(*config, *meta);
    if (!writes) return 1;
    ImportResult result;
    try {
      result = import_report(*writes->writes, *document, override_digest, now_ms());
    } catch (const std::exception& e) {
      std::cerr << "pullgate: " << e.what() << "\n";
      return 1;
    }
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

}  // namespace pullgate::proxy::cli
