// `pullgate cache du|ls|evict|verify`
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "cache/blob_store.hpp"
#include "cache/data_lock.hpp"
#include "cache/evictor.hpp"
#include "cache/garbage.hpp"
#include "cache/inventory.hpp"
#include "proxy/admin/admin_call.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/cache_view.hpp"
#include "proxy/telemetry/progress.hpp"
#include "proxy/telemetry/log.hpp"

namespace pullgate::proxy::cli {

const char cache_help[] = R"(Usage: pullgate cache du [--data DIR | --config FILE]
       pullgate cache ls [--data DIR | --config FILE] [--sort size|pulled] [--limit N] [--json]
       pullgate cache evict [--data DIR | --config FILE] [--force] [--by WHO] IMAGE|DIGEST...
       pullgate cache verify [--grace DURATION] [--data DIR | --config FILE]

du: what the cache holds, from its LMDB records, as one JSON line: blob files and
their bytes, manifests and cached answers (tag lists, referrers) and theirs, and the
total that cache.max_size is compared with (docs/cache.md).

ls: the cached images (a root manifest with the child manifests it lists and their
blobs: the unit eviction removes), the largest first (--sort pulled: the least
recently pulled first, the order eviction by size takes), as a table, or one JSON
object a line with --json. SIZE counts what the image holds, ALONE what no other image
shares (what evicting it frees). Last pulls are those stored (the server writes them
every few seconds).

du and ls only read, and work while the server runs.

evict: removes the images named (UPSTREAM/REPOSITORY:TAG, UPSTREAM/REPOSITORY@DIGEST
or a manifest digest; a child manifest evicts the images listing it) now, as an
eviction run would: their manifests and the blobs no other image holds. A pinned image
(cache.pin, pullgate pin) is refused unless --force. When a server runs on the data
directory, it evicts: the command asks it through the admin API (POST
/v1/cache/evict, with the admin token of the config), as a running server holds the
cache in memory too.

verify re-hashes every blob file and repairs what it finds, one line each: a file
whose bytes do not match its digest is removed with its record (the next pull fetches
it again), a record without a file is removed, a file without a record and a temp
file no download holds are removed when unchanged for --grace (default 1h; a publish
or import in progress is younger). Then one JSON summary line. Exit 0: clean, 1:
something found and repaired, 2: usage or a file it could not read or remove. Safe
while the server runs (docs/cache.md, "Garbage and verify").
)";

namespace {

int du(const cache::CacheContents& contents) {
  std::cout << totals_json(cache::totals_of(contents)).dump() << "\n";
  return 0;
}

// The image's first name: UPSTREAM/REPOSITORY:TAG, else UPSTREAM/REPOSITORY@DIGEST.
std::string display_name(const cache::ListedImage& listed) {
  for (const auto& name : listed.names)
    if (!name.tags.empty()) return name.upstream + "/" + name.repository + ":" + name.tags.front();
  if (!listed.names.empty())
    return listed.names.front().upstream + "/" + listed.names.front().repository + "@" + listed.image.root.str();
  return listed.image.root.str();
}

void print_table(const cache::CacheInventory& inventory) {
  std::printf("%-60s %-19s %10s %10s %-24s %s\n", "IMAGE", "DIGEST", "SIZE", "ALONE", "LAST PULL", "PINNED");
  for (const auto& listed : inventory.images) {
    const auto& image = listed.image;
    std::printf("%-60s %-19s %10s %10s %-24s %s\n", display_name(listed).c_str(),
                image.root.str().substr(0, 19).c_str(), human_bytes(image.bytes).c_str(),
                human_bytes(image.bytes_alone).c_str(), policy::format_ms(image.last_pull_ms).c_str(),
                image.pinned ? "yes" : "");
  }
  std::printf("%zu of %zu images; cache %s, pinned %s\n", inventory.images.size(), inventory.image_count,
              human_bytes(inventory.totals.bytes).c_str(), human_bytes(inventory.pinned_bytes).c_str());
}

// Who evicts, for the log and the answer: --by, else "cli".
std::string by_of(const CliArgs& cli) { return cli.get("--by") ? *cli.get("--by") : std::string("cli"); }

// The server running on the data directory evicts (POST /v1/cache/evict): its
// answer is printed as it came, or its error in one line.
int evict_through_server(const CliArgs& cli, bool force, const Config& config) {
  nlohmann::json request = {{"images", cli.positional}, {"force", force}, {"by", by_of(cli)}};
  AdminAnswer answer;
  try {
    answer = call_admin(config, "POST", "/v1/cache/evict", request.dump());
  } catch (const std::exception& e) {
    std::cerr << "pullgate: a server runs on " << config.data_dir.string() << " and evicts for it, but " << e.what()
              << "\n";
    return 1;
  }
  auto body = nlohmann::json::parse(answer.body, nullptr, false);
  if (answer.status == 200 && body.is_object()) {
    std::cout << body.dump() << "\n";
    return 0;
  }
  std::string error = body.is_object() && body.contains("error") && body["error"].is_string()
                          ? body["error"].get<std::string>()
                          : "HTTP " + std::to_string(answer.status);
  std::cerr << "pullgate: " << error << " (the server on " << config.data_dir.string() << ")\n";
  return 1;
}

int evict(const CliArgs& cli, bool force, const Config& config, cache::MetaStore& meta) {
  if (cli.positional.empty()) return usage("cache evict needs IMAGE or DIGEST", "cache");
  // A running server holds the cache in memory too (its manifest cache, its blob
  // locks): it must do the eviction itself.
  auto held = cache::try_hold_data_dir_exclusive(config.data_dir);
  if (!held) return evict_through_server(cli, force, config);
  std::vector<registry::Digest> manifests;
  for (const auto& image : cli.positional) {
    auto named = cache::find_cached_manifest(meta, image);
    if (!named.digest) {
      std::cerr << "pullgate: " << named.error << "\n";
      return 1;
    }
    manifests.push_back(*named.digest);
  }
  cache::BlobStore blobs(config.data_dir, cache::BlobStore::Leftovers::keep);
  cache::PullTimes pulls;
  cache::Evictor evictor(meta, blobs, pulls,
                         cache::EvictionLimits{config.cache_max_bytes, config.cache_high_watermark,
                                               config.cache_low_watermark, config.cache_max_unpulled_ms});
  const auto pins = cache::pins_in_force(meta, config.cache_pins);
  evictor.pins = [pins] { return pins; };
  auto done = evictor.evict_images(manifests, force);
  if (!done.result) {
    std::cerr << "pullgate: " << done.images.front().str() << " is pinned (cache.pin or pullgate pin); nothing evicted; --force evicts it anyway\n";
    return 1;
  }
  auto line = eviction_json(done.images, done.result->plan, done.pinned, by_of(cli));
  log_event("info", "manual eviction", {{"by", line["by"]}, {"images", line["evicted"]}, {"force", force},
                                         {"bytes_freed", line["bytes_freed"]}});
  std::cout << line.dump() << "\n";
  return 0;
}

}  // namespace

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
    TerminalProgress progress(stderr_is_terminal());
    const auto blob_files = meta->blob_count();
    options.on_progress = [&](std::uint64_t files, std::uint64_t bytes) {
      progress.show(progress_text("verify " + std::to_string(files) + "/" + std::to_string(blob_files) + " files", bytes,
                                  0, progress.seconds()));
    };
    report = cache::collect_blob_garbage(blobs, *meta, options, [&](const cache::GarbageFinding& f) {
      progress.clear();
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
  const auto& sub = all[0];
  if (sub == "verify") return run_cache_verify(all);
  if (sub != "du" && sub != "ls" && sub != "evict") return usage("unknown cache command " + sub, "cache");
  // --json and --force are switches; the rest take values.
  std::vector<std::string> args;
  bool json = false, force = false;
  for (const auto& a : all) {
    if (a == "--json") json = true;
    else if (a == "--force") force = true;
    else args.push_back(a);
  }
  auto cli = parse_cli(args, 1, {"--data", "--config", "--sort", "--limit", "--by"});
  if (cli.help) {
    std::cout << cache_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "cache");
  if (sub != "evict" && !cli.positional.empty()) return usage("cache " + sub + " takes no arguments", "cache");
  auto order = cache::parse_image_order(cli.get("--sort") ? *cli.get("--sort") : "size");
  if (!order) return usage("--sort must be size or pulled", "cache");
  auto limit = limit_option(cli, std::numeric_limits<std::size_t>::max());
  if (!limit) return usage("--limit must be a positive number", "cache");
  auto config = cli_config(cli);
  if (!config) return 1;
  auto meta = open_existing_store(*config);
  if (!meta) return 1;
  if (sub == "evict") return evict(cli, force, *config, *meta);
  cache::PullTimes pulls;  // none in memory here: the stored times
  if (sub == "du") return du(cache::read_cache(*meta, pulls).contents);
  auto inventory = cache::inventory_of(*meta, pulls, cache::pins_in_force(*meta, config->cache_pins), *order, *limit);
  if (json) {
    for (const auto& image : inventory.images) std::cout << image_json(image).dump() << "\n";
  } else {
    print_table(inventory);
  }
  return 0;
}

}  // namespace pullgate::proxy::cli
