#pragma once
// The admin API, on its own listener (loopback by default). Every request needs
// `Authorization: Bearer <token>` with the token from the admin token file;
// anything else gets 401. JSON in, JSON out.
//
// GET / is the status page (proxy/admin/status_page.hpp), for a browser: the admin
// token as the password of HTTP Basic auth (any user name; the 401 carries a Basic
// challenge so that the browser asks). The scanner token does not open it.
//
// Prometheus scrapes with the metrics token (the metrics token file), which opens
// GET /metrics and /healthz only.
//
// Scanners use the same listener with their own token (the scanner token file):
// it grants GET /v1/pending and its claims, POST /v1/reports and the registry pull API under /v2/,
// where pulls skip the gate (a scanner must fetch what the gate holds back) and are
// audited as scanner pulls. Registry clients send it as Basic credentials (any user
// name, the token as password) after the 401 challenge, or as a Bearer token.
//
//   GET    /                             the status page (HTML)
//   GET    /healthz
//   GET    /metrics                      Prometheus text format
//   GET    /v1/verdicts[?decision=&source=&limit=]
//   GET    /v1/verdicts/<digest>
//   PUT    /v1/verdicts/<digest>         {"decision","reason","by","expires_in_s"}
//   DELETE /v1/verdicts/<digest>
//   GET    /v1/exceptions
//   POST   /v1/exceptions                {"id","digest"|"repository","upstream","reason","who","expires"|"expires_in_s"}
//   DELETE /v1/exceptions/<id>
//   POST   /v1/reports[?digest=<d>]       body: a Trivy or Grype JSON report
//   GET    /v1/reports/<digest>[?findings=1]
//   GET    /v1/pending[?limit=N]          digests awaiting a scan, oldest first
//   POST   /v1/pending/claims             {"digest","holder","ttl_s"}: a scanner claims a digest
//   POST   /v1/pending/claims/<digest>/renew   {"claim"}
//   DELETE /v1/pending/claims/<digest>?claim=<id>
//   POST   /v1/policy/reload
//   GET    /v1/explain?image=<upstream>/<repo>:<tag>   (or @<digest>)
//   GET    /v1/explain?digest=<digest>[&upstream=<name>&repository=<repo>]
//   GET    /v1/cache[?sort=size|pulled&limit=N]   what the cache holds, by image
//   POST   /v1/cache/evict               {"images":[IMAGE|DIGEST...],"force":bool,"by":"who"}
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "cache/evictor.hpp"
#include "cache/meta_store.hpp"
#include "cache/scan_claims.hpp"
#include "proxy/admin/status_page.hpp"
#include "proxy/config.hpp"
#include "proxy/gate/decision_writes.hpp"
#include "proxy/gate/gate.hpp"
#include "proxy/server/handler.hpp"
#include "proxy/telemetry/metrics.hpp"
#include "registry/clock.hpp"

namespace pullgate::proxy {

// Reads the token (first line) from `path`; creates the file with a random token
// (mode 0600 whatever the umask) when it does not exist, and when another process
// creates it at the same moment returns that one's token. Refuses a file of ours
// that group or others may access, as sshd does a private key. Throws
// std::runtime_error (one line).
std::string load_or_create_token(const std::filesystem::path& path);
// Reads the token of an existing file, with the same checks; throws when it is missing.
std::string load_token(const std::filesystem::path& path);

class AdminApi final : public Handler {
 public:
  struct Hooks {
    std::function<std::string()> metrics;        // renders /metrics
    std::function<bool()> reload_policy;         // true when the new policy is in force
    // The cache (GET /v1/cache, POST /v1/cache/evict; unset: 404), worked on on
    // `blocking` (off the I/O threads; unset: inline). `evicted` counts and logs a
    // manual eviction that removed something.
    cache::Evictor* evictor = nullptr;
    asio::any_io_executor blocking;
    std::function<void(const cache::Evictor::Result&)> evicted;
    // Where verdicts, exceptions and reports are written (unset: this mirror's LMDB).
    // With the fleet store they go to etcd first, and are written on `blocking`.
    DecisionWrites* writes = nullptr;
    // Scanners' claims on pending digests (unset: this mirror's own book, in memory).
    // The fleet's are in etcd, and worked on on `blocking`.
    cache::ScanClaims* claims = nullptr;
    // What the status page reads: the counters and upstream health (unset: zeros),
    // and GET /readyz's body (unset: {"status":"ok"}).
    const PullgateMetrics* telemetry = nullptr;
    std::function<std::string()> readiness;
  };
  // pull: the mirror, which serves scanners' /v2/ requests (past the gate).
  struct Tokens {
    std::string admin;
    std::string scanner;  // empty: none
    std::string metrics;  // empty: none
  };
  AdminApi(const Config& config, Tokens tokens, cache::MetaStore& meta,
           PolicyHolder& policy, Gate& gate, Handler& pull, Hooks hooks, WallClock clock = system_wall_clock());

  asio::awaitable<Outcome> handle(const Request& request, ClientStream& client,
                                  const RequestContext& context) override;

 private:
  struct Reply {
    unsigned status = 200;
    std::string body;
    std::string content_type = "application/json";
  };
  Reply route(const Request& request, const RequestContext& context);
  Reply verdicts(const Request& request, const std::string& rest, const RequestContext& context);
  Reply exceptions(const Request& request, const std::string& rest, const RequestContext& context);
  Reply explain(const Request& request);
  Reply reports(const Request& request, const std::string& rest, const RequestContext& context);
  Reply vex(const Request& request, const std::string& rest, const RequestContext& context);
  Reply pending(const Request& request, const std::string& rest, const RequestContext& context);  // pending_api.cpp
  Reply cache(const Request& request, const RequestContext& context);  // proxy/admin/cache_api.cpp
  asio::awaitable<Reply> cache_off_io(const Request& request, const RequestContext& context);

  enum class Caller { nobody, admin, scanner, metrics };
  // GET / (proxy/admin/status_api.cpp).
  asio::awaitable<Outcome> status_page(const Request& request, ClientStream& client, const RequestContext& context,
                                       Caller who);
  StatusPage gather_status();
  Caller caller(const Request& request) const;
  bool scanner_may(const Request& request) const;
  bool metrics_may(const Request& request) const;

  const Config& config_;
  Tokens tokens_;
  Handler& pull_;
  cache::MetaStore& meta_;
  PolicyHolder& policy_;
  Gate& gate_;
  Hooks hooks_;
  DecisionWrites local_writes_;
  DecisionWrites& writes_;  // hooks_.writes or local_writes_
  std::unique_ptr<cache::ScanClaims> local_claims_;
  cache::ScanClaims& claims_;  // hooks_.claims or local_claims_
  const WallClock clock_;  // when verdicts, exceptions and reports are recorded
  std::int64_t now_ms() const { return ms_since_epoch(clock_()); }
};

}  // namespace pullgate::proxy
