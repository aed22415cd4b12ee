#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "policy/patterns.hpp"
#include "policy/policy.hpp"

namespace pullgate::policy {
namespace {

TEST(GlobMatch, Literals) {
  EXPECT_TRUE(glob_match("library/nginx", "library/nginx"));
  EXPECT_FALSE(glob_match("library/nginx", "library/nginx2"));
  EXPECT_FALSE(glob_match("library/nginx", "library/ngin"));
  EXPECT_FALSE(glob_match("library/nginx", ""));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
}

TEST(GlobMatch, SingleStarStopsAtSlash) {
  EXPECT_TRUE(glob_match("library/*", "library/nginx"));
  EXPECT_TRUE(glob_match("library/*", "library/"));
  EXPECT_FALSE(glob_match("library/*", "library/a/b"));
  EXPECT_FALSE(glob_match("*", "a/b"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("team-*/app", "team-x/app"));
  EXPECT_FALSE(glob_match("team-*/app", "team-x/y/app"));
  EXPECT_TRUE(glob_match("1[0-8].*", "1[0-8].04"));  // brackets are literal, not classes
  EXPECT_TRUE(glob_match("*.*", "16.04"));
  EXPECT_FALSE(glob_match("*.*", "latest"));
}

TEST(GlobMatch, DoubleStarCrossesSlash) {
  EXPECT_TRUE(glob_match("**", ""));
  EXPECT_TRUE(glob_match("**", "a/b/c"));
  EXPECT_TRUE(glob_match("library/**", "library/a/b"));
  EXPECT_TRUE(glob_match("library/**", "library/nginx"));
  EXPECT_FALSE(glob_match("library/**", "library"));
  EXPECT_FALSE(glob_match("library/**", "other/nginx"));
  EXPECT_TRUE(glob_match("**/nginx", "a/b/nginx"));
  EXPECT_FALSE(glob_match("**/nginx", "nginx"));
  EXPECT_TRUE(glob_match("a/**/z", "a/b/c/z"));
  EXPECT_TRUE(glob_match("a/**/z", "a//z"));
  EXPECT_TRUE(glob_match("**.example.com", "registry.eu.example.com"));
  // A later single star cannot cross a slash, but the double star before it can.
  EXPECT_TRUE(glob_match("**/*-prod", "team/sub/app-prod"));
  EXPECT_FALSE(glob_match("**/*-prod", "team/app-prod/x"));
}

TEST(GlobMatch, QuestionMarkIsOneCharacterButNotSlash) {
  EXPECT_TRUE(glob_match("v?", "v1"));
  EXPECT_FALSE(glob_match("v?", "v"));
  EXPECT_FALSE(glob_match("v?", "v12"));
  EXPECT_FALSE(glob_match("a?b", "a/b"));
  EXPECT_TRUE(glob_match("???", "abc"));
}

TEST(GlobMatch, HostilePatternsFinishFast) {
  const std::string text(10000, 'a');
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*b", text));
  EXPECT_FALSE(glob_match("**a**a**a**a**a**a**a**a**a**b", text));
  EXPECT_TRUE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*", text));
  std::string many_stars;
  for (int i = 0; i < 120; ++i) many_stars += "*a";
  many_stars += "b";
  EXPECT_FALSE(glob_match(many_stars, text));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // A backtracking matcher would take longer than the universe's age here.
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(GlobSyntax, ChecksCharsetLengthAndEmptiness) {
  using detail::glob_problem;
  using detail::GlobKind;
  EXPECT_FALSE(glob_problem("library/**", GlobKind::repository));
  EXPECT_FALSE(glob_problem("a-b_c.d/e?", GlobKind::repository));
  EXPECT_FALSE(glob_problem("registry.example.com:5000", GlobKind::upstream));
  EXPECT_FALSE(glob_problem("V1.*-RC?", GlobKind::tag));
  EXPECT_TRUE(glob_problem("", GlobKind::repository));
  EXPECT_TRUE(glob_problem("Library/x", GlobKind::repository));
  EXPECT_TRUE(glob_problem("host:5000/x", GlobKind::repository));
  EXPECT_TRUE(glob_problem("a b", GlobKind::tag));
  EXPECT_TRUE(glob_problem("a/b", GlobKind::tag));
  EXPECT_TRUE(glob_problem("[a-z]", GlobKind::repository));
  EXPECT_TRUE(glob_problem(std::string("a\0b", 3), GlobKind::repository));
  EXPECT_FALSE(glob_problem(std::string(255, 'a'), GlobKind::repository));
  const auto too_long = glob_problem(std::string(256, 'a'), GlobKind::repository);
  ASSERT_TRUE(too_long);
  EXPECT_NE(too_long->find("256"), std::string::npos);
}

TEST(GlobSyntax, Specificity) {
  EXPECT_EQ(detail::literal_count("**"), 0u);
  EXPECT_EQ(detail::literal_count("library/*"), 8u);
  EXPECT_EQ(detail::literal_count("a?c"), 2u);
  EXPECT_TRUE(detail::is_literal("library/nginx"));
  EXPECT_FALSE(detail::is_literal("library/ng?nx"));
}

}  // namespace
}  // namespace pullgate::policy
