#pragma once
// WWW-Authenticate challenges (RFC 9110 section 11.6.1), as registries send them:
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullgate::registry {

struct Challenge {
  std::string scheme;                         // lower case: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lower case; quoted-string values unescaped
  std::string token68;                        // set instead of params for "Scheme token68"
  std::optional<std::string> param(std::string_view name) const;
};

// Several challenges may share a header ("Basic realm=x, Bearer realm=y"). Malformed
// input yields the challenges parsed before the fault (possibly none), never throws.
std::vector<Challenge> parse_www_authenticate(std::string_view header);

}  // namespace pullgate::registry
