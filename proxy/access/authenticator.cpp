#include "proxy/access/authenticator.hpp"

#include <cctype>
#include <filesystem>
#include <stdexcept>

#include "policy/access.hpp"
#include "registry/base64.hpp"

namespace pullgate::proxy::access {

namespace {

// "Basic xyz" -> ("basic", "xyz"); the scheme is case-insensitive (RFC 9110 11.1).
std::pair<std::string, std::string_view> split_scheme(std::string_view header) {
  const auto space = header.find(' ');
  std::string scheme(header.substr(0, space));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = space == std::string_view::npos ? std::string_view{} : header.substr(space + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return {std::move(scheme), rest};
}

Authentication refused(std::string why) {
  return {Authentication::Result::refused, std::string(policy::anonymous_identity), std::move(why)};
}

}  // namespace

Authenticator::Authenticator(ClientAuthSettings settings)
    : settings_(std::move(settings)), tokens_(std::make_shared<const TokenFile>()) {
  if (auto error = reload()) throw std::runtime_error(*error);
}

std::optional<std::string> Authenticator::reload() {
  if (settings_.tokens_file.empty()) return std::nullopt;
  if (settings_.fleet_tokens && !std::filesystem::exists(settings_.tokens_file)) return std::nullopt;
  auto loaded = load_token_file(settings_.tokens_file);
  if (auto* error = std::get_if<std::string>(&loaded)) return *error;
  tokens_.store(std::make_shared<const TokenFile>(std::move(std::get<TokenFile>(loaded))));
  return std::nullopt;
}

void Authenticator::replace(TokenFile tokens) { tokens_.store(std::make_shared<const TokenFile>(std::move(tokens))); }

Authentication Authenticator::authenticate(std::string_view peer_identity, std::string_view authorization) const {
  const Authentication anonymous{Authentication::Result::anonymous, std::string(policy::anonymous_identity), {}};
  if (!settings_.enabled()) return anonymous;
  if (settings_.certificates && !peer_identity.empty()) {
    if (!policy::is_identity_name(peer_identity))
      return refused("the client certificate's subject CN is not an identity name (1 to 128 letters, digits, "
                     "'.', '_', '-' or '@')");
    return {Authentication::Result::identified, std::string(peer_identity), {}};
  }
  if (authorization.empty() || settings_.tokens_file.empty()) return anonymous;
  auto [scheme, credentials] = split_scheme(authorization);
  const auto tokens = tokens_.load();
  if (scheme == "bearer") {
    if (credentials.empty()) return refused("empty Bearer token");
    if (auto name = tokens->match(std::nullopt, credentials))
      return {Authentication::Result::identified, std::move(*name), {}};
    return refused("the Bearer token is not one of this mirror's");
  }
  if (scheme == "basic") {
    std::string decoded;
    if (!registry::base64_decode(credentials, decoded)) return refused("Basic credentials are not base64");
    const auto colon = decoded.find(':');
    if (colon == std::string::npos) return refused("Basic credentials are not NAME:TOKEN");
    // skopeo and podman without credentials answer the Basic challenge with an empty
    // pair: that is no credential, not a wrong one.
    if (decoded == ":") return anonymous;
    const std::string_view user = std::string_view(decoded).substr(0, colon);
    if (auto name = tokens->match(user, std::string_view(decoded).substr(colon + 1)))
      return {Authentication::Result::identified, std::move(*name), {}};
    return refused("wrong user name or token");
  }
  return refused("unsupported Authorization scheme; use Basic (NAME:TOKEN) or Bearer");
}

}  // namespace pullgate::proxy::access
