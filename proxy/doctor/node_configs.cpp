#include "proxy/doctor/node_configs.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <variant>

#include <nlohmann/json.hpp>

#include "proxy/doctor/toml.hpp"

namespace pullgate::proxy::doctor {

namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view docker_hub = "registry-1.docker.io";
constexpr std::string_view hosts_toml_fix_file = "deploy/containerd/hosts.toml";
constexpr std::string_view registries_conf_fix_file = "deploy/crio-podman/registries.conf";

bool is_docker_hub(std::string_view host) {
  return host == "docker.io" || host == docker_hub || host == "index.docker.io" || host == "registry.hub.docker.com";
}

// The host names that are the upstream itself for a registry named `name`.
std::set<std::string> upstream_hosts(std::initializer_list<std::string_view> names) {
  std::set<std::string> hosts;
  for (auto name : names) {
    auto a = authority_of(name);
    if (a.empty()) continue;
    hosts.insert(a);
    if (is_docker_hub(a))
      for (auto alias : {"docker.io", "registry-1.docker.io", "index.docker.io", "registry.hub.docker.com"})
        hosts.insert(alias);
  }
  return hosts;
}

// An endpoint is the mirror when it is the one named (--mirror), or, unnamed, when it
// is not the upstream.
bool is_mirror(std::string_view url, const std::set<std::string>& upstream, const MirrorSpec& mirror) {
  auto a = authority_of(url);
  if (!mirror.authority.empty()) return a == mirror.authority;
  return !upstream.contains(a);
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// The mirror the fixes name: the one told, else the first the route names, else a
// placeholder.
std::string fix_mirror(const Route& route, const MirrorSpec& mirror, bool with_scheme) {
  std::string url = mirror.url;
  if (url.empty())
    for (const auto& e : route.endpoints)
      if (e.mirror) {
        url = e.url;
        break;
      }
  if (url.empty()) url = "http://pullgate.example.internal:5000";
  if (with_scheme) {
    if (url.find("://") == std::string::npos) url = "https://" + url;
    return url;
  }
  return authority_of(url);
}

std::string string_or(const Json& object, const char* key, std::string otherwise) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : otherwise;
}

}  // namespace

bool Route::through_mirror() const { return !endpoints.empty() && endpoints.front().mirror; }

bool Route::falls_back() const { return way_around() != nullptr; }

const Endpoint* Route::way_around() const {
  for (const auto& e : endpoints)
    if (!e.mirror) return &e;
  return nullptr;
}

std::string authority_of(std::string_view url) {
  if (auto scheme = url.find("://"); scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find('/'));
  std::string out(url);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool covers(std::string_view prefix, std::string_view upstream) {
  auto a = authority_of(prefix);
  auto b = authority_of(upstream);
  return a == b || (is_docker_hub(a) && is_docker_hub(b));
}

// ------------------------------------------------------------------ containerd

Route containerd_route(const std::string& upstream, const std::string& file, const std::optional<std::string>& text,
                       const MirrorSpec& mirror) {
  Route route{"containerd", file, upstream, {}, {}, {}};
  const bool any_registry = upstream == "_default";
  // containerd's server when the file names none: the registry itself.
  const std::string default_server =
      any_registry ? "https://<the registry>"
                   : "https://" + std::string(is_docker_hub(upstream) ? docker_hub : std::string_view(upstream));
  const auto hosts = any_registry ? std::set<std::string>{authority_of(default_server)} : upstream_hosts({upstream});
  auto endpoint = [&](std::string url, bool insecure) {
    bool m = url != default_server && is_mirror(url, hosts, mirror);
    return Endpoint{std::move(url), m, insecure};
  };
  auto straight = [&](std::string why) {
    route.notes.push_back(std::move(why));
    route.endpoints = {Endpoint{default_server, false, false}};
  };
  // The fix names the mirror the file names, so it is computed once the endpoints are.
  auto shipped_fix = [&] {
    const std::string m = fix_mirror(route, mirror, true);
    return "make " + file + " the shipped " + std::string(hosts_toml_fix_file) + ": server = " + in_quotes(m) +
           " and its [host." + in_quotes(m) + "] table with capabilities = [\"pull\", \"resolve\"], no other host";
  };

  if (!text) {
    straight("no hosts.toml for it (and no _default): containerd pulls from the upstream");
    route.fix = "create " + file + " from " + std::string(hosts_toml_fix_file) + " (server = " +
                in_quotes(fix_mirror(route, mirror, true)) +
                " and its [host] table)";
    return route;
  }
  auto parsed = parse_toml(*text);
  if (auto* error = std::get_if<TomlError>(&parsed)) {
    straight("containerd cannot read it (" + error->message + ") and pulls from the upstream");
    route.fix = "fix the TOML of " + file + "; then " + shipped_fix();
    return route;
  }
  const auto& doc = std::get<Json>(parsed);
  auto pulls = [](const Json& table) {
    auto caps = table.find("capabilities");
    if (caps == table.end()) return true;  // containerd's default: pull, resolve, push
    if (!caps->is_array()) return false;
    return std::any_of(caps->begin(), caps->end(),
                       [](const Json& c) { return c.is_string() && (c == "pull" || c == "resolve"); });
  };
  auto insecure_of = [](const std::string& url, const Json& table) {
    auto skip = table.find("skip_verify");
    return url.rfind("http://", 0) == 0 || (skip != table.end() && skip->is_boolean() && skip->get<bool>());
  };
  auto server = doc.find("server");
  if (server != doc.end() && !server->is_string()) {
    straight("its server is not a string: containerd rejects the file and pulls from the upstream");
    route.fix = shipped_fix();
    return route;
  }
  auto host = doc.find("host");
  if (host == doc.end() || !host->is_object() || host->empty()) {
    if (server != doc.end()) route.endpoints.push_back(endpoint(server->get<std::string>(), false));
    const std::string fix_host = fix_mirror(route, mirror, true);
    const std::string whole_fix = shipped_fix();
    // containerd 1.6 rejects a file without [host] tables ("invalid `host` tree"),
    // logs that, and pulls straight from the upstream (../../docs/clients.md).
    straight("it has no [host] table: containerd 1.6 rejects it as an invalid host tree and pulls from the upstream");
    route.fix = "add [host." + in_quotes(fix_host) + "] with capabilities = [\"pull\", \"resolve\"] (" +
                whole_fix + ")";
    return route;
  }
  for (const auto& [url, table] : host->items()) {
    if (!table.is_object()) continue;
    if (pulls(table)) route.endpoints.push_back(endpoint(url, insecure_of(url, table)));
  }
  const std::string server_url = server != doc.end() ? server->get<std::string>() : default_server;
  if (pulls(doc)) route.endpoints.push_back(endpoint(server_url, insecure_of(server_url, doc)));
  if (server == doc.end())
    route.notes.push_back("no server: containerd tries " + default_server + " after the hosts");

  if (!route.through_mirror() || route.falls_back()) route.fix = shipped_fix();
  return route;
}

std::vector<std::string> containerd_config_notes(const std::string& file, std::string_view text,
                                                 const std::string& hosts_dir) {
  auto parsed = parse_toml(text);
  if (auto* error = std::get_if<TomlError>(&parsed)) return {file + ": not readable as TOML (" + error->message + ")"};
  const auto& doc = std::get<Json>(parsed);
  // config version 2 names the plugin in full; version 1 as "cri".
  const Json* registry = nullptr;
  for (const char* plugin : {"io.containerd.grpc.v1.cri", "cri"}) {
    auto plugins = doc.find("plugins");
    if (plugins == doc.end() || !plugins->is_object()) break;
    auto cri = plugins->find(plugin);
    if (cri == plugins->end() || !cri->is_object()) continue;
    auto r = cri->find("registry");
    if (r != cri->end() && r->is_object()) registry = &*r;
  }
  std::string path = registry ? string_or(*registry, "config_path", "") : "";
  auto trim = [](std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
  };
  if (path.empty())
    return {file + ": the CRI plugin's registry.config_path is not set, so the kubelet's pulls do not read the "
                   "hosts.toml tree (set config_path = " + in_quotes(hosts_dir) + " under [plugins.\"io.containerd.grpc.v1.cri\".registry])"};
  if (trim(path) != trim(hosts_dir))
    return {file + ": the CRI plugin reads hosts.toml from " + path + ", not " + hosts_dir +
            " (point --containerd-certs-dir there)"};
  return {};
}

// ------------------------------------------------------------------ registries.conf

std::vector<Route> registries_conf_routes(const std::vector<ConfFile>& files, const MirrorSpec& mirror) {
  // prefix -> (file, entry), in first-seen order.
  std::vector<std::string> order;
  std::map<std::string, std::pair<std::string, Json>> entries;
  std::vector<Route> routes;
  for (const auto& f : files) {
    auto parsed = parse_toml(f.text);
    if (auto* error = std::get_if<TomlError>(&parsed)) {
      Route broken{"registries.conf", f.path, "(every registry)", {}, {}, {}};
      broken.notes.push_back("not readable as TOML (" + error->message + "): CRI-O, podman and skopeo refuse to pull");
      broken.fix = "fix the TOML of " + f.path;
      routes.push_back(std::move(broken));
      continue;
    }
    const auto& doc = std::get<Json>(parsed);
    auto registries = doc.find("registry");
    if (registries == doc.end()) continue;
    if (!registries->is_array()) {
      Route broken{"registries.conf", f.path, "(every registry)", {}, {}, {}};
      broken.notes.push_back("registry is not an array of tables ([[registry]]): the clients refuse the file");
      broken.fix = "write each registry as [[registry]], as " + std::string(registries_conf_fix_file);
      routes.push_back(std::move(broken));
      continue;
    }
    for (const auto& entry : *registries) {
      if (!entry.is_object()) continue;
      auto location = string_or(entry, "location", "");
      auto prefix = string_or(entry, "prefix", location);
      if (prefix.empty()) continue;
      if (!entries.contains(prefix)) order.push_back(prefix);
      entries[prefix] = {f.path, entry};
    }
  }
  for (const auto& prefix : order) {
    const auto& [file, entry] = entries[prefix];
    const auto location = string_or(entry, "location", prefix);
    Route route{"registries.conf", file, prefix, {}, {}, {}};
    // The prefix names the upstream; a location elsewhere rewrites it (to the mirror,
    // as the shipped file's alternative does).
    const auto hosts = upstream_hosts({prefix});
    auto flag = [](const Json& table, const char* key) {
      auto it = table.find(key);
      return it != table.end() && it->is_boolean() && it->get<bool>();
    };
    const bool insecure = flag(entry, "insecure");
    const bool blocked = flag(entry, "blocked");
    const bool digest_only = flag(entry, "mirror-by-digest-only");
    bool partial_mirror = digest_only;
    if (auto mirrors = entry.find("mirror"); mirrors != entry.end() && mirrors->is_array()) {
      for (const auto& m : *mirrors) {
        if (!m.is_object()) continue;
        auto url = string_or(m, "location", "");
        if (url.empty()) continue;
        auto pull_from = string_or(m, "pull-from-mirror", "all");
        if (pull_from != "all") partial_mirror = true;
        route.endpoints.push_back(Endpoint{url, is_mirror(url, hosts, mirror), flag(m, "insecure")});
      }
    }
    if (blocked) {
      route.notes.push_back("the upstream is blocked: pulls use only the mirrors");
    } else {
      route.endpoints.push_back(Endpoint{location, is_mirror(location, hosts, mirror), insecure});
      // The pulls a mirror does not take go to the location: by tag with
      // mirror-by-digest-only, the other kind with pull-from-mirror.
      if (partial_mirror)
        route.notes.push_back("pulls the mirror does not take (mirror-by-digest-only, pull-from-mirror) go to " +
                              location);
    }
    if (!route.through_mirror() || route.falls_back()) {
      const auto m = fix_mirror(route, mirror, false);
      if (!route.through_mirror() && route.endpoints.size() <= 1 && !blocked)
        route.fix = "in " + file + ", give the [[registry]] with prefix " + in_quotes(prefix) +
                    " a [[registry.mirror]] location = " + in_quotes(m + "/" + prefix) + " and blocked = true, as " +
                    std::string(registries_conf_fix_file);
      else
        route.fix = "in " + file + ", add blocked = true to the [[registry]] with prefix " + in_quotes(prefix) +
                    " (the mirror stays in use)" + (partial_mirror ? " and let its mirror take every pull" : "") +
                    ", as " + std::string(registries_conf_fix_file);
    }
    routes.push_back(std::move(route));
  }
  return routes;
}

// ------------------------------------------------------------------ docker

Route docker_route(const std::string& file, std::string_view text, const MirrorSpec& mirror) {
  Route route{"docker", file, "docker.io", {}, {}, {}};
  const auto hosts = upstream_hosts({"docker.io"});
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object()) {
    route.notes.push_back("not a JSON object: dockerd refuses to start with it");
  } else if (auto mirrors = doc.find("registry-mirrors"); mirrors != doc.end() && mirrors->is_array()) {
    for (const auto& m : *mirrors)
      if (m.is_string()) route.endpoints.push_back(Endpoint{m.get<std::string>(), is_mirror(m.get<std::string>(), hosts, mirror), false});
  }
  if (route.endpoints.empty())
    route.notes.push_back("no registry-mirrors: dockerd pulls docker.io images from Docker Hub");
  else
    route.notes.push_back("dockerd falls back to Docker Hub whenever a mirror refuses or fails");
  route.endpoints.push_back(Endpoint{"https://" + std::string(docker_hub), false, false});
  route.fix = "registry-mirrors cannot close the fallback (deploy/docker/README.md): close this node's route to " +
              std::string(docker_hub) + " (an egress firewall or proxy that lets only the mirror through)" +
              (route.endpoints.size() == 1 ? ", and list the mirror in registry-mirrors as deploy/docker/daemon.json" : "");
  return route;
}

Route unconfigured_route(const std::string& client, const std::string& file, const std::string& upstream,
                         const MirrorSpec& mirror) {
  if (client == "containerd") return containerd_route(upstream, file, std::nullopt, mirror);
  Route route{client, file, upstream, {}, {}, {}};
  route.notes.push_back("no [[registry]] entry for it: pulls go straight to the upstream");
  route.endpoints.push_back(Endpoint{upstream, false, false});
  route.fix = "in " + file + ", add a [[registry]] with prefix " + in_quotes(upstream) + ", blocked = true and a " +
              "[[registry.mirror]] location = " + in_quotes(fix_mirror(route, mirror, false) + "/" + upstream) + ", as " +
              std::string(registries_conf_fix_file);
  return route;
}

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::gated: return "gated";
    case Verdict::bypass: return "bypass";
    case Verdict::closed_route: return "closed-route";
    case Verdict::no_pull: return "no-pull";
  }
  return "bypass";
}

Verdict judge(const Route& route, const Probe* way_around_probe) {
  if (route.endpoints.empty()) return Verdict::no_pull;
  if (!route.falls_back()) return Verdict::gated;
  if (way_around_probe && !way_around_probe->reached) return Verdict::closed_route;
  return Verdict::bypass;
}

}  // namespace pullgate::proxy::doctor
