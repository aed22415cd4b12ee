#pragma once
// The admin API's client for the command line: what a command must not do behind a
// running server's back (`pullgate cache evict` changes the cache the server holds
// in memory too), it asks the server to do. No I/O type in this header: the cli room,
// which does no I/O itself, calls it.
#include <string>
#include <string_view>

#include "proxy/config.hpp"

namespace pullgate::proxy {

struct AdminAnswer {
  unsigned status = 0;
  std::string body;  // at most 1 MiB
};

// `method` `target` with the JSON `body` to the config's admin listener (on loopback
// when it listens on a wildcard address) with the admin token from its file. Throws
// std::runtime_error with one line when there is no admin listener, the token cannot
// be read, or the server does not answer within `timeout_s` seconds.
AdminAnswer call_admin(const Config& config, std::string_view method, std::string_view target, std::string body,
                       int timeout_s = 300);

}  // namespace pullgate::proxy
