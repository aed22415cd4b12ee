#pragma once
// How to reach an etcd cluster (cache/etcd.hpp), apart from the client so that parts
// that do no I/O can hold and pass them.
#include <chrono>
#include <string>
#include <vector>

namespace pullgate::cache::etcd {

struct Settings {
  // "http://127.0.0.1:2379" or "https://etcd-0.etcd:2379"; tried in this order.
  std::vector<std::string> endpoints;
  // TLS: a CA file to verify the members with (empty: the system's store), and a client
  // certificate and key for clusters that ask for one.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // etcd's own authentication (/v3/auth/authenticate); the token it returns goes in the
  // Authorization header of every call and is renewed when etcd says it is invalid.
  std::string username;
  std::string password;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{5000};
};

}  // namespace pullgate::cache::etcd
