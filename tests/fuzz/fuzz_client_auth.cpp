// Client credentials (proxy/access): the Authorization header any client of the
// registry listener sends, a client certificate's subject CN, and the tokens file.
// Input: the header on the first line, the CN on the second, the tokens file after.
// Whatever they hold, an identity let in is an identity name whose token matched, and
// a refusal says why on one line (it goes into a 401 body and the audit line).
#include "policy/access.hpp"
#include "proxy/access/authenticator.hpp"
#include "proxy/access/tokens.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::proxy::access;
using pullgate::fuzz::has_control;
using pullgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = pullgate::fuzz::fields(pullgate::fuzz::as_text(data, size), 3);
  const auto header = parts[0], peer = parts[1], file_text = parts[2];

  auto parsed = parse_token_file(file_text);
  TokenFile tokens;
  if (auto* error = std::get_if<std::string>(&parsed)) {
    require(pullgate::fuzz::one_line(*error), "a tokens file mistake is one line", *error);
  } else {
    tokens = std::get<TokenFile>(std::move(parsed));
    for (const auto& entry : tokens.entries())
      require(pullgate::policy::is_identity_name(entry.name), "every name read is an identity name", entry.name);
    // The file a replica keeps of the fleet's tokens reads back as the same tokens.
    auto again = parse_token_file(token_file_text(tokens));
    require(std::holds_alternative<TokenFile>(again) && std::get<TokenFile>(again).entries().size() ==
                                                             tokens.entries().size(),
            "token_file_text reads back", file_text);
  }

  // No copy on disk yet (fleet tokens): no I/O, the tokens put in force by replace().
  for (bool certificates : {false, true}) {
    Authenticator auth({"/nonexistent/pullgate-fuzz-tokens", certificates, false, true});
    auth.replace(tokens);
    const auto who = auth.authenticate(peer, header);
    switch (who.result) {
      case Authentication::Result::identified:
        require(pullgate::policy::is_identity_name(who.identity), "who is let in has an identity name", who.identity);
        require((certificates && who.identity == peer) || tokens.has(who.identity),
                "the identity is the certificate's or a token's", who.identity);
        break;
      case Authentication::Result::refused:
        require(!who.why.empty() && !has_control(who.why), "a refusal says why on one printable line", who.why);
        require(who.identity == pullgate::policy::anonymous_identity, "who is refused is nobody", who.identity);
        break;
      case Authentication::Result::anonymous:
        require(who.identity == pullgate::policy::anonymous_identity, "anonymous is anonymous", who.identity);
        break;
    }
  }
  return 0;
}
