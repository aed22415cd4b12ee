// What a client is told when the upstream did not give the mirror what it asked for.
#include "proxy/mirror/upstream_failure.hpp"

#include <gtest/gtest.h>

namespace pullgate::proxy {
namespace {

using registry::ErrorCode;

UpstreamAnswer answer(unsigned status, std::string decision = {}, std::string body = {}) {
  UpstreamAnswer a;
  a.status = status;
  a.decision = std::move(decision);
  a.body = std::move(body);
  return a;
}

const std::string denied_body =
    R"({"errors":[{"code":"DENIED","message":"pullgate denied parent/app:v1@sha256:ab: rule 1 of scope prod denies it"}]})";

TEST(UpstreamFailure, APullgateDenialIsADecisionPassedOn) {
  auto reply = upstream_failure_reply("regional", "team/app", "v1", answer(403, "deny", denied_body),
                                      ErrorCode::manifest_unknown);
  EXPECT_EQ(reply.status, 403u);
  EXPECT_EQ(reply.code, ErrorCode::denied);
  EXPECT_FALSE(reply.trouble) << "a denial must never be answered from the cache";
  EXPECT_NE(reply.message.find("upstream regional (a pullgate) denied team/app v1: "), std::string::npos);
  EXPECT_NE(reply.message.find("rule 1 of scope prod denies it"), std::string::npos);
}

TEST(UpstreamFailure, A403WithoutTheDecisionHeaderIsAboutCredentials) {
  // A registry's own DENIED (GHCR answers so for a package the token may not read) is
  // upstream trouble: the cached copy may be served, and the client hears 404.
  for (const std::string& decision : {std::string(), std::string("allow")}) {
    auto reply = upstream_failure_reply("ghcr.io", "org/app", "v1", answer(403, decision, denied_body),
                                        ErrorCode::manifest_unknown);
    EXPECT_EQ(reply.status, 404u);
    EXPECT_EQ(reply.code, ErrorCode::name_unknown);
    EXPECT_TRUE(reply.trouble);
  }
  auto unauthorized = upstream_failure_reply("docker.io", "library/x", "", answer(401), ErrorCode::blob_unknown);
  EXPECT_EQ(unauthorized.status, 404u);
  EXPECT_TRUE(unauthorized.trouble);
}

TEST(UpstreamFailure, TheDecisionHeaderWithoutADeniedBodyIsNoDenial) {
  for (const std::string& body : {std::string(), std::string("not json"), std::string(R"({"errors":[]})"),
                                  std::string(R"({"errors":[{"code":"UNAUTHORIZED","message":"x"}]})"),
                                  std::string(R"({"errors":"DENIED"})")}) {
    EXPECT_FALSE(upstream_denial(answer(403, "deny", body))) << body;
    EXPECT_TRUE(upstream_failure_reply("p", "r", "", answer(403, "deny", body), ErrorCode::manifest_unknown).trouble);
  }
  EXPECT_FALSE(upstream_denial(answer(404, "deny", denied_body)));
}

TEST(UpstreamFailure, ADenialMessageIsOneBoundedLine) {
  std::string long_message(10000, 'x');
  auto denial = upstream_denial(
      answer(403, "deny", R"({"errors":[{"code":"DENIED","message":"a\r\nb)" + long_message + R"("}]})"));
  ASSERT_TRUE(denial);
  EXPECT_EQ(denial->find('\n'), std::string::npos);
  EXPECT_EQ(denial->substr(0, 4), "a  b");
  EXPECT_LE(denial->size(), 4096u);
  auto empty = upstream_denial(answer(403, "deny", R"({"errors":[{"code":"DENIED"}]})"));
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "denied (no reason given)");
}

TEST(UpstreamFailure, AnswersAndTrouble) {
  auto not_found = upstream_failure_reply("up", "r", "sha256:aa", answer(404), ErrorCode::blob_unknown);
  EXPECT_EQ(not_found.status, 404u);
  EXPECT_EQ(not_found.code, ErrorCode::blob_unknown);
  EXPECT_FALSE(not_found.trouble) << "a 404 is an answer, not upstream trouble";

  auto limited = answer(429);
  limited.retry_after = "30";
  auto rate = upstream_failure_reply("up", "r", "v1", limited, ErrorCode::manifest_unknown);
  EXPECT_EQ(rate.status, 429u);
  EXPECT_EQ(rate.code, ErrorCode::toomanyrequests);
  EXPECT_EQ(rate.retry_after, "30");
  EXPECT_TRUE(rate.trouble);

  auto server = upstream_failure_reply("up", "r", "v1", answer(503), ErrorCode::manifest_unknown);
  EXPECT_EQ(server.status, 502u);
  EXPECT_TRUE(server.trouble);

  auto down = answer(0);
  down.detail = "connection refused";
  auto unreachable = upstream_failure_reply("up", "r", "v1", down, ErrorCode::manifest_unknown);
  EXPECT_EQ(unreachable.status, 502u);
  EXPECT_NE(unreachable.message.find("connection refused"), std::string::npos);
  EXPECT_TRUE(unreachable.trouble);
}

}  // namespace
}  // namespace pullgate::proxy
