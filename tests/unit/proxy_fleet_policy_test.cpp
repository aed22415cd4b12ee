// The policy document kept in etcd (proxy/gate/policy_file.hpp, fleet.policy "etcd"):
// a replica that has none yet denies every image saying why; a text from etcd is put
// in force and kept as a copy (written whole), the same text again changes nothing,
// a text that does not validate leaves the policy in force; a kept copy is what a
// restart begins with; keys must be inline.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include "policy/policy.hpp"
#include "proxy/gate/gate.hpp"
#include "proxy/gate/policy_file.hpp"
#include "registry/base64.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::proxy {
namespace {

const char* const deny_blocked = R"({"default": {"mode": "enforce", "fallback": "allow"},
  "scopes": [{"name": "blocked", "repository": "blocked/**",
              "rules": [{"action": "deny", "repository": "blocked/**", "reason": "not vetted"}]}]})";

policy::Outcome decide(const policy::Policy& p, const std::string& repository) {
  policy::Subject subject{"docker.io", repository, std::string("v1"),
                          *registry::Digest::parse("sha256:" + std::string(64, 'a'))};
  return policy::evaluate(p, subject, std::nullopt, policy::TimePoint{});
}

std::string read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A fixture's root certificate as PEM, its lines ended by `newline`; empty if unread.
std::string globalsign_pem(const std::string& newline) {
  const std::string der = read(std::filesystem::path(PULLGATE_SOURCE_DIR) / "tests/fixtures/notation/globalsignRoot.der");
  if (der.empty()) return "";
  const std::string base64 = registry::base64_encode(der);
  std::string pem = "-----BEGIN CERTIFICATE-----" + newline;
  for (std::size_t i = 0; i < base64.size(); i += 64) pem += base64.substr(i, 64) + newline;
  return pem + "-----END CERTIFICATE-----" + newline;
}

class FleetPolicy : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing_support::make_temp_dir("pullgate-fleet-policy"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(FleetPolicy, UntilOneArrivesEveryImageIsDeniedSayingWhy) {
  auto waiting = waiting_for_fleet_policy();
  auto outcome = decide(waiting, "library/nginx");
  EXPECT_FALSE(outcome.serve);
  ASSERT_FALSE(outcome.reasons.empty());
  EXPECT_NE(outcome.reasons[0].find("has not received its policy from the fleet store"), std::string::npos);
  EXPECT_FALSE(load_fleet_policy_copy(dir_ / "fleet-policy.json"));  // none kept yet
}

TEST_F(FleetPolicy, ATextFromEtcdIsPutInForceAndKept) {
  PolicyHolder holder(waiting_for_fleet_policy());
  const auto copy = dir_ / "fleet-policy.json";
  EXPECT_EQ(apply_fleet_policy(deny_blocked, copy, holder), FleetPolicyOutcome::applied);
  EXPECT_EQ(holder.get()->version, policy::content_version(deny_blocked));
  EXPECT_FALSE(decide(*holder.get(), "blocked/app").serve);
  EXPECT_TRUE(decide(*holder.get(), "library/nginx").serve);
  EXPECT_EQ(read(copy), deny_blocked);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "fleet-policy.json.tmp"));

  EXPECT_EQ(apply_fleet_policy(deny_blocked, copy, holder), FleetPolicyOutcome::unchanged);
  auto before = holder.get()->version;
  EXPECT_EQ(apply_fleet_policy(R"({"default": {"mode": "sideways"}})", copy, holder), FleetPolicyOutcome::refused);
  EXPECT_EQ(holder.get()->version, before);
  EXPECT_EQ(read(copy), deny_blocked);  // the copy stays the policy in force

  auto restarted = load_fleet_policy_copy(copy);
  ASSERT_TRUE(restarted);
  EXPECT_EQ(restarted->version, before);
}

TEST_F(FleetPolicy, KeysMustBeInlineAndABrokenCopyIsNotUsed) {
  auto result = parse_fleet_policy(R"({"keys": {"release": {"pem_file": "release.pub"}}})");
  EXPECT_FALSE(result.policy);
  ASSERT_FALSE(result.errors.empty());
  EXPECT_NE(result.errors[0].find("keys.release.pem_file: a policy kept in etcd carries its keys inline"),
            std::string::npos)
      << result.errors[0];
  const auto copy = dir_ / "fleet-policy.json";
  std::ofstream(copy) << "{\"default\": ";
  EXPECT_FALSE(load_fleet_policy_copy(copy));
}

// Trusted roots likewise: a file names a file on one machine only; inline, the root is
// read with the document and keyless identities can name it.
TEST_F(FleetPolicy, TrustedRootsMustBeInline) {
  auto result = parse_fleet_policy(R"({"trusted_roots": {"sigstore": {"file": "trusted_root.json"}}})");
  EXPECT_FALSE(result.policy);
  ASSERT_FALSE(result.errors.empty());
  EXPECT_NE(result.errors[0].find("trusted_roots.sigstore.file: a policy kept in etcd carries its trusted roots inline"),
            std::string::npos)
      << result.errors[0];

  std::ifstream in(std::filesystem::path(PULLGATE_SOURCE_DIR) / "tests/fixtures/sigstore/production_trusted_root.json");
  std::stringstream root;
  root << in.rdbuf();
  ASSERT_FALSE(root.str().empty());
  const std::string inline_root = R"({"trusted_roots": {"sigstore": {"root": )" + root.str() + R"(}},
    "scopes": [{"name": "prod", "repository": "prod/**", "signatures": {"identities": [
      {"issuer": "https://token.actions.githubusercontent.com", "subject_regexp": "https://github\\.com/acme/.*"}]}}]})";
  auto inline_result = parse_fleet_policy(inline_root);
  ASSERT_TRUE(inline_result.policy) << (inline_result.errors.empty() ? "" : inline_result.errors[0]);
  ASSERT_EQ(inline_result.policy->trusted_roots.size(), 1u);
  EXPECT_NE(inline_result.policy->trusted_roots[0].root, nullptr);
}

// Notation trust stores likewise: a file is refused, inline PEM is read with the document.
TEST_F(FleetPolicy, TrustStoresMustBeInline) {
  auto result = parse_fleet_policy(R"({"trust_stores": {"acme": {"type": "ca", "file": "acme-root.pem"}}})");
  EXPECT_FALSE(result.policy);
  ASSERT_FALSE(result.errors.empty());
  EXPECT_NE(result.errors[0].find("trust_stores.acme.file: a policy kept in etcd carries its trust stores inline"),
            std::string::npos)
      << result.errors[0];

  const std::string pem = globalsign_pem("\\n");  // inside a JSON string
  ASSERT_FALSE(pem.empty());
  auto inline_result = parse_fleet_policy(R"({"trust_stores": {"acme": {"type": "tsa", "pem": ")" + pem + R"("}}})");
  ASSERT_TRUE(inline_result.policy) << (inline_result.errors.empty() ? "" : inline_result.errors[0]);
  ASSERT_EQ(inline_result.policy->trust_stores.size(), 1u);
  ASSERT_NE(inline_result.policy->trust_stores[0].certificates, nullptr);
  EXPECT_EQ(inline_result.policy->trust_stores[0].certificates->size(), 1u);
}

// A policy file's named files (keys, trusted roots, trust stores) are read relative to
// the policy file or by absolute path, their bytes part of the version; a missing, a
// directory or an oversized one is a one-line error naming the entry and the path,
// read no further than its limit.
TEST_F(FleetPolicy, FilesAPolicyFileNamesAreReadBesideItAndBounded) {
  const std::string pem = globalsign_pem("\n");
  ASSERT_FALSE(pem.empty());
  std::filesystem::create_directories(dir_ / "stores");
  std::ofstream(dir_ / "stores/acme.pem") << pem;
  std::ofstream(dir_ / "policy.json")
      << R"({"trust_stores": {"acme": {"type": "ca", "file": "stores/acme.pem"}}})";
  auto one = load_policy_file((dir_ / "policy.json").string());
  ASSERT_TRUE(one.policy) << (one.errors.empty() ? "" : one.errors[0]);
  ASSERT_NE(one.policy->trust_stores[0].certificates, nullptr);
  EXPECT_EQ(one.policy->trust_stores[0].certificates->size(), 1u);

  std::ofstream(dir_ / "stores/acme.pem", std::ios::trunc) << pem << pem;  // same policy text, other bytes
  auto two = load_policy_file((dir_ / "policy.json").string());
  ASSERT_TRUE(two.policy);
  EXPECT_EQ(two.policy->trust_stores[0].certificates->size(), 2u);
  EXPECT_NE(two.policy->version, one.policy->version);

  const auto absolute = (dir_ / "stores/acme.pem").string();
  std::ofstream(dir_ / "absolute.json")
      << R"({"trust_stores": {"acme": {"type": "ca", "file": ")" + absolute + R"("}}})";
  EXPECT_TRUE(load_policy_file((dir_ / "absolute.json").string()).policy);

  std::ofstream(dir_ / "big.pem") << std::string(1024 * 1024 + 1, 'x');
  std::ofstream(dir_ / "big.pub") << std::string(64 * 1024 + 1, 'x');
  const std::pair<const char*, const char*> cases[] = {
      {R"({"trust_stores": {"acme": {"type": "ca", "file": "missing.pem"}}})",
       "trust_stores.acme.file: cannot read "},
      {R"({"trust_stores": {"acme": {"type": "ca", "file": "stores"}}})", "trust_stores.acme.file: cannot read "},
      {R"({"trust_stores": {"acme": {"type": "ca", "file": "big.pem"}}})", "(larger than 1 MiB)"},
      {R"({"keys": {"release": {"pem_file": "big.pub"}}})", "keys.release.pem_file: cannot read "},
      {R"({"keys": {"release": {"pem_file": "big.pub"}}})", "(larger than 64 KiB)"},
      {R"({"trusted_roots": {"sigstore": {"file": "missing.json"}}})", "trusted_roots.sigstore.file: cannot read "},
  };
  for (const auto& [text, expected] : cases) {
    std::ofstream(dir_ / "policy.json", std::ios::trunc) << text;
    auto result = load_policy_file((dir_ / "policy.json").string());
    EXPECT_FALSE(result.policy) << text;
    ASSERT_EQ(result.errors.size(), 1u) << text;
    EXPECT_NE(result.errors[0].find(expected), std::string::npos) << text << ": " << result.errors[0];
  }
}

// The record the command line reads (policy-in-force.json): what was written is read
// back; no record is no error; a malformed one is an error, never a guess.
TEST_F(FleetPolicy, ThePolicyInForceIsRecordedForTheCommandLine) {
  std::string error;
  EXPECT_FALSE(read_policy_in_force(dir_, error));
  EXPECT_EQ(error, "");

  PolicyInForce record;
  record.source = "file";
  record.file = "/etc/pullgate/policy.json";
  record.version = "sha256:1234";
  record.since_ms = 1780000000123;
  record.pid = 4242;
  ASSERT_TRUE(record_policy_in_force(dir_, record, error)) << error;
  auto back = read_policy_in_force(dir_, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(std::tie(back->source, back->file, back->version, back->since_ms, back->pid),
            std::tie(record.source, record.file, record.version, record.since_ms, record.pid));
  EXPECT_FALSE(std::filesystem::exists(policy_in_force_path(dir_).string() + ".tmp"));

  for (const char* bad : {"{\"source\": \"file\"", R"({"source": "guess", "file": "", "version": "v"})",
                          R"({"source": "file", "file": 7, "version": "v"})", "[]"}) {
    std::ofstream(policy_in_force_path(dir_), std::ios::trunc) << bad;
    error.clear();
    EXPECT_FALSE(read_policy_in_force(dir_, error)) << bad;
    EXPECT_NE(error.find("is not a record of a policy in force"), std::string::npos) << bad << ": " << error;
  }
}

}  // namespace
}  // namespace pullgate::proxy
