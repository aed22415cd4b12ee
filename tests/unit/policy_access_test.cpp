// The policy's access section: who may pull from which upstreams and repositories.
#include <gtest/gtest.h>

#include <string>

#include "policy/access.hpp"
#include "policy/policy.hpp"

namespace pullgate::policy {
namespace {

AccessPolicy parsed(const std::string& document) {
  auto result = parse_policy(document);
  std::string errors;
  for (const auto& e : result.errors) errors += e + "\n";
  EXPECT_TRUE(result.policy) << errors;
  if (!result.policy || !result.policy->access) {
    ADD_FAILURE() << "no access section";
    return {};
  }
  return *result.policy->access;
}

std::vector<std::string> errors_of(const std::string& document) { return parse_policy(document).errors; }

const std::string corp = R"({"access": {
  "groups": {"prod-nodes": ["node-1.prod", "node-2.prod"], "ci": ["ci-runner"]},
  "rules": [
    {"upstream": "registry.corp", "repository": "prod/**", "who": ["prod-nodes"]},
    {"upstream": "registry.corp", "repository": "team/**", "who": ["*"]},
    {"upstream": "registry.corp", "who": ["ci", "alice"]},
    {"repository": "public/**", "who": ["*", "anonymous"]}
  ],
  "others": ["*"]
}})";

TEST(AccessPolicy, OnlyTheGroupPullsItsRepositories) {
  const auto access = parsed(corp);
  EXPECT_TRUE(may_pull(access, "node-1.prod", "registry.corp", "prod/api").allowed);
  EXPECT_TRUE(may_pull(access, "node-2.prod", "registry.corp", "prod/a/b/c").allowed);
  const auto refused = may_pull(access, "ci-runner", "registry.corp", "prod/api");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.by, "access.rules[0]");
  EXPECT_FALSE(may_pull(access, "anonymous", "registry.corp", "prod/api").allowed);
}

TEST(AccessPolicy, TheFirstMatchingRuleDecides) {
  const auto access = parsed(corp);
  // rules[1] matches team/** before rules[2] (which would refuse node-1.prod).
  EXPECT_TRUE(may_pull(access, "node-1.prod", "registry.corp", "team/app").allowed);
  EXPECT_EQ(may_pull(access, "node-1.prod", "registry.corp", "team/app").by, "access.rules[1]");
  EXPECT_TRUE(may_pull(access, "alice", "registry.corp", "misc/tool").allowed);
  EXPECT_TRUE(may_pull(access, "ci-runner", "registry.corp", "misc/tool").allowed);
  EXPECT_FALSE(may_pull(access, "node-1.prod", "registry.corp", "misc/tool").allowed);
}

TEST(AccessPolicy, StarIsEveryAuthenticatedIdentityNotAnonymous) {
  const auto access = parsed(corp);
  EXPECT_TRUE(may_pull(access, "anyone", "registry.corp", "team/app").allowed);
  EXPECT_FALSE(may_pull(access, "anonymous", "registry.corp", "team/app").allowed);
  EXPECT_TRUE(may_pull(access, "anonymous", "docker.io", "public/x").allowed);
}

TEST(AccessPolicy, OthersDecideWhatNoRuleMatches) {
  const auto access = parsed(corp);
  const auto other = may_pull(access, "someone", "docker.io", "library/alpine");
  EXPECT_TRUE(other.allowed);
  EXPECT_EQ(other.by, "access.others");
  EXPECT_FALSE(may_pull(access, "anonymous", "docker.io", "library/alpine").allowed);
}

TEST(AccessPolicy, WithoutOthersEveryoneMayPullWhatNoRuleMatches) {
  const auto access = parsed(R"({"access": {"rules": [{"repository": "secret/**", "who": ["bob"]}]}})");
  EXPECT_TRUE(may_pull(access, "anonymous", "docker.io", "library/alpine").allowed);
  EXPECT_TRUE(may_pull(access, "carol", "docker.io", "library/alpine").allowed);
  EXPECT_FALSE(may_pull(access, "carol", "docker.io", "secret/x").allowed);
  EXPECT_TRUE(may_pull(access, "bob", "docker.io", "secret/x").allowed);
}

TEST(AccessPolicy, AnEmptyWhoIsNobody) {
  const auto access = parsed(R"({"access": {"rules": [{"repository": "frozen/**", "who": []}]}})");
  EXPECT_FALSE(may_pull(access, "bob", "docker.io", "frozen/x").allowed);
  EXPECT_FALSE(may_pull(access, "anonymous", "docker.io", "frozen/x").allowed);
}

TEST(AccessPolicy, APolicyWithoutTheSectionHasNone) {
  auto result = parse_policy("{}");
  ASSERT_TRUE(result.policy);
  EXPECT_FALSE(result.policy->access);
}

TEST(AccessPolicy, MistakesNameTheirPath) {
  auto errors = errors_of(R"({"access": {"rules": [{"repository": "a/**"}]}})");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].starts_with("access.rules[0].who: missing")) << errors[0];

  errors = errors_of(R"({"access": {"rules": [{"who": ["bad name"]}]}})");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].starts_with("access.rules[0].who[0]: must be an identity name")) << errors[0];

  errors = errors_of(R"({"access": {"groups": {"g": ["anonymous"]}}})");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].starts_with("access.groups.g[0]: must be an identity name")) << errors[0];

  errors = errors_of(R"({"access": {"rules": [{"who": [], "repository": "[x"}], "what": 1}})");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_TRUE(errors[0].starts_with("access.what: unknown field")) << errors[0];
  EXPECT_TRUE(errors[1].starts_with("access.rules[0].repository: invalid glob")) << errors[1];

  errors = errors_of(R"({"access": []})");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "access: must be an object");
}

TEST(AccessPolicy, ARuleForEverythingIsWarnedAbout) {
  auto result = parse_policy(R"({"access": {"rules": [{"who": ["a"]}, {"repository": "x", "who": ["b"]}]}})");
  ASSERT_TRUE(result.policy);
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_TRUE(result.warnings[0].starts_with("access.rules[0]: matches every request")) << result.warnings[0];
}

TEST(IdentityName, WhatANameMayBe) {
  EXPECT_TRUE(is_identity_name("node-1.prod"));
  EXPECT_TRUE(is_identity_name("ci@corp_2"));
  EXPECT_FALSE(is_identity_name(""));
  EXPECT_FALSE(is_identity_name("anonymous"));
  EXPECT_FALSE(is_identity_name("a b"));
  EXPECT_FALSE(is_identity_name("a:b"));
  EXPECT_FALSE(is_identity_name(std::string(129, 'a')));
  EXPECT_TRUE(is_identity_name(std::string(128, 'a')));
}

}  // namespace
}  // namespace pullgate::policy
