#include "proxy/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

namespace pullgate::proxy {
namespace {

bool has_error(const ConfigResult& r, std::string_view needle) {
  return std::any_of(r.errors.begin(), r.errors.end(),
                     [&](const std::string& e) { return e.find(needle) != std::string::npos; });
}

TEST(Config, EmptyObjectGivesDockerHubDefaults) {
  auto r = parse_config("{}");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.config.listen, "0.0.0.0:5000");
  ASSERT_EQ(r.config.upstreams.size(), 1u);
  EXPECT_EQ(r.config.upstreams[0].settings.name, "docker.io");
  EXPECT_TRUE(r.config.upstreams[0].docker_hub);
  EXPECT_TRUE(r.config.upstreams[0].is_default);
}

TEST(Config, CommentsAreAllowed) {
  auto r = parse_config(R"({
    // the address
    "listen": "127.0.0.1:6000", /* block */
    "upstreams": [{"url": "http://127.0.0.1:5000", "tag_ttl_s": -1}]
  })");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.config.listen, "127.0.0.1:6000");
  EXPECT_EQ(r.config.upstreams[0].settings.name, "127.0.0.1:5000");
  EXPECT_EQ(r.config.upstreams[0].tag_ttl_s, -1);
  EXPECT_TRUE(r.config.upstreams[0].is_default);
  EXPECT_FALSE(r.config.upstreams[0].docker_hub);
}

TEST(Config, EveryMistakeIsReportedOnItsOwnLine) {
  auto r = parse_config(R"({
    "listen": "nowhere", "threads": 0, "lsiten": "x",
    "limits": {"idle_timeout_s": "long"},
    "upstreams": [{"url": "ftp://x"}, {"name": "a", "url": "http://a", "password": "p"},
                  {"name": "a", "url": "http://b", "default": true}, {"url": "http://c", "default": true}]
  })");
  EXPECT_TRUE(has_error(r, "listen: must be HOST:PORT"));
  EXPECT_TRUE(has_error(r, "threads: must be between 1 and 256"));
  EXPECT_TRUE(has_error(r, "lsiten: unknown field"));
  EXPECT_TRUE(has_error(r, "limits.idle_timeout_s: must be a whole number"));
  EXPECT_TRUE(has_error(r, "upstreams[0].url: must start with http:// or https://"));
  EXPECT_TRUE(has_error(r, "upstreams[1].username: is required when a password is set"));
  EXPECT_TRUE(has_error(r, "\"a\" is used twice"));
  EXPECT_TRUE(has_error(r, "only one upstream may be the default"));
  for (auto& e : r.errors) EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(Config, BrokenJsonIsOneClearError) {
  // 1e999: nlohmann throws out_of_range, not parse_error (tests/fuzz/regressions/fuzz_config).
  for (const char* text : {"", "{", "[1,2]", "{\"listen\": }", "null", "{\"listen\": 1e999}"}) {
    auto r = parse_config(text);
    ASSERT_EQ(r.errors.size(), 1u) << text;
  }
}

TEST(Config, PasswordFileIsReadAndMissingFileIsAnError) {
  auto path = std::filesystem::temp_directory_path() / "pullgate-config-test.pass";
  std::ofstream(path) << "s3cret\n";
  auto r = parse_config(R"({"upstreams": [{"url": "https://r.example", "username": "u", "password_file": ")" +
                        path.string() + "\"}]}");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.config.upstreams[0].settings.password, "s3cret");
  std::filesystem::remove(path);
  auto missing = parse_config(R"({"upstreams": [{"url": "https://r.example", "username": "u", "password_file": "/nonexistent/p"}]})");
  EXPECT_TRUE(has_error(missing, "password_file: cannot read /nonexistent/p"));
}

TEST(Config, FlagsOverrideTheFile) {
  auto r = parse_config(R"({"listen": "127.0.0.1:1", "upstreams": [{"url": "http://a:1"}, {"url": "http://b:2"}]})");
  Overrides o;
  o.listen = "127.0.0.1:7000";
  o.data_dir = "/tmp/x";
  o.upstream_url = "http://127.0.0.1:5555";
  o.offline = true;
  apply_overrides(r, o);
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.config.listen, "127.0.0.1:7000");
  EXPECT_EQ(r.config.data_dir, "/tmp/x");
  EXPECT_TRUE(r.config.offline);
  ASSERT_EQ(r.config.upstreams.size(), 1u);
  EXPECT_EQ(r.config.upstreams[0].settings.name, "127.0.0.1:5555");

  Overrides bad;
  bad.upstream_url = "127.0.0.1:5555";
  apply_overrides(r, bad);
  EXPECT_TRUE(has_error(r, "--upstream: must be an http:// or https:// URL"));
}

TEST(Config, AnUpstreamThatIsAParentMirrorNamesTheOriginalUpstream) {
  auto r = parse_config(R"({"upstreams": [
    {"name": "docker.io", "url": "http://regional:5000", "parent_upstream": "registry-1.docker.io"},
    {"name": "ghcr.io", "url": "http://regional:5000", "parent_upstream": "ghcr.io", "parent_naming": "path"},
    {"url": "http://127.0.0.1:5000"}
  ]})");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  const auto& hub = r.config.upstreams[0].settings.parent;
  ASSERT_TRUE(hub);
  EXPECT_EQ(hub->upstream, "registry-1.docker.io");
  EXPECT_EQ(hub->form, registry::ParentNaming::Form::ns);  // the default, as containerd names it
  EXPECT_TRUE(r.config.upstreams[0].docker_hub);
  const auto& ghcr = r.config.upstreams[1].settings.parent;
  ASSERT_TRUE(ghcr);
  EXPECT_EQ(ghcr->form, registry::ParentNaming::Form::path);
  EXPECT_FALSE(r.config.upstreams[1].docker_hub);
  EXPECT_FALSE(r.config.upstreams[2].settings.parent);
  // The original upstream decides Docker Hub's library/, not the parent's address.
  auto named = parse_config(R"({"upstreams": [
    {"name": "hub", "url": "http://regional:5000", "parent_upstream": "docker.io", "parent_naming": "ns"}]})");
  ASSERT_TRUE(named.errors.empty()) << named.errors.front();
  EXPECT_TRUE(named.config.upstreams[0].docker_hub);
}

TEST(Config, ParentNamingMistakesAreOneLineEach) {
  auto r = parse_config(R"({"upstreams": [
    {"url": "http://regional:5000", "parent_naming": "path"},
    {"url": "http://regional:5001", "parent_upstream": "ghcr.io", "parent_naming": "prefix"},
    {"url": "http://regional:5002", "parent_upstream": "ghcr.io/x?y"},
    {"url": "http://regional:5003", "parent_upstream": 5}
  ]})");
  EXPECT_EQ(r.errors.size(), 4u);
  EXPECT_TRUE(has_error(r, "upstreams[0].parent_naming: needs parent_upstream")) << r.errors.front();
  EXPECT_TRUE(has_error(r, "upstreams[1].parent_naming: must be \"ns\" or \"path\", got \"prefix\""));
  EXPECT_TRUE(has_error(r, "upstreams[2].parent_upstream: must be a registry host[:port]"));
  EXPECT_TRUE(has_error(r, "upstreams[3].parent_upstream: must be a string"));
}

TEST(Config, HostPort) {
  EXPECT_EQ(parse_host_port("127.0.0.1:5000")->port, 5000);
  EXPECT_EQ(parse_host_port("[::1]:80")->host, "::1");
  for (const char* bad : {"", ":", "host", "host:", ":80", "host:99999", "host:8o", "a:b:c", "[::1]80", "[::1]:"})
    EXPECT_FALSE(parse_host_port(bad)) << bad;
}

TEST(Config, MissingFileIsOneLine) {
  auto r = load_config_file("/nonexistent/pullgate.json");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0], "cannot read config file /nonexistent/pullgate.json");
}


TEST(Config, CacheLifecycleKeys) {
  auto r = parse_config(R"({"cache": {"max_size": "200GiB", "high_watermark": 95, "low_watermark": 70,
                                      "max_unpulled": "30d", "eviction_interval_s": 60}})");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.config.cache_max_bytes, std::uint64_t{200} << 30);
  EXPECT_EQ(r.config.cache_high_watermark, 95u);
  EXPECT_EQ(r.config.cache_low_watermark, 70u);
  EXPECT_EQ(r.config.cache_max_unpulled_ms, std::int64_t{30} * 86'400'000);
  EXPECT_EQ(r.config.cache_eviction_interval_s, 60u);

  auto defaults = parse_config("{}");
  ASSERT_TRUE(defaults.errors.empty());
  EXPECT_EQ(defaults.config.cache_max_bytes, std::nullopt);
  EXPECT_EQ(defaults.config.cache_max_unpulled_ms, std::nullopt);
  EXPECT_EQ(defaults.config.cache_high_watermark, 90u);
  EXPECT_EQ(defaults.config.cache_low_watermark, 80u);
  EXPECT_EQ(defaults.config.cache_eviction_interval_s, 300u);

  EXPECT_EQ(parse_config(R"({"cache": {"max_size": 1048576}})").config.cache_max_bytes, 1048576u);
}

TEST(Config, CacheMemoryIsMiBWithinBounds) {
  EXPECT_EQ(parse_config("{}").config.cache_memory_mb, 32u);
  auto r = parse_config(R"({"cache": {"memory_mb": 256}})");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.config.cache_memory_mb, 256u);
  for (const char* bad : {"0", "65537", "-1"})
    EXPECT_TRUE(has_error(parse_config(std::string(R"({"cache": {"memory_mb": )") + bad + "}}"),
                          "cache.memory_mb: must be between 1 and 65536"))
        << bad;
  EXPECT_TRUE(has_error(parse_config(R"({"cache": {"memory_mb": "32MiB"}})"), "cache.memory_mb: must be a whole number"));
}

TEST(Config, CachePinsAreImagesByTagOrDigest) {
  const std::string digest = "sha256:" + std::string(64, 'a');
  auto r = parse_config(R"({"cache": {"pin": ["docker.io/library/debian:stable", "ghcr.io/org/app@)" + digest +
                        R"("]}})");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.config.cache_pins,
            (std::vector<std::string>{"docker.io/library/debian:stable", "ghcr.io/org/app@" + digest}));
  EXPECT_TRUE(parse_config("{}").config.cache_pins.empty());
  auto patterns = parse_config(R"({"cache": {"pin": ["docker.io/library/**:stable", "ghcr.io/org/*:v1.*"]}})");
  ASSERT_TRUE(patterns.errors.empty()) << patterns.errors.front();
  EXPECT_EQ(patterns.config.cache_pins.size(), 2u);

  for (const char* bad : {R"(["debian:stable"])", R"(["docker.io/library/debian"])", R"(["up/Repo:x"])",
                          R"(["up/app@sha256:12"])", R"([5])", R"("up/app:x")", R"(["up/Ap*:x"])",
                          R"(["*.io/app:x"])", R"(["up/app:v[1]*"])"}) {
    auto mistake = parse_config(std::string(R"({"cache": {"pin": )") + bad + "}}");
    ASSERT_EQ(mistake.errors.size(), 1u) << bad;
    EXPECT_EQ(mistake.errors[0].rfind("cache.pin: must", 0), 0u) << mistake.errors[0];
    EXPECT_EQ(mistake.errors[0].find('\n'), std::string::npos) << mistake.errors[0];
  }
  auto glob = parse_config(R"({"cache": {"pin": ["up/app:v[1]*"]}})");
  ASSERT_EQ(glob.errors.size(), 1u);
  EXPECT_NE(glob.errors[0].find("the tag pattern contains '['"), std::string::npos) << glob.errors[0];
}

TEST(Config, CacheLifecycleMistakesAreOneLineEach) {
  auto r = parse_config(R"({"cache": {"max_size": "200GB", "high_watermark": 101, "max_unpulled": "30 days",
                                      "eviction_interval_s": 0}})");
  EXPECT_TRUE(has_error(r, "cache.max_size: must be a size such as \"200GiB\""));
  EXPECT_TRUE(has_error(r, "cache.high_watermark: must be between 1 and 100"));
  EXPECT_TRUE(has_error(r, "cache.max_unpulled: must be a duration such as \"30d\""));
  EXPECT_TRUE(has_error(r, "cache.eviction_interval_s: must be between 1 and 86400"));
  for (auto& e : r.errors) EXPECT_EQ(e.find('\n'), std::string::npos) << e;

  EXPECT_TRUE(has_error(parse_config(R"({"cache": {"high_watermark": 50, "low_watermark": 60}})"),
                        "cache.low_watermark: must be below high_watermark (50)"));
  EXPECT_TRUE(has_error(parse_config(R"({"cache": {"max_size": 0}})"), "cache.max_size: must be a size"));
  EXPECT_TRUE(has_error(parse_config(R"({"cache": {"max_size": -5}})"), "cache.max_size: must be a size"));
}

TEST(Config, TheLmdbMapGrowsUpToItsMaximum) {
  auto defaults = parse_config("{}");
  EXPECT_EQ(defaults.config.lmdb_map_size_mb, 4096u);
  EXPECT_EQ(defaults.config.lmdb_max_map_size_mb, std::size_t(1) << 20);
  auto r = parse_config(R"({"cache": {"lmdb_map_size_mb": 64, "lmdb_max_map_size_mb": 512}})");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.config.lmdb_max_map_size_mb, 512u);
  EXPECT_TRUE(has_error(parse_config(R"({"cache": {"lmdb_map_size_mb": 64, "lmdb_max_map_size_mb": 32}})"),
                        "cache.lmdb_max_map_size_mb: must be at least lmdb_map_size_mb (64)"));
  EXPECT_TRUE(has_error(parse_config(R"({"cache": {"lmdb_max_map_size_mb": 8}})"),
                        "cache.lmdb_max_map_size_mb: must be between 16 and"));
}

TEST(Config, BundleKeysAndTheSignatureRequirement) {
  auto r = parse_config(R"({"bundle": {"trusted_keys": ["a.pub", "/etc/b.pub"], "require_signature": false}})");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_EQ(r.config.bundle_trusted_keys, (std::vector<std::string>{"a.pub", "/etc/b.pub"}));
  EXPECT_EQ(r.config.bundle_require_signature, false);
  EXPECT_FALSE(parse_config("{}").config.bundle_require_signature);
  EXPECT_TRUE(has_error(parse_config(R"({"bundle": {"trusted_keys": "a.pub"}})"), "bundle.trusted_keys: must be a list"));
  EXPECT_TRUE(has_error(parse_config(R"({"bundle": {"trusted_keys": [3]}})"), "bundle.trusted_keys: must name PEM"));
  EXPECT_TRUE(has_error(parse_config(R"({"bundle": {"require_signature": "yes"}})"),
                        "bundle.require_signature: must be true or false"));
  EXPECT_TRUE(has_error(parse_config(R"({"bundle": {"keys": []}})"), "bundle.keys"));
}

TEST(Config, TheFleetStoreIsOffUntilEtcdIsNamed) {
  auto defaults = parse_config("{}");
  ASSERT_TRUE(defaults.errors.empty()) << defaults.errors[0];
  EXPECT_FALSE(defaults.config.fleet.enabled());
  EXPECT_FALSE(defaults.config.fleet.replica_id.empty());  // the host name
  EXPECT_EQ(defaults.config.fleet.on_store_down, "fail_closed");

  auto r = parse_config(R"({"fleet": {"replica_id": "edge-1", "on_store_down": "serve_cached",
                                      "etcd": {"endpoints": ["http://10.0.0.1:2379", "https://etcd-2:2379"],
                                               "prefix": "/pg/", "username": "pullgate", "password": "x",
                                               "request_timeout_s": 3}}})");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0];
  const auto& f = r.config.fleet;
  EXPECT_TRUE(f.enabled());
  EXPECT_EQ(f.replica_id, "edge-1");
  EXPECT_EQ(f.on_store_down, "serve_cached");
  EXPECT_EQ(f.etcd_endpoints, (std::vector<std::string>{"http://10.0.0.1:2379", "https://etcd-2:2379"}));
  auto settings = fleet_settings(r.config);
  EXPECT_EQ(settings.prefix, "/pg/");
  EXPECT_EQ(settings.replica_id, "edge-1");
  EXPECT_EQ(settings.etcd.username, "pullgate");
  EXPECT_EQ(settings.etcd.request_timeout, std::chrono::seconds(3));
}

TEST(Config, TheFleetPolicyIsEtcdsOrTheFilesNotBoth) {
  auto ok = parse_config(R"({"fleet": {"policy": "etcd", "etcd": {"endpoints": ["http://127.0.0.1:2379"]}}})");
  EXPECT_TRUE(ok.errors.empty()) << ok.errors.front();
  EXPECT_TRUE(ok.config.fleet.policy_in_etcd());
  EXPECT_FALSE(parse_config("{}").config.fleet.policy_in_etcd());
  EXPECT_TRUE(has_error(parse_config(R"({"fleet": {"policy": "etcd"}})"), "fleet.policy: \"etcd\" needs fleet.etcd.endpoints"));
  EXPECT_TRUE(has_error(parse_config(R"({"fleet": {"policy": "consul"}})"), "fleet.policy: must be \"file\" or \"etcd\""));
  EXPECT_TRUE(has_error(parse_config(R"({"gate": {"policy_file": "/etc/pullgate/policy.json"},
                                        "fleet": {"policy": "etcd", "etcd": {"endpoints": ["http://127.0.0.1:2379"]}}})"),
                        "gate.policy_file: not with fleet.policy \"etcd\""));
}

TEST(Config, AMistakeIsOneLineWhateverTheValueItQuotes) {
  auto r = parse_config(R"({"admin": {"listen": "127.0.0.1:x\ny\u0001"}, "tls": {"cert_file": "a\rb", "key_file": "k"}})");
  EXPECT_TRUE(has_error(r, R"(admin.listen: must be HOST:PORT or empty, got "127.0.0.1:x\ny\x01")"));
  EXPECT_TRUE(has_error(r, R"(tls: cannot read a\rb)"));
  for (const auto& e : r.errors) EXPECT_EQ(e.find_first_of("\n\r\x01"), std::string::npos) << e;
}

TEST(Config, ClientTokensAreEtcdsOrAFilesNotBoth) {
  auto ok = parse_config(R"({"listen": "0.0.0.0:5000", "clients": {"anonymous": true},
                             "fleet": {"tokens": "etcd", "etcd": {"endpoints": ["http://127.0.0.1:2379"]}}})");
  EXPECT_TRUE(ok.errors.empty()) << ok.errors.front();
  EXPECT_TRUE(ok.config.fleet.tokens_in_etcd());
  EXPECT_TRUE(ok.config.client_auth());
  EXPECT_EQ(open_listener_warning(ok.config), "") << "the fleet's tokens authenticate clients";
  EXPECT_EQ(ok.config.fleet_tokens_path(), ok.config.data_dir / "fleet-tokens");
  EXPECT_FALSE(parse_config("{}").config.client_auth());
  EXPECT_TRUE(has_error(parse_config(R"({"fleet": {"tokens": "etcd"}})"), "fleet.tokens: \"etcd\" needs fleet.etcd.endpoints"));
  EXPECT_TRUE(has_error(parse_config(R"({"fleet": {"tokens": "vault"}})"), "fleet.tokens: must be \"file\" or \"etcd\""));
  EXPECT_TRUE(has_error(parse_config(R"({"clients": {"tokens_file": "/etc/hosts"},
                                        "fleet": {"tokens": "etcd", "etcd": {"endpoints": ["http://127.0.0.1:2379"]}}})"),
                        "clients.tokens_file: not with fleet.tokens \"etcd\""));
}

TEST(Config, FleetMistakesAreOneLineEach) {
  auto r = parse_config(R"({"fleet": {"replica_id": "a b", "on_store_down": "open", "mode": 1,
                                      "etcd": {"endpoints": ["etcd:2379"], "prefix": "pullgate", "password": "x",
                                               "cert_file": "/nonexistent/c.pem", "tls": true}}})");
  EXPECT_TRUE(has_error(r, "fleet.replica_id: must be 1 to 63 letters"));
  EXPECT_TRUE(has_error(r, "fleet.on_store_down: must be \"fail_closed\" or \"serve_cached\""));
  EXPECT_TRUE(has_error(r, "fleet.mode"));
  EXPECT_TRUE(has_error(r, "fleet.etcd.endpoints: must be a list of http:// or https:// URLs"));
  EXPECT_TRUE(has_error(r, "fleet.etcd.prefix: must start and end with /"));
  EXPECT_TRUE(has_error(r, "fleet.etcd.username: is required when a password is set"));
  EXPECT_TRUE(has_error(r, "fleet.etcd.key_file: cert_file and key_file go together"));
  EXPECT_TRUE(has_error(r, "fleet.etcd.cert_file: cannot read /nonexistent/c.pem"));
  EXPECT_TRUE(has_error(r, "fleet.etcd.tls"));
  for (auto& e : r.errors) EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_TRUE(has_error(parse_config(R"({"fleet": {"etcd": {"endpoints": []}}})"), "fleet.etcd.endpoints: must be"));
}

TEST(Config, ByteSizesAndDurations) {
  EXPECT_EQ(parse_byte_size("500MiB"), std::uint64_t{500} << 20);
  EXPECT_EQ(parse_byte_size("10KiB"), 10240u);
  EXPECT_EQ(parse_byte_size("2TiB"), std::uint64_t{2} << 40);
  EXPECT_EQ(parse_byte_size("1024B"), 1024u);
  EXPECT_EQ(parse_byte_size("1024"), 1024u);
  for (auto bad : {"", "GiB", "0", "0GiB", "1.5GiB", "-1", "10 GiB", "10gib", "10GB", "99999999999999999999",
                   "18014398509481984GiB"})
    EXPECT_EQ(parse_byte_size(bad), std::nullopt) << bad;
  EXPECT_EQ(parse_duration_ms("30d"), std::int64_t{30} * 86'400'000);
  EXPECT_EQ(parse_duration_ms("12h"), std::int64_t{12} * 3'600'000);
  EXPECT_EQ(parse_duration_ms("15m"), 900'000);
  EXPECT_EQ(parse_duration_ms("90s"), 90'000);
  for (auto bad : {"", "d", "0d", "30", "30 d", "-1d", "1w", "1.5h"})
    EXPECT_EQ(parse_duration_ms(bad), std::nullopt) << bad;
}

}  // namespace
}  // namespace pullgate::proxy
