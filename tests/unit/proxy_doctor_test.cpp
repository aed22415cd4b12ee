// pullgate doctor's plain functions: the TOML reader (toml++ into JSON, errors with
// their line) and the analysis of each client configuration shape that
// tests/integration/test_deploy_configs.py proves with real clients.
#include <fstream>
#include <sstream>
#include <string>
#include <variant>

#include <gtest/gtest.h>

#include "proxy/doctor/node_configs.hpp"
#include "proxy/doctor/toml.hpp"

namespace pullgate::proxy::doctor {
namespace {

using Json = nlohmann::ordered_json;

Json toml_ok(const std::string& text) {
  auto parsed = parse_toml(text);
  if (auto* e = std::get_if<TomlError>(&parsed)) ADD_FAILURE() << e->message;
  return std::holds_alternative<Json>(parsed) ? std::get<Json>(parsed) : Json();
}

std::string toml_error(const std::string& text) {
  auto parsed = parse_toml(text);
  auto* e = std::get_if<TomlError>(&parsed);
  return e ? e->message : "(parsed)";
}

std::string deploy_file(const std::string& relative) {
  std::ifstream in(std::string(PULLGATE_SOURCE_DIR) + "/deploy/" + relative);
  std::ostringstream out;
  out << in.rdbuf();
  EXPECT_FALSE(out.str().empty()) << relative;
  return out.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {  // from not empty
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

TEST(DoctorToml, ReadsTheSubsetTheClientFilesUse) {
  auto doc = toml_ok(R"(# a comment
server = "http://127.0.0.1:5000"   # trailing comment
version = 2
flag = true
[host."http://10.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = false
[host."http://10.0.0.2:5000"]
  capabilities = ["pull"]
[[registry]]
location = "a"
[[registry.mirror]]
location = "m1"
[[registry]]
location = "b"
)");
  EXPECT_EQ(doc["server"], "http://127.0.0.1:5000");
  EXPECT_EQ(doc["version"], 2);
  EXPECT_EQ(doc["flag"], true);
  EXPECT_EQ(doc["host"]["http://10.0.0.1:5000"]["capabilities"], Json({"pull", "resolve"}));
  EXPECT_EQ(doc["registry"].size(), 2u);
  EXPECT_EQ(doc["registry"][0]["mirror"][0]["location"], "m1");
}

TEST(DoctorToml, KeepsTheFilesOrderOfKeys) {
  // containerd tries [host] entries in the order of the file; toml++ sorts its keys.
  auto doc = toml_ok("[host.\"http://z:1\"]\n[host.\"http://a:1\"]\n[host.\"http://m:1\"]\n");
  std::vector<std::string> keys;
  for (const auto& [k, v] : doc["host"].items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"http://z:1", "http://a:1", "http://m:1"}));
}

TEST(DoctorToml, BadInputIsAnErrorWithItsLine) {
  EXPECT_EQ(toml_error("a = 1\nb = \n").rfind("line 2,", 0), 0u) << toml_error("a = 1\nb = \n");
  EXPECT_EQ(toml_error("a = 1\na = 2\n").rfind("line 2,", 0), 0u) << toml_error("a = 1\na = 2\n");
  EXPECT_EQ(toml_error("[x]\n[x]\n").rfind("line 2,", 0), 0u);
  EXPECT_EQ(toml_error("s = \"unterminated\n").rfind("line 1,", 0), 0u);
  EXPECT_EQ(toml_error("[host.\"x\"\n").rfind("line 1,", 0), 0u);
  EXPECT_EQ(toml_error(std::string("a = \"\xff\xfe\"\n")).rfind("line 1,", 0), 0u);
  EXPECT_EQ(toml_error(std::string("a = 1\0b = 2", 11)).rfind("line 1,", 0), 0u);
}

TEST(DoctorToml, HostileInputNeverCrashes) {
  // Deep nesting is bounded by the parser (256), not by the stack.
  EXPECT_NE(toml_error("a = " + std::string(100000, '[')), "(parsed)");
  EXPECT_NE(toml_error("a = " + std::string(100000, '{')), "(parsed)");
  EXPECT_NE(toml_error(std::string(100000, '"')), "(parsed)");
  auto doc = toml_ok("a = [" + std::string(200, '[') + std::string(200, ']') + "]\n");
  EXPECT_TRUE(doc["a"].is_array());
}

// ------------------------------------------------------------------ containerd

const MirrorSpec unnamed;

TEST(DoctorContainerd, TheShippedHostsTomlIsGated) {
  auto text = replace_all(deploy_file("containerd/hosts.toml"), "pullgate.example.internal:5000", "127.0.0.1:5001");
  auto r = containerd_route("127.0.0.1:5000", "d/127.0.0.1:5000/hosts.toml", text, unnamed);
  ASSERT_EQ(r.endpoints.size(), 2u);
  EXPECT_TRUE(r.through_mirror());
  EXPECT_FALSE(r.falls_back());
  EXPECT_EQ(judge(r, nullptr), Verdict::gated);
  EXPECT_EQ(r.fix, "");
  // The same with the mirror named, and for Docker Hub as shipped.
  EXPECT_EQ(judge(containerd_route("docker.io", "f", deploy_file("containerd/hosts.toml"),
                                   {"pullgate.example.internal:5000", "http://pullgate.example.internal:5000"}),
                  nullptr),
            Verdict::gated);
}

TEST(DoctorContainerd, TheUsualServerUpstreamWithAMirrorHostFallsBack) {
  std::string text = "server = \"http://127.0.0.1:5000\"\n\n[host.\"http://127.0.0.1:5001\"]\n"
                     "  capabilities = [\"pull\", \"resolve\"]\n";
  auto r = containerd_route("127.0.0.1:5000", "f", text, unnamed);
  EXPECT_TRUE(r.through_mirror());
  ASSERT_TRUE(r.falls_back());
  EXPECT_EQ(r.way_around()->url, "http://127.0.0.1:5000");
  EXPECT_TRUE(r.way_around()->insecure);
  EXPECT_EQ(judge(r, nullptr), Verdict::bypass);
  Probe open{true, true, 200, "HTTP 200"};
  Probe closed{false, false, 0, "connection refused"};
  Probe tls_failed{true, false, 0, "TLS handshake failed"};
  EXPECT_EQ(judge(r, &tls_failed), Verdict::bypass);
  EXPECT_EQ(judge(r, &open), Verdict::bypass);
  EXPECT_EQ(judge(r, &closed), Verdict::closed_route);
  EXPECT_NE(r.fix.find("deploy/containerd/hosts.toml"), std::string::npos) << r.fix;
  EXPECT_NE(r.fix.find("server = \"http://127.0.0.1:5001\""), std::string::npos) << r.fix;
}

TEST(DoctorContainerd, NoServerMeansTheRegistryItselfAfterTheHosts) {
  auto r = containerd_route("docker.io", "f", "[host.\"http://mirror:5000\"]\n", unnamed);
  ASSERT_EQ(r.endpoints.size(), 2u);
  EXPECT_EQ(r.endpoints[1].url, "https://registry-1.docker.io");
  EXPECT_EQ(judge(r, nullptr), Verdict::bypass);
}

TEST(DoctorContainerd, OnlyServerIsRejectedAndPullsGoStraightToTheUpstream) {
  auto r = containerd_route("127.0.0.1:5000", "f", "server = \"http://127.0.0.1:5001\"\n", unnamed);
  ASSERT_EQ(r.endpoints.size(), 1u);
  EXPECT_FALSE(r.through_mirror());
  EXPECT_EQ(r.endpoints[0].url, "https://127.0.0.1:5000");
  EXPECT_EQ(judge(r, nullptr), Verdict::bypass);
  EXPECT_NE(r.fix.find("[host.\"http://127.0.0.1:5001\"]"), std::string::npos) << r.fix;
}

TEST(DoctorContainerd, TheUpstreamFirstNeverUsesTheMirror) {
  auto r = containerd_route("reg:5000", "f",
                            "server = \"http://mirror:5000\"\n[host.\"http://reg:5000\"]\n[host.\"http://mirror:5000\"]\n",
                            unnamed);
  EXPECT_FALSE(r.through_mirror());
  EXPECT_EQ(judge(r, nullptr), Verdict::bypass);
}

TEST(DoctorContainerd, APushOnlyUpstreamHostIsNotAWayAround) {
  auto r = containerd_route("reg:5000", "f",
                            "server = \"http://mirror:5000\"\n[host.\"http://mirror:5000\"]\n"
                            "capabilities = [\"pull\", \"resolve\"]\n[host.\"http://reg:5000\"]\ncapabilities = [\"push\"]\n",
                            unnamed);
  EXPECT_EQ(judge(r, nullptr), Verdict::gated);
}

TEST(DoctorContainerd, ANamedMirrorMakesAnyOtherHostAWayAround) {
  MirrorSpec named{"gate:5000", "http://gate:5000"};
  auto r = containerd_route("reg:5000", "f",
                            "server = \"http://other-mirror:5000\"\n[host.\"http://other-mirror:5000\"]\n", named);
  EXPECT_FALSE(r.through_mirror());
  EXPECT_EQ(judge(r, nullptr), Verdict::bypass);
  EXPECT_NE(r.fix.find("http://gate:5000"), std::string::npos) << r.fix;
}

TEST(DoctorContainerd, MissingOrBrokenFilesPullFromTheUpstream) {
  auto missing = containerd_route("ghcr.io", "d/ghcr.io/hosts.toml", std::nullopt, unnamed);
  EXPECT_EQ(missing.endpoints.at(0).url, "https://ghcr.io");
  EXPECT_EQ(judge(missing, nullptr), Verdict::bypass);
  auto broken = containerd_route("ghcr.io", "f", "server = \n", unnamed);
  EXPECT_EQ(judge(broken, nullptr), Verdict::bypass);
  ASSERT_FALSE(broken.notes.empty());
  EXPECT_NE(broken.notes[0].find("line 1"), std::string::npos) << broken.notes[0];
  auto wrong_type = containerd_route("ghcr.io", "f", "server = 5\n[host.\"http://m:1\"]\n", unnamed);
  EXPECT_EQ(judge(wrong_type, nullptr), Verdict::bypass);
}

TEST(DoctorContainerd, TheDefaultDirectory) {
  auto gated = containerd_route("_default", "f", deploy_file("containerd/hosts.toml"), unnamed);
  EXPECT_EQ(judge(gated, nullptr), Verdict::gated);
  auto open = containerd_route("_default", "f", "[host.\"http://m:5000\"]\n", unnamed);
  EXPECT_EQ(judge(open, nullptr), Verdict::bypass);
}

TEST(DoctorContainerd, ConfigPathNotes) {
  EXPECT_TRUE(containerd_config_notes("c", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n"
                                           "  config_path = \"/etc/containerd/certs.d/\"\n",
                                      "/etc/containerd/certs.d")
                  .empty());
  auto unset = containerd_config_notes("c", "version = 2\n", "/etc/containerd/certs.d");
  ASSERT_EQ(unset.size(), 1u);
  EXPECT_NE(unset[0].find("config_path is not set"), std::string::npos);
  auto other = containerd_config_notes("c", "[plugins.cri.registry]\nconfig_path = \"/x\"\n", "/y");
  ASSERT_EQ(other.size(), 1u);
  EXPECT_NE(other[0].find("from /x, not /y"), std::string::npos) << other[0];
  EXPECT_NE(containerd_config_notes("c", "[[", "/y").at(0).find("line 1"), std::string::npos);
}

// ------------------------------------------------------------------ registries.conf

std::string usual_conf(bool blocked) {  // harness.write_registries_conf
  return std::string("unqualified-search-registries = []\n\n[[registry]]\nlocation = \"127.0.0.1:5000\"\n"
                     "insecure = true\nblocked = ") +
         (blocked ? "true" : "false") + "\n\n[[registry.mirror]]\nlocation = \"127.0.0.1:5001\"\ninsecure = true\n";
}

TEST(DoctorRegistriesConf, TheShippedFileIsGated) {
  auto routes = registries_conf_routes({{"r.conf", deploy_file("crio-podman/registries.conf")}}, unnamed);
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].upstream, "docker.io");
  EXPECT_EQ(judge(routes[0], nullptr), Verdict::gated);
  ASSERT_EQ(routes[0].endpoints.size(), 1u);
  EXPECT_EQ(routes[0].endpoints[0].url, "pullgate.example.internal:5000/docker.io");
  EXPECT_TRUE(routes[0].endpoints[0].insecure);
  // Rendered for a loopback upstream as test_deploy_configs.py does.
  auto rendered = replace_all(replace_all(replace_all(deploy_file("crio-podman/registries.conf"),
                                                      "pullgate.example.internal:5000", "127.0.0.1:5001"),
                                          "registry-1.docker.io", "127.0.0.1:5000"),
                              "docker.io", "127.0.0.1:5000");
  auto r = registries_conf_routes({{"r.conf", rendered}}, unnamed);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(judge(r[0], nullptr), Verdict::gated);
  EXPECT_EQ(judge(registries_conf_routes({{"r.conf", usual_conf(true)}}, unnamed)[0], nullptr), Verdict::gated);
}

TEST(DoctorRegistriesConf, AMirrorWithoutBlockedFallsBack) {
  auto routes = registries_conf_routes({{"r.conf", usual_conf(false)}}, unnamed);
  ASSERT_EQ(routes.size(), 1u);
  const auto& r = routes[0];
  EXPECT_TRUE(r.through_mirror());
  ASSERT_TRUE(r.falls_back());
  EXPECT_EQ(r.way_around()->url, "127.0.0.1:5000");
  EXPECT_EQ(judge(r, nullptr), Verdict::bypass);
  EXPECT_NE(r.fix.find("add blocked = true to the [[registry]] with prefix \"127.0.0.1:5000\""), std::string::npos)
      << r.fix;
  EXPECT_NE(r.fix.find("deploy/crio-podman/registries.conf"), std::string::npos);
}

TEST(DoctorRegistriesConf, ThePrefixRewrittenToTheMirrorIsGated) {
  auto routes = registries_conf_routes(
      {{"r.conf", "[[registry]]\nprefix = \"ghcr.io\"\nlocation = \"gate:5000/ghcr.io\"\ninsecure = true\n"}}, unnamed);
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(judge(routes[0], nullptr), Verdict::gated);
}

TEST(DoctorRegistriesConf, NoMirrorOrDigestOnlyMirrorsGoStraightToTheUpstream) {
  auto plain = registries_conf_routes({{"r.conf", "[[registry]]\nlocation = \"quay.io\"\n"}}, unnamed);
  EXPECT_EQ(judge(plain.at(0), nullptr), Verdict::bypass);
  EXPECT_NE(plain[0].fix.find("[[registry.mirror]]"), std::string::npos) << plain[0].fix;
  auto digest_only = registries_conf_routes(
      {{"r.conf", "[[registry]]\nlocation = \"quay.io\"\nmirror-by-digest-only = true\n"
                  "[[registry.mirror]]\nlocation = \"gate:5000/quay.io\"\n"}},
      unnamed);
  EXPECT_EQ(judge(digest_only.at(0), nullptr), Verdict::bypass);
}

TEST(DoctorRegistriesConf, ADropInReplacesTheSamePrefix) {
  auto routes = registries_conf_routes({{"main.conf", usual_conf(false)},
                                        {"d/50-block.conf", usual_conf(true)}},
                                       unnamed);
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].file, "d/50-block.conf");
  EXPECT_EQ(judge(routes[0], nullptr), Verdict::gated);
}

TEST(DoctorRegistriesConf, ABrokenFileIsReportedWithItsLine) {
  auto routes = registries_conf_routes({{"r.conf", "[[registry]]\nlocation = \n"}}, unnamed);
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(judge(routes[0], nullptr), Verdict::no_pull);
  EXPECT_NE(routes[0].notes.at(0).find("line 2"), std::string::npos) << routes[0].notes[0];
  auto not_array = registries_conf_routes({{"r.conf", "[registry]\nlocation = \"x\"\n"}}, unnamed);
  EXPECT_EQ(judge(not_array.at(0), nullptr), Verdict::no_pull);
}

// ------------------------------------------------------------------ docker

TEST(DoctorDocker, RegistryMirrorsAlwaysFallBackToDockerHub) {
  auto r = docker_route("daemon.json", deploy_file("docker/daemon.json"), unnamed);
  EXPECT_TRUE(r.through_mirror());
  ASSERT_TRUE(r.falls_back());
  EXPECT_EQ(r.way_around()->url, "https://registry-1.docker.io");
  EXPECT_EQ(judge(r, nullptr), Verdict::bypass);
  EXPECT_NE(r.fix.find("deploy/docker/README.md"), std::string::npos) << r.fix;
  Probe closed{false, false, 0, "no route"};
  EXPECT_EQ(judge(r, &closed), Verdict::closed_route);
  auto none = docker_route("daemon.json", "{}", unnamed);
  EXPECT_FALSE(none.through_mirror());
  EXPECT_EQ(judge(none, nullptr), Verdict::bypass);
  EXPECT_EQ(judge(docker_route("daemon.json", "not json", unnamed), nullptr), Verdict::bypass);
}

TEST(DoctorNames, AuthorityAndCoverage) {
  EXPECT_EQ(authority_of("http://Gate:5000/"), "gate:5000");
  EXPECT_EQ(authority_of("gate:5000/docker.io"), "gate:5000");
  EXPECT_TRUE(covers("docker.io", "registry-1.docker.io"));
  EXPECT_TRUE(covers("127.0.0.1:5000", "127.0.0.1:5000"));
  EXPECT_FALSE(covers("ghcr.io", "docker.io"));
  auto r = unconfigured_route("registries.conf", "r.conf", "ghcr.io", {"gate:5000", "http://gate:5000"});
  EXPECT_EQ(judge(r, nullptr), Verdict::bypass);
  EXPECT_NE(r.fix.find("location = \"gate:5000/ghcr.io\""), std::string::npos) << r.fix;
}

}  // namespace
}  // namespace pullgate::proxy::doctor
