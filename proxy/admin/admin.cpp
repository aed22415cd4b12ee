#include "proxy/admin/admin.hpp"

#include <openssl/crypto.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "cache/blob_store.hpp"
#include "cache/blocking.hpp"
#include "cache/pins.hpp"
#include "policy/access.hpp"
#include "proxy/admin/request_parts.hpp"
#include "proxy/gate/cache_view.hpp"
#include "proxy/gate/records.hpp"
#include "proxy/gate/explain.hpp"
#include "proxy/telemetry/log.hpp"
#include "proxy/gate/reports.hpp"
#include "proxy/gate/vex_import.hpp"
#include "registry/base64.hpp"
#include "registry/errors.hpp"
#include "registry/names.hpp"
#include "registry/route.hpp"

namespace pullgate::proxy {

using nlohmann::json;
using admin_parts::error_json;
using admin_parts::object_body;
using admin_parts::parse_query;

namespace {

std::runtime_error token_error(const std::string& what, const std::filesystem::path& path) {
  return std::runtime_error(what + " " + path.string() + ": " + std::strerror(errno));
}

// The first line of a token file, trailing CR and spaces removed. Like sshd with
// private keys, a file of ours that group or others may access is refused: whoever
// reads it administers the gate. A file owned by another user (root:pullgate 0440
// from a Kubernetes Secret or config management) is that owner's arrangement.
std::string read_token(const cache::FileHandle& file, const std::filesystem::path& path) {
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) throw token_error("cannot read token file", path);
  if (!S_ISREG(st.st_mode)) throw std::runtime_error("token file " + path.string() + " is not a regular file");
  if (st.st_uid == ::geteuid() && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error("token file " + path.string() + " has mode " + mode +
                             ", open to group or others: chmod 600 it");
  }
  std::string text;
  char buffer[256];
  while (text.find('\n') == std::string::npos && text.size() < 4096) {
    auto n = ::read(file.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw token_error("cannot read token file", path);
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  std::string token = text.substr(0, text.find('\n'));
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < 16) throw std::runtime_error("token in " + path.string() + " is shorter than 16 characters");
  return token;
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1)
    throw std::runtime_error("cannot make a token: no randomness");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (auto b : raw) out += hex[b >> 4], out += hex[b & 15];
  return out;
}

}  // namespace

std::string load_token(const std::filesystem::path& path) {
  cache::FileHandle existing(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!existing) throw token_error("cannot open token file", path);
  return read_token(existing, path);
}

std::string load_or_create_token(const std::filesystem::path& path) {
  if (cache::FileHandle existing(::open(path.c_str(), O_RDONLY | O_CLOEXEC)); existing)
    return read_token(existing, path);
  if (errno != ENOENT) throw token_error("cannot open token file", path);

  std::string token = random_hex(32);
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  // Written whole under a temporary name with O_EXCL and mode 0600 (never readable by
  // others, whatever the umask), then linked into place. link(2) never replaces: of
  // two processes creating at once one wins and the other reads the winner's token,
  // and no reader ever sees a half-written file.
  auto temp = path;
  temp += ".new-" + random_hex(8);
  {
    cache::FileHandle out(::open(temp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
    if (!out) throw token_error("cannot create token file", temp);
    std::string line = token + "\n";
    bool written = ::write(out.get(), line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                   ::fsync(out.get()) == 0;
    if (!written) {
      auto error = token_error("cannot write token file", temp);
      ::unlink(temp.c_str());
      throw error;
    }
  }
  int linked = ::link(temp.c_str(), path.c_str());
  int link_errno = errno;
  ::unlink(temp.c_str());
  if (linked != 0) {
    errno = link_errno;
    if (errno != EEXIST) throw token_error("cannot create token file", path);
    cache::FileHandle winner(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!winner) throw token_error("cannot open existing token file", path);
    return read_token(winner, path);
  }
  log_event("info", "created token", {{"file", path.string()}});
  return token;
}

AdminApi::AdminApi(const Config& config, Tokens tokens, cache::MetaStore& meta,
                   PolicyHolder& policy, Gate& gate, Handler& pull, Hooks hooks, WallClock clock)
    : config_(config),
      tokens_(std::move(tokens)),
      pull_(pull),
      meta_(meta),
      policy_(policy),
      gate_(gate),
      hooks_(std::move(hooks)),
      local_writes_(meta, nullptr),
      writes_(hooks_.writes ? *hooks_.writes : local_writes_),
      local_claims_(hooks_.claims ? nullptr : cache::local_scan_claims()),
      claims_(hooks_.claims ? *hooks_.claims : *local_claims_),
      clock_(std::move(clock)) {}

namespace {

bool same_secret(std::string_view given, std::string_view expected) {
  return given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

bool is_pull_api(std::string_view target) {
  auto path = target.substr(0, target.find('?'));
  return path == "/v2" || path.rfind("/v2/", 0) == 0;
}

}  // namespace

AdminApi::Caller AdminApi::caller(const Request& request) const {
  std::string_view auth = request[http::field::authorization];
  std::string_view secret;
  if (auth.rfind("Bearer ", 0) == 0) {
    secret = auth.substr(7);
  } else if (auth.rfind("Basic ", 0) == 0) {
    // Registry clients answer the Basic challenge with user:password; the password
    // is the token, the user name is only for the client's sake.
    static thread_local std::string decoded;
    if (!registry::base64_decode(auth.substr(6), decoded)) return Caller::nobody;
    auto colon = decoded.find(':');
    if (colon == std::string::npos) return Caller::nobody;
    secret = std::string_view(decoded).substr(colon + 1);
  } else {
    return Caller::nobody;
  }
  if (same_secret(secret, tokens_.admin)) return Caller::admin;
  if (!tokens_.scanner.empty() && same_secret(secret, tokens_.scanner)) return Caller::scanner;
  if (!tokens_.metrics.empty() && same_secret(secret, tokens_.metrics)) return Caller::metrics;
  return Caller::nobody;
}

bool AdminApi::metrics_may(const Request& request) const {
  std::string_view target = request.target();
  auto path = target.substr(0, target.find('?'));
  auto method = request.method();
  return (method == http::verb::get || method == http::verb::head) && (path == "/metrics" || path == "/healthz");
}

bool AdminApi::scanner_may(const Request& request) const {
  std::string_view target = request.target();
  auto path = target.substr(0, target.find('?'));
  auto method = request.method();
  if (path == "/healthz") return true;
  if (path == "/v1/pending") return method == http::verb::get;
  if (path.starts_with("/v1/pending/claims")) return true;  // claims: the scanner's own
  if (path == "/v1/reports") return method == http::verb::post;
  return false;
}

asio::awaitable<Outcome> AdminApi::handle(const Request& request, ClientStream& client, const RequestContext& context) {
  auto start = std::chrono::steady_clock::now();
  auto who = caller(request);
  if (request.target() == "/" || request.target().starts_with("/?"))
    co_return co_await status_page(request, client, context, who);
  if (is_pull_api(request.target())) {
    if (who == Caller::admin || who == Caller::scanner) {
      RequestContext scanner_context = context;
      scanner_context.scanner = true;
      co_return co_await pull_.handle(request, client, scanner_context);
    }
    // The registry API's own answer, so that registry clients send credentials.
    http::response<http::string_body> res{http::status::unauthorized, request.version()};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::www_authenticate, "Basic realm=\"pullgate-scanner\"");
    res.set("Docker-Distribution-API-Version", "registry/2.0");
    res.keep_alive(request.keep_alive() && !context.has_body && !context.last);
    res.body() = registry::error_body(registry::ErrorCode::unauthorized,
                                      "scanner pulls need the scanner token (Basic password or Bearer)");
    res.prepare_payload();
    if (request.method() == http::verb::head) res.body().clear();
    Outcome outcome{401, res.body().size(), !res.keep_alive()};
    co_await client.write(res);
    co_return outcome;
  }
  Reply reply;
  if (who == Caller::nobody) {
    reply = {401, error_json("admin API: a valid `Authorization: Bearer <token>` is required").dump()};
  } else if (who == Caller::metrics && !metrics_may(request)) {
    reply = {403, error_json("the metrics token allows only GET /metrics and /healthz").dump()};
  } else if (who == Caller::scanner && !scanner_may(request)) {
    reply = {403, error_json("the scanner token allows only GET /v1/pending, its claims, POST /v1/reports and pulls under /v2/").dump()};
  } else if (hooks_.evictor && request.target().starts_with("/v1/cache")) {
    try {
      reply = co_await cache_off_io(request, context);
    } catch (const std::exception& e) {
      reply = {500, error_json(e.what()).dump()};
    }
  } else {
    try {
      // A write with the fleet store waits for etcd, as do the fleet's scan claims:
      // not on an I/O thread.
      bool waits = (writes_.shared() && request.method() != http::verb::get) ||
                   (claims_.remote() && request.target().starts_with("/v1/pending"));
      if (waits && hooks_.blocking)
        reply = co_await cache::run_blocking(hooks_.blocking, [&] { return route(request, context); });
      else
        reply = route(request, context);
    } catch (const cache::FleetUnavailable& e) {
      reply = {503, error_json(e.what()).dump()};
    } catch (const std::exception& e) {
      reply = {500, error_json(e.what()).dump()};
    }
  }
  http::response<http::string_body> res{static_cast<http::status>(reply.status), request.version()};
  res.set(http::field::content_type, reply.content_type);
  if (reply.status == 401) res.set(http::field::www_authenticate, "Bearer realm=\"pullgate-admin\"");
  res.keep_alive(request.keep_alive() && !context.has_body && !context.last);
  res.body() = std::move(reply.body);
  if (res.body().empty() || res.body().back() != '\n') res.body() += "\n";
  res.prepare_payload();
  if (request.method() == http::verb::head) res.body().clear();
  Outcome outcome{reply.status, res.body().size(), !res.keep_alive()};
  co_await client.write(res);
  if (reply.status != 200 || request.method() != http::verb::get) {
    log_event(reply.status < 400 ? "info" : "warn", "admin request",
              {{"client", context.client},
               {"method", std::string(request.method_string())},
               {"path", std::string(request.target().substr(0, request.target().find('?')))},
               {"status", reply.status},
               {"duration_ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count()}});
  }
  co_return outcome;
}

AdminApi::Reply AdminApi::route(const Request& request, const RequestContext& context) {
  std::string_view target = request.target();
  auto q = target.find('?');
  std::string path(target.substr(0, q));
  auto method = request.method();
  if (path == "/healthz") return {200, json{{"status", "ok"}}.dump()};
  if (path == "/metrics") {
    if (method != http::verb::get && method != http::verb::head) return {405, error_json("use GET").dump()};
    return {200, hooks_.metrics ? hooks_.metrics() : std::string(), "text/plain; version=0.0.4; charset=utf-8"};
  }
  if (path == "/v1/policy/reload") {
    if (method != http::verb::post) return {405, error_json("use POST").dump()};
    bool ok = hooks_.reload_policy && hooks_.reload_policy();
    auto current = policy_.get();
    return {ok ? 200u : 422u,
            json{{"reloaded", ok}, {"policy_version", current->version},
                 {"message", ok ? "policy reloaded" : "the policy file did not validate (or none is configured); "
                                                      "the previous policy stays in force; see the server log"}}
                .dump()};
  }
  if (path == "/v1/exceptions" || path.rfind("/v1/exceptions/", 0) == 0)
    return exceptions(request, path.size() > 15 ? path.substr(15) : std::string(), context);
  if (path == "/v1/reports" || path.rfind("/v1/reports/", 0) == 0)
    return reports(request, path.size() > 12 ? path.substr(12) : std::string(), context);
  if (path == "/v1/vex" || path.rfind("/v1/vex/", 0) == 0)
    return vex(request, path.size() > 8 ? path.substr(8) : std::string(), context);
  if (path == "/v1/pending" || path.rfind("/v1/pending/", 0) == 0)
    return pending(request, path.substr(11), context);
  if (path == "/v1/explain") {
    if (method != http::verb::get) return {405, error_json("use GET").dump()};
    return explain(request);
  }
  if (path == "/v1/pins") {
    // The pins of `pullgate pin ls --json`: the config's, then the stored ones.
    if (method != http::verb::get) return {405, error_json("use GET").dump()};
    json pins = json::array();
    for (const auto& listed : cache::list_pins_in_force(meta_, config_.cache_pins)) pins.push_back(pin_json(listed));
    return {200, json{{"pins", pins}}.dump(-1, ' ', false, json::error_handler_t::replace)};
  }
  if (path == "/v1/verdicts" || path.rfind("/v1/verdicts/", 0) == 0)
    return verdicts(request, path.size() > 13 ? path.substr(13) : std::string(), context);
  return {404, error_json("no such admin endpoint: " + path).dump()};
}

AdminApi::Reply AdminApi::verdicts(const Request& request, const std::string& rest, const RequestContext& context) {
  auto method = request.method();
  std::string_view target = request.target();
  auto q = target.find('?');
  auto query = parse_query(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  if (!query) return {400, error_json("malformed query string").dump()};
  if (rest.empty()) {
    if (method != http::verb::get) return {405, error_json("use GET").dump()};
    cache::VerdictFilter filter;
    if (auto it = query->find("decision"); it != query->end()) filter.decision = it->second;
    if (auto it = query->find("source"); it != query->end()) filter.source = it->second;
    if (auto it = query->find("limit"); it != query->end()) {
      char* end = nullptr;
      filter.limit = std::strtoul(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end || filter.limit == 0) return {400, error_json("limit must be a positive number").dump()};
    }
    json list = json::array();
    for (auto& [d, v] : meta_.list_verdicts(filter)) list.push_back(verdict_json(d, v));
    return {200, json{{"verdicts", list}}.dump()};
  }
  auto digest = registry::Digest::parse(rest);
  if (!digest) return {400, error_json("not a digest: " + rest.substr(0, 200)).dump()};
  if (method == http::verb::get) {
    auto v = meta_.get_verdict(*digest);
    if (!v) return {404, error_json("no verdict stored for " + digest->str()).dump()};
    return {200, verdict_json(*digest, *v).dump()};
  }
  if (method == http::verb::delete_) {
    if (!writes_.remove_verdict(*digest)) return {404, error_json("no verdict stored for " + digest->str()).dump()};
    log_event("info", "verdict removed", {{"digest", digest->str()}, {"client", context.client}});
    return {200, json{{"removed", digest->str()}}.dump()};
  }
  if (method != http::verb::put) return {405, error_json("use GET, PUT or DELETE").dump()};
  std::string body_error;
  auto parsed_body = object_body(context.body, body_error);
  if (!parsed_body) return {400, error_json(body_error).dump()};
  json& body = *parsed_body;
  auto text = [&](const char* key) -> std::optional<std::string> {
    auto it = body.find(key);
    if (it == body.end()) return std::string();
    if (!it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto decision = text("decision"), reason = text("reason"), by = text("by");
  if (!decision || !reason || !by) return {400, error_json("decision, reason and by must be strings").dump()};
  if (!policy::parse_decision(*decision)) return {400, error_json("decision must be allow, warn or deny").dump()};
  cache::VerdictRecord record;
  record.decision = *decision;
  record.source = "manual";
  record.reasons = {reason->empty() ? "manual verdict" : *reason};
  record.set_by = by->empty() ? "admin-api" : *by;
  record.evaluated_at_ms = now_ms();
  if (auto it = body.find("expires_in_s"); it != body.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() <= 0 ||
        it->get<std::int64_t>() > policy::max_expiry_ms / 1000)
      return {400, error_json("expires_in_s must be a whole number of seconds, more than 0, at most 100 years").dump()};
    record.expires_at_ms = record.evaluated_at_ms + it->get<std::int64_t>() * 1000;
  }
  writes_.put_verdict(*digest, record);
  log_event("info", "verdict set", {{"digest", digest->str()}, {"decision", *decision}, {"by", record.set_by},
                                    {"client", context.client}});
  return {200, verdict_json(*digest, record).dump()};
}

AdminApi::Reply AdminApi::exceptions(const Request& request, const std::string& rest, const RequestContext& context) {
  auto method = request.method();
  if (rest.empty() && method == http::verb::get) {
    json list = json::array();
    auto now = now_ms();
    for (auto& r : meta_.list_exceptions()) list.push_back(exception_json(r, now));
    return {200, json{{"exceptions", list}}.dump()};
  }
  if (!rest.empty()) {
    if (method != http::verb::delete_) return {405, error_json("use DELETE").dump()};
    if (!writes_.remove_exception(rest)) return {404, error_json("no exception with id " + rest.substr(0, 200)).dump()};
    log_event("info", "exception removed", {{"id", rest}, {"client", context.client}});
    return {200, json{{"removed", rest}}.dump()};
  }
  if (method != http::verb::post) return {405, error_json("use GET or POST").dump()};
  std::string body_error;
  auto parsed_body = object_body(context.body, body_error);
  if (!parsed_body) return {400, error_json(body_error).dump()};
  json& body = *parsed_body;
  auto now = now_ms();
  // expires_in_s is the API's shorthand; the rest is checked exactly as a policy
  // file's exception is.
  if (auto it = body.find("expires_in_s"); it != body.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() <= 0 ||
        it->get<std::int64_t>() > policy::max_expiry_ms / 1000)
      return {400, error_json("expires_in_s must be a whole number of seconds, more than 0, at most 100 years").dump()};
    if (body.contains("expires")) return {400, error_json("give expires or expires_in_s, not both").dump()};
    auto at = policy::time_from_ms(now + it->get<std::int64_t>() * 1000);
    body.erase("expires_in_s");
    body["expires"] = policy::format_rfc3339(at);
  }
  if (!body.contains("expires")) return {400, error_json("an exception needs expires or expires_in_s").dump()};
  for (const char* required : {"id", "reason", "who"})
    if (!body.contains(required)) return {400, error_json(std::string(required) + " is required").dump()};
  CheckedException checked;
  try {
    checked = check_exception(body, "");
  } catch (const json::exception&) {
    return {400, error_json("exception fields must be UTF-8 text").dump()};
  }
  if (!checked.errors.empty()) return {400, json{{"error", checked.errors.front()}, {"errors", checked.errors}}.dump()};
  cache::ExceptionRecord record;
  record.id = body["id"].get<std::string>();
  record.reason = body["reason"].get<std::string>();
  record.who = body["who"].get<std::string>();
  for (auto [key, field] : {std::pair{"digest", &record.digest}, std::pair{"repository", &record.repository},
                            std::pair{"upstream", &record.upstream}})
    if (body.contains(key)) *field = body[key].get<std::string>();
  record.created_at_ms = now;
  record.expires_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(checked.expires->time_since_epoch()).count();
  if (*record.expires_at_ms <= now) return {400, error_json("expires is in the past; the exception would never apply").dump()};
  if (!writes_.add_exception(record))
    return {409, error_json("an exception with id " + record.id + " exists").dump()};
  log_event("info", "exception added", {{"id", record.id}, {"who", record.who}, {"client", context.client}});
  return {201, exception_json(record, now).dump()};
}

AdminApi::Reply AdminApi::explain(const Request& request) {
  std::string_view target = request.target();
  auto q = target.find('?');
  auto query = parse_query(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  if (!query) return {400, error_json("malformed query string").dump()};
  std::vector<UpstreamName> names;
  for (auto& u : config_.upstreams) names.push_back(UpstreamName{u.settings.name, u.aliases, u.docker_hub});
  std::string text;
  if (auto it = query->find("image"); it != query->end()) text = it->second;
  else if (auto d = query->find("digest"); d != query->end()) text = d->second;
  else return {400, error_json("give image=<upstream>/<repository>:<tag> or digest=<digest>").dump()};
  auto value = [&](const char* key) { auto it = query->find(key); return it == query->end() ? std::string() : it->second; };
  auto parsed = parse_explain_query(text, names, value("upstream"), value("repository"));
  if (!parsed.query) return {400, error_json(parsed.error).dump()};
  if (auto it = query->find("identity"); it != query->end()) {
    if (it->second != policy::anonymous_identity && !policy::is_identity_name(it->second))
      return {400, error_json("identity: not an identity name (1 to 128 letters, digits, '.', '_', '-' or '@') or "
                              "anonymous").dump()};
    if (parsed.query->repository.empty())
      return {400, error_json("identity needs the repository: image=, or digest= with upstream= and repository=").dump()};
    parsed.query->identity = it->second;
  }
  auto extra = to_policy_exceptions(meta_.list_exceptions());
  auto answer = pullgate::proxy::explain(meta_, *policy_.get(), extra, *parsed.query, policy::Clock::now());
  return {answer.contains("error") ? 404u : 200u, answer.dump()};
}

AdminApi::Reply AdminApi::reports(const Request& request, const std::string& rest, const RequestContext& context) {
  std::string_view target = request.target();
  auto q = target.find('?');
  auto query = parse_query(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  if (!query) return {400, error_json("malformed query string").dump()};
  if (!rest.empty()) {
    if (request.method() != http::verb::get) return {405, error_json("use GET").dump()};
    auto digest = registry::Digest::parse(rest);
    if (!digest) return {400, error_json("not a digest: " + rest.substr(0, 200)).dump()};
    auto record = meta_.get_report(*digest);
    if (!record) return {404, error_json("no report stored for " + digest->str()).dump()};
    bool findings = query->count("findings") && query->at("findings") != "0";
    return {200, report_json(digest->str(), *record, findings).dump()};
  }
  if (request.method() != http::verb::post) return {405, error_json("use POST").dump()};
  std::string override_digest = query->count("digest") ? query->at("digest") : std::string();
  auto result = import_report(writes_, context.body, override_digest, now_ms());
  if (!result.ok) return {400, error_json(result.error).dump()};
  log_event("info", "report imported", {{"digest", result.digest}, {"client", context.client},
                                        {"counts", result.summary["counts"]}});
  json out = result.summary;
  out["digest"] = result.digest;
  out["verdict_reset"] = result.replaced_verdict;
  return {200, out.dump()};
}

AdminApi::Reply AdminApi::vex(const Request& request, const std::string& rest, const RequestContext& context) {
  std::string_view target = request.target();
  auto q = target.find('?');
  auto query = parse_query(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  if (!query) return {400, error_json("malformed query string").dump()};
  if (!rest.empty()) {
    auto digest = registry::Digest::parse(rest);
    if (!digest) return {400, error_json("not a digest: " + rest.substr(0, 200)).dump()};
    if (request.method() == http::verb::get) {
      auto records = meta_.vex_for(*digest);
      if (records.empty()) return {404, error_json("no VEX document filed for " + digest->str()).dump()};
      return {200, vex_json(digest->str(), records).dump()};
    }
    if (request.method() != http::verb::delete_) return {405, error_json("use GET or DELETE").dump()};
    std::size_t removed = 0;
    try {
      removed = writes_.remove_vex(*digest, query->count("name") ? query->at("name") : std::string());
    } catch (const std::runtime_error& e) {
      return {409, error_json(e.what()).dump()};
    }
    if (removed == 0) return {404, error_json("no such VEX document filed for " + digest->str()).dump()};
    log_event("info", "VEX removed", {{"digest", digest->str()}, {"removed", removed}, {"client", context.client}});
    return {200, json{{"digest", digest->str()}, {"removed", removed}}.dump()};
  }
  if (request.method() != http::verb::post) return {405, error_json("use POST").dump()};
  auto result = import_vex(writes_, context.body, query->count("digest") ? query->at("digest") : std::string(),
                           query->count("by") ? query->at("by") : std::string(), now_ms());
  if (!result.ok) return {400, error_json(result.error).dump()};
  log_event("info", "VEX imported", {{"name", result.name}, {"digests", result.digests}, {"client", context.client},
                                     {"statuses", result.statuses}});
  return {200, json{{"name", result.name},
                    {"digests", result.digests},
                    {"statements", result.statements},
                    {"statuses", result.statuses},
                    {"verdict_reset", result.replaced_verdict}}
                   .dump()};
}

}  // namespace pullgate::proxy
