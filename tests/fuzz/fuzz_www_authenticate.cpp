// WWW-Authenticate from an upstream (registry/www_authenticate.hpp): whatever it
// says, the challenges read are well formed.
#include "registry/www_authenticate.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::registry;
using pullgate::fuzz::require;

namespace {
bool lower_case(std::string_view text) {
  for (char c : text)
    if (c >= 'A' && c <= 'Z') return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto header = pullgate::fuzz::as_text(data, size);
  const auto challenges = parse_www_authenticate(header);
  for (const auto& challenge : challenges) {
    require(!challenge.scheme.empty(), "a challenge has a scheme", header);
    require(lower_case(challenge.scheme), "the scheme is lower case", challenge.scheme);
    require(challenge.params.empty() || challenge.token68.empty(), "params or token68, not both", header);
    for (const auto& [name, value] : challenge.params) {
      require(!name.empty() && lower_case(name), "parameter names are lower case and not empty", name);
      require(challenge.param(name) == value, "param() finds what was parsed", name);
      require(value.size() <= header.size(), "a value no longer than the header", name);
    }
  }
  return 0;
}
