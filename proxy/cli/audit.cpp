// `pullgate audit [filters]`
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "policy/policy.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"

namespace pullgate::proxy::cli {

const char audit_help[] = R"(Usage: pullgate audit [--file PATH | --config FILE | --data DIR] [filters]
Filters (all must hold):
  --digest DIGEST        the request's digest
  --repository GLOB      the repository (globs as in docs/policy.md)
  --decision D           allow, warn or deny
  --client ADDR          the client, as ADDR:PORT or ADDR alone
  --identity NAME        who the client was (README, "Who may pull"; anonymous too)
  --since RFC3339        at or after this time
  --served true|false    whether it was served
  --limit N              only the last N matching records

Prints the matching audit records (JSON lines), oldest first, reading the rotated
files <path>.N .. <path>.1 before <path>. Malformed lines are skipped and counted
on stderr.
)";

namespace {

bool is_audit_time(const std::string& s) {
  // YYYY-MM-DDTHH:MM:SS.mmmZ
  return s.size() == 24 && s[10] == 'T' && s[19] == '.' && s[23] == 'Z' && policy::parse_rfc3339(s);
}

}  // namespace

int run_audit(const std::vector<std::string>& all) {
  auto cli = parse_cli(all, 0,
                       {"--file", "--config", "--data", "--digest", "--repository", "--decision", "--client",
                        "--identity", "--since", "--served", "--limit"});
  if (cli.help) {
    std::cout << audit_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "audit");
  if (!cli.positional.empty()) return usage("audit takes no arguments, not " + cli.positional[0], "audit");
  if (cli.get("--file") && (cli.get("--config") || cli.get("--data")))
    return usage("--file names the log itself; give it without --config or --data", "audit");

  // Filters, checked before anything is read.
  auto* digest = cli.get("--digest");
  if (digest && !registry::Digest::parse(*digest)) return usage("not a digest: " + *digest, "audit");
  auto* decision = cli.get("--decision");
  if (decision && !policy::parse_decision(*decision))
    return usage("--decision must be allow, warn or deny, not " + *decision, "audit");
  auto* repository = cli.get("--repository");
  auto* client = cli.get("--client");
  auto* identity = cli.get("--identity");
  std::optional<std::string> since;
  if (auto* s = cli.get("--since")) {
    auto t = policy::parse_rfc3339(*s);
    if (!t) return usage("--since takes an RFC 3339 time such as 2026-12-01T00:00:00Z, not " + *s, "audit");
    since = audit_time(*t);
  }
  std::optional<bool> served;
  if (auto* s = cli.get("--served")) {
    if (*s != "true" && *s != "false") return usage("--served must be true or false", "audit");
    served = *s == "true";
  }
  auto limit = limit_option(cli, 0);  // 0: all
  if (!limit) return usage("--limit must be a positive number", "audit");

  std::filesystem::path path;
  if (auto* f = cli.get("--file")) {
    path = *f;
  } else {
    auto config = cli_config(cli);
    if (!config) return 1;
    path = config->audit_log_path();
  }

  // Rotated files first, oldest (highest number) first.
  std::vector<std::filesystem::path> files;
  for (unsigned n = 1; n < 10000; ++n) {
    std::filesystem::path rotated = path.string() + "." + std::to_string(n);
    if (!std::filesystem::exists(rotated)) break;
    files.insert(files.begin(), rotated);
  }
  if (std::filesystem::exists(path)) files.push_back(path);
  if (files.empty()) {
    std::cerr << "pullgate: no audit log at " << path.string() << "\n";
    return 1;
  }

  auto text_is = [](const nlohmann::json& j, const char* name, const std::string& want) {
    auto it = j.find(name);
    return it != j.end() && it->is_string() && it->get_ref<const std::string&>() == want;
  };
  std::deque<std::string> matches;
  std::uint64_t malformed = 0;
  for (auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "pullgate: cannot read " << file.string() << "\n";
      return 1;
    }
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      auto time = j.is_object() ? j.find("time") : j.end();
      if (!j.is_object() || time == j.end() || !time->is_string() || !is_audit_time(time->get<std::string>())) {
        ++malformed;
        continue;
      }
      if (digest && !text_is(j, "digest", *digest)) continue;
      if (decision && !text_is(j, "decision", *decision)) continue;
      if (identity && !text_is(j, "identity", *identity)) continue;
      if (repository) {
        auto it = j.find("repository");
        if (it == j.end() || !it->is_string() || !policy::glob_match(*repository, it->get<std::string>())) continue;
      }
      if (client) {
        auto it = j.find("client");
        if (it == j.end() || !it->is_string()) continue;
        const auto& c = it->get_ref<const std::string&>();
        // ADDR alone matches ADDR:PORT (the last ':' separates the port).
        auto colon = c.rfind(':');
        if (c != *client && (colon == std::string::npos || c.substr(0, colon) != *client)) continue;
      }
      if (since && time->get<std::string>() < *since) continue;
      if (served) {
        auto it = j.find("served");
        if (it == j.end() || !it->is_boolean() || it->get<bool>() != *served) continue;
      }
      matches.push_back(std::move(line));
      if (*limit && matches.size() > *limit) matches.pop_front();
    }
  }
  for (auto& m : matches) std::cout << m << "\n";
  if (malformed)
    std::cerr << "pullgate: skipped " << malformed << " malformed line" << (malformed == 1 ? "" : "s") << "\n";
  return 0;
}

}  // namespace pullgate::proxy::cli
