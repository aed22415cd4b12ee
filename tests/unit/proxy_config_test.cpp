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
  for (const char* text : {"", "{", "[1,2]", "{\"listen\": }", "null"}) {
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

}  // namespace
}  // namespace pullgate::proxy
