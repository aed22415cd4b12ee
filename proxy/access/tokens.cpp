#include "proxy/access/tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "policy/access.hpp"

namespace pullgate::proxy::access {

namespace {

constexpr std::size_t max_file_bytes = 16u << 20;
constexpr char hex_digits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 64)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

}  // namespace

std::optional<std::string> TokenFile::match(std::optional<std::string_view> name, std::string_view token) const {
  const TokenHash presented = hash_token(token);
  const TokenEntry* found = nullptr;
  for (const auto& entry : entries_) {
    const bool same = CRYPTO_memcmp(entry.hash.data(), presented.data(), presented.size()) == 0;
    if (same && (!name || entry.name == *name) && !found) found = &entry;
  }
  if (!found) return std::nullopt;
  return found->name;
}

bool TokenFile::has(std::string_view name) const {
  for (const auto& entry : entries_)
    if (entry.name == name) return true;
  return false;
}

std::variant<TokenFile, std::string> parse_token_file(std::string_view text) {
  if (text.size() > max_file_bytes) return std::string("larger than 16 MiB");
  std::vector<TokenEntry> entries;
  std::set<std::string, std::less<>> names;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto where = "line " + std::to_string(number) + ": ";
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    line = line.substr(first);
    const auto space = line.find_first_of(" \t");
    if (space == std::string_view::npos)
      return where + "expected NAME sha256:<64 hex digits>, got only \"" + printable(line) + "\"";
    const auto name = line.substr(0, space);
    auto rest = line.substr(space);
    const auto hash_at = rest.find_first_not_of(" \t");
    if (hash_at == std::string_view::npos)
      return where + "expected NAME sha256:<64 hex digits>, got only \"" + printable(name) + "\"";
    rest = rest.substr(hash_at);
    if (const auto trail = rest.find_last_not_of(" \t"); trail != std::string_view::npos) rest = rest.substr(0, trail + 1);
    if (!policy::is_identity_name(name))
      return where + "\"" + printable(name) +
             "\" is not an identity name (1 to 128 letters, digits, '.', '_', '-' or '@'; not \"anonymous\")";
    if (!rest.starts_with("sha256:") || rest.size() != 7 + 64)
      return where + "the hash must be sha256:<64 lowercase hex digits> (the file holds hashes, never tokens)";
    TokenEntry entry;
    entry.name = std::string(name);
    for (std::size_t i = 0; i < 32; ++i) {
      const int high = hex_value(rest[7 + 2 * i]), low = hex_value(rest[8 + 2 * i]);
      if (high < 0 || low < 0) return where + "the hash must be sha256:<64 lowercase hex digits>";
      entry.hash[i] = static_cast<unsigned char>(high << 4 | low);
    }
    if (!names.insert(entry.name).second) return where + "\"" + entry.name + "\" is named twice";
    entries.push_back(std::move(entry));
  }
  return TokenFile(std::move(entries));
}

std::variant<TokenFile, std::string> load_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "tokens file " + path + ": cannot read it";
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = parse_token_file(text.str());
  if (auto* error = std::get_if<std::string>(&parsed)) return "tokens file " + path + ": " + *error;
  return parsed;
}

TokenHash hash_token(std::string_view token) {
  TokenHash hash{};
  unsigned int length = 0;
  if (EVP_Digest(token.data(), token.size(), hash.data(), &length, EVP_sha256(), nullptr) != 1 || length != hash.size())
    throw std::runtime_error("SHA-256 failed (OpenSSL)");
  return hash;
}

std::string token_hash_text(const TokenHash& hash) {
  std::string out = "sha256:";
  for (unsigned char b : hash) {
    out += hex_digits[b >> 4];
    out += hex_digits[b & 0xf];
  }
  return out;
}

std::string new_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes to be had (OpenSSL RAND_bytes)");
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out = "pgt_";
  unsigned bits = 0, value = 0;
  for (unsigned char b : bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(value >> bits) & 63];
    }
  }
  if (bits > 0) out += alphabet[(value << (6 - bits)) & 63];
  OPENSSL_cleanse(bytes, sizeof bytes);
  return out;
}

std::string token_line(std::string_view name, std::string_view token) {
  return std::string(name) + " " + token_hash_text(hash_token(token)) + "\n";
}

TokenFile tokens_from_fleet(const std::map<std::string, std::string>& keys, std::vector<std::string>& refused) {
  std::vector<TokenEntry> entries;
  for (const auto& [name, hash] : keys) {
    // A name or value with a line break in it would be two lines here: refused too.
    auto parsed = name.find_first_of("\r\n") == std::string::npos && hash.find_first_of("\r\n") == std::string::npos
                      ? parse_token_file(name + " " + hash)
                      : std::variant<TokenFile, std::string>(std::string("a line break in the name or the hash"));
    if (auto* error = std::get_if<std::string>(&parsed)) {
      refused.push_back("tokens/" + printable(name) + ": " + (error->starts_with("line 1: ") ? error->substr(8) : *error));
      continue;
    }
    auto& file = std::get<TokenFile>(parsed);
    if (file.entries().size() == 1) entries.push_back(file.entries().front());
    else refused.push_back("tokens/" + printable(name) + ": an empty or commented-out entry");
  }
  return TokenFile(std::move(entries));
}

std::string token_file_text(const TokenFile& tokens) {
  std::string out = "# The fleet's client tokens (etcd), as this replica last had them. Written by pullgate.\n";
  for (const auto& entry : tokens.entries()) out += entry.name + " " + token_hash_text(entry.hash) + "\n";
  return out;
}

}  // namespace pullgate::proxy::access
