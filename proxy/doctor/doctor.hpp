#pragma once
// `pullgate doctor`: run on a node, reads the container clients' registry
// configurations and says, for each upstream, whether pulls go through the mirror,
// whether a refusal or an outage falls back to the upstream (the silent bypass), whether
// the mirror answers and whether the node reaches the upstream directly, with the fix
// from deploy/. Its own room: the CLI room does no network I/O.
#include <string>
#include <vector>

namespace pullgate::proxy::doctor {

extern const char help[];

// The arguments after `doctor`; the exit status: 0 no bypass, 1 the gate can be
// bypassed (or a configuration could not be read), 2 a usage error.
int run(const std::vector<std::string>& args);

}  // namespace pullgate::proxy::doctor
