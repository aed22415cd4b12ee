// A token server's answer (registry/upstream_token.hpp): a token that is taken can go
// on a request header, and it lives between 1 s and a day.
#include "registry/upstream_token.hpp"
#include "registry/upstream_url.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::registry;
using pullgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto body = pullgate::fuzz::as_text(data, size);
  if (auto token = parse_token_response(body)) {
    require(!token->token.empty() && is_visible_ascii(token->token), "a header-safe token", token->token);
    require(token->lifetime.count() >= 1 && token->lifetime.count() <= 86400, "a lifetime of 1 s to a day");
  }
  return 0;
}
