// `pullgate vex import|get|rm`
#include <iostream>

#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/vex_import.hpp"

namespace pullgate::proxy::cli {

const char vex_help[] = R"(Usage:
  pullgate vex import FILE [--digest DIGEST] [--by WHO]   file an OpenVEX or CycloneDX VEX document ("-": stdin)
  pullgate vex get DIGEST                                 the documents filed for a manifest digest
  pullgate vex rm DIGEST [--name NAME]                    remove one document (by name) or all of the digest's
Each takes --data DIR or --config FILE to find the cache (default ./pullgate-data).

A document is filed under every manifest digest its statements name (products as
pkg:oci/NAME@sha256:..., REFERENCE@sha256:... or the digest); --digest files it under
that one only (an in-toto statement's subject counts). Scopes whose vulnerabilities
policy has "vex": {"imported": true} set aside the findings a not_affected or fixed
statement covers; an affected statement never loosens. Importing or removing makes the
next pull decide again. Not with a fleet store (not shared through etcd yet).
Works while the server runs.
)";

int run_vex(const std::vector<std::string>& all) {
  const std::string command = all[0];
  if (command != "import" && command != "get" && command != "rm") return usage("unknown vex command " + command, "vex");
  auto cli = parse_cli(all, 1, {"--data", "--config", "--digest", "--by", "--name"});
  if (cli.help) {
    std::cout << vex_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "vex");
  if (cli.positional.size() != 1)
    return usage("vex " + command + " takes exactly one " + (command == "import" ? "FILE" : "DIGEST"), "vex");
  auto config = cli_config(cli);
  if (!config) return 1;
  auto meta = open_existing_store(*config);
  if (!meta) return 1;

  if (command == "import") {
    auto document = read_document(cli.positional[0]);
    if (!document) {
      std::cerr << "pullgate: cannot read VEX document " << cli.positional[0] << "\n";
      return 1;
    }
    auto writes = cli_writes(*config, *meta);
    if (!writes) return 1;
    VexImportResult result;
    try {
      result = import_vex(*writes->writes, *document, cli.get("--digest") ? *cli.get("--digest") : std::string(),
                          cli.get("--by") ? *cli.get("--by") : std::string(), now_ms());
    } catch (const std::exception& e) {
      std::cerr << "pullgate: " << e.what() << "\n";
      return 1;
    }
    if (!result.ok) {
      std::cerr << "pullgate: " << cli.positional[0] << ": " << result.error << "\n";
      return 1;
    }
    nlohmann::json out = {{"name", result.name},         {"digests", result.digests},
                          {"statements", result.statements}, {"statuses", result.statuses},
                          {"verdict_reset", result.replaced_verdict}};
    std::cout << out.dump() << "\n";
    return 0;
  }
  auto digest = registry::Digest::parse(cli.positional[0]);
  if (!digest) return usage("not a digest: " + cli.positional[0], "vex");
  if (command == "get") {
    auto records = meta->vex_for(*digest);
    if (records.empty()) {
      std::cerr << "pullgate: no VEX document filed for " << digest->str() << "\n";
      return 1;
    }
    std::cout << vex_json(digest->str(), records).dump(2) << "\n";
    return 0;
  }
  auto writes = cli_writes(*config, *meta);
  if (!writes) return 1;
  std::size_t removed = 0;
  try {
    removed = writes->writes->remove_vex(*digest, cli.get("--name") ? *cli.get("--name") : std::string());
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
  if (removed == 0) {
    std::cerr << "pullgate: no such VEX document filed for " << digest->str() << "\n";
    return 1;
  }
  std::cout << nlohmann::json{{"digest", digest->str()}, {"removed", removed}}.dump() << "\n";
  return 0;
}

}  // namespace pullgate::proxy::cli
