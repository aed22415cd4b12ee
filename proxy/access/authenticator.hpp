#pragma once
// Who a client of the registry listener is: a verified client certificate (its
// subject CN, which the listener hands over), else a token in the Authorization
// header (Basic NAME:TOKEN, or Bearer TOKEN) from the tokens file, else nobody
// ("anonymous"), who is let in only where the config says so. No I/O but the tokens
// file, read at start and on reload.
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/access/tokens.hpp"

namespace pullgate::proxy::access {

struct ClientAuthSettings {
  std::string tokens_file;    // empty: no tokens
  bool certificates = false;  // the listener verifies client certificates (mutual TLS)
  bool anonymous = false;     // clients without credentials get in, as "anonymous"
  // The tokens are the fleet's (fleet.tokens "etcd"): tokens_file is this replica's
  // copy of them, missing until etcd's first arrive (no tokens meanwhile), and
  // replace() puts the fleet's in force.
  bool fleet_tokens = false;

  bool enabled() const { return certificates || !tokens_file.empty(); }
};

struct Authentication {
  enum class Result { identified, anonymous, refused } result = Result::anonymous;
  std::string identity;  // identified: the name; else "anonymous"
  std::string why;       // refused (a credential that does not check out): one line for the 401
};

class Authenticator {
 public:
  // Reads the tokens file; throws std::runtime_error with one line when it cannot.
  explicit Authenticator(ClientAuthSettings settings);

  // Reads the tokens file again; on a mistake the tokens in force stay and the line
  // saying what is wrong is returned.
  std::optional<std::string> reload();
  // Puts these tokens in force (the fleet's, as etcd has them).
  void replace(TokenFile tokens);

  const ClientAuthSettings& settings() const { return settings_; }
  // A client without credentials is refused (401) rather than let in as anonymous.
  bool required() const { return settings_.enabled() && !settings_.anonymous; }
  std::size_t tokens() const { return tokens_.load()->entries().size(); }

  // peer_identity: the subject CN of the client certificate the listener verified
  // (empty: none). authorization: the request's Authorization header (empty: none).
  // A certificate decides alone; a header that does not check out is refused, never
  // taken as anonymous.
  Authentication authenticate(std::string_view peer_identity, std::string_view authorization) const;

 private:
  ClientAuthSettings settings_;
  std::atomic<std::shared_ptr<const TokenFile>> tokens_;
};

}  // namespace pullgate::proxy::access
