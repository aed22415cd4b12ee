#pragma once
// Command-line subcommands besides `serve`: policy and verdict management. They
// work on the files and the LMDB environment directly, also while a server runs
// (LMDB is multi-process), so a verdict set here applies to the next pull.
#include <string>
#include <vector>

#include "policy/policy.hpp"
#include "proxy/config.hpp"
#include "proxy/gate.hpp"

namespace pullgate::proxy {

// Reads and parses a policy file; a missing file is one error line.
policy::ParseResult load_policy_file(const std::string& path);
// SIGHUP: re-reads config.policy_file; keeps the old policy when the new one fails.
// Returns whether the new policy is in force. Logs either way.
bool reload_policy(const Config& config, PolicyHolder& holder);

int run_policy_command(const std::vector<std::string>& args);
int run_verdict_command(const std::vector<std::string>& args);

}  // namespace pullgate::proxy
