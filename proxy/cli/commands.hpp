#pragma once
// Command-line subcommands besides `serve`: policy, verdict and exception
// management, explain and audit. They work on the files and the LMDB environment
// directly, also while a server runs (LMDB is multi-process), so a verdict or an
// exception set here applies to the next pull.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/meta_store.hpp"
#include "policy/policy.hpp"
#include "proxy/config.hpp"
#include "proxy/gate/gate.hpp"

namespace pullgate::proxy {

int run_report_command(const std::vector<std::string>& args);
int run_pending_command(const std::vector<std::string>& args);
int run_policy_command(const std::vector<std::string>& args);
int run_verdict_command(const std::vector<std::string>& args);
// `pullgate exception add|ls|rm`: run-time exceptions in the LMDB environment.
int run_exception_command(const std::vector<std::string>& args);
// `pullgate explain IMAGE|DIGEST`: what the gate decides now, from the cache only.
int run_explain_command(const std::vector<std::string>& args);
// `pullgate audit`: filters the audit log (and its rotated files).
int run_audit_command(const std::vector<std::string>& args);

}  // namespace pullgate::proxy
