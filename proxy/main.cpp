// pullgate: a pull-through OCI registry mirror.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cache/blob_fetch.hpp"
#include "cache/blob_store.hpp"
#include "cache/meta_store.hpp"
#include "proxy/commands.hpp"
#include "proxy/config.hpp"
#include "proxy/gate.hpp"
#include "proxy/log.hpp"
#include "proxy/mirror.hpp"
#include "proxy/server.hpp"

namespace {

using namespace pullgate;
using namespace pullgate::proxy;

constexpr const char* main_help = R"(pullgate )" PULLGATE_VERSION R"( - a pull-through OCI registry mirror

Usage:
  pullgate serve [options]        run the mirror
  pullgate check-config FILE      validate a config file and exit
  pullgate policy check FILE      validate a policy file and exit
  pullgate verdict set|get|ls|rm  manage stored verdicts (works while the server runs)
  pullgate --version | --help

Run `pullgate COMMAND --help` for the options of a command.
)";

constexpr const char* serve_help = R"(Usage: pullgate serve [--config FILE] [options]

Runs the mirror. Without --config it listens on 0.0.0.0:5000, keeps its cache in
./pullgate-data and mirrors Docker Hub (docker.io -> https://registry-1.docker.io).

Options (each overrides the config file):
  --config FILE        JSON config file (comments allowed); see README.md
  --listen ADDR:PORT   address to listen on, e.g. 127.0.0.1:5000
  --data DIR           data directory (LMDB cache and blob files)
  --upstream URL       mirror this one registry (http:// or https://) as the default
                       upstream, named by its host[:port] (for containerd's ?ns=)
  --offline            never contact an upstream; serve only what is cached
  --threads N          I/O threads (default 2)
  --policy FILE        the gate's policy (JSON); without one everything is allowed
  --help               this text

Signals: SIGHUP reloads the policy file (a policy that does not validate is
refused and the old one stays in force). SIGTERM or SIGINT stops accepting, finishes requests in progress (up to
30 s) and exits.
)";

constexpr const char* check_help = R"(Usage: pullgate check-config FILE

Validates FILE as pullgate would at start-up and prints one line per mistake.
Exit status: 0 valid, 1 invalid, 2 usage error.
)";

// Usage mistakes: one line, and where to read more.
int fail_usage(const std::string& message, const char* command) {
  std::cerr << "pullgate: " << message << " (see `pullgate " << command << "--help`)\n";
  return 2;
}

int check_config(const std::vector<std::string>& args) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << check_help;
    return 0;
  }
  if (args.size() == 1 && args[0].rfind("-", 0) == 0) return fail_usage("unknown option " + args[0], "check-config ");
  if (args.size() != 1) return fail_usage("check-config takes exactly one FILE", "check-config ");
  auto result = load_config_file(args[0]);
  for (auto& e : result.errors) std::cerr << args[0] << ": " << e << "\n";
  if (!result.errors.empty()) return 1;
  std::cout << args[0] << ": ok (" << result.config.upstreams.size() << " upstream"
            << (result.config.upstreams.size() == 1 ? "" : "s") << ")\n";
  return 0;
}

int serve(const std::vector<std::string>& args) {
  std::optional<std::string> config_file;
  Overrides overrides;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&](const char* flag) -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << serve_help;
      return 0;
    } else if (a == "--offline") {
      overrides.offline = true;
    } else if (a == "--config" || a == "--listen" || a == "--data" || a == "--upstream" || a == "--threads" ||
               a == "--policy") {
      auto v = value(a.c_str());
      if (!v) return fail_usage(a + " needs a value", "serve ");
      if (a == "--config") config_file = *v;
      else if (a == "--listen") overrides.listen = *v;
      else if (a == "--data") overrides.data_dir = *v;
      else if (a == "--upstream") overrides.upstream_url = *v;
      else if (a == "--policy") overrides.policy_file = *v;
      else {
        char* end = nullptr;
        auto n = std::strtoul(v->c_str(), &end, 10);
        if (v->empty() || *end || n < 1 || n > 256) return fail_usage("--threads must be 1..256", "serve ");
        overrides.threads = static_cast<unsigned>(n);
      }
    } else {
      return fail_usage("unknown option " + a, "serve ");
    }
  }

  ConfigResult result;
  if (config_file) result = load_config_file(*config_file);
  else result.config = default_config();
  apply_overrides(result, overrides);
  if (!result.errors.empty()) {
    for (auto& e : result.errors) std::cerr << "pullgate: config: " << e << "\n";
    return 1;
  }
  const Config& config = result.config;

  policy::Policy initial = default_policy();
  if (!config.policy_file.empty()) {
    auto loaded = load_policy_file(config.policy_file);
    for (auto& w : loaded.warnings) std::cerr << "pullgate: policy: " << w << "\n";
    if (!loaded.policy) {
      for (auto& e : loaded.errors) std::cerr << "pullgate: policy: " << e << "\n";
      return 1;
    }
    initial = std::move(*loaded.policy);
  }

  try {
    std::filesystem::create_directories(config.data_dir);
    auto meta = cache::MetaStore::open(config.data_dir / "lmdb", config.lmdb_map_size_mb * 1024 * 1024);
    cache::BlobStore blobs(config.data_dir);
    cache::BlobFetches fetches(blobs, *meta);
    AccessLog access_log(config.access_log);
    AuditLog audit(config.audit_log_path(), config.audit_max_mb * 1024 * 1024, config.audit_keep);
    PolicyHolder policy(std::move(initial));
    Gate gate(*meta, policy, audit);

    asio::io_context ioc(static_cast<int>(config.threads));
    std::vector<UpstreamEntry> upstreams;
    for (auto& u : config.upstreams)
      upstreams.push_back(UpstreamEntry{u, registry::make_http_upstream(ioc.get_executor(), u.settings)});

    Mirror mirror(config, upstreams, *meta, blobs, fetches, access_log, gate);
    Server server(ioc, config, mirror);
    server.start();
    auto endpoint = server.local_endpoint();
    nlohmann::json names = nlohmann::json::array();
    for (auto& u : config.upstreams) names.push_back(u.settings.name + "=" + u.settings.url);
    log_event("info", "listening",
              {{"address", endpoint.address().to_string() + ":" + std::to_string(endpoint.port())},
               {"tls", !config.tls_cert_file.empty()},
               {"data_dir", config.data_dir.string()},
               {"offline", config.offline},
               {"policy", config.policy_file.empty() ? "(built-in: allow all)" : config.policy_file},
               {"policy_version", policy.get()->version},
               {"audit_log", config.audit_log_path().string()},
               {"upstreams", names},
               {"cached_manifests", meta->manifest_count()},
               {"cached_blobs", meta->blob_count()},
               {"version", PULLGATE_VERSION}});

    asio::signal_set hangup(ioc, SIGHUP);
    std::function<void()> wait_hangup = [&] {
      hangup.async_wait([&](boost::system::error_code ec, int) {
        if (ec) return;
        reload_policy(config, policy);
        wait_hangup();
      });
    };
    wait_hangup();

    // Graceful shutdown: stop accepting, let requests finish, bounded wait.
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    asio::steady_timer drain(ioc);
    std::function<void(int)> wait_drained;
    auto deadline = std::chrono::steady_clock::now();
    wait_drained = [&](int) {
      if (server.active_sessions() == 0 || std::chrono::steady_clock::now() > deadline) {
        log_event("info", "stopped", {{"open_sessions", server.active_sessions()}});
        ioc.stop();
        return;
      }
      drain.expires_after(std::chrono::milliseconds(50));
      drain.async_wait([&](boost::system::error_code) { wait_drained(0); });
    };
    signals.async_wait([&](boost::system::error_code ec, int signal) {
      if (ec) return;
      log_event("info", "stopping", {{"signal", signal}, {"open_sessions", server.active_sessions()}});
      hangup.cancel();
      server.stop();
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      wait_drained(0);
    });

    std::vector<std::thread> threads;
    for (unsigned i = 1; i < config.threads; ++i) threads.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto& t : threads) t.join();
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << main_help;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "pullgate " << PULLGATE_VERSION << "\n";
    return 0;
  }
  auto command = args[0];
  args.erase(args.begin());
  if (command == "serve") return serve(args);
  if (command == "check-config") return check_config(args);
  if (command == "policy") return run_policy_command(args);
  if (command == "verdict") return run_verdict_command(args);
  return fail_usage("unknown command " + command, "");
}
