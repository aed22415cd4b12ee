// Hostile and broken documents: each gives clear errors and no crash.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "policy/policy.hpp"

namespace pullgate::policy {
namespace {

using json = nlohmann::json;

const std::string full_document = R"({
  "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow",
              "rules": [{"action": "warn", "tag": "latest", "reason": "pin a version"}]},
  "scopes": [
    {"name": "hub-library", "upstream": "docker.io", "repository": "library/**",
     "mode": "warn", "unknown": "deny", "fallback": "deny",
     "rules": [
       {"action": "deny", "repository": "library/ubuntu", "tag": "1?.*", "reason": "EOL Ubuntu"},
       {"action": "allow", "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
     ]}
  ],
  "exceptions": [
    {"id": "INC-1234", "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "repository": "team/app", "upstream": "**", "reason": "hotfix", "who": "alice@example.com",
     "expires": "2026-12-01T00:00:00Z"}
  ]
})";

// A failed parse has no policy and at least one non-empty, one-line error.
void expect_clear_failure(const ParseResult& result, const std::string& what) {
  EXPECT_FALSE(result.policy) << what;
  ASSERT_FALSE(result.errors.empty()) << what;
  for (const auto& error : result.errors) {
    EXPECT_FALSE(error.empty()) << what;
    EXPECT_EQ(error.find('\n'), std::string::npos) << what << ": " << error;
  }
}

TEST(PolicyFuzz, TheFullDocumentParses) {
  const auto result = parse_policy(full_document);
  ASSERT_TRUE(result.policy);
  EXPECT_TRUE(result.errors.empty());
}

TEST(PolicyFuzz, EveryTruncationFailsCleanly) {
  for (std::size_t length = 0; length + 1 < full_document.size(); ++length) {
    const std::string truncated = full_document.substr(0, length);
    // The only prefixes that are whole documents end right after the last '}'.
    if (truncated.find_last_not_of(" \n") == full_document.rfind('}')) continue;
    expect_clear_failure(parse_policy(truncated), "truncated at " + std::to_string(length));
  }
}

// Walks every value in the document, replacing it in turn with each wrong kind of
// JSON value; each replacement must be refused with an error naming that path.
void walk(const json& node, const json::json_pointer& pointer, const std::string& path,
          std::vector<std::pair<json::json_pointer, std::string>>& out) {
  out.emplace_back(pointer, path);
  if (node.is_object()) {
    for (const auto& [key, child] : node.items()) {
      walk(child, pointer / key, path.empty() ? key : path + "." + key, out);
    }
  } else if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) {
      walk(node[i], pointer / i, path + "[" + std::to_string(i) + "]", out);
    }
  }
}

TEST(PolicyFuzz, WrongTypesAtEveryField) {
  const json original = json::parse(full_document);
  std::vector<std::pair<json::json_pointer, std::string>> places;
  walk(original, json::json_pointer(), "", places);
  const json replacements[] = {json(nullptr), json(true), json(42), json(-1.5), json("text"),
                               json::array({1, 2}), json::object({{"k", "v"}})};
  std::size_t tried = 0;
  for (const auto& [pointer, path] : places) {
    const json& current = original.at(pointer);
    for (const json& replacement : replacements) {
      if (replacement.type() == current.type()) continue;
      json changed = original;
      changed.at(pointer) = replacement;
      const auto result = parse_policy(changed.dump());
      const std::string what = (path.empty() ? "document" : path) + " = " + replacement.dump();
      expect_clear_failure(result, what);
      const std::string expected_path = path.empty() ? "document" : path;
      bool named = false;
      for (const auto& error : result.errors) named = named || error.starts_with(expected_path + ":");
      EXPECT_TRUE(named) << what << "\n" << (result.errors.empty() ? "" : result.errors[0]);
      ++tried;
    }
  }
  EXPECT_GT(tried, 150u);
}

TEST(PolicyFuzz, DeepNestingAnywhere) {
  for (const std::string& opening : {std::string("["), std::string("{\"a\":")}) {
    std::string deep;
    for (int i = 0; i < 100000; ++i) deep += opening;
    expect_clear_failure(parse_policy(deep), "deep " + opening);
    EXPECT_EQ(parse_policy(deep).errors[0], "document: nested deeper than 64 levels");
  }
  // Inside an otherwise valid document, at a field that takes an object.
  std::string nested = R"({"default": {"rules": [{"action": "deny", "reason": )";
  for (int i = 0; i < 70; ++i) nested += "[";
  for (int i = 0; i < 70; ++i) nested += "]";
  nested += "}]}}";
  expect_clear_failure(parse_policy(nested), "nested reason");
  // 64 levels are fine for the scanner, and the reader then names the wrong type.
  std::string sixty_four = R"({"scopes": )";
  for (int i = 0; i < 63; ++i) sixty_four += "[";
  for (int i = 0; i < 63; ++i) sixty_four += "]";
  sixty_four += "}";
  const auto result = parse_policy(sixty_four);
  expect_clear_failure(result, "64 levels");
  EXPECT_EQ(result.errors[0], "scopes[0]: must be an object");
}

TEST(PolicyFuzz, LargeDocuments) {
  // Just over 1 MiB: refused before parsing.
  std::string huge = "{\"scopes\": [], \"x\": \"" + std::string(1 << 20, 'a') + "\"}";
  auto result = parse_policy(huge);
  expect_clear_failure(result, "over 1 MiB");
  EXPECT_NE(result.errors[0].find("1 MiB"), std::string::npos) << result.errors[0];

  // Just under 1 MiB of real content: thousands of rules parse, and evaluation
  // still finds the last one.
  std::string big = R"({"default": {"rules": [)";
  std::size_t count = 0;
  while (big.size() < (1u << 20) - 200) {
    big += (count ? "," : "") + std::string(R"({"action": "deny", "repository": "team/app-)") + std::to_string(count) +
           R"(", "reason": "old"})";
    ++count;
  }
  big += "]}}";
  ASSERT_LE(big.size(), 1u << 20);
  result = parse_policy(big);
  ASSERT_TRUE(result.policy) << (result.errors.empty() ? "" : result.errors[0]);
  const Outcome outcome =
      evaluate(*result.policy, Subject{"docker.io", "team/app-" + std::to_string(count - 1), "v1",
                                       registry::Digest::parse("sha256:" + std::string(64, 'a')).value()}, std::nullopt,
               TimePoint{});
  EXPECT_EQ(outcome.decision, Decision::deny);
  EXPECT_EQ(outcome.reasons[0], "rule " + std::to_string(count) + " of scope default denies team/app-" +
                                    std::to_string(count - 1) + ":v1: old");

  // Just under 1 MiB of garbage.
  std::string garbage(1 << 20, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919 + 13) % 256);
  expect_clear_failure(parse_policy(garbage), "garbage");
}

TEST(PolicyFuzz, OddButValidJsonValues) {
  expect_clear_failure(parse_policy(""), "empty");
  expect_clear_failure(parse_policy("null"), "null");
  expect_clear_failure(parse_policy("[]"), "array");
  expect_clear_failure(parse_policy("\"{}\""), "string");
  expect_clear_failure(parse_policy("{} {}"), "two documents");
  expect_clear_failure(parse_policy("{\"scopes\": [{\"name\": \"\xff\"}]}"), "invalid UTF-8");
  expect_clear_failure(parse_policy("/* unterminated"), "unterminated comment");
  expect_clear_failure(parse_policy(std::string("{\"scopes\": [{\"name\": \"a\0b\"}]}", 28)), "NUL byte");
  EXPECT_EQ(parse_policy("[]").errors[0], "document: must be an object");
}

}  // namespace
}  // namespace pullgate::policy
