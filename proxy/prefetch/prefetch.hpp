#pragma once
// `pullgate prefetch IMAGE... | --file LIST`: fills the cache of a running mirror
// through its own listener and gate, making the requests a client makes (docs/
// prefetch.md). Its own room: the CLI room does no network I/O.
#include <string>
#include <vector>

namespace pullgate::proxy::prefetch {

extern const char help[];

// The arguments after `prefetch`; the exit status: 0 all ok, 1 any denied or
// failed, 2 a usage error.
int run(const std::vector<std::string>& args);

}  // namespace pullgate::proxy::prefetch
