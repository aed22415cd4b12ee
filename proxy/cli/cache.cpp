// `pullgate cache du`
#include <iostream>

#include <nlohmann/json.hpp>

#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"

namespace pullgate::proxy::cli {

const char cache_help[] = R"(Usage: pullgate cache du [--data DIR | --config FILE]

What the cache holds, from its LMDB records, as one JSON line: blob files and their
bytes, manifests and cached answers (tag lists, referrers) and theirs, and the total
that cache.max_size is compared with (docs/cache.md). Reads only; works while the
server runs.
)";

int run_cache(const std::vector<std::string>& all) {
  if (all[0] != "du") return usage("unknown cache command " + all[0], "cache");
  auto cli = parse_cli(all, 1, {"--data", "--config"});
  if (cli.help) {
    std::cout << cache_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "cache");
  if (!cli.positional.empty()) return usage("cache du takes no arguments", "cache");
  auto config = cli_config(cli);
  if (!config) return 1;
  auto meta = open_existing_store(*config);
  if (!meta) return 1;
  std::uint64_t blob_files = 0, blob_bytes = 0, manifests = 0, manifest_bytes = 0, response_bytes = 0;
  for (const auto& [digest, record] : meta->list_blobs()) {
    ++blob_files;
    blob_bytes += record.size;
  }
  meta->for_each_manifest([&](const registry::Digest&, const cache::ManifestRecord& record) {
    ++manifests;
    manifest_bytes += record.bytes.size();
  });
  auto responses = meta->list_responses();
  for (const auto& response : responses) response_bytes += response.bytes;
  nlohmann::json out = {{"bytes", blob_bytes + manifest_bytes + response_bytes},
                        {"blob_files", blob_files},
                        {"blob_bytes", blob_bytes},
                        {"manifests", manifests},
                        {"manifest_bytes", manifest_bytes},
                        {"responses", responses.size()},
                        {"response_bytes", response_bytes}};
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace pullgate::proxy::cli
