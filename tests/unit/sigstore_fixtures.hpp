#pragma once
// The Sigstore test vectors of tests/fixtures/sigstore (its README says where each
// comes from), and what every verdict of policy/transparency.hpp, trusted_root.hpp and
// fulcio.hpp must be, for their tests.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "policy/transparency.hpp"
#include "registry/base64.hpp"
#include "tests/unit/fixtures.hpp"

namespace pullgate::testing_support {

// The signer of the conformance corpus's bundles: its workflow and OIDC issuer.
inline const std::string beacon =
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main";
inline const std::string github_actions = "https://token.actions.githubusercontent.com";

inline std::string sigstore_fixture(const std::string& name) { return fixture_text("sigstore", name); }

inline bool has_sigstore_fixture(const std::string& name) {
  return std::filesystem::exists(fixture_path("sigstore", name));
}

inline std::string unbase64(const std::string& text) {
  std::string out;
  EXPECT_TRUE(registry::base64_decode(text, out)) << text;
  return out;
}

// Failed, saying `words`, on one line.
inline void expect_failure(const policy::transparency::Check& check, const std::string& words) {
  EXPECT_FALSE(check.passed);
  EXPECT_NE(check.reason.find(words), std::string::npos) << check.reason;
  EXPECT_EQ(check.reason.find('\n'), std::string::npos) << check.reason;
}

inline void expect_passed(const policy::transparency::Check& check) {
  EXPECT_TRUE(check.passed) << check.reason;
  EXPECT_TRUE(check.reason.empty());
}

}  // namespace pullgate::testing_support
