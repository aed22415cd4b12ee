#include <gtest/gtest.h>

#include <string>

#include "policy/policy.hpp"

namespace pullgate::policy {
namespace {

const std::string digest_a = "sha256:" + std::string(64, 'a');

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

// True when some error is exactly `line`.
bool has_line(const std::vector<std::string>& lines, const std::string& line) {
  for (const auto& candidate : lines) {
    if (candidate == line) return true;
  }
  return false;
}

bool has_prefix(const std::vector<std::string>& lines, const std::string& prefix) {
  for (const auto& candidate : lines) {
    if (candidate.starts_with(prefix)) return true;
  }
  return false;
}

TEST(ParsePolicy, EmptyObjectGivesTheCatchAllScope) {
  const auto result = parse_policy("{}");
  ASSERT_TRUE(result.policy) << joined(result.errors);
  ASSERT_EQ(result.policy->scopes.size(), 1u);
  const Scope& scope = result.policy->scopes[0];
  EXPECT_EQ(scope.name, "default");
  EXPECT_EQ(scope.upstream, "**");
  EXPECT_EQ(scope.repository, "**");
  EXPECT_EQ(scope.mode, Mode::enforce);
  EXPECT_EQ(scope.unknown, Unknown::evaluate);
  EXPECT_EQ(scope.fallback, Decision::allow);
  EXPECT_TRUE(result.warnings.empty());
}

TEST(ParsePolicy, ReadsEveryField) {
  const std::string document = R"({
    // comments are allowed
    "default": {"mode": "warn", "unknown": "deny", "fallback": "warn",
                "rules": [{"action": "deny", "tag": "latest"}]},
    "scopes": [
      {"name": "hub-library", "upstream": "docker.io", "repository": "library/**",
       "mode": "audit", "unknown": "allow", "fallback": "deny",
       "rules": [
         {"action": "deny", "repository": "library/ubuntu", "tag": "1?.*", "reason": "EOL Ubuntu"},
         /* block comments too */
         {"action": "allow", "digest": ")" + digest_a + R"("}
       ]}
    ],
    "exceptions": [
      {"id": "INC-1234", "digest": ")" + digest_a + R"(", "repository": "team/app", "upstream": "**",
       "reason": "hotfix", "who": "alice@example.com", "expires": "2026-12-01T00:00:00Z"}
    ]
  })";
  const auto result = parse_policy(document);
  ASSERT_TRUE(result.policy) << joined(result.errors);
  EXPECT_TRUE(result.warnings.empty()) << joined(result.warnings);
  const Policy& policy = *result.policy;
  ASSERT_EQ(policy.scopes.size(), 2u);

  const Scope& hub = policy.scopes[0];
  EXPECT_EQ(hub.name, "hub-library");
  EXPECT_EQ(hub.upstream, "docker.io");
  EXPECT_EQ(hub.repository, "library/**");
  EXPECT_EQ(hub.mode, Mode::audit);
  EXPECT_EQ(hub.unknown, Unknown::allow);
  EXPECT_EQ(hub.fallback, Decision::deny);
  EXPECT_EQ(hub.order, 0u);
  ASSERT_EQ(hub.rules.size(), 2u);
  EXPECT_EQ(hub.rules[0].action, Decision::deny);
  EXPECT_EQ(hub.rules[0].repository, "library/ubuntu");
  EXPECT_EQ(hub.rules[0].tag, "1?.*");
  EXPECT_EQ(hub.rules[0].reason, "EOL Ubuntu");
  EXPECT_EQ(hub.rules[1].action, Decision::allow);
  EXPECT_EQ(hub.rules[1].digest, registry::Digest::parse(digest_a));

  const Scope& catch_all = policy.scopes[1];
  EXPECT_EQ(catch_all.name, "default");
  EXPECT_EQ(catch_all.mode, Mode::warn);
  EXPECT_EQ(catch_all.unknown, Unknown::deny);
  EXPECT_EQ(catch_all.fallback, Decision::warn);
  EXPECT_EQ(catch_all.order, 1u);
  ASSERT_EQ(catch_all.rules.size(), 1u);
  EXPECT_EQ(catch_all.rules[0].tag, "latest");

  ASSERT_EQ(policy.exceptions.size(), 1u);
  const Exception& exception = policy.exceptions[0];
  EXPECT_EQ(exception.id, "INC-1234");
  EXPECT_EQ(exception.digest, registry::Digest::parse(digest_a));
  EXPECT_EQ(exception.repository, "team/app");
  EXPECT_EQ(exception.upstream, "**");
  EXPECT_EQ(exception.reason, "hotfix");
  EXPECT_EQ(exception.who, "alice@example.com");
  ASSERT_TRUE(exception.expires);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(exception.expires->time_since_epoch()).count(),
            1796083200);
}

TEST(ParsePolicy, AMistakeIsOneLineWhateverTheKeyOrValueItQuotes) {
  // Found by fuzz_policy: an unknown key with a line break in it.
  auto r = parse_policy(R"({"exceptions": [{"reas\non": "x", "id": "e"}], "default": {"mode": "on\u0001"}})");
  ASSERT_FALSE(r.errors.empty());
  for (const auto& e : r.errors) EXPECT_EQ(e.find_first_of("\n\x01"), std::string::npos) << e;
  bool named = false;
  for (const auto& e : r.errors) named = named || e.starts_with("exceptions[0].reas\\non: unknown field");
  EXPECT_TRUE(named) << r.errors.front();
}

TEST(ParsePolicy, VersionIsSha256OfTheExactBytes) {
  const auto a = parse_policy("{}");
  const auto b = parse_policy("{ }");
  const auto c = parse_policy("{}\n");
  const auto d = parse_policy("{} // note");
  ASSERT_TRUE(a.policy && b.policy && c.policy && d.policy);
  // sha256("{}")
  EXPECT_EQ(a.policy->version, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  EXPECT_NE(a.policy->version, b.policy->version);
  EXPECT_NE(a.policy->version, c.policy->version);
  EXPECT_NE(a.policy->version, d.policy->version);
  EXPECT_EQ(a.policy->version, parse_policy("{}").policy->version);
}

TEST(ParsePolicy, ErrorsNameTheJsonPath) {
  const std::string document = R"({
    "scopes": [
      {"name": "a", "rules": [{"action": "allow"}]},
      {"name": "b", "rules": [{"action": "block"}, {"repository": "x"}]}
    ]
  })";
  const auto result = parse_policy(document);
  EXPECT_FALSE(result.policy);
  EXPECT_TRUE(has_line(result.errors, "scopes[1].rules[0].action: must be allow, warn or deny")) << joined(result.errors);
  EXPECT_TRUE(has_line(result.errors, "scopes[1].rules[1].action: missing; must be allow, warn or deny"))
      << joined(result.errors);
  EXPECT_EQ(result.errors.size(), 2u) << joined(result.errors);
}

TEST(ParsePolicy, UnknownFieldsAreErrors) {
  const auto result = parse_policy(R"({"scope": [], "default": {"name": "x"},
    "scopes": [{"name": "a", "repo": "x", "rules": [{"action": "deny", "tags": "x"}]}],
    "exceptions": [{"id": "e", "digest": ")" + digest_a + R"(", "expires": "2030-01-01T00:00:00Z", "until": "x"}]})");
  EXPECT_FALSE(result.policy);
  EXPECT_TRUE(has_prefix(result.errors, "scope: unknown field")) << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.errors, "default.name: unknown field")) << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.errors, "scopes[0].repo: unknown field")) << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.errors, "scopes[0].rules[0].tags: unknown field")) << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.errors, "exceptions[0].until: unknown field")) << joined(result.errors);
  EXPECT_EQ(result.errors.size(), 5u) << joined(result.errors);
}

TEST(ParsePolicy, BadGlobsDigestsAndTimes) {
  const auto result = parse_policy(R"({
    "scopes": [
      {"name": "a", "upstream": "", "repository": "Library/*"},
      {"name": "b", "upstream": "[::1]", "repository": ")" + std::string(256, 'a') + R"("},
      {"name": "c", "rules": [{"action": "deny", "tag": "a/b"}, {"action": "deny", "digest": "sha256:abc"}]}
    ],
    "exceptions": [
      {"id": "e1", "digest": "sha256:)" + std::string(64, 'A') + R"(", "expires": "2026-12-01"},
      {"id": "e2", "repository": "x", "expires": "2026-02-30T00:00:00Z"}
    ]})");
  EXPECT_FALSE(result.policy);
  for (const char* prefix : {"scopes[0].upstream: invalid glob", "scopes[0].repository: invalid glob",
                             "scopes[1].upstream: invalid glob", "scopes[1].repository: invalid glob",
                             "scopes[2].rules[0].tag: invalid glob", "scopes[2].rules[1].digest: must be a digest",
                             "exceptions[0].digest: must be a digest", "exceptions[0].expires: must be an RFC 3339",
                             "exceptions[1].expires: must be an RFC 3339"}) {
    EXPECT_TRUE(has_prefix(result.errors, prefix)) << prefix << "\n" << joined(result.errors);
  }
  EXPECT_EQ(result.errors.size(), 9u) << joined(result.errors);
}

TEST(ParsePolicy, CharacterClassesAreRefusedNotTakenLiterally) {
  // '[' cannot occur in a tag, so a literal "1[0-8].*" would silently never match.
  const auto result = parse_policy(R"({"default": {"rules": [{"action": "deny", "tag": "1[0-8].*"}]}})");
  EXPECT_FALSE(result.policy);
  EXPECT_TRUE(has_line(result.errors,
                       "default.rules[0].tag: invalid glob \"1[0-8].*\": contains '['; allowed are A-Z a-z 0-9 . _ - "
                       "and the wildcards * and ?"))
      << joined(result.errors);
}

TEST(ParsePolicy, AScopeNameIsAtMost128Bytes) {
  const auto longest = R"({"scopes": [{"name": ")" + std::string(128, 'n') + R"(", "repository": "a/**"}]})";
  EXPECT_TRUE(parse_policy(longest).policy) << joined(parse_policy(longest).errors);
  const auto result = parse_policy(R"({"scopes": [{"name": ")" + std::string(129, 'n') + R"("}]})");
  EXPECT_FALSE(result.policy);
  EXPECT_TRUE(has_line(result.errors, "scopes[0].name: longer than 128 bytes")) << joined(result.errors);
}

TEST(ParsePolicy, DuplicatesAndMissingIdentities) {
  const auto result = parse_policy(R"({
    "scopes": [{"name": "a"}, {"name": "b"}, {"name": "a"}, {"repository": "x"}, {"name": "default"}],
    "exceptions": [
      {"id": "e", "repository": "x", "expires": "2030-01-01T00:00:00Z"},
      {"id": "e", "repository": "y", "expires": "2030-01-01T00:00:00Z"},
      {"repository": "z", "expires": "2030-01-01T00:00:00Z"},
      {"id": "f", "upstream": "docker.io", "expires": "2030-01-01T00:00:00Z"}
    ]})");
  EXPECT_FALSE(result.policy);
  EXPECT_TRUE(has_line(result.errors, "scopes[2].name: duplicate scope name \"a\" (first at scopes[0])"))
      << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.errors, "scopes[3].name: missing")) << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.errors, "scopes[4].name: \"default\" is the catch-all scope")) << joined(result.errors);
  EXPECT_TRUE(has_line(result.errors, "exceptions[1].id: duplicate exception id \"e\" (first at exceptions[0])"))
      << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.errors, "exceptions[2].id: missing")) << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.errors, "exceptions[3]: needs a digest or a repository")) << joined(result.errors);
  EXPECT_EQ(result.errors.size(), 6u) << joined(result.errors);
}

TEST(ParsePolicy, DuplicateJsonKeysAreErrors) {
  const auto result = parse_policy(R"({"scopes": [{"name": "a"}, {"name": "b", "rules": [
      {"action": "deny", "repository": "x", "action": "allow"}]}]})");
  EXPECT_FALSE(result.policy);
  EXPECT_TRUE(has_line(result.errors, "scopes[1].rules[0].action: duplicate key \"action\"")) << joined(result.errors);
}

TEST(ParsePolicy, ControlCharactersInTextAreErrors) {
  const auto result = parse_policy(R"({"scopes": [{"name": "a\nb"}]})");
  EXPECT_FALSE(result.policy);
  EXPECT_TRUE(has_line(result.errors, "scopes[0].name: must not contain control characters")) << joined(result.errors);
}

TEST(ParsePolicy, Warnings) {
  const auto result = parse_policy(R"({
    "scopes": [{"name": "lib", "repository": "library/**", "rules": [
      {"action": "deny", "repository": "team/app"},
      {"action": "allow"},
      {"action": "deny", "tag": "latest"}
    ]}],
    "exceptions": [{"id": "INC-1", "repository": "x"}]})");
  ASSERT_TRUE(result.policy) << joined(result.errors);
  EXPECT_TRUE(has_prefix(result.warnings, "scopes[0].rules[0]: can never match: repository \"team/app\""))
      << joined(result.warnings);
  EXPECT_TRUE(has_prefix(result.warnings, "scopes[0].rules[2]: can never match: rules[1]")) << joined(result.warnings);
  EXPECT_TRUE(has_line(result.warnings, "exceptions[0] (INC-1): no \"expires\"; it applies until someone removes it"))
      << joined(result.warnings);
  EXPECT_EQ(result.warnings.size(), 3u) << joined(result.warnings);
}

TEST(ParsePolicy, DeepNestingIsRefusedBeforeParsing) {
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  const auto result = parse_policy(deep);
  EXPECT_FALSE(result.policy);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0], "document: nested deeper than 64 levels");
  // Brackets in strings and comments do not count.
  const std::string hidden = R"({"scopes": [{"name": ")" + std::string(100, '[') + R"("}]} // )" + std::string(100, '{');
  EXPECT_TRUE(parse_policy(hidden).policy) << joined(parse_policy(hidden).errors);
  // A line comment ends at a carriage return too (as the JSON parser reads it): what
  // follows is counted.
  for (const std::string& end : {std::string("\r"), std::string(1, '\0')}) {
    const std::string after = R"({"scopes": // x)" + end + std::string(100, '[') + std::string(100, ']') + "}";
    const auto deep_after = parse_policy(after);
    ASSERT_FALSE(deep_after.errors.empty());
    EXPECT_EQ(deep_after.errors[0], "document: nested deeper than 64 levels");
  }
}

}  // namespace
}  // namespace pullgate::policy
