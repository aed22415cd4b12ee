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

  std::ifstream in(std::filesystem::path(PULLGATE_SOURCE_DIR) / "tests/fixtures/notation/globalsignRoot.der",
                   std::ios::binary);
  std::stringstream der;
  der << in.rdbuf();
  ASSERT_FALSE(der.str().empty());
  const std::string base64 = registry::base64_encode(der.str());
  std::string pem = "-----BEGIN CERTIFICATE-----\\n";
  for (std::size_t i = 0; i < base64.size(); i += 64) pem += base64.substr(i, 64) + "\\n";
  pem += "-----END CERTIFICATE-----\\n";
  auto inline_result = parse_fleet_policy(R"({"trust_stores": {"acme": {"type": "tsa", "pem": ")" + pem + R"("}}})");
  ASSERT_TRUE(inline_result.policy) << (inline_result.errors.empty() ? "" : inline_result.errors[0]);
  ASSERT_EQ(inline_result.policy->trust_stores.size(), 1u);
  ASSERT_NE(inline_result.policy->trust_stores[0].certificates, nullptr);
  EXPECT_EQ(inline_result.policy->trust_stores[0].certificates->size(), 1u);
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
