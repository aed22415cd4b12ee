#pragma once
// What the commands share: usage errors, options, durations, the config and the
// LMDB environment they work on.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cache/meta_store.hpp"
#include "policy/rfc3339.hpp"
#include "proxy/config.hpp"
#include "proxy/gate/decision_writes.hpp"
#include "proxy/gate/explain.hpp"

namespace pullgate::proxy::cli {

// A usage mistake: one line on stderr naming `pullgate COMMAND --help` (`pullgate
// --help` without a command); returns the exit status 2.
int usage(const std::string& message, std::string_view command);

std::int64_t now_ms();

// "30m", "12h", "7d", "90s" -> milliseconds; positive and at most 100 years
// (policy::max_expiry_ms), else nullopt.
std::optional<std::int64_t> parse_duration(const std::string& text);

// The audit log's own time format: fixed width UTC with milliseconds, so that
// comparing the strings compares the times.
std::string audit_time(policy::TimePoint t);

// Options of the form --name VALUE, each at most once, and positional arguments.
struct CliArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
  bool help = false;
  std::string error;  // a usage error, one line

  const std::string* get(const std::string& name) const {
    auto it = options.find(name);
    return it == options.end() ? nullptr : &it->second;
  }
};

// args from `start` on; stops at --help or -h (help) or at the first mistake (error).
CliArgs parse_cli(const std::vector<std::string>& args, std::size_t start, const std::set<std::string>& known);

// The image names of a list file (bundle export, prefetch): one a line, blank lines
// and lines starting with '#' skipped, each trimmed; nullopt when it cannot be read.
std::optional<std::vector<std::string>> read_image_list(const std::string& path);

// A document named on the command line, whole: FILE's bytes, or standard input for
// "-". Nullopt when the file cannot be read or is a directory.
std::optional<std::string> read_document(const std::string& path);

// --limit N: N, or `otherwise` without --limit; nullopt when N is not a positive
// number.
std::optional<std::size_t> limit_option(const CliArgs& cli, std::size_t otherwise);

// The config named by --config (or the defaults), with --data applied. Prints the
// error and returns nullopt when the config file is unusable.
std::optional<Config> cli_config(const CliArgs& cli);

// The existing LMDB environment of the config; never creates one (a typo in --data
// must not look like an empty cache). Prints the error and returns null.
std::unique_ptr<cache::MetaStore> open_existing_store(const Config& config);

// Where a command's verdict, exception and report writes go: with the config's fleet
// store (fleet.etcd), etcd first; else `meta`. Refused (the reason printed, nullopt)
// when `meta` follows a fleet store and the config names none: the write would land
// on this replica only, and be undone by its next full read.
struct CliWrites {
  std::unique_ptr<cache::Fleet> fleet;
  std::unique_ptr<DecisionWrites> writes;
};
std::optional<CliWrites> cli_writes(const Config& config, cache::MetaStore& meta);

// The configured upstreams' names for parse_explain_query. Without a config
// (guess_host), as docker does, the first component of `image` is taken as a
// registry host when it has a '.' or ':' or is "localhost".
std::vector<UpstreamName> upstream_names(const Config& config, bool guess_host, std::string_view image);

}  // namespace pullgate::proxy::cli
