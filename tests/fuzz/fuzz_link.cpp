// URLs an upstream hands back: Link headers of paginated answers, rewritten to point
// at the mirror (registry/link.hpp), and redirect Locations and token realms
// (registry/upstream_url.hpp). Input: link \n upstream repository \n client
// repository \n ns \n location.
#include "registry/link.hpp"
#include "registry/names.hpp"
#include "registry/upstream_url.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::registry;
using pullgate::fuzz::has_control;
using pullgate::fuzz::require;

namespace {

void check_url(const Url& url, std::string_view from) {
  require(url.origin.scheme == "http" || url.origin.scheme == "https", "an http(s) URL", from);
  require(!url.origin.host.empty(), "a host", from);
  for (char c : url.origin.host) require(!(c >= 'A' && c <= 'Z'), "a lower-case host", url.origin.host);
  require(url.target.starts_with('/') && is_visible_ascii(url.target), "an origin-form target", url.target);
  // What the client will connect to and ask for reads back the same.
  auto again = parse_url(url.origin.key() + url.target);
  require(again && again->origin == url.origin && again->target == url.target, "the URL re-parses to itself",
          url.origin.key() + url.target);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = pullgate::fuzz::fields(pullgate::fuzz::as_text(data, size), 5);
  const auto link = parts[0];
  // The client's side is checked before it gets here (route.hpp): a valid repository
  // and an ns without control characters.
  auto client = Repository::parse(parts[2]);
  const std::string client_repository = client ? client->str() : "library/nginx";
  std::optional<std::string_view> ns;
  if (!parts[3].empty() && !has_control(parts[3])) ns = parts[3];

  if (auto out = mirror_link(link, parts[1], client_repository, ns)) {
    require(out->starts_with("</v2/" + client_repository + "/"), "links point at the client's repository", *out);
    require(!has_control(*out), "no control character in a rewritten link", *out);
  }

  const auto location = parts[4];
  if (auto url = parse_url(link)) {
    check_url(*url, link);
    if (auto resolved = resolve_location(*url, location)) {
      check_url(*resolved, location);
      // Credentials never go down to plain http, nor to another host by an IP literal.
      if (url->origin.tls() && !resolved->origin.tls())
        require(!may_send_credentials(url->origin, resolved->origin), "no credentials over plain http", location);
      if (resolved->origin.host == url->origin.host && resolved->origin.tls() == url->origin.tls())
        require(may_send_credentials(url->origin, resolved->origin), "the upstream host itself gets them", location);
    }
  }
  return 0;
}
