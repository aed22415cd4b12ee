#include <gtest/gtest.h>

#include <string>

#include "policy/policy.hpp"

namespace pullgate::policy {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

const std::string digest_a = "sha256:" + std::string(64, 'a');
const std::string digest_b = "sha256:" + std::string(64, 'b');
const TimePoint now = TimePoint(seconds(1796083200)) - hours(24);  // 2026-11-30T00:00:00Z

Policy parsed(const std::string& document) {
  auto result = parse_policy(document);
  std::string errors;
  for (const auto& error : result.errors) errors += error + "\n";
  EXPECT_TRUE(result.policy) << errors;
  return result.policy ? *result.policy : Policy{};
}

Subject by_tag(std::string repository, std::string tag, std::string digest = digest_a,
               std::string upstream = "docker.io") {
  return {std::move(upstream), std::move(repository), std::move(tag), registry::Digest::parse(digest).value()};
}

Subject by_digest(std::string repository, std::string digest = digest_a, std::string upstream = "docker.io") {
  return {std::move(upstream), std::move(repository), std::nullopt, registry::Digest::parse(digest).value()};
}

TEST(ScopeFor, MostSpecificWinsAndTiesGoToTheFirstWritten) {
  const Policy policy = parsed(R"({"scopes": [
    {"name": "any-library", "repository": "library/**"},
    {"name": "hub", "upstream": "docker.io"},
    {"name": "hub-library", "upstream": "docker.io", "repository": "library/*"},
    {"name": "hub-ubuntu", "upstream": "docker.io", "repository": "library/ubuntu"},
    {"name": "tie-first", "upstream": "quay.io", "repository": "ab*"},
    {"name": "tie-second", "upstream": "quay.io", "repository": "*ab"}
  ]})");
  EXPECT_EQ(scope_for(policy, "docker.io", "library/ubuntu").name, "hub-ubuntu");
  EXPECT_EQ(scope_for(policy, "docker.io", "library/nginx").name, "hub-library");
  EXPECT_EQ(scope_for(policy, "docker.io", "library/a/b").name, "hub");  // 9 literal chars beat 8
  EXPECT_EQ(scope_for(policy, "ghcr.io", "library/a/b").name, "any-library");
  EXPECT_EQ(scope_for(policy, "docker.io", "team/app").name, "hub");
  EXPECT_EQ(scope_for(policy, "ghcr.io", "team/app").name, "default");
  EXPECT_EQ(scope_for(policy, "quay.io", "abab").name, "tie-first");
  EXPECT_EQ(scope_for(policy, "quay.io", "xab").name, "tie-second");
}

TEST(ScopeFor, HandBuiltPolicyWithoutScopesStillHasACatchAll) {
  const Policy policy;
  EXPECT_EQ(scope_for(policy, "docker.io", "x").name, "default");
  const Outcome outcome = evaluate(policy, by_tag("x", "1"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.source, Source::default_);
}

TEST(Evaluate, FirstMatchingRuleWinsWithSpecificReasons) {
  const Policy policy = parsed(R"({"scopes": [{"name": "hub-library", "upstream": "docker.io",
    "repository": "library/**", "rules": [
      {"action": "allow", "repository": "library/ubuntu", "tag": "22.04"},
      {"action": "deny", "repository": "library/ubuntu", "tag": "14.*", "reason": "EOL Ubuntu"},
      {"action": "deny", "repository": "library/ubuntu", "tag": "1?.*", "reason": "EOL Ubuntu"},
      {"action": "warn", "tag": "latest", "reason": "pin a version"}
    ]}]})");
  Outcome outcome = evaluate(policy, by_tag("library/ubuntu", "16.04"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_FALSE(outcome.serve);
  EXPECT_EQ(outcome.source, Source::rule);
  EXPECT_EQ(outcome.scope, "hub-library");
  EXPECT_EQ(outcome.policy_version, policy.version);
  ASSERT_EQ(outcome.reasons.size(), 1u);
  EXPECT_EQ(outcome.reasons[0], "rule 3 of scope hub-library denies library/ubuntu:16.04: EOL Ubuntu");

  outcome = evaluate(policy, by_tag("library/ubuntu", "22.04"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.reasons[0], "rule 1 of scope hub-library allows library/ubuntu:22.04");

  outcome = evaluate(policy, by_tag("library/nginx", "latest"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::warn);
  EXPECT_TRUE(outcome.serve);
  EXPECT_EQ(outcome.reasons[0], "rule 4 of scope hub-library warns on library/nginx:latest: pin a version");

  outcome = evaluate(policy, by_tag("library/nginx", "1.25"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.source, Source::default_);
  EXPECT_EQ(outcome.reasons[0], "no rule of scope hub-library matches library/nginx:1.25; its fallback allows it");
}

TEST(Evaluate, TagRulesDoNotMatchPullsByDigest) {
  const Policy policy = parsed(R"({"default": {"rules": [
      {"action": "deny", "tag": "**", "reason": "tags only"}]}})");
  EXPECT_EQ(evaluate(policy, by_tag("x", "1"), std::nullopt, now).decision, Decision::deny);
  const Outcome outcome = evaluate(policy, by_digest("x"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.source, Source::default_);
  EXPECT_EQ(outcome.reasons[0], "no rule of scope default matches x@" + digest_a + "; its fallback allows it");
}

TEST(Evaluate, DigestRules) {
  const Policy policy = parsed(R"({"default": {"fallback": "deny", "rules": [
      {"action": "allow", "digest": ")" + digest_a + R"("}]}})");
  Outcome outcome = evaluate(policy, by_digest("team/app", digest_a), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.source, Source::rule);
  EXPECT_EQ(evaluate(policy, by_tag("team/app", "v1", digest_a), std::nullopt, now).decision, Decision::allow);
  outcome = evaluate(policy, by_digest("team/app", digest_b), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_EQ(outcome.source, Source::default_);
  EXPECT_FALSE(outcome.serve);
  EXPECT_EQ(outcome.reasons[0], "no rule of scope default matches team/app@" + digest_b + "; its fallback denies it");
}

TEST(Evaluate, EachUnknownSetting) {
  const Policy policy = parsed(R"({"scopes": [
    {"name": "eval", "repository": "eval/*", "unknown": "evaluate", "fallback": "warn",
     "rules": [{"action": "deny", "tag": "bad"}, {"action": "allow", "tag": "good"}]},
    {"name": "open", "repository": "open/*", "unknown": "allow",
     "rules": [{"action": "deny", "tag": "bad", "reason": "known bad"}]},
    {"name": "careful", "repository": "careful/*", "unknown": "warn"},
    {"name": "team-prod", "repository": "prod/*", "unknown": "deny",
     "rules": [{"action": "allow", "tag": "good"}]}
  ]})");
  // evaluate: rules, else fallback.
  EXPECT_EQ(evaluate(policy, by_tag("eval/a", "good"), std::nullopt, now).source, Source::rule);
  EXPECT_EQ(evaluate(policy, by_tag("eval/a", "bad"), std::nullopt, now).decision, Decision::deny);
  Outcome outcome = evaluate(policy, by_tag("eval/a", "other"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::warn);
  EXPECT_EQ(outcome.source, Source::default_);

  // allow: unknown digests pass, but a denying location rule still denies.
  outcome = evaluate(policy, by_tag("open/a", "x"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.source, Source::unknown);
  EXPECT_EQ(outcome.reasons[0], "no verdict yet; scope open allows unknown images");
  outcome = evaluate(policy, by_tag("open/a", "bad"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_EQ(outcome.source, Source::rule);
  EXPECT_EQ(outcome.reasons[0], "rule 1 of scope open denies open/a:bad: known bad");

  outcome = evaluate(policy, by_tag("careful/a", "x"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::warn);
  EXPECT_EQ(outcome.source, Source::unknown);
  EXPECT_EQ(outcome.reasons[0], "no verdict yet; scope careful warns on unknown images");

  // deny: an allow rule does not open the door for an unknown digest.
  outcome = evaluate(policy, by_tag("prod/a", "good"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_EQ(outcome.source, Source::unknown);
  EXPECT_FALSE(outcome.serve);
  EXPECT_EQ(outcome.reasons[0], "no verdict yet; scope team-prod denies unknown images");
}

TEST(Evaluate, EachMode) {
  const Policy policy = parsed(R"({"scopes": [
    {"name": "e", "repository": "e/*", "mode": "enforce", "fallback": "deny"},
    {"name": "w", "repository": "w/*", "mode": "warn", "fallback": "deny"},
    {"name": "a", "repository": "a/*", "mode": "audit", "fallback": "deny"},
    {"name": "ew", "repository": "ew/*", "mode": "enforce", "fallback": "warn"}
  ]})");
  for (const auto& [repository, mode, serve] : {std::tuple{"e/x", Mode::enforce, false},
                                                 std::tuple{"w/x", Mode::warn, true},
                                                 std::tuple{"a/x", Mode::audit, true}}) {
    const Outcome outcome = evaluate(policy, by_tag(repository, "1"), std::nullopt, now);
    EXPECT_EQ(outcome.decision, Decision::deny) << repository;  // still reported, for the warning and audit
    EXPECT_EQ(outcome.mode, mode) << repository;
    EXPECT_EQ(outcome.serve, serve) << repository;
  }
  const Outcome warned = evaluate(policy, by_tag("ew/x", "1"), std::nullopt, now);
  EXPECT_EQ(warned.decision, Decision::warn);
  EXPECT_TRUE(warned.serve);
}

TEST(Evaluate, StoredVerdictDecidesUntilItExpires) {
  const Policy policy = parsed(R"({"default": {"unknown": "deny",
      "rules": [{"action": "deny", "repository": "banned/*", "reason": "banned"},
                {"action": "warn", "tag": "latest", "reason": "pin a version"}]}})");
  StoredVerdict manual_deny{Decision::deny, Source::manual, {"CVE-2024-1234", "critical"}, now + hours(1)};
  Outcome outcome = evaluate(policy, by_tag("team/app", "1"), manual_deny, now);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_EQ(outcome.source, Source::manual);
  ASSERT_EQ(outcome.reasons.size(), 1u);
  EXPECT_EQ(outcome.reasons[0], "manual verdict: deny (CVE-2024-1234; critical)");

  // Expired (also exactly at the expiry): as if absent, so the scope's unknown applies.
  for (const TimePoint later : {now + hours(1), now + hours(2)}) {
    outcome = evaluate(policy, by_tag("team/app", "1"), manual_deny, later);
    EXPECT_EQ(outcome.source, Source::unknown);
    EXPECT_EQ(outcome.decision, Decision::deny);
  }

  const StoredVerdict manual_allow{Decision::allow, Source::manual, {}, std::nullopt};
  outcome = evaluate(policy, by_tag("team/app", "1"), manual_allow, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.source, Source::manual);
  EXPECT_EQ(outcome.reasons[0], "manual verdict: allow");

  // Location rules always apply: a stored allow does not open a denied repository...
  outcome = evaluate(policy, by_tag("banned/app", "1"), manual_allow, now);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_EQ(outcome.source, Source::rule);
  EXPECT_EQ(outcome.reasons[0], "rule 1 of scope default denies banned/app:1: banned");
  // ...and a warn rule still warns.
  EXPECT_EQ(evaluate(policy, by_tag("team/app", "latest"), manual_allow, now).decision, Decision::warn);

  // A verdict stored from an earlier evaluation keeps its own reasons.
  const StoredVerdict from_rules{Decision::warn, Source::rule, {"rule 9 of scope x warns on y:z"}, std::nullopt};
  outcome = evaluate(policy, by_tag("team/app", "1"), from_rules, now);
  EXPECT_EQ(outcome.decision, Decision::warn);
  EXPECT_EQ(outcome.source, Source::rule);
  EXPECT_EQ(outcome.reasons, std::vector<std::string>{"rule 9 of scope x warns on y:z"});
}

TEST(Evaluate, ExceptionsApplyUntilTheyExpire) {
  const Policy policy = parsed(R"({
    "default": {"fallback": "deny"},
    "exceptions": [
      {"id": "INC-1234", "digest": ")" + digest_a + R"(", "repository": "team/app", "upstream": "**",
       "reason": "hotfix", "who": "alice@example.com", "expires": "2026-12-01T00:00:00Z"},
      {"id": "INC-2000", "repository": "vendor/**", "upstream": "quay.io", "expires": "2026-12-01T00:00:00+01:00"},
      {"id": "INC-3000", "digest": ")" + digest_b + R"(", "reason": "no expiry"}
    ]})");
  Outcome outcome = evaluate(policy, by_tag("team/app", "1", digest_a), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_TRUE(outcome.serve);
  EXPECT_EQ(outcome.source, Source::exception);
  EXPECT_EQ(outcome.exception_id, "INC-1234");
  ASSERT_EQ(outcome.reasons.size(), 2u);
  EXPECT_EQ(outcome.reasons[0], "exception INC-1234 (alice@example.com, until 2026-12-01T00:00:00Z): hotfix");
  EXPECT_EQ(outcome.reasons[1], "set aside: no rule of scope default matches team/app:1; its fallback denies it");

  // The digest must match too.
  EXPECT_EQ(evaluate(policy, by_tag("team/app", "1", digest_b.substr(0, 70) + "c"), std::nullopt, now).decision,
            Decision::deny);
  // Expired exactly at the expiry time.
  const TimePoint expiry = TimePoint(seconds(1796083200));
  EXPECT_EQ(evaluate(policy, by_tag("team/app", "1", digest_a), std::nullopt, expiry - seconds(1)).source,
            Source::exception);
  outcome = evaluate(policy, by_tag("team/app", "1", digest_a), std::nullopt, expiry);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_EQ(outcome.source, Source::default_);
  EXPECT_TRUE(outcome.exception_id.empty());

  // By repository glob and upstream, any digest; the +01:00 offset expires an hour earlier.
  outcome = evaluate(policy, by_digest("vendor/a/b", digest_b.substr(0, 70) + "d", "quay.io"), std::nullopt, now);
  EXPECT_EQ(outcome.exception_id, "INC-2000");
  EXPECT_EQ(outcome.reasons[0], "exception INC-2000 (until 2026-11-30T23:00:00Z)");
  EXPECT_EQ(evaluate(policy, by_digest("vendor/a/b", digest_a, "docker.io"), std::nullopt, now).decision,
            Decision::deny);
  EXPECT_EQ(evaluate(policy, by_digest("vendor/a", digest_a, "quay.io"), std::nullopt, expiry - hours(1)).decision,
            Decision::deny);

  // By digest alone, in any repository, over a stored manual deny.
  const StoredVerdict manual_deny{Decision::deny, Source::manual, {"bad"}, std::nullopt};
  outcome = evaluate(policy, by_digest("anything/else", digest_b), manual_deny, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.exception_id, "INC-3000");
  EXPECT_EQ(outcome.reasons[0], "exception INC-3000 (no expiry): no expiry");
  EXPECT_EQ(outcome.reasons[1], "set aside: manual verdict: deny (bad)");
}

TEST(Evaluate, ExceptionOverridesARuleDenyAndTheModeStillApplies) {
  const Policy policy = parsed(R"({
    "scopes": [{"name": "s", "repository": "team/*", "mode": "warn",
                "rules": [{"action": "deny", "tag": "old", "reason": "too old"}]}],
    "exceptions": [{"id": "E", "repository": "team/app", "expires": "2030-01-01T00:00:00Z"}]})");
  Outcome outcome = evaluate(policy, by_tag("team/app", "old"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_EQ(outcome.mode, Mode::warn);
  EXPECT_EQ(outcome.reasons[1], "set aside: rule 1 of scope s denies team/app:old: too old");
  outcome = evaluate(policy, by_tag("team/other", "old"), std::nullopt, now);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_TRUE(outcome.serve);  // warn mode serves, reporting the deny
}

TEST(Evaluate, VersionComesFromThePolicy) {
  const Policy a = parsed(R"({"default": {"fallback": "deny"}})");
  const Policy b = parsed(R"({"default": {"fallback": "deny"}} )");
  EXPECT_NE(a.version, b.version);
  EXPECT_EQ(evaluate(a, by_tag("x", "1"), std::nullopt, now).policy_version, a.version);
  EXPECT_EQ(evaluate(b, by_tag("x", "1"), std::nullopt, now).policy_version, b.version);
}

TEST(Evaluate, RunTimeExceptionsApplyLikeThePolicysOwn) {
  const Policy policy = parsed(R"({
    "scopes": [{"name": "s", "repository": "team/*", "mode": "enforce",
                "rules": [{"action": "deny", "reason": "quarantined"}]}],
    "exceptions": [{"id": "IN-POLICY", "repository": "team/first", "expires": "2030-01-01T00:00:00Z"}]})");
  const TimePoint expiry = now + hours(1);
  std::vector<Exception> extra = {
      Exception{"RT-1", registry::Digest::parse(digest_a), "team/*", "docker.io", "rollback", "bob", expiry},
      Exception{"RT-2", std::nullopt, "team/first", "", "shadowed", "carol", std::nullopt},
  };

  // Without them, and with an empty span: the deny stands.
  EXPECT_EQ(evaluate(policy, by_tag("team/app", "1"), std::nullopt, now).decision, Decision::deny);
  EXPECT_EQ(evaluate(policy, by_tag("team/app", "1"), std::nullopt, now, {}).decision, Decision::deny);

  Outcome outcome = evaluate(policy, by_tag("team/app", "1"), std::nullopt, now, extra);
  EXPECT_EQ(outcome.decision, Decision::allow);
  EXPECT_TRUE(outcome.serve);
  EXPECT_EQ(outcome.source, Source::exception);
  EXPECT_EQ(outcome.exception_id, "RT-1");
  ASSERT_EQ(outcome.reasons.size(), 2u);
  EXPECT_EQ(outcome.reasons[0], "exception RT-1 (bob, until 2026-11-30T01:00:00Z): rollback");
  EXPECT_EQ(outcome.reasons[1], "set aside: rule 1 of scope s denies team/app:1: quarantined");

  // Over a stored manual deny, too.
  const StoredVerdict manual_deny{Decision::deny, Source::manual, {"bad"}, std::nullopt};
  EXPECT_EQ(evaluate(policy, by_digest("team/app"), manual_deny, now, extra).exception_id, "RT-1");

  // Every condition must hold: digest, upstream.
  EXPECT_EQ(evaluate(policy, by_tag("team/app", "1", digest_b), std::nullopt, now, extra).decision, Decision::deny);
  EXPECT_EQ(evaluate(policy, by_tag("team/app", "1", digest_a, "quay.io"), std::nullopt, now, extra).decision,
            Decision::deny);
  // Expired at the expiry instant.
  outcome = evaluate(policy, by_tag("team/app", "1"), std::nullopt, expiry, extra);
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_FALSE(outcome.serve);
  EXPECT_TRUE(outcome.exception_id.empty());

  // The policy's own exceptions are consulted first.
  EXPECT_EQ(evaluate(policy, by_tag("team/first", "1"), std::nullopt, now, extra).exception_id, "IN-POLICY");
  // A run-time exception applies where the policy's has expired.
  EXPECT_EQ(evaluate(policy, by_tag("team/first", "1"), std::nullopt, TimePoint(seconds(1893456000)), extra)
                .exception_id,
            "RT-2");
}

}  // namespace
}  // namespace pullgate::policy
