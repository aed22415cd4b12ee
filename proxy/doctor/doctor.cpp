#include "proxy/doctor/doctor.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "proxy/cli/args.hpp"
#include "proxy/doctor/node_configs.hpp"
#include "proxy/doctor/probe.hpp"
#include "proxy/prefetch/plan.hpp"
#include "registry/upstream_url.hpp"

namespace pullgate::proxy::doctor {

const char help[] = R"(Usage: pullgate doctor [--mirror URL | --config FILE] [--json] [--no-network] [paths]

Run on a node: reads the container clients' registry configurations and says, for
each upstream each client names, whether its pulls go through the mirror, whether a
refusal or an outage of the mirror falls back to the upstream (the silent bypass,
docs/clients.md), whether the mirror answers (GET /v2/: 200 or 401) and whether this
node reaches the upstream directly (a connection to it: an HTTP answer, or TLS
that failed), and prints the fix: the shipped configuration in deploy/ and the
change to make.

  --mirror URL       the mirror (http:// or https://): only endpoints with its host:port
                     count as the mirror, and it is probed. Without it, an endpoint
                     that is not the upstream itself is taken for the mirror.
  --config FILE      the local pullgate's config: its upstreams are checked even where a
                     client names none, and its listen address is probed as the mirror
  --json             one JSON document (per client and upstream) instead of text
  --no-network       no probes; a way around the mirror then counts as open
  --timeout SECONDS  each probe's timeout (default 3)

  --containerd-certs-dir DIR   containerd's hosts.toml tree (default /etc/containerd/certs.d)
  --containerd-config FILE     containerd's config.toml, for the CRI plugin's config_path
                               (default /etc/containerd/config.toml)
  --registries-conf FILE       CRI-O, podman, skopeo (default
                               $HOME/.config/containers/registries.conf where it exists, as
                               those clients read it instead, else /etc/containers/registries.conf)
  --registries-conf-dir DIR    its drop-ins, *.conf by name (default
                               /etc/containers/registries.conf.d)
  --docker-daemon-json FILE    dockerd (default /etc/docker/daemon.json)

A client whose configuration is not found is not reported, except that with
--config every upstream the mirror serves is checked against each client found.
Verdicts: ok (only the mirror is tried), BYPASS (a way around the mirror that is
open, or not probed), closed (a way around the mirror that this node cannot reach
now: the gate holds only while that route stays closed), fails (the client refuses
the file: it pulls nothing). The probe connects directly: a client that pulls
through an HTTP proxy may reach an upstream this node's own route does not.

Exit status: 0 when no client can bypass the gate, 1 when one can (or none is
configured to pull through a mirror at all, or a configuration file could not be
read), 2 for a usage error.
)";

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr std::uintmax_t max_config_bytes = 1 << 20;

// A configuration file: nullopt when absent; `error` set when present but unreadable.
std::optional<std::string> read_config(const fs::path& path, std::vector<std::string>& errors) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  auto size = fs::file_size(path, ec);
  if (ec) {
    errors.push_back(path.string() + ": " + ec.message());
    return std::nullopt;
  }
  if (size > max_config_bytes) {
    errors.push_back(path.string() + ": " + std::to_string(size) + " bytes, more than a configuration file has");
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    errors.push_back(path.string() + ": cannot be read");
    return std::nullopt;
  }
  return text.str();
}

std::string env_or(const char* name, std::string otherwise) {
  const char* v = std::getenv(name);
  return v && *v ? v : otherwise;
}

struct Paths {
  fs::path certs_dir, containerd_config, registries_conf, registries_dir, daemon_json;
};

Paths paths_of(const cli::CliArgs& cli) {
  Paths p;
  auto get = [&](const char* option, std::string otherwise) {
    auto* v = cli.get(option);
    return fs::path(v ? *v : otherwise);
  };
  p.certs_dir = get("--containerd-certs-dir", "/etc/containerd/certs.d");
  p.containerd_config = get("--containerd-config", "/etc/containerd/config.toml");
  std::string user_conf = env_or("HOME", "/root") + "/.config/containers/registries.conf";
  std::error_code ec;
  p.registries_conf =
      get("--registries-conf", fs::exists(user_conf, ec) ? user_conf : "/etc/containers/registries.conf");
  p.registries_dir = get("--registries-conf-dir", "/etc/containers/registries.conf.d");
  p.daemon_json = get("--docker-daemon-json", "/etc/docker/daemon.json");
  return p;
}

struct Survey {
  std::vector<Route> routes;
  Json read = Json::array();  // what was looked at: {"path","found"}
  std::vector<std::string> notes;
  std::vector<std::string> errors;  // files that exist and could not be read
};

void containerd(const Paths& p, const std::vector<std::string>& upstreams, const MirrorSpec& mirror, Survey& s) {
  std::error_code ec;
  const bool tree = fs::is_directory(p.certs_dir, ec);
  s.read.push_back({{"client", "containerd"}, {"path", p.certs_dir.string()}, {"found", tree}});
  auto config = read_config(p.containerd_config, s.errors);
  s.read.push_back({{"client", "containerd"}, {"path", p.containerd_config.string()}, {"found", config.has_value()}});
  if (config)
    for (auto& note : containerd_config_notes(p.containerd_config.string(), *config, p.certs_dir.string()))
      s.notes.push_back(std::move(note));
  if (!tree && !config) return;
  std::vector<std::string> names;
  if (tree)
    for (const auto& entry : fs::directory_iterator(p.certs_dir, ec))
      if (entry.is_directory(ec)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  bool any_default = false;
  for (const auto& name : names) {
    auto file = p.certs_dir / name / "hosts.toml";
    auto text = read_config(file, s.errors);
    if (!text) continue;  // a directory without hosts.toml configures nothing
    any_default = any_default || name == "_default";
    s.routes.push_back(containerd_route(name, file.string(), text, mirror));
  }
  for (const auto& upstream : upstreams) {
    bool named = std::any_of(s.routes.begin(), s.routes.end(),
                             [&](const Route& r) { return r.client == "containerd" && covers(r.upstream, upstream); });
    if (!named && !any_default)
      s.routes.push_back(unconfigured_route("containerd", (p.certs_dir / upstream / "hosts.toml").string(), upstream,
                                            mirror));
  }
}

void registries_conf(const Paths& p, const std::vector<std::string>& upstreams, const MirrorSpec& mirror,
                     Survey& s) {
  std::vector<ConfFile> files;
  auto main = read_config(p.registries_conf, s.errors);
  s.read.push_back({{"client", "registries.conf"}, {"path", p.registries_conf.string()}, {"found", main.has_value()}});
  if (main) files.push_back({p.registries_conf.string(), *main});
  std::error_code ec;
  std::vector<fs::path> dropins;
  if (fs::is_directory(p.registries_dir, ec))
    for (const auto& entry : fs::directory_iterator(p.registries_dir, ec))
      if (entry.path().extension() == ".conf") dropins.push_back(entry.path());
  std::sort(dropins.begin(), dropins.end());
  for (const auto& d : dropins) {
    auto text = read_config(d, s.errors);
    s.read.push_back({{"client", "registries.conf"}, {"path", d.string()}, {"found", text.has_value()}});
    if (text) files.push_back({d.string(), *text});
  }
  if (files.empty()) return;
  auto routes = registries_conf_routes(files, mirror);
  for (const auto& upstream : upstreams) {
    bool named = std::any_of(routes.begin(), routes.end(), [&](const Route& r) { return covers(r.upstream, upstream); });
    if (!named) routes.push_back(unconfigured_route("registries.conf", files.front().path, upstream, mirror));
  }
  for (auto& r : routes) s.routes.push_back(std::move(r));
}

void docker(const Paths& p, const MirrorSpec& mirror, Survey& s) {
  auto text = read_config(p.daemon_json, s.errors);
  s.read.push_back({{"client", "docker"}, {"path", p.daemon_json.string()}, {"found", text.has_value()}});
  if (text) s.routes.push_back(docker_route(p.daemon_json.string(), *text, mirror));
}

Json probe_json(const Probe* p) {
  if (!p) return nullptr;
  return {{"reached", p->reached}, {"answered", p->answered}, {"status", p->status}, {"detail", p->detail}};
}

// The mirror endpoint a route tries first (nullptr: none).
const Endpoint* first_mirror(const Route& r) {
  for (const auto& e : r.endpoints)
    if (e.mirror) return &e;
  return nullptr;
}

// What the verdict line says after the client, upstream and file.
std::string explain(const Route& r, Verdict v, const Probe* mirror_probe, const Probe* way_probe) {
  std::string out;
  const auto* m = first_mirror(r);
  const auto* way = r.way_around();
  if (v == Verdict::no_pull) {
    out = "the client pulls nothing with this file";
  } else if (!way) {
    out = "pulls go only through the mirror " + m->url + "; a refusal or an outage fails the pull";
  } else if (r.through_mirror()) {
    out = "pulls go through the mirror " + m->url + ", but a refusal or an outage falls back to " + way->url;
  } else {
    out = "pulls go to " + way->url + (m ? " before the mirror " + m->url : ", not through a mirror");
  }
  if (way) {
    if (!way_probe) out += " (reachability not probed)";
    else if (way_probe->reached) out += ", which this node reaches (" + way_probe->detail + ")";
    else out += ", which this node cannot reach now (" + way_probe->detail + "): the gate holds only while that route stays closed";
  }
  if (m && mirror_probe) {
    if (mirror_probe->answers_as_registry()) out += "; the mirror answers (" + mirror_probe->detail + ")";
    else out += "; the mirror does not answer (" + mirror_probe->detail + ")" +
                (way ? "" : ": pulls fail until it does");
  }
  return out;
}

std::string_view label(Verdict v) {
  switch (v) {
    case Verdict::gated: return "ok";
    case Verdict::bypass: return "BYPASS";
    case Verdict::closed_route: return "closed";
    case Verdict::no_pull: return "fails";
  }
  return "BYPASS";
}

}  // namespace

int run(const std::vector<std::string>& all) {
  std::vector<std::string> args;
  bool json = false, no_network = false;
  for (const auto& a : all) {
    if (a == "--json") json = true;
    else if (a == "--no-network") no_network = true;
    else args.push_back(a);
  }
  auto cli = cli::parse_cli(args, 0,
                            {"--mirror", "--config", "--timeout", "--containerd-certs-dir", "--containerd-config",
                             "--registries-conf", "--registries-conf-dir", "--docker-daemon-json"});
  if (cli.help) {
    std::cout << help;
    return 0;
  }
  if (!cli.error.empty()) return cli::usage(cli.error, "doctor");
  if (!cli.positional.empty()) return cli::usage("doctor takes no arguments, got " + cli.positional[0], "doctor");
  std::chrono::milliseconds timeout{3000};
  if (auto* t = cli.get("--timeout")) {
    int seconds = 0;
    try {
      std::size_t used = 0;
      seconds = std::stoi(*t, &used);
      if (used != t->size()) seconds = 0;
    } catch (const std::exception&) {
    }
    if (seconds < 1 || seconds > 300) return cli::usage("--timeout must be 1 to 300 seconds, got " + *t, "doctor");
    timeout = std::chrono::seconds(seconds);
  }

  MirrorSpec mirror;
  std::vector<std::string> upstreams;
  if (auto* url = cli.get("--mirror")) {
    auto parsed = registry::parse_url(*url);
    if (!parsed || parsed->target != "/")
      return cli::usage("--mirror must be an http:// or https:// URL without a path, got \"" + *url + "\"", "doctor");
    mirror.url = *url;
    mirror.authority = authority_of(*url);
  }
  if (cli.get("--config")) {
    auto config = cli::cli_config(cli);
    if (!config) return 1;
    for (const auto& u : config->upstreams) upstreams.push_back(u.settings.name);
    // Its listen address is how this node reaches it; the clients may name it
    // otherwise (a DNS name), so it is probed, not matched.
    if (mirror.url.empty())
      if (auto listen = prefetch::mirror_url_of(config->listen, !config->tls_cert_file.empty())) mirror.url = *listen;
  }

  const auto paths = paths_of(cli);
  Survey survey;
  containerd(paths, upstreams, mirror, survey);
  registries_conf(paths, upstreams, mirror, survey);
  docker(paths, mirror, survey);

  std::map<std::string, Probe> probes;
  std::optional<Endpoint> told;
  if (!mirror.url.empty()) told = Endpoint{mirror.url, true, true};
  if (!no_network) {
    std::vector<Endpoint> targets;
    if (told) targets.push_back(*told);
    for (const auto& r : survey.routes) {
      if (const auto* m = first_mirror(r)) targets.push_back(*m);
      if (const auto* w = r.way_around()) targets.push_back(*w);
    }
    probes = probe_all(targets, timeout);
  }
  auto probe_of = [&](const Endpoint* e) -> const Probe* {
    if (!e) return nullptr;
    auto it = probes.find(probe_key(*e));
    return it == probes.end() ? nullptr : &it->second;
  };

  bool bypass = false;
  Json findings = Json::array();
  std::ostringstream text;
  if (told) {
    const auto* p = probe_of(&*told);
    text << "mirror " << told->url << ": "
         << (!p ? "not probed" : p->answers_as_registry() ? "answers (" + p->detail + ")"
                                                          : "does not answer (" + p->detail + ")")
         << "\n";
  }
  for (const auto& r : survey.routes) {
    const auto* way_probe = probe_of(r.way_around());
    const auto* mirror_probe = probe_of(first_mirror(r));
    const auto v = judge(r, way_probe);
    bypass = bypass || v == Verdict::bypass;
    text << label(v) << "  " << r.client << "  " << r.upstream << "  (" << r.file << "): "
         << explain(r, v, mirror_probe, way_probe) << "\n";
    for (const auto& note : r.notes) text << "    note: " << note << "\n";
    if (v != Verdict::gated && !r.fix.empty()) text << "    fix: " << r.fix << "\n";
    Json endpoints = Json::array();
    for (const auto& e : r.endpoints)
      endpoints.push_back({{"url", e.url}, {"mirror", e.mirror}, {"insecure", e.insecure}, {"probe", probe_json(probe_of(&e))}});
    findings.push_back({{"client", r.client},
                        {"upstream", r.upstream},
                        {"file", r.file},
                        {"verdict", to_string(v)},
                        {"through_mirror", r.through_mirror()},
                        {"falls_back", r.falls_back()},
                        {"endpoints", endpoints},
                        {"mirror_answers", mirror_probe ? Json(mirror_probe->answers_as_registry()) : Json(nullptr)},
                        {"upstream_reachable", way_probe ? Json(way_probe->reached) : Json(nullptr)},
                        {"notes", r.notes},
                        {"fix", r.fix.empty() || v == Verdict::gated ? Json(nullptr) : Json(r.fix)}});
  }
  // No client sends anything to a mirror: every pull on this node goes straight to its
  // registry, which is the bypass a fleet-wide run is looking for, not a clean bill.
  const bool unrouted = survey.routes.empty();
  if (unrouted) {
    bypass = true;
    text << "BYPASS  no client configuration found (looked at the paths below): nothing on this node pulls "
            "through a mirror, so every pull goes straight to its registry\n"
         << "    fix: containerd: deploy/containerd/hosts.toml into /etc/containerd/certs.d/<upstream>/ (and "
            "config_path set); CRI-O and podman: deploy/crio-podman/registries.conf; see docs/clients.md\n";
  }
  for (const auto& note : survey.notes) text << "note: " << note << "\n";
  for (const auto& error : survey.errors) text << "error: " << error << "\n";
  text << "read:";
  for (const auto& f : survey.read)
    text << " " << f["path"].get<std::string>() << (f["found"].get<bool>() ? "" : " (not found)") << ";";
  text << "\n";

  if (json) {
    Json doc = {{"mirror", told ? Json{{"url", told->url}, {"probe", probe_json(probe_of(&*told))}} : Json(nullptr)},
                {"network", !no_network},
                {"bypass", bypass},
                {"findings", findings},
                {"notes", survey.notes},
                {"errors", survey.errors},
                {"read", survey.read}};
    std::cout << doc.dump(2) << "\n";
  } else {
    std::cout << text.str();
  }
  return bypass || !survey.errors.empty() ? 1 : 0;
}

}  // namespace pullgate::proxy::doctor
