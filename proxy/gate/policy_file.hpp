#pragma once
// The policy as a file: read, parsed, its key files read (their content is part of
// the policy's version), and reloaded into the holder the gate reads.
#include <string>

#include "policy/policy.hpp"
#include "proxy/gate/gate.hpp"

namespace pullgate::proxy {

// Reads and parses a policy file; a missing file is one error line.
policy::ParseResult load_policy_file(const std::string& path);
// SIGHUP and the admin API: re-reads the policy file; keeps the old policy when the
// new one fails. Returns whether the new policy is in force. Logs either way.
bool reload_policy(const std::string& policy_file, PolicyHolder& holder);

}  // namespace pullgate::proxy
