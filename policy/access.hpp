#pragma once
// Who may pull: the policy's "access" section. Decided for every pull request before
// the gate, from the identity the mirror authenticated (a client certificate's
// subject CN, a token's name, or "anonymous") and where the request goes (upstream,
// repository). Pure, like the rest of policy/: no sockets, no files.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace pullgate::policy {

// The identity of a client that presented no credential.
inline constexpr std::string_view anonymous_identity = "anonymous";

// 1 to 128 letters, digits, '.', '_', '-' or '@', not "anonymous": what a token's name
// and a client certificate's CN must be to name an identity (they go into audit
// lines, log fields and 403 messages as they are).
bool is_identity_name(std::string_view name);

struct AccessRule {
  std::string upstream = "**";         // glob on the upstream name
  std::string repository = "**";       // glob on the repository (as the upstream names it)
  // Who may pull what the rule matches: identity names, group names, "*" (every
  // authenticated identity) and "anonymous" (clients without credentials).
  std::vector<std::string> who;
  std::string path;                    // "access.rules[2]": where it is written, for messages
};

struct AccessPolicy {
  std::map<std::string, std::vector<std::string>> groups;  // group name -> identity names
  std::vector<AccessRule> rules;       // the first whose upstream and repository match decides
  // Who may pull what no rule matches.
  std::vector<std::string> others{"*", std::string(anonymous_identity)};
};

struct AccessDecision {
  bool allowed = true;
  std::string by;                      // the rule's path, or "access.others"
};

// Whether `identity` (authenticated: a name; else anonymous_identity) may pull from
// `repository` on `upstream`.
AccessDecision may_pull(const AccessPolicy& access, std::string_view identity, std::string_view upstream,
                        std::string_view repository);

// Reads the "access" object of the policy document; every problem is one line in
// `errors`, prefixed with its JSON path ("access.rules[0].who[1]: ...").
std::optional<AccessPolicy> read_access(const nlohmann::json& value, std::vector<std::string>& errors,
                                        std::vector<std::string>& warnings);

}  // namespace pullgate::policy
