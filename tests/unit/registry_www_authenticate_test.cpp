#include "registry/www_authenticate.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pullgate::registry {
namespace {

using Params = std::map<std::string, std::string>;

TEST(WwwAuthenticate, DockerHubBearer) {
  const auto challenges = parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull")");
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_EQ(challenges[0].scheme, "bearer");
  EXPECT_EQ(challenges[0].params, (Params{{"realm", "https://auth.docker.io/token"},
                                          {"service", "registry.docker.io"},
                                          {"scope", "repository:library/nginx:pull"}}));
  EXPECT_EQ(challenges[0].param("REALM"), "https://auth.docker.io/token");
  EXPECT_FALSE(challenges[0].param("error"));
  EXPECT_TRUE(challenges[0].token68.empty());
}

struct Case {
  std::string header;
  std::vector<std::pair<std::string, Params>> expected;  // scheme, params
};

TEST(WwwAuthenticate, Table) {
  const Case cases[] = {
      {"", {}},
      {"   ,  , ", {}},
      {"Basic", {{"basic", {}}}},
      {"Basic realm=x", {{"basic", {{"realm", "x"}}}}},
      {R"(Basic realm="x", Bearer realm="y",service="z")",
       {{"basic", {{"realm", "x"}}}, {"bearer", {{"realm", "y"}, {"service", "z"}}}}},
      {"Basic realm=x, Bearer realm=y,service=z",
       {{"basic", {{"realm", "x"}}}, {"bearer", {{"realm", "y"}, {"service", "z"}}}}},
      {"Basic, Bearer realm=y", {{"basic", {}}, {"bearer", {{"realm", "y"}}}}},
      // BWS around '=' and OWS around commas, empty list elements.
      {"Bearer realm = \"a\" ,, service\t=\tb ,", {{"bearer", {{"realm", "a"}, {"service", "b"}}}}},
      // Quoted-string escapes; commas and '=' inside quotes are data.
      {R"(Bearer realm="a\"b\\c", scope="x,y=z")", {{"bearer", {{"realm", "a\"b\\c"}, {"scope", "x,y=z"}}}}},
      {R"(Bearer realm="")", {{"bearer", {{"realm", ""}}}}},
      {R"(Bearer realm="caf)" "\xc3\xa9" R"(")", {{"bearer", {{"realm", "caf\xc3\xa9"}}}}},
      // Names lower-cased, first duplicate kept.
      {R"(BEARER Realm="a", REALM="b")", {{"bearer", {{"realm", "a"}}}}},
      // Error parameters as registries send them.
      {R"(Bearer realm="r",error="insufficient_scope",scope="repository:a:pull")",
       {{"bearer", {{"realm", "r"}, {"error", "insufficient_scope"}, {"scope", "repository:a:pull"}}}}},
      // Faults: the challenges before the fault survive, the faulty one does not.
      {R"(Basic realm="x", Bearer realm="unterminated)", {{"basic", {{"realm", "x"}}}}},
      {R"(Bearer realm="x" service="y")", {}},  // missing comma
      {R"(Basic realm="x", Bearer realm=@)", {{"basic", {{"realm", "x"}}}}},
      {"Basic realm=x, =y", {{"basic", {{"realm", "x"}}}}},
      {"realm=x", {}},
      {"\"Bearer\"", {}},
      {"Bearer realm=a b", {}},
      {std::string("Bearer realm=\"a\0b\"", 18), {}},  // NUL inside a quoted string
      {"Bearer realm=\"a\\", {}},                       // escape at end
      {"Bearer realm=\"a\nb\"", {}},
      {"Bearer \xc3\xa9", {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    const auto challenges = parse_www_authenticate(c.header);
    ASSERT_EQ(challenges.size(), c.expected.size());
    for (std::size_t i = 0; i < challenges.size(); ++i) {
      EXPECT_EQ(challenges[i].scheme, c.expected[i].first);
      EXPECT_EQ(challenges[i].params, c.expected[i].second);
    }
  }
}

TEST(WwwAuthenticate, Token68) {
  const auto challenges = parse_www_authenticate("Negotiate YII+/ab==, Basic realm=x, Custom abc");
  ASSERT_EQ(challenges.size(), 3u);
  EXPECT_EQ(challenges[0].scheme, "negotiate");
  EXPECT_EQ(challenges[0].token68, "YII+/ab==");
  EXPECT_TRUE(challenges[0].params.empty());
  EXPECT_EQ(challenges[1].param("realm"), "x");
  EXPECT_EQ(challenges[2].token68, "abc");

  const auto padded = parse_www_authenticate("Custom abc=");
  ASSERT_EQ(padded.size(), 1u);
  EXPECT_EQ(padded[0].token68, "abc=");
  EXPECT_TRUE(padded[0].params.empty());

  EXPECT_TRUE(parse_www_authenticate("Custom abc=,=").size() == 1u);
  EXPECT_TRUE(parse_www_authenticate("Custom ab c").empty());

  // "realm=" with no value is, by the grammar, a token68 and not a parameter.
  const auto bare = parse_www_authenticate("Bearer realm=");
  ASSERT_EQ(bare.size(), 1u);
  EXPECT_EQ(bare[0].token68, "realm=");
  EXPECT_FALSE(bare[0].param("realm"));
}

TEST(WwwAuthenticate, HostileInputsNeverThrow) {
  const std::string inputs[] = {
      std::string(100000, '"'),
      std::string(100000, ','),
      std::string(100000, '\\'),
      "Bearer " + std::string(100000, '='),
      "Bearer realm=\"" + std::string(100000, 'a'),
      std::string(5000, 'B') + " " + std::string(5000, 'x') + "=",
  };
  for (const auto& input : inputs) {
    EXPECT_NO_THROW({
      const auto challenges = parse_www_authenticate(input);
      for (const auto& c : challenges) EXPECT_FALSE(c.scheme.empty());
    });
  }
  std::string many;
  for (int i = 0; i < 1000; ++i) many += "Basic realm=r" + std::to_string(i) + ", ";
  EXPECT_EQ(parse_www_authenticate(many).size(), 1000u);
}

}  // namespace
}  // namespace pullgate::registry
