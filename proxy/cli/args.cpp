#include "proxy/cli/args.hpp"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "policy/policy.hpp"
#include "proxy/config.hpp"
#include "registry/clock.hpp"

namespace pullgate::proxy::cli {

int usage(const std::string& message, std::string_view command) {
  std::cerr << "pullgate: " << message << " (see `pullgate " << command << (command.empty() ? "" : " ")
            << "--help`)\n";
  return 2;
}

std::int64_t now_ms() { return ms_since_epoch(system_wall_clock()()); }

std::optional<std::int64_t> parse_duration(const std::string& text) {
  auto ms = parse_duration_ms(text);
  if (!ms || *ms > policy::max_expiry_ms) return std::nullopt;
  return ms;
}

std::string audit_time(policy::TimePoint t) { return policy::format_rfc3339(t, policy::Fraction::milliseconds); }

CliArgs parse_cli(const std::vector<std::string>& args, std::size_t start, const std::set<std::string>& known) {
  CliArgs out;
  for (std::size_t i = start; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--help" || a == "-h") {
      out.help = true;
      return out;
    }
    if (a.rfind("--", 0) == 0) {
      if (!known.count(a)) {
        out.error = "unknown option " + a;
        return out;
      }
      if (i + 1 >= args.size()) {
        out.error = a + " needs a value";
        return out;
      }
      if (!out.options.emplace(a, args[++i]).second) {
        out.error = a + " given twice";
        return out;
      }
    } else {
      out.positional.push_back(a);
    }
  }
  return out;
}

std::optional<std::vector<std::string>> read_image_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    auto start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#') continue;
    auto end = line.find_last_not_of(" \t\r");
    out.push_back(line.substr(start, end - start + 1));
  }
  return out;
}

std::optional<std::size_t> limit_option(const CliArgs& cli, std::size_t otherwise) {
  auto* text = cli.get("--limit");
  if (!text) return otherwise;
  char* end = nullptr;
  errno = 0;
  auto n = std::strtoul(text->c_str(), &end, 10);
  // strtoul turns "-1" into a huge number.
  if (text->empty() || *end || errno || n == 0 || (*text)[0] == '-') return std::nullopt;
  return n;
}

std::optional<Config> cli_config(const CliArgs& cli) {
  Config config = default_config();
  if (auto* file = cli.get("--config")) {
    auto loaded = load_config_file(*file);
    if (!loaded.errors.empty()) {
      std::cerr << "pullgate: " << *file << ": " << loaded.errors.front() << "\n";
      return std::nullopt;
    }
    config = loaded.config;
  }
  if (auto* dir = cli.get("--data")) config.data_dir = *dir;
  return config;
}

std::unique_ptr<cache::MetaStore> open_existing_store(const Config& config) {
  if (!std::filesystem::exists(config.data_dir / "lmdb")) {
    std::cerr << "pullgate: no cache at " << config.data_dir.string() << " (give --data DIR or --config FILE)\n";
    return nullptr;
  }
  try {
    auto meta = open_meta_store(config);
    if (auto stale = meta->stale_readers_cleared())
      std::cerr << "pullgate: cleared " << stale << " stale LMDB reader(s) of processes that died mid-read\n";
    return meta;
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return nullptr;
  }
}

std::optional<CliWrites> cli_writes(const Config& config, cache::MetaStore& meta) {
  CliWrites out;
  if (!config.fleet.enabled()) {
    if (meta.fleet_revision() != 0) {
      std::cerr << "pullgate: the cache at " << config.data_dir.string()
                << " follows a fleet store (etcd); give --config with its fleet section, so that the write goes to "
                   "every replica and not to this one only\n";
      return std::nullopt;
    }
    out.writes = std::make_unique<DecisionWrites>(meta, nullptr);
    return out;
  }
  try {
    auto settings = fleet_settings(config);
    settings.log = [](const char* level, const std::string& message) {
      if (std::string_view(level) != "info") std::cerr << "pullgate: " << message << "\n";
    };
    out.fleet = cache::Fleet::make(meta, std::move(settings));
  } catch (const std::exception& e) {
    std::cerr << "pullgate: fleet.etcd: " << e.what() << "\n";
    return std::nullopt;
  }
  out.writes = std::make_unique<DecisionWrites>(meta, out.fleet.get());
  return out;
}

std::vector<UpstreamName> upstream_names(const Config& config, bool guess_host, std::string_view image) {
  std::vector<UpstreamName> upstreams;
  for (auto& u : config.upstreams) upstreams.push_back(UpstreamName{u.settings.name, u.aliases, u.docker_hub});
  if (guess_host) {
    auto slash = image.find('/');
    auto first = image.substr(0, slash == std::string_view::npos ? 0 : slash);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost")
      upstreams.push_back(UpstreamName{std::string(first), {}, false});
  }
  return upstreams;
}

std::optional<std::string> read_document(const std::string& path) {
  std::stringstream text;
  if (path == "-") {
    text << std::cin.rdbuf();
    return text.str();
  }
  // A directory opens as a stream that reads nothing.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

}  // namespace pullgate::proxy::cli
