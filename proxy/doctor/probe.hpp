#pragma once
// The doctor's network probes: GET /v2/ of each endpoint, all at once, each with a
// short timeout. Any HTTP answer means the route is open; a mirror answers as a
// registry with 200 or 401.
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "proxy/doctor/node_configs.hpp"

namespace pullgate::proxy::doctor {

// The key probe_all answers an endpoint under.
std::string probe_key(const Endpoint& e);

// Endpoints whose URL names no host (containerd's "https://<the registry>") are not
// probed. An endpoint without a scheme (registries.conf) is tried over https, and
// over plain http too when it is insecure, as the clients do. TLS is not verified: the
// question is whether the route is open, not whether the certificate is good.
std::map<std::string, Probe> probe_all(const std::vector<Endpoint>& endpoints, std::chrono::milliseconds timeout);

}  // namespace pullgate::proxy::doctor
