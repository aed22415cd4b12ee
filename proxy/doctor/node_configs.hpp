#pragma once
// What a node's client configurations do with a pull, as plain functions (config
// text in, routes out) that unit tests call directly: for each upstream and each
// client (containerd's hosts.toml tree, containers' registries.conf, dockerd's
// daemon.json), the endpoints the client tries in order, which of them are the mirror,
// whether a refusal or an outage of the mirror falls back to the upstream (the silent
// bypass, ../../docs/clients.md), and the fix from deploy/. No files, no network:
// doctor.cpp reads the files and probes the endpoints.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullgate::proxy::doctor {

// The mirror as the command was told (--mirror URL): its host[:port]. Without it, an
// endpoint is taken for the mirror when it is not the upstream itself.
struct MirrorSpec {
  std::string authority;  // lower case host[:port]; empty: not told
  std::string url;        // as given, for the fixes ("http://HOST:5000")
};

struct Endpoint {
  std::string url;    // scheme://host[:port][/path]; "host[:port][/path]" with scheme "" for registries.conf
  bool mirror = false;
  bool insecure = false;  // plain HTTP allowed or TLS not verified (registries.conf insecure, skip_verify)
};

// One upstream as one client pulls it.
struct Route {
  std::string client;    // "containerd", "registries.conf" (CRI-O, podman, skopeo), "docker"
  std::string file;      // the file that decides it
  std::string upstream;  // "docker.io", "127.0.0.1:5000"; "_default": every registry without its own entry
  std::vector<Endpoint> endpoints;  // what a pull tries, in order
  std::vector<std::string> notes;   // why the endpoints are what they are, when it is not plain
  std::string fix;                  // empty when nothing is to be fixed

  // The first endpoint is the mirror: pulls go through it.
  bool through_mirror() const;
  // An endpoint that is not the mirror is tried at all: before the mirror (pulls do not
  // go through it) or after it (a refusal or an outage falls back to it).
  bool falls_back() const;
  // The first endpoint that is not the mirror; nullptr when there is none.
  const Endpoint* way_around() const;
};

// Lower-case host[:port] of a URL or of a registries.conf location: scheme, path and
// a trailing slash left out.
std::string authority_of(std::string_view url);

// containerd: DIR/<upstream>/hosts.toml. `text` nullopt: no such file in the directory
// (containerd then pulls from the upstream). `mirror_url` names the fix's mirror.
Route containerd_route(const std::string& upstream, const std::string& file, const std::optional<std::string>& text,
                       const MirrorSpec& mirror);

// containerd's config.toml: where the CRI plugin reads hosts.toml from; one line each
// for what a reader of `hosts_dir` should know (empty when it is that directory).
std::vector<std::string> containerd_config_notes(const std::string& file, std::string_view text,
                                                 const std::string& hosts_dir);

// registries.conf and its drop-ins, in the order containers/image reads them (the
// main file, then registries.conf.d/*.conf by name): an entry with the same prefix in a
// later file replaces the earlier one. One route per [[registry]] entry; a file that
// does not parse is one route with its error (the clients refuse to pull at all).
struct ConfFile {
  std::string path;
  std::string text;
};
std::vector<Route> registries_conf_routes(const std::vector<ConfFile>& files, const MirrorSpec& mirror);

// dockerd's daemon.json: the docker.io route (registry-mirrors, then Docker Hub itself,
// always: dockerd falls back whatever the mirror answers).
Route docker_route(const std::string& file, std::string_view text, const MirrorSpec& mirror);

// A route for an upstream the mirror serves that a client's configuration does not
// name at all: that client pulls it straight from the upstream.
Route unconfigured_route(const std::string& client, const std::string& file, const std::string& upstream,
                         const MirrorSpec& mirror);

// What a probe of an endpoint saw (GET /v2/ with a short timeout).
struct Probe {
  bool reached = false;   // a connection was made (an HTTP answer, or TLS that failed): the route is open
  bool answered = false;  // an HTTP answer of any status
  unsigned status = 0;    // that answer's status
  std::string detail;     // "HTTP 200 from ...", or what failed
  // As a mirror: a registry's /v2/ answers 200 or 401.
  bool answers_as_registry() const { return answered && (status == 200 || status == 401); }
};

enum class Verdict {
  gated,         // every pull goes through the mirror, and nothing else is tried
  bypass,        // the client can pull around the mirror (or was not probed to show it cannot)
  closed_route,  // the client would pull around the mirror, but the node cannot reach that endpoint now
  no_pull,       // the client tries nothing: its configuration is refused
};
std::string_view to_string(Verdict v);

// The route's verdict; `probe` gives the probe of an endpoint, nullptr when it was not
// probed (--no-network): a way around that was not shown closed counts as open.
Verdict judge(const Route& route, const Probe* way_around_probe);

// Does a registries.conf [[registry]] prefix, or a containerd directory name, cover
// this upstream name?
bool covers(std::string_view prefix, std::string_view upstream);

}  // namespace pullgate::proxy::doctor
