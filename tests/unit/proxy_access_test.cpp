// Client authentication: the tokens file, the hash check, the Authorization header.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "proxy/access/authenticator.hpp"
#include "proxy/access/tokens.hpp"
#include "registry/base64.hpp"
#include "temp_dir.hpp"

namespace pullgate::proxy::access {
namespace {

std::string error_of(std::string_view text) {
  auto parsed = parse_token_file(text);
  auto* error = std::get_if<std::string>(&parsed);
  return error ? *error : "(parsed)";
}

TEST(TokenFileParser, ReadsNamesAndHashesSkippingCommentsAndBlankLines) {
  const auto line = token_line("ci-runner", "secret-1");
  auto parsed = parse_token_file("# tokens\n\n  \n" + line + "node-1.prod " + token_hash_text(hash_token("t2")) +
                                 "\r\n");
  ASSERT_TRUE(std::holds_alternative<TokenFile>(parsed)) << error_of("");
  const auto& file = std::get<TokenFile>(parsed);
  ASSERT_EQ(file.entries().size(), 2u);
  EXPECT_EQ(file.entries()[0].name, "ci-runner");
  EXPECT_EQ(file.entries()[1].name, "node-1.prod");
  EXPECT_TRUE(file.has("node-1.prod"));
  EXPECT_FALSE(file.has("node-2.prod"));
}

TEST(TokenFileParser, ABadLineIsOneLineNamingItsNumber) {
  const auto good = token_line("a", "x");
  EXPECT_EQ(error_of(good + "b\n"), "line 2: expected NAME sha256:<64 hex digits>, got only \"b\"");
  EXPECT_EQ(error_of("# c\nb sha256:abc\n"),
            "line 2: the hash must be sha256:<64 lowercase hex digits> (the file holds hashes, never tokens)");
  EXPECT_EQ(error_of("b pgt_plaintexttoken\n"),
            "line 1: the hash must be sha256:<64 lowercase hex digits> (the file holds hashes, never tokens)");
  EXPECT_EQ(error_of("b sha256:" + std::string(64, 'A') + "\n"),
            "line 1: the hash must be sha256:<64 lowercase hex digits>");
  EXPECT_EQ(error_of(good + good), "line 2: \"a\" is named twice");
  EXPECT_EQ(error_of("anonymous sha256:" + std::string(64, 'a')),
            "line 1: \"anonymous\" is not an identity name (1 to 128 letters, digits, '.', '_', '-' or '@'; not "
            "\"anonymous\")");
  const auto error = error_of(std::string("bad\x01name sha256:") + std::string(64, 'a'));
  EXPECT_EQ(error.find('\x01'), std::string::npos) << "control characters are not echoed";
  EXPECT_TRUE(error.starts_with("line 1: \"bad?name\" is not an identity name")) << error;
}

TEST(TokenHash, MatchesOnlyTheTokenAndTheName) {
  auto parsed = parse_token_file(token_line("ci", "token-a") + token_line("bob", "token-b"));
  const auto& file = std::get<TokenFile>(parsed);
  EXPECT_EQ(file.match("ci", "token-a"), "ci");
  EXPECT_EQ(file.match(std::nullopt, "token-b"), "bob");
  EXPECT_EQ(file.match("bob", "token-a"), std::nullopt) << "another identity's token";
  EXPECT_EQ(file.match("ci", "token-a "), std::nullopt);
  EXPECT_EQ(file.match("ci", ""), std::nullopt);
  EXPECT_EQ(file.match(std::nullopt, "token-c"), std::nullopt);
}

TEST(TokenHash, IsTheSha256OfTheToken) {
  // printf abc | sha256sum
  EXPECT_EQ(token_hash_text(hash_token("abc")),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(NewToken, IsRandomAndBase64Url) {
  const auto a = new_token(), b = new_token();
  EXPECT_NE(a, b);
  ASSERT_EQ(a.size(), 4u + 43u);
  EXPECT_TRUE(a.starts_with("pgt_"));
  for (char c : a.substr(4)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << a;
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-access");
    tokens_ = (dir_ / "tokens").string();
    write(token_line("ci", "token-ci"));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& text) { write_file(tokens_, text); }
  static void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  }
  static std::string basic(const std::string& user_token) { return "Basic " + registry::base64_encode(user_token); }

  std::filesystem::path dir_;
  std::string tokens_;
};

using Result = Authentication::Result;

TEST_F(AuthenticatorTest, BasicAndBearerName) {
  Authenticator auth({tokens_, false, false});
  auto who = auth.authenticate("", basic("ci:token-ci"));
  EXPECT_EQ(who.result, Result::identified);
  EXPECT_EQ(who.identity, "ci");
  who = auth.authenticate("", "bearer  token-ci ");
  EXPECT_EQ(who.result, Result::identified);
  EXPECT_EQ(who.identity, "ci");
}

TEST_F(AuthenticatorTest, AWrongCredentialIsRefusedNeverAnonymous) {
  Authenticator auth({tokens_, false, true});
  EXPECT_EQ(auth.authenticate("", basic("ci:wrong")).result, Result::refused);
  EXPECT_EQ(auth.authenticate("", basic("other:token-ci")).result, Result::refused);
  EXPECT_EQ(auth.authenticate("", "Bearer wrong").result, Result::refused);
  EXPECT_EQ(auth.authenticate("", "Basic !!!").why, "Basic credentials are not base64");
  EXPECT_EQ(auth.authenticate("", basic("no-colon")).why, "Basic credentials are not NAME:TOKEN");
  EXPECT_EQ(auth.authenticate("", "Digest x").why, "unsupported Authorization scheme; use Basic (NAME:TOKEN) or Bearer");
  EXPECT_EQ(auth.authenticate("", "").result, Result::anonymous);
  EXPECT_EQ(auth.authenticate("", basic(":")).result, Result::anonymous) << "skopeo's empty answer to the challenge";
  EXPECT_EQ(auth.authenticate("", basic("ci:")).result, Result::refused);
  EXPECT_FALSE(auth.required());
  Authenticator strict({tokens_, false, false});
  EXPECT_TRUE(strict.required());
}

TEST_F(AuthenticatorTest, ACertificateNameDecidesAlone) {
  Authenticator auth({tokens_, true, false});
  auto who = auth.authenticate("node-1.prod", basic("ci:wrong"));
  EXPECT_EQ(who.result, Result::identified);
  EXPECT_EQ(who.identity, "node-1.prod");
  EXPECT_EQ(auth.authenticate("CN with spaces", "").result, Result::refused);
  EXPECT_EQ(auth.authenticate("anonymous", "").result, Result::refused);
  EXPECT_EQ(auth.authenticate("", basic("ci:token-ci")).identity, "ci") << "no certificate: the token";
}

TEST_F(AuthenticatorTest, OffEveryoneIsAnonymous) {
  Authenticator auth({"", false, false});
  EXPECT_FALSE(auth.required());
  auto who = auth.authenticate("", basic("ci:token-ci"));
  EXPECT_EQ(who.result, Result::anonymous);
  EXPECT_EQ(who.identity, "anonymous");
}

TEST_F(AuthenticatorTest, ReloadTakesANewFileAndKeepsTheOldOnAMistake) {
  Authenticator auth({tokens_, false, false});
  write(token_line("ci", "token-ci") + token_line("bob", "token-bob"));
  EXPECT_EQ(auth.reload(), std::nullopt);
  EXPECT_EQ(auth.tokens(), 2u);
  EXPECT_EQ(auth.authenticate("", "Bearer token-bob").identity, "bob");
  write("bob sha256:nothex\n");
  EXPECT_EQ(auth.reload(), "tokens file " + tokens_ +
                               ": line 1: the hash must be sha256:<64 lowercase hex digits> (the file holds hashes, "
                               "never tokens)");
  EXPECT_EQ(auth.authenticate("", "Bearer token-bob").identity, "bob");
}

TEST_F(AuthenticatorTest, AnUnreadableFileAtStartIsOneLine) {
  try {
    Authenticator auth({(dir_ / "missing").string(), false, false});
    ADD_FAILURE() << "constructed";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "tokens file " + (dir_ / "missing").string() + ": cannot read it");
  }
}

TEST_F(AuthenticatorTest, FleetTokensStartFromTheCopyOrNoneAndAreReplacedWhole) {
  const auto copy = (dir_ / "fleet-tokens").string();
  Authenticator empty({copy, false, false, true});  // no copy yet: no tokens, not an error
  EXPECT_EQ(empty.tokens(), 0u);
  EXPECT_EQ(empty.authenticate("", "Bearer token-ci").result, Result::refused);
  EXPECT_TRUE(empty.required());

  std::vector<std::string> refused;
  auto tokens = tokens_from_fleet({{"ci", token_hash_text(hash_token("token-ci"))},
                                   {"bob", token_hash_text(hash_token("token-bob"))},
                                   {"anonymous", token_hash_text(hash_token("x"))},
                                   {"eve", "pgt_a-token-not-its-hash"},
                                   {"mallory", "sha256:" + std::string(64, 'a') + "\nroot sha256:" + std::string(64, 'b')},
                                   {"#x", token_hash_text(hash_token("y"))}},
                                  refused);
  ASSERT_EQ(tokens.entries().size(), 2u);
  EXPECT_EQ(tokens.entries()[0].name, "bob");
  EXPECT_EQ(tokens.entries()[1].name, "ci");
  ASSERT_EQ(refused.size(), 4u);
  EXPECT_EQ(refused[0], "tokens/#x: an empty or commented-out entry");
  EXPECT_TRUE(refused[1].starts_with("tokens/anonymous: \"anonymous\" is not an identity name")) << refused[1];
  EXPECT_EQ(refused[2],
            "tokens/eve: the hash must be sha256:<64 lowercase hex digits> (the file holds hashes, never tokens)");
  EXPECT_EQ(refused[3], "tokens/mallory: a line break in the name or the hash");

  // The copy a replica keeps reads back as the same tokens, through the file parser.
  write_file(copy, token_file_text(tokens));
  Authenticator from_copy({copy, false, false, true});
  EXPECT_EQ(from_copy.tokens(), 2u);
  EXPECT_EQ(from_copy.authenticate("", basic("bob:token-bob")).identity, "bob");

  empty.replace(std::move(tokens));
  EXPECT_EQ(empty.authenticate("", basic("ci:token-ci")).identity, "ci");
  empty.replace(TokenFile());
  EXPECT_EQ(empty.authenticate("", basic("ci:token-ci")).result, Result::refused) << "a removal takes effect";
}

}  // namespace
}  // namespace pullgate::proxy::access
