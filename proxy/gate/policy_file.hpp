#pragma once
// The policy as a file: read, parsed, its key files read (their content is part of
// the policy's version), and reloaded into the holder the gate reads.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "policy/policy.hpp"
#include "proxy/gate/gate.hpp"

namespace pullgate::proxy {

// Reads and parses a policy file; a missing file is one error line.
policy::ParseResult load_policy_file(const std::string& path);
// SIGHUP and the admin API: re-reads the policy file; keeps the old policy when the
// new one fails. Returns whether the new policy is in force. Logs either way.
bool reload_policy(const std::string& policy_file, PolicyHolder& holder);

// The policy document kept in etcd (fleet.policy "etcd", docs/fleet.md): parsed as a
// file's text is, except that keys must be inline (pem): a pem_file names a file on
// one machine only.
policy::ParseResult parse_fleet_policy(const std::string& text);
// What a replica with fleet.policy "etcd" decides under until the fleet's policy has
// reached it: every image denied, saying so.
policy::Policy waiting_for_fleet_policy();
// The copy of the fleet's policy a replica keeps (so that it starts with it when etcd
// is out of reach): `copy` if it holds a valid one.
std::optional<policy::Policy> load_fleet_policy_copy(const std::filesystem::path& copy);
// A text from etcd: put in force unless it is the policy in force already, and kept
// at `copy` (written whole or not at all). A text that does not validate leaves the
// policy in force. Logs either way; returns whether a new policy is in force.
enum class FleetPolicyOutcome { applied, unchanged, refused };
// Writes `text` to `path` whole or not at all: a temporary file beside it, synced and
// renamed over it, so a crash leaves the old file or the new one. False: `error` says why.
bool write_file_whole(const std::string& text, const std::filesystem::path& path, std::string& error,
                      mode_t mode = 0600);
FleetPolicyOutcome apply_fleet_policy(const std::string& text, const std::filesystem::path& copy, PolicyHolder& holder);

// The policy a server decides under, recorded in its data directory each time one
// comes into force (start, reload, the fleet's), so that the command line decides
// under the same one: `pullgate explain --data DIR` without a --policy of its own
// must not quietly answer from the built-in allow-all policy while the server
// enforces another.
struct PolicyInForce {
  std::string source;  // "file", "etcd" (the fleet's, kept at `file`) or "built-in"
  std::string file;    // absolute; empty for "built-in"
  std::string version;
  std::int64_t since_ms = 0;  // when it came into force
  std::int64_t pid = 0;       // the server's
};
std::filesystem::path policy_in_force_path(const std::filesystem::path& data_dir);
// Written whole or not at all; false and `error` when it cannot be.
bool record_policy_in_force(const std::filesystem::path& data_dir, const PolicyInForce& record, std::string& error);
// nullopt without `error` when no server has recorded one; with `error` when the
// file is there but unreadable or malformed.
std::optional<PolicyInForce> read_policy_in_force(const std::filesystem::path& data_dir, std::string& error);

}  // namespace pullgate::proxy
