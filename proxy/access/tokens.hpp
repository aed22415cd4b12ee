#pragma once
// Client tokens at rest: a text file with one identity per line,
//
//   # comment
//   ci-runner sha256:<64 lowercase hex>
//
// the hex being the SHA-256 of the token. A token is 32 random bytes (256 bits),
// so its unsalted hash is as safe at rest as a salted slow hash of a password would
// be: nothing can be guessed from it (the scheme of GitHub's and Kubernetes' token
// stores). A client sends the token itself, as the password of Basic
// (`NAME:TOKEN`) or as a Bearer token; it is hashed and compared in constant time.
#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pullgate::proxy::access {

using TokenHash = std::array<unsigned char, 32>;

struct TokenEntry {
  std::string name;
  TokenHash hash{};
};

// A parsed tokens file.
class TokenFile {
 public:
  TokenFile() = default;
  explicit TokenFile(std::vector<TokenEntry> entries) : entries_(std::move(entries)) {}

  // The identity whose token this is: with `name`, only that entry's; without
  // (Bearer), any entry's. Every entry is compared (constant time per entry, and the
  // same work whichever matches), so timing tells nothing about the hashes.
  std::optional<std::string> match(std::optional<std::string_view> name, std::string_view token) const;

  bool has(std::string_view name) const;
  const std::vector<TokenEntry>& entries() const { return entries_; }

 private:
  std::vector<TokenEntry> entries_;
};

// The file's text to entries, or one line saying what is wrong and where
// ("line 3: ..."). Names are identity names (policy/access.hpp), each at most once.
std::variant<TokenFile, std::string> parse_token_file(std::string_view text);

// Reads and parses a file; errors are one line naming the file.
std::variant<TokenFile, std::string> load_token_file(const std::string& path);

TokenHash hash_token(std::string_view token);
// "sha256:<hex>", as the file stores it.
std::string token_hash_text(const TokenHash& hash);

// A new token: "pgt_" and 43 characters of base64url (32 random bytes from
// OpenSSL's CSPRNG). Throws std::runtime_error when no randomness is to be had.
std::string new_token();

// The file's line for a token: "NAME sha256:<hex>\n".
std::string token_line(std::string_view name, std::string_view token);

// The fleet's tokens (etcd keys tokens/<name> holding "sha256:<hex>"), each checked
// as a line of the file would be; one that does not check out is left out, and
// `refused` gets a line naming it and why (one bad key written by hand must not keep
// every other token out).
TokenFile tokens_from_fleet(const std::map<std::string, std::string>& keys, std::vector<std::string>& refused);
// The file's text for these entries (a replica's copy of the fleet's).
std::string token_file_text(const TokenFile& tokens);

}  // namespace pullgate::proxy::access
