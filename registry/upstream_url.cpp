#include "registry/upstream_url.hpp"

#include <algorithm>
#include <cctype>
#include <memory>

#include <boost/asio/ip/address.hpp>
#include <libpsl.h>

#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>

namespace pullgate::registry {
namespace {

namespace urls = boost::urls;

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

// Labels are not empty: "a..b" or "a.." (one trailing dot is dropped before) would
// name the host the DNS knows as "a.b" or "a." under another spelling.
bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (host.front() == '.' || host.back() == '.' || host.find("..") != std::string_view::npos) return false;
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
  auto parsed = urls::parse_uri(text);  // RFC 3986, a fragment allowed (and dropped)
  if (!parsed || parsed->has_userinfo()) return std::nullopt;
  Url url;
  switch (parsed->scheme_id()) {
    case urls::scheme::http: url.origin.scheme = "http"; break;
    case urls::scheme::https: url.origin.scheme = "https"; break;
    default: return std::nullopt;
  }
  std::string host;
  switch (parsed->host_type()) {
    case urls::host_type::ipv4:
    case urls::host_type::ipv6:
      host = parsed->host_address();  // an IPv6 literal without its brackets
      break;
    case urls::host_type::name:
      host = parsed->host_address();  // percent-decoded
      if (host.ends_with('.')) host.pop_back();
      if (!is_host_name(host)) return std::nullopt;
      break;
    default:
      return std::nullopt;  // none, or an IPvFuture literal
  }
  url.origin.host = lower(host);
  if (parsed->port().empty()) {
    url.origin.port = url.origin.tls() ? 443 : 80;
  } else {
    auto port = parse_port(parsed->port());
    if (!port) return std::nullopt;
    url.origin.port = *port;
  }
  // Boost.URL 1.81 takes "http://[::1]:80+x/" with "+x/" as its path (found by
  // tests/fuzz/fuzz_link): a target that is not origin-form must not reach a request line.
  if (!parsed->encoded_path().empty() && !parsed->encoded_path().starts_with('/')) return std::nullopt;
  url.target = parsed->encoded_path().empty() ? "/" : std::string(parsed->encoded_path());
  if (parsed->has_query()) url.target += "?" + std::string(parsed->encoded_query());
  return url;
}

std::optional<Url> resolve_location(const Url& base, std::string_view location) {
  if (location.empty() || !is_visible_ascii(location)) return std::nullopt;
  location = location.substr(0, location.find('#'));
  if (location.empty()) return std::nullopt;
  auto reference = urls::parse_uri_reference(location);
  if (!reference) return std::nullopt;
  const std::string base_text = base.origin.key() + base.target;  // the view below points into it
  auto from = urls::parse_uri(base_text);
  if (!from) return std::nullopt;
  // RFC 3986 section 5: relative paths merged with the base's, dot segments removed.
  urls::url resolved;
  if (!urls::resolve(*from, *reference, resolved)) return std::nullopt;
  return parse_url(resolved.buffer());
}

bool may_send_credentials(const Origin& upstream, const Origin& realm) {
  if (upstream.tls() && !realm.tls()) return false;
  if (upstream.host == realm.host) return true;
  if (is_ip_literal(upstream.host) || is_ip_literal(realm.host)) return false;
  auto upstream_domain = registrable_domain(upstream.host);
  auto realm_domain = registrable_domain(realm.host);
  return upstream_domain && realm_domain && *upstream_domain == *realm_domain;
}

std::string percent_encode(std::string_view text) { return urls::encode(text, urls::unreserved_chars); }

}  // namespace pullgate::registry
