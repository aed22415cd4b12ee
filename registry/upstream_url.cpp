#include "registry/upstream_url.hpp"

#include <algorithm>
#include <cctype>
#include <memory>

#include <boost/asio/ip/address.hpp>
#include <libpsl.h>

namespace pullgate::registry {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  return std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_';
  });
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

// The Public Suffix List, loaded once. psl_latest(NULL) takes the newer of the copy
// compiled into Debian's libpsl and the publicsuffix package's file
// (/usr/share/publicsuffix), both local: it works offline and follows list updates
// that come through apt without a libpsl rebuild. Null only when libpsl has neither;
// then credentials go to the upstream host itself and nowhere else.
const psl_ctx_t* public_suffix_list() {
  static const std::unique_ptr<psl_ctx_t, decltype(&psl_free)> list(psl_latest(nullptr), &psl_free);
  return list.get();
}

// The registrable domain (one label below the longest public suffix, private entries
// such as s3.amazonaws.com included), or nullopt when the host is itself a public
// suffix or has too few labels.
std::optional<std::string> registrable_domain(const std::string& host) {
  const psl_ctx_t* list = public_suffix_list();
  if (!list) return std::nullopt;
  const char* domain = psl_registrable_domain(list, host.c_str());
  if (!domain) return std::nullopt;
  return std::string(domain);
}

}  // namespace

namespace {

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

std::string Origin::key() const { return scheme + "://" + bracketed(host) + ":" + std::to_string(port); }

std::string Origin::host_header() const {
  std::string name = bracketed(host);
  bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  return default_port ? name : name + ":" + std::to_string(port);
}

bool is_visible_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

std::optional<Url> parse_url(std::string_view text) {
  if (!is_visible_ascii(text)) return std::nullopt;
  auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  Url url;
  url.origin.scheme = lower(text.substr(0, scheme_end));
  if (url.origin.scheme != "http" && url.origin.scheme != "https") return std::nullopt;
  auto rest = text.substr(scheme_end + 3);
  auto authority_end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, authority_end);
  auto path = authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) return std::nullopt;

  std::string_view host;
  std::string_view port;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return std::nullopt;
      port = after.substr(1);
    }
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(std::string(host), ec);
    if (ec) return std::nullopt;
  } else {
    auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    if (host.ends_with('.')) host.remove_suffix(1);
    if (!is_host_name(host)) return std::nullopt;
  }
  url.origin.host = lower(host);
  if (port.empty()) {
    url.origin.port = url.origin.tls() ? 443 : 80;
  } else {
    auto parsed = parse_port(port);
    if (!parsed) return std::nullopt;
    url.origin.port = *parsed;
  }

  path = path.substr(0, path.find('#'));
  if (path.empty() || path[0] == '?') {
    url.target = "/" + std::string(path);
  } else {
    url.target = std::string(path);
  }
  return url;
}

std::optional<Url> resolve_location(const Url& base, std::string_view location) {
  if (location.empty() || !is_visible_ascii(location)) return std::nullopt;
  location = location.substr(0, location.find('#'));
  if (location.empty()) return std::nullopt;
  if (location.starts_with("//")) return parse_url(base.origin.scheme + ":" + std::string(location));
  auto scheme_end = location.find("://");
  auto first_separator = location.find_first_of("/?");
  if (scheme_end != std::string_view::npos && scheme_end < first_separator) return parse_url(location);

  Url url{base.origin, {}};
  if (location[0] == '/') {
    url.target = std::string(location);
  } else {
    std::string_view base_path = std::string_view(base.target).substr(0, base.target.find('?'));
    if (location[0] == '?') {
      url.target = std::string(base_path) + std::string(location);
    } else {
      auto slash = base_path.rfind('/');
      std::string_view directory = slash == std::string_view::npos ? "/" : base_path.substr(0, slash + 1);
      url.target = std::string(directory) + std::string(location);
    }
  }
  return url;
}

bool may_send_credentials(const Origin& upstream, const Origin& realm) {
  if (upstream.tls() && !realm.tls()) return false;
  if (upstream.host == realm.host) return true;
  if (is_ip_literal(upstream.host) || is_ip_literal(realm.host)) return false;
  auto upstream_domain = registrable_domain(upstream.host);
  auto realm_domain = registrable_domain(realm.host);
  return upstream_domain && realm_domain && *upstream_domain == *realm_domain;
}

std::string percent_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0x0f]);
    }
  }
  return out;
}

}  // namespace pullgate::registry
