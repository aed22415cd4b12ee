// The policy document's "keys", "signatures" and "sbom" fields.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

#include "policy/policy.hpp"
#include "policy/signature.hpp"

namespace pullgate::policy {
namespace {

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

bool has_prefix(const std::vector<std::string>& lines, const std::string& prefix) {
  for (const auto& candidate : lines)
    if (candidate.starts_with(prefix)) return true;
  return false;
}

// A fresh P-256 public key as PEM, escaped for a JSON string.
std::string p256_pem_json() {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"),
                                                           EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PUBKEY(bio.get(), key.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  std::string out;
  for (char c : std::string(data, static_cast<std::size_t>(n))) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

TEST(PolicyKeys, InlineKeyIsReadAndScopesNameIt) {
  const std::string doc = R"({"keys": {"release": {"pem": ")" + p256_pem_json() + R"("},
                                        "ci": {"pem_file": "keys/ci.pub"}},
      "default": {"signatures": {"keys": ["release", "ci"], "recheck_s": 5}},
      "scopes": [{"name": "prod", "repository": "prod/**", "sbom": {"required": true}},
                 {"name": "dev", "repository": "dev/**", "sbom": {"required": false}}]})";
  const auto result = parse_policy(doc);
  ASSERT_TRUE(result.policy) << joined(result.errors);
  const Policy& policy = *result.policy;
  EXPECT_TRUE(policy.needs_signals);
  ASSERT_EQ(policy.keys.size(), 2u);
  const auto* release = policy.key_named("release");
  ASSERT_NE(release, nullptr);
  ASSERT_TRUE(release->key);
  EXPECT_EQ(release->key->algorithm(), "ecdsa-p256");
  const auto* ci = policy.key_named("ci");
  ASSERT_NE(ci, nullptr);
  EXPECT_FALSE(ci->key);  // read by the file loader, not by the parser
  EXPECT_EQ(ci->pem_file, "keys/ci.pub");
  const Scope& catch_all = scope_for(policy, "any", "any/thing");
  ASSERT_TRUE(catch_all.signatures);
  EXPECT_EQ(catch_all.signatures->keys, (std::vector<std::string>{"release", "ci"}));
  EXPECT_EQ(catch_all.signatures->recheck, std::chrono::seconds(5));
  EXPECT_FALSE(catch_all.sbom);
  const Scope& prod = scope_for(policy, "any", "prod/app");
  ASSERT_TRUE(prod.sbom);
  EXPECT_EQ(prod.sbom->recheck, std::chrono::seconds(60));
  EXPECT_FALSE(prod.signatures);
  EXPECT_FALSE(scope_for(policy, "any", "dev/app").sbom);
}

TEST(PolicyKeys, NoRequirementsMeansNoSignals) {
  const auto result = parse_policy(R"({"scopes": [{"name": "a", "sbom": {"required": false}}]})");
  ASSERT_TRUE(result.policy) << joined(result.errors);
  EXPECT_FALSE(result.policy->needs_signals);
}

TEST(PolicyKeys, MistakesAreNamedByPath) {
  struct Case {
    std::string doc, error_prefix;
  };
  const Case cases[] = {
      {R"({"keys": []})", "keys: must be an object"},
      {R"({"keys": {"bad name": {"pem_file": "x"}}})", "keys.bad name: a key name is"},
      {R"({"keys": {"k": {}}})", "keys.k: give exactly one of pem"},
      {R"({"keys": {"k": {"pem": "x", "pem_file": "y"}}})", "keys.k: give exactly one of pem"},
      {R"({"keys": {"k": {"pem": "not a key"}}})", "keys.k.pem: "},
      {R"({"keys": {"k": {"pem": 5}}})", "keys.k.pem: must be a string"},
      {R"({"keys": {"k": {"pem_file": ""}}})", "keys.k.pem_file: must not be empty"},
      {R"({"keys": {"k": {"pem_file": "x", "other": 1}}})", "keys.k.other: unknown field"},
      {R"({"default": {"signatures": {}}})", "default.signatures: must list at least one key name from the top-level \"keys\" or one keyless identity"},
      {R"({"default": {"signatures": {"keys": []}}})", "default.signatures: must list at least one key name from the top-level \"keys\" or one keyless identity"},
      {R"({"default": {"signatures": {"keys": ["nope"]}}})", "default.signatures.keys[0]: no key named \"nope\""},
      {R"({"keys": {"k": {"pem_file": "x"}}, "default": {"signatures": {"keys": ["k", "k"]}}})",
       "default.signatures.keys[1]: duplicate key"},
      {R"({"keys": {"k": {"pem_file": "x"}}, "default": {"signatures": {"keys": [1]}}})",
       "default.signatures.keys[0]: must be a key name"},
      {R"({"keys": {"k": {"pem_file": "x"}}, "default": {"signatures": {"keys": ["k"], "recheck_s": 0}}})",
       "default.signatures.recheck_s: must be a whole number"},
      {R"({"keys": {"k": {"pem_file": "x"}}, "default": {"signatures": {"keys": ["k"], "recheck_s": "1m"}}})",
       "default.signatures.recheck_s: must be a whole number"},
      {R"({"scopes": [{"name": "s", "sbom": {"required": "yes"}}]})", "scopes[0].sbom.required: must be true or false"},
      {R"({"scopes": [{"name": "s", "sbom": {"recheck_s": 86401}}]})", "scopes[0].sbom.recheck_s: must be a whole"},
      {R"({"scopes": [{"name": "s", "sbom": {"always": true}}]})", "scopes[0].sbom.always: unknown field"},
  };
  for (const auto& c : cases) {
    const auto result = parse_policy(c.doc);
    EXPECT_FALSE(result.policy) << c.doc;
    EXPECT_TRUE(has_prefix(result.errors, c.error_prefix)) << c.doc << "\n" << joined(result.errors);
  }
}

TEST(PolicyKeys, SourceNamesRoundTrip) {
  for (auto source : {Source::rule, Source::default_, Source::manual, Source::exception, Source::unknown, Source::report,
                      Source::unscanned, Source::signature, Source::sbom}) {
    auto parsed = parse_source(to_string(source));
    ASSERT_TRUE(parsed) << to_string(source);
    EXPECT_EQ(*parsed, source);
  }
  EXPECT_FALSE(parse_source("nonsense"));
}

}  // namespace
}  // namespace pullgate::policy
