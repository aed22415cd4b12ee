#include "proxy/mirror/mirror.hpp"

#include <chrono>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "cache/blocking.hpp"
#include "proxy/telemetry/log.hpp"
#include "registry/link.hpp"
#include "registry/manifest.hpp"
#include "registry/range.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::proxy {

using registry::Digest;
using registry::ErrorCode;
using registry::RouteKind;
using Clock = std::chrono::steady_clock;

namespace {

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(rng()));
  return text;
}

// The path and query without credentials or oddities, for logs.
std::string loggable_target(std::string_view target) {
  std::string out;
  out.reserve(std::min<std::size_t>(target.size(), 512));
  for (char c : target.substr(0, 512)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

std::vector<std::string> accept_values(const Request& request) {
  std::vector<std::string> values;
  for (auto it = request.find(http::field::accept); it != request.end() && it->name() == http::field::accept; ++it)
    values.emplace_back(it->value());
  return values;
}

std::string etag_of(const Digest& d) { return "\"" + d.str() + "\""; }

// What an answer about the request's content names: its digest or reference.
std::string named_in(const registry::Route& route) {
  return route.digest ? route.digest->str() : route.reference ? route.reference->str() : "";
}

// A referrers index with only the entries of one artifactType; nullopt when it is not
// an index.
std::optional<std::string> referrers_of_type(const std::string& index_json, std::string_view artifact_type) {
  auto index = nlohmann::json::parse(index_json, nullptr, false);
  if (!index.is_object()) return std::nullopt;
  auto manifests = index.find("manifests");
  if (manifests == index.end() || !manifests->is_array()) return std::nullopt;
  auto kept = nlohmann::json::array();
  for (auto& entry : *manifests) {
    if (!entry.is_object()) continue;
    auto type = entry.find("artifactType");
    if (type != entry.end() && type->is_string() && type->get_ref<const std::string&>() == artifact_type)
      kept.push_back(std::move(entry));
  }
  *manifests = std::move(kept);
  return index.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

struct Mirror::Exchange {
  Exchange(const Request& r, ClientStream& c, const RequestContext& ctx) : request(r), client(c), context(ctx) {}
  const Request& request;
  ClientStream& client;
  const RequestContext& context;
  Clock::time_point started = Clock::now();
  std::string request_id = new_request_id();
  registry::Route route;
  const UpstreamEntry* upstream = nullptr;
  std::string repository;  // as the upstream names it
  bool head = false;
  Outcome outcome;
  // A complete answer prepared by a step that does not stream (errors mostly);
  // written once, when the step returns.
  std::optional<http::response<http::string_body>> reply;
  CacheResult cache = CacheResult::none;
  std::string error;
  bool asked_upstream = false;  // the upstream was asked something during this request
  std::string identity{policy::anonymous_identity};  // who the client is (proxy/access)
  bool identified = false;                           // a certificate or a token said so
  // A tag the upstream just resolved to a manifest that is not cached: stored with the
  // manifest, in one transaction, when this request fetches it (else on its own).
  std::optional<cache::ManifestBatch::Tag> unstored_tag;

  template <class Body>
  void decorate(http::response<Body>& res) const {
    res.version(request.version());
    res.keep_alive(request.keep_alive() && !context.has_body && !context.last);
    res.set("Docker-Distribution-API-Version", "registry/2.0");
    res.set("X-Request-Id", request_id);
  }
  std::string scope() const { return "repository:" + repository + ":pull"; }
};

Mirror::Mirror(const Config& config, std::vector<UpstreamEntry>& upstreams, cache::MetaStore& meta,
               cache::BlobStore& blobs, cache::BlobFetches& fetches, AccessLog& access_log, Gate& gate,
               PullgateMetrics& metrics, PolicyHolder& policy, asio::any_io_executor blocking, WallClock clock)
    : config_(config),
      upstreams_(upstreams),
      meta_(meta),
      blobs_(blobs),
      fetches_(fetches),
      access_log_(access_log),
      gate_(gate),
      metrics_(metrics),
      policy_(policy),
      blocking_(std::move(blocking)),
      clock_(std::move(clock)),
      hot_(config.cache_memory_mb << 20),
      manifests_(meta, hot_, metrics, blocking_, config.offline, clock_),
      signals_(meta, blobs, manifests_, metrics, config.offline, clock_) {}

asio::awaitable<std::unique_ptr<registry::UpstreamResponse>> Mirror::ask_upstream(Exchange& x,
                                                                                 registry::UpstreamRequest request) {
  const auto& name = x.upstream->config.settings.name;
  x.asked_upstream = true;
  std::unique_ptr<registry::UpstreamResponse> response;
  try {
    response = co_await x.upstream->client->send(std::move(request));
  } catch (const registry::UpstreamError& e) {
    metrics_.count_upstream(name, 0, e.what());
    throw;
  }
  if (!response->held()) metrics_.count_upstream(name, response->status());  // held: nothing was sent
  co_return response;
}

asio::awaitable<Outcome> Mirror::handle(const Request& request, ClientStream& client, const RequestContext& context) {
  Exchange x(request, client, context);
  std::exception_ptr failure;
  std::string internal;
  try {
    co_await dispatch(x);
    if (x.reply) co_await send(x, *x.reply);
  } catch (const boost::system::system_error& e) {
    // The client went away or stalled: nothing more can be sent on this connection.
    x.error = std::string("client: ") + e.what();
    x.outcome.close = true;
    failure = std::current_exception();
  } catch (const std::exception& e) {
    internal = e.what();
  }
  if (!internal.empty()) {
    // The mirror's own trouble (the LMDB map full, no file descriptors left, a disk
    // error): the request fails with a clear error, not a dropped connection.
    x.error = "internal: " + internal;
    log_event("error", "request failed", {{"request_id", x.request_id}, {"error", internal}});
    // Whatever state the request left behind goes with the connection; a response
    // already under way can only be cut short.
    x.outcome.close = true;
    if (x.outcome.status == 0) {
      reply_error(x, 500, ErrorCode::unknown,
                  "pullgate could not serve this request: " + internal + " (request id " + x.request_id + ")");
      x.reply->keep_alive(false);
      try {
        co_await send(x, *x.reply);
      } catch (const boost::system::system_error&) {
      }
    }
  }
  AccessRecord record;
  record.client = context.client;
  record.method = std::string(request.method_string());
  record.path = loggable_target(request.target());
  record.upstream = x.upstream ? x.upstream->config.settings.name : "";
  record.status = x.outcome.status;
  record.bytes = x.outcome.bytes;
  record.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - x.started).count();
  record.cache = x.cache;
  record.request_id = x.request_id;
  record.error = x.error;
  access_log_.write(record);
  metrics_.http_requests.with({record.method, std::to_string(record.status)}).inc();
  metrics_.http_request_seconds.observe(record.duration_ms / 1000.0);
  metrics_.bytes_served.inc(record.bytes);
  if (x.cache != CacheResult::none) {
    const auto lookup = x.route.kind == RouteKind::manifest ? Lookup::manifest
                        : x.route.kind == RouteKind::blob   ? Lookup::blob
                                                            : Lookup::response;
    metrics_.cache_requests.with({to_string(lookup), to_string(x.cache)}).inc();
  }
  if (failure) std::rethrow_exception(failure);
  co_return x.outcome;
}

asio::awaitable<void> Mirror::dispatch(Exchange& x) {
  auto method = x.request.method();
  auto parsed = registry::parse_route(x.request.target(), [this](std::string_view segment) {
    for (auto& u : upstreams_) {
      if (u.config.settings.name == segment) return true;
      for (auto& a : u.config.aliases)
        if (a == segment) return true;
    }
    return false;
  });
  if (auto* err = std::get_if<registry::RouteError>(&parsed)) {
    reply_error(x, err->status, err->code, err->message);
    co_return;
  }
  x.route = std::move(std::get<registry::Route>(parsed));
  x.head = method == http::verb::head;

  if (method != http::verb::get && method != http::verb::head) {
    reply_error(x, 405, ErrorCode::unsupported,
                        "this registry is a read-only pull-through mirror: " + std::string(x.request.method_string()) +
                            " is not supported");
    co_return;
  }
  // Who the client is, before anything names a repository; the health probes stay
  // open (a kubelet or a balancer holds no credential). The admin listener's
  // scanner has its own.
  if (x.context.scanner) x.identity = "scanner";
  else if (x.route.kind != RouteKind::health && x.route.kind != RouteKind::ready && !authenticate(x))
    co_return;
  switch (x.route.kind) {
    case RouteKind::health:
    case RouteKind::ready:
    case RouteKind::base: {
      http::response<http::string_body> res{http::status::ok, 11};
      x.decorate(res);
      res.set(http::field::content_type, "application/json");
      res.body() = x.route.kind == RouteKind::base ? "{}" : "{\"status\":\"ok\"}";
      if (x.route.kind == RouteKind::ready) {
        // Ready: the cache answers a read. A replica whose fleet store is out of
        // reach still serves: it says so (degraded) and stays ready.
        (void)meta_.manifest_count();
        if (readiness_) res.body() = readiness_();
      }
      res.prepare_payload();
      if (x.head) res.body().clear();
      co_await send(x, res);
      co_return;
    }
    case RouteKind::blob_upload:
      reply_error(x, 405, ErrorCode::unsupported,
                          "this registry is a read-only pull-through mirror: uploads are not supported");
      co_return;
    default:
      break;
  }

  std::string selection_error;
  x.upstream = select_upstream(x.route, selection_error);
  if (!x.upstream) {
    reply_error(x, 404, ErrorCode::name_unknown, selection_error);
    co_return;
  }
  x.repository = upstream_repository(*x.upstream, *x.route.repository);
  if (!x.context.scanner && policy_.restricts_access() && !authorized(x)) co_return;

  switch (x.route.kind) {
    case RouteKind::manifest:
      co_await serve_manifest(x);
      break;
    case RouteKind::blob:
      co_await serve_blob(x);
      break;
    case RouteKind::tags_list: {
      std::string target = "/v2/" + x.repository + "/tags/list";
      std::string query;
      if (x.route.n) query += "n=" + std::to_string(*x.route.n);
      if (x.route.last) {
        if (!query.empty()) query += "&";
        // Encoded: a decoded `&` or `#` must not become the upstream query's own.
        query += "last=" + registry::percent_encode(*x.route.last);
      }
      if (!query.empty()) target += "?" + query;
      // The whole list only: a page is forwarded, neither kept nor answered offline.
      ForwardCache cache;
      if (query.empty()) cache.key = "tags\n" + x.upstream->config.settings.name + "\n" + x.repository + "\n";
      co_await serve_forwarded(x, target, std::move(cache), ErrorCode::name_unknown);
      break;
    }
    case RouteKind::referrers: {
      std::string target = "/v2/" + x.repository + "/referrers/" + x.route.digest->str();
      // The unfiltered index is kept (the signal lookup keeps it under the same key);
      // a filtered answer is not, and offline the kept index is filtered here.
      ForwardCache cache;
      cache.key = referrers_cache_key(x.upstream->config.settings.name, x.repository, *x.route.digest);
      if (x.route.artifact_type) {
        // artifactType is a media type: letters, digits and ./+- only are forwarded.
        std::string filtered;
        for (char c : *x.route.artifact_type)
          if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/' || c == '+' || c == '-')
            filtered += c;
          else {
            reply_error(x, 400, ErrorCode::unsupported, "artifactType is not a media type");
            co_return;
          }
        target += "?artifactType=" + filtered;
        cache.store = false;
        cache.artifact_type = std::move(filtered);
      }
      co_await serve_forwarded(x, target, std::move(cache), ErrorCode::manifest_unknown);
      break;
    }
    default:
      reply_error(x, 404, ErrorCode::name_unknown, "not found");
  }
}

bool Mirror::authenticate(Exchange& x) {
  if (!authenticator_) return true;
  const auto authorization = x.request[http::field::authorization];
  auto who = authenticator_->authenticate(x.context.peer_identity,
                                          std::string_view(authorization.data(), authorization.size()));
  using Result = access::Authentication::Result;
  if (who.result == Result::identified) {
    x.identity = std::move(who.identity);
    x.identified = true;
    return true;
  }
  if (who.result == Result::anonymous && !authenticator_->required()) return true;
  refuse_access(x, 401,
                who.result == Result::refused
                    ? "authentication failed: " + who.why
                    : std::string("authentication required: log in with a token (user name and token) or present a "
                                  "client certificate"));
  return false;
}

bool Mirror::authorized(Exchange& x) {
  const auto policy = policy_.get();
  if (!policy->access) return true;
  const auto& upstream = x.upstream->config.settings.name;
  const auto decision = policy::may_pull(*policy->access, x.identity, upstream, x.repository);
  if (decision.allowed) return true;
  if (!x.identified) {
    refuse_access(x, 401, "authentication required: anonymous clients may not pull " + upstream + "/" +
                              x.repository + " (" + decision.by + " of the policy)");
    return false;
  }
  refuse_access(x, 403, "pullgate denied " + upstream + "/" + x.repository + " to identity \"" + x.identity +
                            "\": not among who may pull it (" + decision.by + " of the policy). " +
                            config_.denial_hint);
  return false;
}

void Mirror::refuse_access(Exchange& x, unsigned status, std::string message) {
  if (config_.gate_enabled && x.route.repository) {
    // Audited like the gate's refusals, with what the request named (a 401 comes
    // before the upstream is chosen: it is chosen here for the line, quietly).
    std::string ignored;
    const auto* upstream = x.upstream ? x.upstream : select_upstream(x.route, ignored);
    const auto repository = !x.repository.empty() ? x.repository
                            : upstream            ? upstream_repository(*upstream, *x.route.repository)
                                                  : x.route.repository->str();
    const auto kind = x.route.kind == RouteKind::manifest ? "manifest"
                      : x.route.kind == RouteKind::blob   ? "blob"
                      : x.route.kind == RouteKind::tags_list ? "tags"
                                                             : "referrers";
    const auto reference = named_in(x.route);
    const std::string upstream_name = upstream ? upstream->config.settings.name : std::string();
    AccessRefusal refusal{kind,       x.request.method_string(), upstream_name, repository, reference,
                          x.context.client, x.identity,          x.request_id,  status,     message};
    gate_.audit_access_refusal(refusal);
  }
  reply_error(x, status, status == 401 ? ErrorCode::unauthorized : ErrorCode::denied, std::move(message));
  // The registry's usual challenge: docker, podman, skopeo and containerd holding
  // credentials for this host send them and retry.
  if (status == 401) x.reply->set(http::field::www_authenticate, "Basic realm=\"pullgate\"");
}

const UpstreamEntry* Mirror::select_upstream(const registry::Route& route, std::string& error) const {
  auto by_name = [this](std::string_view name) -> const UpstreamEntry* {
    for (auto& u : upstreams_) {
      if (u.config.settings.name == name) return &u;
      for (auto& a : u.config.aliases)
        if (a == name) return &u;
    }
    return nullptr;
  };
  if (route.alias) return by_name(*route.alias);
  if (route.ns) {
    if (auto* u = by_name(*route.ns)) return u;
    error = "no upstream named \"" + loggable_target(*route.ns) + "\" is configured on this mirror";
    return nullptr;
  }
  for (auto& u : upstreams_)
    if (u.config.is_default) return &u;
  error = "this mirror has no default upstream; name one with ?ns= or a /v2/<upstream>/ prefix";
  return nullptr;
}

std::string Mirror::upstream_repository(const UpstreamEntry& upstream, const registry::Repository& repository) const {
  if (upstream.config.docker_hub && repository.components() == 1) return "library/" + repository.str();
  return repository.str();
}

// ---------------------------------------------------------------------------------
// Manifests

asio::awaitable<void> Mirror::serve_manifest(Exchange& x) {
  std::optional<Digest> digest;
  if (auto* d = x.route.reference->digest()) {
    digest = *d;
  } else {
    digest = co_await resolve_tag(x, *x.route.reference->tag());
    if (!digest) co_return;
  }
  // From here on the request is about one digest. The bytes come first (a denied
  // manifest is still cached, never served): the gate needs what it references.
  auto manifest = co_await manifest_bytes(x, *digest);
  if (x.unstored_tag) {
    // The manifest came from the cache (or not at all): the tag is stored on its own.
    auto batch = seen_batch(x, x.unstored_tag->record.digest);
    batch.tag = std::exchange(x.unstored_tag, std::nullopt);
    co_await manifests_.store(batch);
  }
  if (!manifest) {
    // A pullgate upstream refused it, and this mirror has no bytes of its own: the
    // gate here decides too (from the upstream's verdict, stored by then), so the
    // refusal is audited and counted like any other.
    if (x.reply && x.reply->result_int() == 403) {
      if (config_.gate_enabled && !x.context.scanner) {
        auto decision = gate_check(x, ArtifactKind::manifest, *digest);
        if (!decision->serve && (!x.head || decision->audit_unavailable)) reply_denied(x, *decision, *digest);
      }
      // A HEAD is answered as the parent answered it (200, Pullgate-Decision: deny), as
      // this mirror answers a HEAD it denies itself: containerd goes on to the GET,
      // whose 403 carries the reasons it prints.
      if (x.head && x.reply->result_int() == 403) co_await announce_parent_denial(x, *digest);
    }
    co_return;
  }
  // Signatures and SBOMs the scope requires are looked up first (when not known yet);
  // only policies that require them pay for the coroutine, and only when the gate
  // does not remember its decision for this request (made with them, moments ago).
  if (config_.gate_enabled && !x.context.scanner && policy_.needs_signals() &&
      !gate_.remembers(gate_request(x, ArtifactKind::manifest, *digest)))
    co_await prepare_signals(x, *digest, *manifest);
  // Behind a parent mirror, a GET the edge would answer from its cache asks the parent
  // first (one HEAD, answered from the parent's own store): a denial set there after
  // this edge cached the image reaches a pull by digest too, not only the next tag check.
  if (x.upstream->config.settings.parent && !x.head && !x.asked_upstream && !config_.offline)
    co_await recheck_with_parent(x, *digest);
  auto shared_decision = gate_check(x, ArtifactKind::manifest, *digest);
  if (!shared_decision->serve && shared_decision->source == "upstream" && !x.asked_upstream) {
    // Refused on a pullgate upstream's word: ask it whether it still refuses (one
    // HEAD per refused request; its answer is what lifts the verdict).
    const bool lifted = co_await upstream_lifted(x, *digest);
    if (lifted) shared_decision = gate_check(x, ArtifactKind::manifest, *digest);
  }
  if (shared_decision->hold_for.count() > 0 && !x.head) {
    // The scope holds unscanned images: wait for a scanner's report (checked once
    // a second), then decide again; without one by then, the decision stands.
    auto executor = co_await asio::this_coro::executor;
    auto deadline = std::chrono::steady_clock::now() + shared_decision->hold_for;
    asio::steady_timer timer(executor);
    while (std::chrono::steady_clock::now() < deadline && !meta_.get_report(*digest)) {
      timer.expires_after(std::chrono::seconds(1));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (meta_.get_report(*digest)) shared_decision = gate_check(x, ArtifactKind::manifest, *digest);
  }
  const GateDecision& decision = *shared_decision;
  if (!decision.serve && (!x.head || decision.audit_unavailable)) {
    reply_denied(x, decision, *digest);
    co_return;
  }
  // A denied HEAD still answers 200: containerd resolves tags with HEAD and shows
  // its users only the status of a HEAD; its GET of the manifest by digest comes
  // next and is refused with the reasons in the body, which containerd prints. The
  // Pullgate-Decision header tells a pullgate in front of this one.

  if (!registry::accepts(accept_values(x.request), manifest->media_type)) {
    reply_error(x, 404, ErrorCode::manifest_unknown,
                        "manifest " + digest->str() + " is a " + manifest->media_type +
                            ", which the request's Accept header does not list");
    co_return;
  }
  http::response<http::string_body> res{http::status::ok, 11};
  x.decorate(res);
  res.set(http::field::content_type, manifest->media_type);
  res.set("Docker-Content-Digest", digest->str());
  res.set(http::field::etag, etag_of(*digest));
  if (!decision.warning.empty()) res.set(http::field::warning, decision.warning);
  if (!decision.serve) res.set(decision_header, "deny");
  res.content_length(manifest->bytes.size());
  if (!x.head) res.body() = manifest->bytes;
  if (decision.serve) pulls_.note(digest->str(), now_ms());
  co_await send(x, res);
}

asio::awaitable<std::optional<Digest>> Mirror::resolve_tag(Exchange& x, const registry::Tag& tag) {
  auto& up = *x.upstream;
  const auto& name = up.config.settings.name;
  auto cached = hot_.tag(name, x.repository, tag.str());
  if (!cached) {
    cached = meta_.get_tag(name, x.repository, tag.str());
    if (cached) hot_.remember_tag(name, x.repository, tag.str(), *cached);
  }
  auto now = now_ms();
  bool fresh = cached && (up.config.tag_ttl_s < 0 || now - cached->fetched_at_ms < up.config.tag_ttl_s * 1000);
  if (cached && (fresh || config_.offline)) {
    x.cache = CacheResult::hit;
    metrics_.cache_requests.with({to_string(Lookup::tag), to_string(CacheResult::hit)}).inc();
    co_return cached->digest;
  }
  metrics_.cache_requests.with({to_string(Lookup::tag), to_string(cached ? CacheResult::stale : CacheResult::miss)}).inc();
  if (config_.offline) {
    reply_error(x, 404, ErrorCode::manifest_unknown,
                        "tag " + tag.str() + " of " + x.repository + " is not cached and this mirror is offline");
    co_return std::nullopt;
  }
  x.cache = CacheResult::miss;
  // One upstream check of a tag at a time: pulls of a tag that is not cached, or
  // whose TTL ran out, at the same moment (a rollout on many nodes) wait for the
  // first one's answer and take it as theirs, a 404 or a failure included.
  const std::string flight_key = name + "\n" + x.repository + "\n" + tag.str();
  const auto outcome = co_await cache::share_flight(tag_flights_, flight_key, [&] { return check_tag(x, tag); });
  if (auto* digest = std::get_if<Digest>(&outcome)) co_return *digest;
  const auto& failure = std::get<ErrorReply>(outcome);
  if (cached && failure.trouble) {
    // Stale is better than no pull.
    x.cache = CacheResult::stale;
    x.error = failure.message;
    co_return cached->digest;
  }
  reply(x, failure);
  co_return std::nullopt;
}

asio::awaitable<Mirror::TagOutcome> Mirror::check_tag(Exchange& x, const registry::Tag& tag) {
  const auto now = now_ms();
  std::string unreachable;
  try {
    // HEAD first: it tells the digest without counting as a pull at registries that
    // rate-limit manifest GETs, and most of the time the bytes are cached already.
    auto head = manifest_request(http::verb::head, x.repository, tag.str());
    auto response = co_await ask_upstream(x, head);
    if (response->status() == 200) {
      auto header_digest = Digest::parse(std::string(response->headers()["Docker-Content-Digest"]));
      if (header_digest) {
        const cache::TagRecord record{*header_digest, std::string(response->headers()[http::field::content_type]), now};
        co_await remember_tag(x, tag, record);
        if (response->headers()[decision_header] == "deny") co_await learn_upstream_denial(x, *header_digest);
        else forget_upstream_denial(x, *header_digest);
        co_return *header_digest;
      }
      // No digest header: the manifest by tag, hashed here and stored with the tag.
      registry::Reference reference(tag);
      auto fetched = co_await fetch_manifest(x, reference);
      if (auto* manifest = fetched.fetched()) co_return manifest->digest;
      co_return fetched.failure()->reply;
    }
    co_return co_await refusal(x, *response, ErrorCode::manifest_unknown);
  } catch (const registry::UpstreamError& e) {
    unreachable = e.what();
  }
  co_return unreachable_reply(x, unreachable);
}

asio::awaitable<void> Mirror::remember_tag(Exchange& x, const registry::Tag& tag, const cache::TagRecord& record) {
  const auto& upstream = x.upstream->config.settings.name;
  hot_.remember_tag(upstream, x.repository, tag.str(), record);
  if (!hot_.manifest(record.digest) && !meta_.get_manifest(record.digest)) {
    x.unstored_tag = cache::ManifestBatch::Tag{tag.str(), record};
    co_return;
  }
  auto batch = seen_batch(x, record.digest);  // the upstream says the repository has it
  batch.tag = cache::ManifestBatch::Tag{tag.str(), record};
  co_await manifests_.store(batch);
}

bool Mirror::seen_here(const Exchange& x, const Digest& digest) {
  if (x.unstored_tag && x.unstored_tag->record.digest == digest) return true;
  const auto& upstream = x.upstream->config.settings.name;
  if (hot_.seen(digest, upstream, x.repository)) return true;
  if (!meta_.seen_in(digest, upstream, x.repository)) return false;
  hot_.remember_seen(digest, upstream, x.repository);
  return true;
}

cache::ManifestBatch Mirror::seen_batch(const Exchange& x, const Digest& digest) {
  const auto& upstream = x.upstream->config.settings.name;
  cache::ManifestBatch batch;
  batch.upstream = upstream;
  batch.repository = x.repository;
  auto& seen = batch.seen;
  seen.push_back(digest);
  std::variant<registry::ParsedManifest, std::string> cached_index;
  const registry::ParsedManifest* parsed = nullptr;
  if (!hot_.seen(digest, upstream, x.repository)) {  // known here: its children were marked with it
    auto cached = manifests_.cached(digest);
    if (cached &&
        (cached->media_type == registry::media_type::oci_index || cached->media_type == registry::media_type::docker_list)) {
      cached_index = registry::parse_manifest(cached->bytes, cached->media_type);
      parsed = std::get_if<registry::ParsedManifest>(&cached_index);
    }
  }
  if (parsed)
    for (auto& child : parsed->children) seen.push_back(child.digest);
  return batch;
}

asio::awaitable<bool> Mirror::confirm_here(Exchange& x, const Digest& digest) {
  auto& up = *x.upstream;
  const std::string where = up.config.settings.name + "/" + x.repository;
  if (config_.offline) {
    reply_error(x, 404, ErrorCode::manifest_unknown,
                "manifest " + digest.str() + " is cached from another repository, not from " + where +
                    ", and this mirror is offline: it cannot ask the upstream whether " + where + " has it");
    co_return false;
  }
  std::string unreachable;
  try {
    // Requests are named, not temporaries: GCC 12 destroys temporaries of a co_await
    // expression twice.
    auto head = manifest_request(http::verb::head, x.repository, digest.str());
    auto response = co_await ask_upstream(x, head);
    std::string said;
    bool denied = false;
    if (response->status() == 200) {
      said = std::string(response->headers()["Docker-Content-Digest"]);
      denied = response->headers()[decision_header] == "deny";
      if (said.empty()) {
        // A 200 that names no digest proves little (a proxy may answer any HEAD): the
        // manifest is fetched here, and is seen here if its bytes hash to the digest.
        registry::Reference reference(digest);
        auto fetched = co_await fetch_manifest(x, reference);
        if (auto* failure = fetched.failure()) {
          reply(x, failure->reply);
          co_return false;
        }
        if (denied) co_await learn_upstream_denial(x, digest);
        co_return true;
      }
    }
    if (response->status() != 200) {
      auto failure = co_await refusal(x, *response, ErrorCode::manifest_unknown);
      if (failure.code == ErrorCode::denied) note_upstream_denial(x, digest, failure.message);
      reply(x, failure);
      co_return false;
    }
    if (said != digest.str()) {
      x.error = "upstream answered for another digest";
      reply_error(x, 502, ErrorCode::digest_invalid,
                  "upstream " + up.config.settings.name + " answered " + said + " for " + digest.str());
      co_return false;
    }
    auto batch = seen_batch(x, digest);
    co_await manifests_.store(batch);
    if (denied) co_await learn_upstream_denial(x, digest);
    co_return true;
  } catch (const registry::UpstreamError& e) {
    unreachable = e.what();
  }
  x.error = "upstream: " + unreachable;
  reply_error(x, 502, ErrorCode::unknown,
              "manifest " + digest.str() + " is cached from another repository, and upstream " +
                  up.config.settings.name + " is unreachable to confirm that " + where + " has it: " + unreachable);
  co_return false;
}

asio::awaitable<std::shared_ptr<const cache::ManifestRecord>> Mirror::manifest_bytes(Exchange& x, const Digest& digest) {
  if (auto cached = manifests_.cached(digest)) {
    // Cached by digest for every repository, served in this one only if seen here
    // (or the upstream confirms it): naming another repository must not get a
    // refused image's manifest out of the cache.
    if (!seen_here(x, digest) && !co_await confirm_here(x, digest)) co_return nullptr;
    if (x.cache == CacheResult::none) x.cache = CacheResult::hit;
    co_return cached;
  }
  if (config_.offline) {
    reply_error(x, 404, ErrorCode::manifest_unknown,
                        "manifest " + digest.str() + " is not cached and this mirror is offline");
    co_return nullptr;
  }
  x.cache = CacheResult::miss;
  registry::Reference reference(digest);
  auto fetched = co_await fetch_manifest(x, reference);
  if (auto* manifest = fetched.fetched()) co_return manifest->record;
  reply(x, fetched.failure()->reply);
  co_return nullptr;
}

asio::awaitable<ManifestFetch> Mirror::fetch_manifest(Exchange& x, registry::Reference reference) {
  ManifestSource::Request request{*x.upstream->client, x.repository, std::move(reference), named_in(x.route),
                                  x.unstored_tag};
  auto fetched = co_await manifests_.fetch(request);
  if (!fetched.asked) co_return fetched;  // a follower: its leader noted what it learned
  x.asked_upstream = true;
  if (auto* manifest = fetched.fetched()) {
    // The upstream serves it: a pullgate upstream's refusal of it is over.
    forget_upstream_denial(x, manifest->digest);
    if (x.unstored_tag && x.unstored_tag->record.digest == manifest->digest) x.unstored_tag.reset();  // stored with it
    co_return fetched;
  }
  const auto& failure = *fetched.failure();
  if (failure.kind == ManifestFailure::Kind::answered)
    x.error = "upstream answered " + std::to_string(failure.upstream_status);
  else if (failure.kind == ManifestFailure::Kind::unreachable)
    x.error = "upstream: " + failure.detail;
  if (failure.reply.code == ErrorCode::denied && request.reference.digest())
    note_upstream_denial(x, *request.reference.digest(), failure.reply.message);
  co_return fetched;
}

// ---------------------------------------------------------------------------------
// A pullgate upstream's decisions

void Mirror::note_upstream_denial(const Exchange& x, const Digest& digest, const std::string& message) {
  cache::VerdictRecord record;
  record.decision = "deny";
  record.source = "upstream";
  record.reasons = {message};
  record.set_by = "upstream " + x.upstream->config.settings.name;
  record.evaluated_at_ms = now_ms();
  meta_.put_verdict(digest, record);
  log_event("warn", "upstream gate denied", {{"request_id", x.request_id},
                                             {"upstream", x.upstream->config.settings.name},
                                             {"repository", x.repository},
                                             {"digest", digest.str()},
                                             {"message", message}});
}

void Mirror::forget_upstream_denial(const Exchange& x, const Digest& digest) {
  auto stored = meta_.get_verdict(digest);
  if (!stored || stored->source != "upstream") return;
  meta_.remove_verdict(digest);
  log_event("info", "upstream gate serves again", {{"request_id", x.request_id},
                                                   {"upstream", x.upstream->config.settings.name},
                                                   {"digest", digest.str()}});
}

asio::awaitable<void> Mirror::learn_upstream_denial(Exchange& x, const Digest& digest) {
  auto stored = meta_.get_verdict(digest);
  if (stored && stored->source == "upstream" && stored->decision == "deny") co_return;
  // The HEAD that said so carries no reasons: its GET's 403 does (noted as it comes;
  // a 200 means it serves the bytes after all).
  registry::Reference reference(digest);
  auto fetched = co_await fetch_manifest(x, reference);
  auto* failure = fetched.failure();
  if (!failure || failure->kind != ManifestFailure::Kind::unreachable) co_return;
  // Its reasons are out of reach, not its decision.
  note_upstream_denial(x, digest,
                       "upstream " + x.upstream->config.settings.name + " (a pullgate) denied " + x.repository + " " +
                           digest.str() + " (its reasons could not be fetched: " + failure->detail + ")");
}

asio::awaitable<void> Mirror::recheck_with_parent(Exchange& x, const Digest& digest) {
  try {
    auto head = manifest_request(http::verb::head, x.repository, digest.str());
    auto response = co_await ask_upstream(x, head);
    // A pullgate answers a denied manifest's HEAD 200 with Pullgate-Decision: deny.
    if (response->status() != 200) co_return;  // not a decision: what the edge knows stands
    if (response->headers()[decision_header] == "deny") co_await learn_upstream_denial(x, digest);
    else forget_upstream_denial(x, digest);
  } catch (const registry::UpstreamError&) {
    // Unreachable: its last word stands (a denial it gave is kept as a verdict).
  }
}

asio::awaitable<void> Mirror::announce_parent_denial(Exchange& x, const Digest& digest) {
  try {
    auto head = manifest_request(http::verb::head, x.repository, digest.str());
    auto response = co_await ask_upstream(x, head);
    auto length = response->content_length();
    if (response->status() != 200 || response->headers()[decision_header] != "deny" || !length) co_return;
    http::response<http::string_body> res{http::status::ok, 11};
    x.decorate(res);
    res.set(http::field::content_type, response->headers()[http::field::content_type]);
    res.set("Docker-Content-Digest", digest.str());
    res.set(http::field::etag, etag_of(digest));
    res.set(decision_header, "deny");
    res.content_length(*length);
    x.reply = std::move(res);
  } catch (const registry::UpstreamError&) {
    // Unreachable since: the 403 stands.
  }
}

asio::awaitable<bool> Mirror::upstream_lifted(Exchange& x, const Digest& digest) {
  if (config_.offline) co_return false;
  try {
    auto head = manifest_request(http::verb::head, x.repository, digest.str());
    auto response = co_await ask_upstream(x, head);
    if (response->status() != 200 || response->headers()[decision_header] == "deny") co_return false;
  } catch (const registry::UpstreamError&) {
    co_return false;  // unreachable: its last word stands
  }
  forget_upstream_denial(x, digest);
  co_return true;
}

asio::awaitable<ErrorReply> Mirror::refusal(Exchange& x, registry::UpstreamResponse& response,
                                            ErrorCode not_found_code) {
  auto answer = co_await upstream_answer(response);
  x.error = "upstream answered " + std::to_string(answer.status);
  co_return failure_reply(x, answer, not_found_code);
}

ErrorReply Mirror::failure_reply(const Exchange& x, const UpstreamAnswer& answer, ErrorCode not_found_code) const {
  return upstream_failure_reply(x.upstream->config.settings.name, x.repository, named_in(x.route), answer,
                                not_found_code);
}

ErrorReply Mirror::unreachable_reply(Exchange& x, const std::string& why) const {
  x.error = "upstream: " + why;
  UpstreamAnswer answer;
  answer.detail = why;
  return failure_reply(x, answer, ErrorCode::unknown);
}

// ---------------------------------------------------------------------------------
// Blobs

asio::awaitable<void> Mirror::serve_blob(Exchange& x) {
  const auto& digest = *x.route.digest;
  const auto shared_decision = gate_check(x, ArtifactKind::blob, digest);
  const GateDecision& decision = *shared_decision;
  if (!decision.serve) {
    // Content that does not exist is 404 whatever the gate would say of it: a blob
    // no manifest here lists may be one the upstream does not have either.
    if (decision.unreferenced && !co_await blob_exists(x, digest)) co_return;
    reply_denied(x, decision, digest);
    co_return;
  }
  if (auto opened = blobs_.open(digest)) {
    x.cache = CacheResult::hit;
    co_await serve_cached_blob(x, *opened);
    co_return;
  }
  if (config_.offline) {
    reply_error(x, 404, ErrorCode::blob_unknown,
                        "blob " + digest.str() + " is not cached and this mirror is offline");
    co_return;
  }
  x.cache = CacheResult::miss;
  if (x.head) {
    co_await head_upstream_blob(x);
    co_return;
  }
  co_await serve_filling_blob(x);
}

registry::UpstreamRequest Mirror::blob_head_request(const Exchange& x, const Digest& digest) const {
  registry::UpstreamRequest head;
  head.method = http::verb::head;
  head.target = "/v2/" + x.repository + "/blobs/" + digest.str();
  head.scope = x.scope();
  return head;
}

asio::awaitable<bool> Mirror::blob_exists(Exchange& x, const Digest& digest) {
  if (blobs_.open(digest)) co_return true;
  const auto missing = "blob " + digest.str() + " is not known to " + x.upstream->config.settings.name + "/" + x.repository;
  if (config_.offline) {
    reply_error(x, 404, ErrorCode::blob_unknown, missing + " (not cached, and this mirror is offline)");
    co_return false;
  }
  try {
    auto head = blob_head_request(x, digest);
    auto response = co_await ask_upstream(x, head);
    if (response->status() == 404) {
      reply_error(x, 404, ErrorCode::blob_unknown, missing);
      co_return false;
    }
  } catch (const registry::UpstreamError&) {
    // Unknown: the gate's refusal stands.
  }
  co_return true;
}

namespace {

// The header of a blob response, or of a 416, for `size` bytes and the client's Range.
struct BlobAnswer {
  http::response<http::empty_body> header;
  std::uint64_t first = 0, length = 0;
  bool unsatisfiable = false;
};

BlobAnswer blob_answer(const Request& request, const Digest& digest, std::uint64_t size) {
  BlobAnswer a;
  auto range = registry::parse_range(request[http::field::range], size);
  auto& h = a.header;
  h.set(http::field::accept_ranges, "bytes");
  h.set("Docker-Content-Digest", digest.str());
  h.set(http::field::etag, etag_of(digest));
  using Kind = registry::RangeRequest::Kind;
  if (range.kind == Kind::unsatisfiable || range.kind == Kind::invalid) {
    h.result(http::status::range_not_satisfiable);
    h.set(http::field::content_range, "bytes */" + std::to_string(size));
    h.content_length(0);
    a.unsatisfiable = true;
    return a;
  }
  h.set(http::field::content_type, "application/octet-stream");
  if (range.kind == Kind::satisfiable) {
    h.result(http::status::partial_content);
    h.set(http::field::content_range, registry::content_range(range.range, size));
    a.first = range.range.first;
    a.length = range.range.length();
  } else {
    h.result(http::status::ok);
    a.length = size;
  }
  h.content_length(a.length);
  return a;
}

}  // namespace

asio::awaitable<void> Mirror::serve_cached_blob(Exchange& x, cache::BlobStore::Opened& blob) {
  auto answer = blob_answer(x.request, *x.route.digest, blob.size);
  x.decorate(answer.header);
  x.outcome.status = answer.header.result_int();
  co_await x.client.write_header(answer.header);
  if (x.head || answer.unsatisfiable) co_return;
  co_await x.client.write_file(blob.file.get(), answer.first, answer.length);
  x.outcome.bytes = answer.length;
}

asio::awaitable<void> Mirror::head_upstream_blob(Exchange& x) {
  const auto& digest = *x.route.digest;
  auto& up = *x.upstream;
  try {
    auto head = blob_head_request(x, digest);
    auto response = co_await ask_upstream(x, head);
    if (response->status() != 200) {
      auto failure = co_await refusal(x, *response, ErrorCode::blob_unknown);
      reply(x, failure);
      co_return;
    }
    auto size = response->content_length();
    if (!size) {
      x.error = "upstream HEAD has no Content-Length";
      reply_error(x, 502, ErrorCode::unknown, "upstream " + up.config.settings.name +
                                                          " did not say the size of " + digest.str());
      co_return;
    }
    auto answer = blob_answer(x.request, digest, *size);
    x.decorate(answer.header);
    x.outcome.status = answer.header.result_int();
    co_await x.client.write_header(answer.header);
    co_return;
  } catch (const registry::UpstreamError& e) {
    x.error = std::string("upstream: ") + e.what();
  }
  reply_error(x, 502, ErrorCode::unknown, "upstream " + up.config.settings.name + " is unreachable: " + x.error);
}

asio::awaitable<void> Mirror::serve_filling_blob(Exchange& x) {
  const auto& digest = *x.route.digest;
  auto executor = co_await asio::this_coro::executor;
  auto fill = fetches_.join_or_start(digest, *x.upstream->client, "/v2/" + x.repository + "/blobs/" + digest.str(),
                                     x.scope(), executor);
  // Wait for the upstream's answer (and its size) before answering the client.
  auto status = fill->status();
  while (status.state == cache::BlobFill::State::connecting ||
         (status.state == cache::BlobFill::State::streaming && !status.size)) {
    co_await fill->wait_for_change(status);
    status = fill->status();
  }
  if (status.state == cache::BlobFill::State::failed) {
    x.error = status.error;
    if (status.upstream_status != 0 && status.upstream_status != 200)
      reply(x, failure_reply(x, UpstreamAnswer{status.upstream_status, status.retry_after, status.decision,
                                               status.error_body, status.error},
                             ErrorCode::blob_unknown));
    else if (status.local) {
      // The mirror's own trouble (no room on its disk): a 500 that closes, as for a full LMDB map.
      reply_error(x, 500, ErrorCode::unknown, status.error);
      x.reply->keep_alive(false);
    } else
      reply_error(x, 502, ErrorCode::unknown, status.error);
    co_return;
  }
  auto answer = blob_answer(x.request, digest, *status.size);
  x.decorate(answer.header);
  x.outcome.status = answer.header.result_int();
  co_await x.client.write_header(answer.header);
  if (answer.unsatisfiable) co_return;

  // Stream behind the writer; the response's last byte waits for verification.
  std::uint64_t sent = 0, end = answer.first + answer.length;
  for (;;) {
    status = fill->status();
    if (status.state == cache::BlobFill::State::failed) {
      x.error = status.error;
      x.outcome.close = true;  // the client sees a body shorter than its Content-Length
      co_return;
    }
    auto ready = fill->sendable(end);
    if (ready > answer.first + sent) {
      auto n = ready - (answer.first + sent);
      co_await x.client.write_file(fill->fd(), answer.first + sent, n);
      sent += n;
      x.outcome.bytes = sent;
      if (sent == answer.length) co_return;
      continue;
    }
    if (sent == answer.length) co_return;
    co_await fill->wait_for_change(status);
  }
}

// ---------------------------------------------------------------------------------
// Forwarded answers: tags/list and referrers, cached for offline use.

asio::awaitable<void> Mirror::serve_forwarded(Exchange& x, std::string target, ForwardCache keep,
                                              ErrorCode not_found_code) {
  auto& up = *x.upstream;
  auto answer_from = [&](const cache::CachedResponse& cached) {
    http::response<http::string_body> res{http::status::ok, 11};
    x.decorate(res);
    res.set(http::field::content_type, cached.content_type.empty() ? "application/json" : cached.content_type);
    res.body() = cached.body;
    res.prepare_payload();
    if (x.head) res.body().clear();
    return res;
  };
  // The kept answer, or for an artifactType the kept index filtered here, as the
  // OCI spec lets a registry do (saying so in OCI-Filters-Applied).
  auto from_cache = [&]() -> std::optional<http::response<http::string_body>> {
    if (keep.key.empty()) return std::nullopt;
    auto cached = meta_.get_response(keep.key);
    if (!cached) return std::nullopt;
    pulls_.note(keep.key, now_ms());
    if (!keep.artifact_type) return answer_from(*cached);
    auto filtered = referrers_of_type(cached->body, *keep.artifact_type);
    if (!filtered) return std::nullopt;
    cached->body = std::move(*filtered);
    auto res = answer_from(*cached);
    res.set("OCI-Filters-Applied", "artifactType");
    return res;
  };
  if (config_.offline) {
    if (auto res = from_cache()) {
      x.cache = CacheResult::hit;
      co_await send(x, *res);
    } else {
      reply_error(x, 404, not_found_code,
                  keep.key.empty() ? "this mirror is offline and keeps only whole tag lists (ask without n and last)"
                                   : "not cached and this mirror is offline");
    }
    co_return;
  }
  x.cache = CacheResult::miss;
  unsigned failed_status = 0;
  std::string retry_after;
  try {
    registry::UpstreamRequest get;
    get.target = target;
    get.scope = x.scope();
    get.headers = {{"Accept", "application/json, application/vnd.oci.image.index.v1+json"}};
    auto response = co_await ask_upstream(x, get);
    if (response->status() == 200) {
      auto body = co_await registry::read_body(*response, 4 * 1024 * 1024);
      cache::CachedResponse cached{std::string(response->headers()[http::field::content_type]), std::move(body), now_ms()};
      if (keep.store && !keep.key.empty()) {
        meta_.put_response(keep.key, cached);
        pulls_.note(keep.key, cached.fetched_at_ms);
      }
      auto res = answer_from(cached);
      // The client filters for itself unless told the upstream did.
      auto filters = response->headers()["OCI-Filters-Applied"];
      if (!filters.empty() && registry::is_visible_ascii(filters)) res.set("OCI-Filters-Applied", filters);
      if (auto link = response->headers()[http::field::link]; !link.empty()) {
        // Pages follow through the mirror, under the name the client used.
        std::string client_repository =
            (x.route.alias ? *x.route.alias + "/" : std::string()) + x.route.repository->str();
        std::optional<std::string_view> ns;
        if (x.route.ns) ns = *x.route.ns;
        // Behind a parent mirror its links name the repository as it was asked for it.
        const auto& parent = up.config.settings.parent;
        const std::string asked_as = parent ? registry::repository_at_parent(x.repository, *parent) : x.repository;
        if (auto mirrored = registry::mirror_link(link, asked_as, client_repository, ns))
          res.set(http::field::link, *mirrored);
      }
      co_await send(x, res);
      co_return;
    }
    failed_status = response->status();
    retry_after = std::string(response->headers()[http::field::retry_after]);
    if (failed_status == 404) {
      reply_upstream_failure(x, 404, not_found_code);
      co_return;
    }
    x.error = "upstream answered " + std::to_string(failed_status);
  } catch (const registry::UpstreamError& e) {
    x.error = std::string("upstream: ") + e.what();
  }
  if (auto res = from_cache()) {
    x.cache = CacheResult::stale;
    co_await send(x, *res);
    co_return;
  }
  if (failed_status)
    reply_upstream_failure(x, failed_status, not_found_code, retry_after);
  else
    reply_error(x, 502, ErrorCode::unknown, "upstream " + up.config.settings.name + " is unreachable: " + x.error);
}

// ---------------------------------------------------------------------------------
// Answers

asio::awaitable<void> Mirror::prepare_signals(Exchange& x, const Digest& digest,
                                             const cache::ManifestRecord& manifest) {
  auto policy = policy_.get();
  const auto& scope = policy::scope_for(*policy, x.upstream->config.settings.name, x.repository);
  if (scope.signatures || scope.sbom || scope.provenance)
    co_await signals_.prepare(*x.upstream->client, x.repository, digest, manifest, *policy, scope);
}

SharedDecision Mirror::gate_check(const Exchange& x, ArtifactKind kind, const Digest& digest) {
  static const auto ungated = std::make_shared<const GateDecision>();
  if (!config_.gate_enabled) {
    if (kind != ArtifactKind::blob) return upstream_decision(digest, ungated);
    // Behind a parent, a blob goes with the manifests seen here that list it: refused
    // when the parent denied every one of them.
    if (!x.upstream->config.settings.parent) return ungated;
    auto parents = meta_.referenced_by_in(digest, x.upstream->config.settings.name, x.repository, 64);
    SharedDecision decision = ungated;
    for (const auto& parent : parents) {
      decision = upstream_decision(parent, ungated);
      if (decision->serve) return ungated;
    }
    return decision;
  }
  auto request = gate_request(x, kind, digest);
  if (x.context.scanner) return gate_.pass_scanner(request);
  return kind == ArtifactKind::blob ? gate_.check_blob(request) : gate_.check_manifest(request);
}

SharedDecision Mirror::upstream_decision(const Digest& digest, const SharedDecision& otherwise) {
  auto stored = meta_.get_verdict(digest);
  if (!stored || stored->source != "upstream" || stored->decision != "deny") return otherwise;
  auto denied = std::make_shared<GateDecision>();
  denied->serve = false;
  denied->decision = policy::Decision::deny;
  denied->source = stored->source;
  denied->reasons = stored->reasons;
  return denied;
}

GateRequest Mirror::gate_request(const Exchange& x, ArtifactKind kind, const Digest& digest) const {
  GateRequest r{kind, x.upstream->config.settings.name, x.repository, std::nullopt, digest, x.context.client,
                x.request_id, x.request.method_string(), x.route.ns.has_value(), x.identity};
  if (x.route.reference && x.route.reference->tag()) r.tag = x.route.reference->tag()->str();
  return r;
}

void Mirror::reply_denied(Exchange& x, const GateDecision& decision, const Digest& digest) {
  if (decision.audit_unavailable) {
    // Nothing is served that the audit log cannot record; the disk may catch up soon.
    reply_error(x, 503, ErrorCode::unavailable,
                "pullgate cannot record its decision on " + digest.str() +
                    " right now (its audit log is behind); try again (request id " + x.request_id + ")");
    x.reply->set(http::field::retry_after, "1");
    return;
  }
  std::string image = x.upstream->config.settings.name + "/" + x.repository;
  if (x.route.reference && x.route.reference->tag()) image += ":" + x.route.reference->tag()->str();
  std::string message = "pullgate denied " + image + "@" + digest.str() + ": ";
  for (std::size_t i = 0; i < decision.reasons.size(); ++i) message += (i ? "; " : "") + decision.reasons[i];
  message += ". " + config_.denial_hint + " (request id " + x.request_id + ")";
  x.error = "denied";
  reply(x, ErrorReply{403, ErrorCode::denied, message, "", false});
}

asio::awaitable<void> Mirror::send(Exchange& x, http::response<http::string_body>& response) {
  x.outcome.status = response.result_int();
  x.outcome.bytes = response.body().size();
  if (!response.keep_alive()) x.outcome.close = true;
  co_await x.client.write(response);
}

void Mirror::reply_error(Exchange& x, unsigned status, ErrorCode code, std::string message) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  x.decorate(res);
  res.set(http::field::content_type, "application/json");
  res.body() = registry::error_body(code, message);
  res.prepare_payload();
  if (x.head) res.body().clear();  // HEAD: the status and length, no body
  if (x.error.empty() && status >= 400) x.error = message;
  x.reply = std::move(res);
}

void Mirror::reply(Exchange& x, const ErrorReply& failure) {
  reply_error(x, failure.status, failure.code, failure.message);
  if (!failure.retry_after.empty()) x.reply->set(http::field::retry_after, failure.retry_after);
  if (failure.code == ErrorCode::denied) x.reply->set(decision_header, "deny");
}

void Mirror::reply_upstream_failure(Exchange& x, unsigned upstream_status, ErrorCode not_found_code,
                                    std::string_view retry_after) {
  UpstreamAnswer answer;
  answer.status = upstream_status;
  answer.retry_after = std::string(retry_after);
  reply(x, failure_reply(x, answer, not_found_code));
}

}  // namespace pullgate::proxy
