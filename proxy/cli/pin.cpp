// `pullgate pin add|ls|rm`
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>

#include <nlohmann/json.hpp>

#include "cache/pins.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/cache_view.hpp"

namespace pullgate::proxy::cli {

const char pin_help[] = R"(Usage:
  pullgate pin add [--by WHO] [--note TEXT] PIN...
  pullgate pin ls [--json]
  pullgate pin rm PIN...
Each takes --data DIR or --config FILE to find the cache (default ./pullgate-data).

A PIN is UPSTREAM/REPOSITORY:TAG (what the tag points at when an eviction run reads
it), UPSTREAM/REPOSITORY@DIGEST (that manifest), or a pattern such as
docker.io/library/**:stable (what every cached tag it matches points at). Eviction
never removes a pinned image (docs/cache.md, "Pins"). Pins added here are stored in
the LMDB environment beside the config's cache.pin and apply from the next eviction
run, also while the server runs. Adding a pin that exists changes nothing.

ls lists the config's pins (source config) and the stored ones (source store), each
with what it keeps now: the cached manifests it resolves to (a tag that is not cached
keeps nothing). --json: one JSON object a line.

rm removes stored pins; a config pin is removed by editing the config.
)";

namespace {

// Untrusted text in one line: JSON-quoted, bytes that are not UTF-8 replaced.
std::string quoted(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The pins named on the command line as format_image_pin writes them, or nullopt
// after one line on stderr.
std::optional<std::vector<std::string>> parse_pins(const std::vector<std::string>& texts) {
  std::vector<std::string> out;
  for (const auto& text : texts) {
    std::string problem;
    auto pin = cache::parse_image_pin(text, &problem);
    if (!pin) {
      std::cerr << "pullgate: not a pin (UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@DIGEST): " << quoted(text)
                << ": " << problem << "\n";
      return std::nullopt;
    }
    out.push_back(cache::format_image_pin(*pin));
  }
  return out;
}

std::vector<std::string> config_pin_texts(const Config& config) {
  std::vector<std::string> out;
  for (const auto& text : config.cache_pins)
    if (auto pin = cache::parse_image_pin(text)) out.push_back(cache::format_image_pin(*pin));
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& text) {
  return std::find(list.begin(), list.end(), text) != list.end();
}

std::string default_who() {
  const char* user = std::getenv("USER");
  return user && *user ? user : "cli";
}

int add(const CliArgs& cli, const std::vector<std::string>& pins, const Config& config, cache::MetaStore& meta) {
  const auto from_config = config_pin_texts(config);
  for (const auto& text : pins) {
    if (contains(from_config, text)) {
      std::cout << text << " is pinned by the config (cache.pin) already; unchanged\n";
      continue;
    }
    cache::PinRecord record{text, cli.get("--by") ? *cli.get("--by") : default_who(), now_ms(),
                            cli.get("--note") ? *cli.get("--note") : std::string()};
    if (meta.add_pin(record)) {
      std::cout << "pinned " << text << "\n";
    } else {
      auto stored = meta.get_pin(text);
      std::cout << text << " is pinned already"
                << (stored ? " (by " + stored->who + " at " + policy::format_ms(stored->created_at_ms) + ")" : "")
                << "; unchanged\n";
    }
  }
  return 0;
}

int remove(const std::vector<std::string>& pins, const Config& config, cache::MetaStore& meta) {
  const auto from_config = config_pin_texts(config);
  int status = 0;
  for (const auto& text : pins) {
    const bool in_config = contains(from_config, text);
    if (meta.remove_pin(text)) {
      std::cout << "unpinned " << text << (in_config ? " (the config's cache.pin still pins it)" : "") << "\n";
    } else if (in_config) {
      std::cerr << "pullgate: " << text << " is pinned by the config (cache.pin): edit the config to unpin it\n";
      status = 1;
    } else {
      std::cerr << "pullgate: " << text << " is not pinned\n";
      status = 1;
    }
  }
  return status;
}

void print_table(const std::vector<cache::ListedPin>& pins) {
  std::printf("%-50s %-6s %-12s %-20s %s\n", "PIN", "SOURCE", "BY", "SINCE", "KEEPS NOW");
  for (const auto& listed : pins) {
    std::string kept;
    for (const auto& digest : listed.keeps) kept += (kept.empty() ? "" : " ") + digest.str().substr(0, 19);
    if (kept.empty()) kept = "nothing cached";
    std::printf("%-50s %-6s %-12s %-20s %s\n", listed.pin.c_str(), listed.from_config ? "config" : "store",
                listed.record ? listed.record->who.c_str() : "",
                listed.record ? policy::format_ms(listed.record->created_at_ms).c_str() : "", kept.c_str());
  }
}

int list(bool json, const Config& config, cache::MetaStore& meta) {
  auto pins = cache::list_pins_in_force(meta, config.cache_pins);
  if (!json) {
    print_table(pins);
    return 0;
  }
  for (const auto& listed : pins)
    std::cout << pin_json(listed).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace

int run_pin(const std::vector<std::string>& all) {
  const std::string command = all[0];
  if (command != "add" && command != "ls" && command != "rm") return usage("unknown pin command " + command, "pin");
  std::vector<std::string> args;
  bool json = false;
  for (const auto& a : all) {
    if (a == "--json" && command == "ls") json = true;
    else args.push_back(a);
  }
  std::set<std::string> known = {"--data", "--config"};
  if (command == "add") known.insert({"--by", "--note"});
  auto cli = parse_cli(args, 1, known);
  if (cli.help) {
    std::cout << pin_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "pin");
  if (command == "ls" && !cli.positional.empty()) return usage("pin ls takes no arguments", "pin");
  if (command != "ls" && cli.positional.empty()) return usage("pin " + command + " needs at least one PIN", "pin");
  if (auto* by = cli.get("--by"); by && by->empty()) return usage("--by needs a name", "pin");
  auto pins = parse_pins(cli.positional);
  if (!pins) return 1;

  auto config = cli_config(cli);
  if (!config) return 1;
  auto meta = open_existing_store(*config);
  if (!meta) return 1;
  try {
    if (command == "add") return add(cli, *pins, *config, *meta);
    if (command == "rm") return remove(*pins, *config, *meta);
    return list(json, *config, *meta);
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace pullgate::proxy::cli
