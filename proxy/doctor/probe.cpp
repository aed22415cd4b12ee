#include "proxy/doctor/probe.hpp"

#include <exception>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "registry/upstream.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::proxy::doctor {

namespace {

namespace asio = boost::asio;

// The origins to try for an endpoint, in order.
std::vector<std::string> origins_of(const Endpoint& e) {
  const auto authority = authority_of(e.url);
  if (authority.empty() || authority.find('<') != std::string::npos) return {};
  if (auto scheme = e.url.find("://"); scheme != std::string::npos) return {e.url.substr(0, scheme) + "://" + authority};
  if (e.insecure) return {"https://" + authority, "http://" + authority};
  return {"https://" + authority};
}

asio::awaitable<Probe> probe_origin(const std::string& origin, std::chrono::milliseconds timeout) {
  Probe probe;
  registry::UpstreamSettings settings;
  settings.name = origin;
  settings.url = origin;
  settings.insecure = true;
  settings.connect_timeout = settings.response_timeout = settings.read_timeout = timeout;
  try {
    auto upstream = registry::make_http_upstream(co_await asio::this_coro::executor, settings);
    registry::UpstreamRequest request;
    request.target = "/v2/";
    auto response = co_await upstream->send(std::move(request));
    probe.reached = probe.answered = true;
    probe.status = response->status();
    probe.detail = "HTTP " + std::to_string(probe.status) + " from " + origin + "/v2/";
  } catch (const registry::UpstreamError& e) {
    if (e.kind() == registry::UpstreamError::Kind::auth) {
      // It answered 401 with a token challenge whose token could not be had: a
      // registry answering.
      probe.reached = probe.answered = true;
      probe.status = 401;
      probe.detail = "HTTP 401 from " + origin + "/v2/ (" + e.what() + ")";
    } else {
      // Past the connection (TLS or HTTP went wrong): the route is open, whatever a
      // client would make of what answers there.
      using Kind = registry::UpstreamError::Kind;
      probe.reached = e.kind() == Kind::tls || e.kind() == Kind::protocol || e.kind() == Kind::redirect ||
                      e.kind() == Kind::too_large;
      probe.detail = origin + ": " + e.what();
    }
  } catch (const std::exception& e) {
    probe.detail = origin + ": " + e.what();
  }
  co_return probe;
}

}  // namespace

std::string probe_key(const Endpoint& e) { return (e.insecure ? "insecure " : "") + e.url; }

std::map<std::string, Probe> probe_all(const std::vector<Endpoint>& endpoints, std::chrono::milliseconds timeout) {
  std::map<std::string, Probe> probes;
  asio::io_context ioc(1);
  for (const auto& e : endpoints) {
    auto key = probe_key(e);
    auto origins = origins_of(e);
    if (origins.empty() || probes.contains(key)) continue;
    probes[key].detail = "not probed";
    asio::co_spawn(
        ioc,
        [&probes, key, origins = std::move(origins), timeout]() -> asio::awaitable<void> {
          // The first HTTP answer; else the first origin reached; else every failure.
          std::optional<Probe> reached;
          std::string tried;
          for (const auto& origin : origins) {
            auto probe = co_await probe_origin(origin, timeout);
            if (probe.answered) {
              probes[key] = std::move(probe);
              co_return;
            }
            if (probe.reached && !reached) reached = probe;
            tried += (tried.empty() ? "" : "; ") + probe.detail;
          }
          probes[key] = reached ? *reached : Probe{false, false, 0, tried};
        },
        asio::detached);
  }
  ioc.run();
  return probes;
}

}  // namespace pullgate::proxy::doctor
