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
#include "proxy/gate.hpp"

namespace pullgate::proxy {

// Reads and parses a policy file; a missing file is one error line.
policy::ParseResult load_policy_file(const std::string& path);
// SIGHUP: re-reads config.policy_file; keeps the old policy when the new one fails.
// Returns whether the new policy is in force. Logs either way.
bool reload_policy(const Config& config, PolicyHolder& holder);

// An exception as JSON for people and the admin API; "expired" is judged at now_ms.
nlohmann::json exception_json(const cache::ExceptionRecord& record, std::int64_t now_ms);

// Checks an exception's fields ({"id","digest","repository","upstream","reason",
// "who","expires"}) with the policy parser itself, so the CLI and the admin API
// accept exactly what a policy file accepts; returns its expiry. Error lines name
// the field with field_prefix before it ("--digest: ..." for the CLI).
struct CheckedException {
  std::optional<policy::TimePoint> expires;
  std::vector<std::string> errors;
};
CheckedException check_exception(const nlohmann::json& fields, std::string_view field_prefix = "--");

// A pending-queue entry as JSON (CLI and admin API).
nlohmann::json pending_json(const std::string& digest, const cache::PendingRecord& record);

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
