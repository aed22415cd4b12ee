// The config file (proxy/config.hpp): every mistake is one line; a config without
// errors holds values the server can use.
#include "proxy/config.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::proxy;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(pullgate::fuzz::as_text(data, size));
  const auto result = parse_config(text);
  for (const auto& line : result.errors) require(one_line(line), "one-line errors", line);
  if (!result.errors.empty()) return 0;
  require(!result.config.upstreams.empty(), "a valid config has an upstream");
  require(parse_host_port(result.config.listen).has_value(), "a valid config listens somewhere", result.config.listen);
  return 0;
}
