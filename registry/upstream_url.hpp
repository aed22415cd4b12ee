#pragma once
// URL pieces the upstream client needs: the origin a request goes to, Location
// resolution for redirects, and whether a token realm may see our credentials.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pullgate::registry {

struct Origin {
  std::string scheme;  // "http" or "https"
  std::string host;    // lower case; an IPv6 literal without brackets
  std::uint16_t port = 0;

  bool tls() const { return scheme == "https"; }
  std::string key() const;          // "https://host:443", the connection pool key
  std::string host_header() const;  // "host" or "host:port", brackets for IPv6
  bool operator==(const Origin&) const = default;
};

struct Url {
  Origin origin;
  std::string target;  // origin-form path and query, "/" when empty
};

// Absolute http(s) URL without userinfo or fragment; nullopt for anything else.
std::optional<Url> parse_url(std::string_view text);

// A redirect's Location (absolute, scheme-relative, absolute-path or relative)
// against the request it answered; nullopt when it is not a usable http(s) URL.
std::optional<Url> resolve_location(const Url& base, std::string_view location);

// True when every byte is visible ASCII, so it can go on a request line or header.
bool is_visible_ascii(std::string_view text);

// Credentials may go to the realm only when it is the upstream host itself or shares
// its registrable domain by the Public Suffix List (auth.docker.io for
// registry-1.docker.io, never evil.co.uk for example.co.uk nor another *.amazonaws.com
// host for an ECR registry), and never over plain http when the upstream is https.
// IP literals and hosts that are themselves public suffixes must match exactly.
bool may_send_credentials(const Origin& upstream, const Origin& realm);

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string percent_encode(std::string_view text);

}  // namespace pullgate::registry
