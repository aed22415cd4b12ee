// The request target as a client sends it (registry/route.hpp): parsed once into a
// Route whose names are valid, or refused with 400/404; and the query and
// percent-decoding it is built on.
#include <set>

#include "registry/route.hpp"
#include "registry/upstream_url.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::registry;
using pullgate::fuzz::has_control;
using pullgate::fuzz::require;

namespace {

void check_route(const Route& route, std::string_view target) {
  const bool named = route.kind != RouteKind::base && route.kind != RouteKind::health && route.kind != RouteKind::ready;
  require(route.repository.has_value() == named, "a repository exactly on the routes that name one", target);
  if (route.repository) {
    auto again = Repository::parse(route.repository->str());
    require(again && *again == *route.repository, "the repository re-parses to itself", route.repository->str());
  }
  require(route.reference.has_value() == (route.kind == RouteKind::manifest), "a reference only on manifests", target);
  if (route.reference) {
    auto again = Reference::parse(route.reference->str());
    require(again && again->str() == route.reference->str(), "the reference re-parses to itself", target);
  }
  const bool by_digest = route.kind == RouteKind::blob || route.kind == RouteKind::referrers;
  require(route.digest.has_value() == by_digest, "a digest exactly on blobs and referrers", target);
  if (route.digest) {
    auto again = Digest::parse(route.digest->str());
    require(again && *again == *route.digest, "the digest re-parses to itself", route.digest->str());
  }
  for (const auto* value : {&route.ns, &route.last, &route.artifact_type})
    if (*value) require(!has_control(**value), "no control character in a query value", target);
  if (route.alias) require(route.alias->starts_with("up"), "an alias only where the predicate said so", *route.alias);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto target = pullgate::fuzz::as_text(data, size);
  // Upstream aliases for this run: any first segment that starts with "up".
  const AliasPredicate is_alias = [](std::string_view segment) { return segment.starts_with("up"); };
  auto parsed = parse_route(target, is_alias);
  if (auto* route = std::get_if<Route>(&parsed)) {
    for (unsigned char c : target) require(c > 0x20 && c < 0x7f, "a routed target is visible ASCII", target);
    check_route(*route, target);
  } else {
    const auto& error = std::get<RouteError>(parsed);
    require(error.status == 400 || error.status == 404, "refused with 400 or 404", error.message);
    require(pullgate::fuzz::one_line(error.message), "a one-line refusal", error.message);
  }

  // What the target's query and segments go through.
  if (auto params = parse_query(target)) {
    for (const auto& param : *params) {
      if (!param.value) continue;
      // Encoding what was decoded and decoding it again gives it back.
      auto again = percent_decode(percent_encode(*param.value));
      require(again && *again == *param.value, "percent-encoding round trip", *param.value);
    }
  }
  return 0;
}
