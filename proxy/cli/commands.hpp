#pragma once
// The commands besides `serve`, one file each, and each command's help for main's
// table (proxy/cli/command.hpp). They work on the files and the LMDB environment
// directly, also while a server runs (LMDB is multi-process), so a verdict or an
// exception set here applies to the next pull. Each run_ takes the arguments after
// the command's name and returns the exit status.
#include <string>
#include <vector>

#include "proxy/config.hpp"
#include "registry/keys.hpp"

namespace pullgate::proxy::cli {

extern const char check_config_help[];
int run_check_config(const std::vector<std::string>& args);

extern const char policy_help[];
int run_policy(const std::vector<std::string>& args);

extern const char verdict_help[];
int run_verdict(const std::vector<std::string>& args);

// `report` and `pending` share their help: a report ends a digest's wait.
extern const char report_help[];
int run_report(const std::vector<std::string>& args);
int run_pending(const std::vector<std::string>& args);

// `pullgate vex import|get|rm`: imported VEX documents by manifest digest.
extern const char vex_help[];
int run_vex(const std::vector<std::string>& args);

// `pullgate exception add|ls|rm`: run-time exceptions in the LMDB environment.
extern const char exception_help[];
int run_exception(const std::vector<std::string>& args);

// `pullgate pin add|ls|rm`: pins kept in the LMDB environment beside cache.pin.
extern const char pin_help[];
int run_pin(const std::vector<std::string>& args);

// `pullgate explain IMAGE|DIGEST`: what the gate decides now, from the cache only.
extern const char explain_help[];
int run_explain(const std::vector<std::string>& args);

// `pullgate audit`: filters the audit log (and its rotated files).
extern const char audit_help[];
int run_audit(const std::vector<std::string>& args);

// `pullgate bundle export|import`: air-gap bundles.
extern const char bundle_help[];
int run_bundle(const std::vector<std::string>& args);
// The PEM public keys of bundle.trusted_keys, read from their files; one error line
// per file that cannot be read or is not an accepted public key (check-config too).
std::vector<std::string> load_bundle_keys(const Config& config, std::vector<registry::PublicKey>& keys);

// `pullgate token new|rm|ls`: the tokens file of client authentication.
extern const char token_help[];
int run_token(const std::vector<std::string>& args);

// `pullgate cache du`: what the cache holds (docs/cache.md).
extern const char cache_help[];
int run_cache(const std::vector<std::string>& args);

// `pullgate verify-bundle`: one Sigstore bundle verified keyless, offline, from its
// files alone (no config, no data directory).
extern const char verify_bundle_help[];
int run_verify_bundle(const std::vector<std::string>& args);

// `pullgate verify-notation`: one Notary Project signature envelope verified offline
// against trust stores and a trust policy given as options (no config, no data
// directory).
extern const char verify_notation_help[];
int run_verify_notation(const std::vector<std::string>& args);

}  // namespace pullgate::proxy::cli
