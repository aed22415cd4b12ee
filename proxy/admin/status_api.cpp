// GET / on the admin listener: the status page. Gathers the page's model from what
// the server already keeps (the gate's recent refusals, LMDB's pending queue, the
// evictor's inventory, the counters, upstream health, the policy holder, /readyz's
// answer) off the I/O threads, and renders it (proxy/admin/status_page.cpp).
//
// Login is HTTP Basic with the admin token as the password: the browser asks once
// and sends it with each request, and nothing else is kept on either side. No
// session cookie: the admin listener speaks plain HTTP (on loopback by default,
// reached through `ssh -L`), where a cookie marked Secure is sent by browsers only
// to localhost, and one without Secure would be a second credential in the clear.
#include <nlohmann/json.hpp>

#include "cache/blocking.hpp"
#include "cache/inventory.hpp"
#include "proxy/admin/admin.hpp"
#include "proxy/telemetry/log.hpp"

namespace pullgate::proxy {

namespace {

constexpr std::size_t pending_shown = 50;
constexpr std::size_t biggest_shown = 10;

// The page's own answers carry these whatever their status: nothing but inline
// style may load or run, no frame may hold it, nothing of it is cached or leaks a
// Referer.
void page_headers(http::response<http::string_body>& res) {
  res.set(http::field::content_type, "text/html; charset=utf-8");
  res.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set(http::field::cache_control, "no-store");
  res.set("Referrer-Policy", "no-referrer");
}

std::string short_page(const std::string& title, const std::string& text) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
         "</title></head><body><h1>" + html_escape(title) + "</h1><p>" + html_escape(text) + "</p></body></html>\n";
}

StatusPage::Traffic traffic_of(const PullgateMetrics& m) {
  StatusPage::Traffic t;
  m.cache_requests.for_each([&](const std::vector<std::string>& labels, const Counter& c) {
    const auto& result = labels.at(1);  // {kind, result}
    (result == "hit" ? t.cache_hits : result == "miss" ? t.cache_misses : t.cache_stale) += c.value();
  });
  m.gate_decisions.for_each([&](const std::vector<std::string>& labels, const Counter& c) {
    if (labels.at(0) != "manifest") return;  // {kind, decision, mode, source}: images, not their blobs
    const auto& decision = labels.at(1);
    (decision == "allow" ? t.allowed : decision == "warn" ? t.warned : t.denied) += c.value();
  });
  m.http_requests.for_each([&](const std::vector<std::string>&, const Counter& c) { t.http_requests += c.value(); });
  t.bytes_served = m.bytes_served.value();
  t.bytes_fetched = m.bytes_fetched.value();
  return t;
}

StatusPage::Readiness readiness_of(const std::string& body) {
  StatusPage::Readiness r;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object()) return {"unknown", "GET /readyz did not answer JSON", std::nullopt};
  r.status = j.value("status", "unknown");
  r.reason = j.value("reason", "");
  if (auto f = j.find("fleet"); f != j.end() && f->is_object()) {
    StatusPage::Readiness::Fleet fleet;
    fleet.in_step = f->value("in_step", false);
    fleet.store_up = f->value("store_up", false);
    fleet.revision = f->value("revision", std::int64_t{0});
    fleet.endpoint = f->value("endpoint", "");
    fleet.on_store_down = f->value("on_store_down", "");
    if (auto e = f->find("last_error"); e != f->end() && e->is_object()) {
      fleet.last_error = e->value("message", "");
      fleet.last_error_at = e->value("at", "");
    }
    if (auto rs = f->find("replicas"); rs != f->end() && rs->is_object())
      for (auto& [id, v] : rs->items())
        fleet.replicas.emplace_back(id, v.is_object() ? v.value("heartbeat", "") : std::string());
    r.fleet = std::move(fleet);
  }
  return r;
}

}  // namespace

StatusPage AdminApi::gather_status() {
  StatusPage page;
  page.now_ms = now_ms();
  page.version = PULLGATE_VERSION;
  page.replica = config_.fleet.replica_id;

  auto in_force = policy_.get();
  page.policy.version = in_force->version;
  page.policy.loaded_at_ms = policy_.loaded_at_ms();
  page.policy.source = config_.fleet.policy_in_etcd() ? "the fleet store (etcd " + config_.fleet.etcd_prefix + "policy)"
                       : config_.policy_file.empty()  ? std::string("built-in: allow all (no policy file configured)")
                                                      : config_.policy_file;

  page.denials = gate_.recent().decisions();
  page.notable_total = gate_.recent().added();
  page.bypass_alarms = gate_.recent().bypass_alarms();
  page.bypass_total = gate_.bypass_suspected();

  std::map<std::string, std::string> claimed;
  try {
    claimed = claims_.held();
  } catch (const std::exception&) {
    // The fleet's claims are out of reach: the page shows the queue without them.
  }
  for (auto& [digest, record] : meta_.list_pending(pending_shown)) {
    StatusPage::Pending p{digest.str(), record.references, record.first_seen_ms, record.last_seen_ms, record.requests,
                          ""};
    if (auto it = claimed.find(p.digest); it != claimed.end()) p.claimed_by = it->second;
    page.pending.push_back(std::move(p));
  }
  page.pending_count = meta_.pending_count();

  if (hooks_.telemetry) page.traffic = traffic_of(*hooks_.telemetry);

  if (hooks_.evictor) {
    auto inventory = hooks_.evictor->inventory(cache::ImageOrder::size, biggest_shown);
    StatusPage::Cache c;
    c.bytes = inventory.totals.bytes;
    c.blob_files = inventory.totals.blob_files;
    c.manifests = inventory.totals.manifests;
    c.pinned_bytes = inventory.pinned_bytes;
    c.image_count = inventory.image_count;
    c.max_bytes = hooks_.evictor->limits().max_bytes;
    for (const auto& listed : inventory.images) {
      StatusPage::Image image{listed.image.root.str(), {}, listed.image.bytes, listed.image.bytes_alone,
                              listed.image.last_pull_ms, listed.image.pinned};
      for (const auto& n : listed.names) {
        std::string name = n.upstream + "/" + n.repository;
        for (std::size_t i = 0; i < n.tags.size(); ++i) name += (i ? "," : ":") + n.tags[i];
        image.names.push_back(std::move(name));
      }
      c.biggest.push_back(std::move(image));
    }
    page.cache = std::move(c);
  }

  // Every configured upstream, asked or not yet.
  std::vector<UpstreamHealth::Entry> seen;
  if (hooks_.telemetry) seen = hooks_.telemetry->upstream_health.entries();
  for (const auto& u : config_.upstreams) {
    UpstreamHealth::Entry entry;
    entry.upstream = u.settings.name;
    for (const auto& s : seen)
      if (s.upstream == entry.upstream) entry = s;
    page.upstreams.push_back(std::move(entry));
  }

  page.readiness = readiness_of(hooks_.readiness ? hooks_.readiness() : std::string(R"({"status":"ok"})"));
  return page;
}

asio::awaitable<Outcome> AdminApi::status_page(const Request& request, ClientStream& client,
                                               const RequestContext& context, Caller who) {
  http::response<http::string_body> res{http::status::ok, request.version()};
  page_headers(res);
  const auto method = request.method();
  if (who == Caller::nobody) {
    res.result(http::status::unauthorized);
    // Basic, so that a browser asks for it: any user name, the admin token as password.
    res.set(http::field::www_authenticate, "Basic realm=\"pullgate admin\", charset=\"UTF-8\"");
    res.body() = short_page("pullgate: log in", "The status page needs the admin token (the admin token file) as the "
                                                "password; any user name.");
  } else if (who == Caller::scanner || who == Caller::metrics) {
    res.result(http::status::forbidden);
    res.body() = short_page("pullgate: forbidden", std::string("The ") + (who == Caller::scanner ? "scanner" : "metrics") +
                                                       " token does not open the status page; use the admin token.");
  } else if (method != http::verb::get && method != http::verb::head) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
    res.body() = short_page("pullgate: use GET", "The status page answers GET.");
  } else {
    try {
      // Listing the pending queue and the cache's images reads LMDB at length: not
      // on an I/O thread.
      StatusPage page;
      if (hooks_.blocking) page = co_await cache::run_blocking(hooks_.blocking, [this] { return gather_status(); });
      else page = gather_status();
      res.body() = render_status_page(page);
    } catch (const std::exception& e) {
      res.result(http::status::internal_server_error);
      res.body() = short_page("pullgate: status page failed", e.what());
    }
  }
  const unsigned status = res.result_int();
  res.keep_alive(request.keep_alive() && !context.has_body && !context.last);
  res.prepare_payload();
  if (method == http::verb::head) res.body().clear();
  Outcome outcome{status, res.body().size(), !res.keep_alive()};
  co_await client.write(res);
  if (status != 200)
    log_event(status < 500 ? "warn" : "error", "admin request",
              {{"client", context.client}, {"method", std::string(request.method_string())}, {"path", "/"},
               {"status", status}});
  co_return outcome;
}

}  // namespace pullgate::proxy
