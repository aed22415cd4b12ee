// `pullgate cache du`, `pullgate cache verify`
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "cache/garbage.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"

namespace pullgate::proxy::cli {

const char cache_help[] = R"(Usage: pullgate cache du [--data DIR | --config FILE]
       pullgate cache verify [--grace DURATION] [--data DIR | --config FILE]

What the cache holds, from its LMDB records, as one JSON line: blob files and their
bytes, manifests and cached answers (tag lists, referrers) and theirs, and the total
that cache.max_size is compared with (docs/cache.md). Reads only; works while the
server runs.

verify re-hashes every blob file and repairs what it finds, one line each: a file
whose bytes do not match its digest is removed with its record (the next pull fetches
it again), a record without a file is removed, a file without a record and a temp
file no download holds are removed when unchanged for --grace (default 1h; a publish
or import in progress is younger). Then one JSON summary line. Exit 0: clean, 1:
something found and repaired, 2: usage or a file it could not read or remove. Safe
while the server runs (docs/cache.md, "Garbage and verify").
)";

int run_cache_verify(const std::vector<std::string>& all) {
  auto cli = parse_cli(all, 1, {"--data", "--config", "--grace"});
  if (cli.help) {
    std::cout << cache_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "cache");
  if (!cli.positional.empty()) return usage("cache verify takes no arguments", "cache");
  cache::GarbageOptions options;
  options.hash = true;
  options.now_ms = now_ms();
  if (auto* grace = cli.get("--grace")) {
    auto ms = *grace == "0" || *grace == "0s" ? std::optional<std::int64_t>(0) : parse_duration_ms(*grace);
    if (!ms) return usage("--grace takes a duration such as 1h, 15m, 0s: " + *grace, "cache");
    options.grace_ms = *ms;
  }
  auto config = cli_config(cli);
  if (!config) return 2;
  auto meta = open_existing_store(*config);
  if (!meta) return 2;
  std::optional<cache::GarbageReport> report;
  try {
    // Temp files are the server's downloads in progress: never removed at opening.
    cache::BlobStore blobs(config->data_dir, cache::BlobStore::Leftovers::keep);
    report = cache::collect_blob_garbage(blobs, *meta, options, [](const cache::GarbageFinding& f) {
      nlohmann::json line = {{"found", cache::to_string(f.kind)}, {"path", f.path.string()}, {"removed", f.removed}};
      if (!f.digest.empty()) line["digest"] = f.digest;
      if (f.bytes) line["bytes"] = f.bytes;
      if (!f.detail.empty()) line["detail"] = f.detail;
      std::cout << line.dump() << "\n";
    });
  } catch (const std::exception& e) {
    std::cerr << "pullgate: cache verify: " << e.what() << "\n";
    return 2;
  }
  nlohmann::json out = {{"files_checked", report->files_checked}, {"bytes_checked", report->bytes_checked},
                        {"mismatched", report->mismatched},       {"orphan_files", report->orphan_files},
                        {"missing_files", report->missing_files}, {"stale_temps", report->stale_temps},
                        {"removed", report->removed},             {"bytes_removed", report->bytes_removed},
                        {"recent_orphans", report->recent_orphans}, {"temps_in_use", report->temps_in_use},
                        {"other_files", report->other_files},     {"errors", report->errors}};
  if (!report->first_error.empty()) out["first_error"] = report->first_error;
  std::cout << out.dump() << "\n";
  if (report->errors) return 2;
  return report->found() ? 1 : 0;
}

int run_cache(const std::vector<std::string>& all) {
  if (all[0] == "verify") return run_cache_verify(all);
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
