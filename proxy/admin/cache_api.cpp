// GET /v1/cache and POST /v1/cache/evict (docs/cache.md, "Observing it" and "Evicting
// by hand"). Both go through the server's Evictor, so a manual eviction takes the
// blob locks publishing takes, waits for a scheduled run in progress, and the mirror's
// in-memory manifest cache forgets what it removed (on_evicted).
#include <chrono>

#include <nlohmann/json.hpp>

#include "cache/blocking.hpp"
#include "cache/inventory.hpp"
#include "proxy/admin/admin.hpp"
#include "proxy/admin/request_parts.hpp"
#include "proxy/gate/cache_view.hpp"
#include "proxy/telemetry/log.hpp"
#include "registry/route.hpp"

namespace pullgate::proxy {

using nlohmann::json;

using admin_parts::error_json;

asio::awaitable<AdminApi::Reply> AdminApi::cache_off_io(const Request& request, const RequestContext& context) {
  if (!hooks_.blocking) co_return cache(request, context);
  co_return co_await cache::run_blocking(hooks_.blocking, [&] { return cache(request, context); });
}

AdminApi::Reply AdminApi::cache(const Request& request, const RequestContext& context) {
  std::string_view target = request.target();
  auto q = target.find('?');
  const auto path = target.substr(0, q);
  auto& evictor = *hooks_.evictor;
  if (path == "/v1/cache") {
    if (request.method() != http::verb::get) return {405, error_json("use GET").dump()};
    auto params = registry::parse_query(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
    if (!params) return {400, error_json("malformed query string").dump()};
    std::vector<std::pair<std::string, std::string>> pairs;
    for (auto& p : *params) pairs.emplace_back(p.name, p.value.value_or(""));
    std::string error;
    auto query = parse_cache_query(pairs, error);
    if (!query) return {400, error_json(error).dump()};
    auto inventory = evictor.inventory(query->order, query->limit);
    json images = json::array();
    for (const auto& image : inventory.images) images.push_back(image_json(image));
    json last = nullptr;
    if (auto run = evictor.last_run())
      last = {{"started_at", policy::format_ms(run->started_at_ms)}, {"started_at_ms", run->started_at_ms},
              {"seconds", run->seconds}, {"manual", run->manual}, {"units", run->units},
              {"bytes_freed", run->bytes_freed}, {"bytes_after", run->bytes_after}};
    return {200, json{{"totals", totals_json(inventory.totals)},
                      {"limits", limits_json(evictor.limits())},
                      {"pinned_bytes", inventory.pinned_bytes},
                      {"last_eviction", last},
                      {"image_count", inventory.image_count},
                      {"sort", cache::to_string(query->order)},
                      {"limit", query->limit},
                      {"images", images}}
                     .dump()};
  }
  if (path != "/v1/cache/evict") return {404, error_json("no such admin endpoint: " + std::string(path)).dump()};
  if (request.method() != http::verb::post) return {405, error_json("use POST").dump()};
  std::string error;
  auto asked = parse_evict_request(context.body, error);
  if (!asked) return {400, error_json(error).dump()};
  std::vector<registry::Digest> manifests;
  for (const auto& image : asked->images) {
    auto named = cache::find_cached_manifest(meta_, image);
    if (!named.digest) return {named.unknown ? 404u : 400u, error_json(named.error).dump()};
    manifests.push_back(*named.digest);
  }
  auto done = evictor.evict_images(manifests, asked->force);
  if (!done.missing.empty())  // evicted since it was looked up
    return {404, json{{"error", "not cached (any more): " + done.missing.front().str()},
                      {"missing", digests_json(done.missing)}}.dump()};
  if (!done.result)
    return {409, json{{"error", "pinned (cache.pin or pullgate pin): " + done.pinned.front().str() +
                                    "; nothing evicted; send \"force\": true to evict it anyway"},
                      {"pinned", digests_json(done.pinned)}}.dump()};
  const auto& plan = done.result->plan;
  const std::string by = asked->by.empty() ? "admin-api" : asked->by;
  if (hooks_.evicted) hooks_.evicted(*done.result);
  log_event("info", "manual eviction", {{"by", by}, {"client", context.client}, {"images", asked->images},
                                         {"roots", digests_json(done.images)}, {"force", asked->force},
                                         {"pinned", digests_json(done.pinned)},
                                         {"bytes_freed", plan.bytes_before - plan.bytes_after}});
  return {200, eviction_json(done.images, plan, done.pinned, by).dump()};
}

}  // namespace pullgate::proxy
