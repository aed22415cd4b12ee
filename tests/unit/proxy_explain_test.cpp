// explain on a real MetaStore in a temp dir: parsing image references, what it
// reads (tag records, verdicts, references) and that it decides as the Gate does.
#include <gtest/gtest.h>

#include "tests/unit/temp_dir.hpp"
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cache/meta_store.hpp"
#include "proxy/telemetry/audit_log.hpp"
#include "proxy/gate/explain.hpp"
#include "proxy/gate/gate.hpp"
#include "proxy/telemetry/metrics.hpp"

namespace pullgate::proxy {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::hours;
using std::chrono::seconds;

registry::Digest digest(char fill) { return registry::Digest::parse("sha256:" + std::string(64, fill)).value(); }

const std::vector<UpstreamName> upstreams = {
    {"docker.io", {"registry-1.docker.io"}, true},
    {"127.0.0.1:5000", {}, false},
    {"a.io", {}, false},
    {"a.io:5000", {}, false},
};

ExplainQuery query_of(const std::string& text) {
  auto parsed = parse_explain_query(text, upstreams);
  EXPECT_TRUE(parsed.query) << parsed.error;
  return parsed.query ? *parsed.query : ExplainQuery{};
}

TEST(ParseExplainQuery, ImageByTagAndByDigest) {
  auto q = query_of("127.0.0.1:5000/team/app:v1");
  EXPECT_EQ(q.upstream, "127.0.0.1:5000");
  EXPECT_EQ(q.repository, "team/app");
  EXPECT_EQ(q.tag, std::optional<std::string>("v1"));
  EXPECT_FALSE(q.digest);
  EXPECT_EQ(q.image, "127.0.0.1:5000/team/app:v1");

  q = query_of("a.io:5000/x@" + digest('a').str());
  EXPECT_EQ(q.upstream, "a.io:5000");
  EXPECT_EQ(q.repository, "x");
  EXPECT_FALSE(q.tag);
  EXPECT_EQ(q.digest, digest('a'));

  q = query_of("a.io/x/y:latest");
  EXPECT_EQ(q.upstream, "a.io");
  EXPECT_EQ(q.repository, "x/y");
}

TEST(ParseExplainQuery, DockerHubNamesAndAliases) {
  auto q = query_of("docker.io/nginx:1.25");
  EXPECT_EQ(q.upstream, "docker.io");
  EXPECT_EQ(q.repository, "library/nginx");
  q = query_of("registry-1.docker.io/bitnami/redis:7");
  EXPECT_EQ(q.upstream, "docker.io");
  EXPECT_EQ(q.repository, "bitnami/redis");
}

TEST(ParseExplainQuery, BareDigestTakesItsContextFromTheCaller) {
  auto parsed = parse_explain_query(digest('b').str(), upstreams, "a.io", "team/app");
  ASSERT_TRUE(parsed.query) << parsed.error;
  EXPECT_EQ(parsed.query->digest, digest('b'));
  EXPECT_EQ(parsed.query->upstream, "a.io");
  EXPECT_EQ(parsed.query->repository, "team/app");
  parsed = parse_explain_query(digest('b').str(), upstreams);
  ASSERT_TRUE(parsed.query);
  EXPECT_EQ(parsed.query->upstream, "");
  EXPECT_EQ(parsed.query->repository, "");
}

TEST(ParseExplainQuery, BadInputIsOneLineOfError) {
  for (const std::string& bad : std::vector<std::string>{"", "quay.io/x:1", "a.io/x", "a.io/x/y", "a.io/X:1", "a.io/x:bad tag", "a.io/x@sha256:12",
                          "a.io/:1", "a.io", "a.io/", "sha256:" + std::string(63, 'a'),
                          "a.io/x:" + std::string(200, 't')}) {
    auto parsed = parse_explain_query(bad, upstreams);
    EXPECT_FALSE(parsed.query) << bad;
    EXPECT_FALSE(parsed.error.empty()) << bad;
    EXPECT_EQ(parsed.error.find('\n'), std::string::npos) << bad;
  }
  EXPECT_NE(parse_explain_query("quay.io/x:1", upstreams).error.find("configured: docker.io, 127.0.0.1:5000"),
            std::string::npos);
  EXPECT_FALSE(parse_explain_query(digest('a').str(), upstreams, "", "Bad/Repo").query);
}

TEST(ToPolicyExceptions, ARecordWhoseDigestDoesNotReadIsSkipped) {
  // Read as "no digest" it would apply to every digest in its repositories.
  cache::ExceptionRecord bad{"E-bad", "sha256:NOT-HEX", "team/*", "", "hotfix", "bob", 5, std::nullopt};
  cache::ExceptionRecord any{"E-any", "", "team/*", "", "hotfix", "bob", 5, std::nullopt};
  auto out = to_policy_exceptions({bad, any});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, "E-any");
  EXPECT_FALSE(out[0].digest);
}

TEST(ToPolicyExceptions, CopiesEveryField) {
  cache::ExceptionRecord r{"E-1", digest('a').str(), "team/*", "a.io", "hotfix", "bob", 5, 7000};
  auto out = to_policy_exceptions({r});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, "E-1");
  EXPECT_EQ(out[0].digest, digest('a'));
  EXPECT_EQ(out[0].repository, "team/*");
  EXPECT_EQ(out[0].upstream, "a.io");
  EXPECT_EQ(out[0].reason, "hotfix");
  EXPECT_EQ(out[0].who, "bob");
  EXPECT_EQ(out[0].expires, policy::TimePoint(seconds(7)));
  r.expires_at_ms.reset();
  EXPECT_FALSE(to_policy_exceptions({r})[0].expires);
}

class ExplainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("pullgate-explain");
    meta_ = cache::MetaStore::open(dir_ / "lmdb", 64 << 20);
  }
  void TearDown() override {
    meta_.reset();
    fs::remove_all(dir_);
  }

  static policy::Policy parsed(const std::string& document) {
    auto result = policy::parse_policy(document);
    EXPECT_TRUE(result.policy) << (result.errors.empty() ? "" : result.errors.front());
    return result.policy ? *result.policy : policy::Policy{};
  }

  // A cached image: tag record and manifest bytes, as the mirror stores them, seen in
  // its repository.
  void cache_image(const std::string& upstream, const std::string& repository, const std::string& tag,
                   const registry::Digest& d) {
    meta_->mark_seen(d, upstream, repository);
    meta_->put_tag(upstream, repository, tag, cache::TagRecord{d, "application/vnd.oci.image.manifest.v1+json", 1000});
    meta_->put_manifest(d, cache::ManifestRecord{"application/vnd.oci.image.manifest.v1+json", "{}", 1000});
  }

  json run(const policy::Policy& policy, const std::string& image, std::span<const policy::Exception> extra = {}) {
    return explain(*meta_, policy, extra, query_of(image), now_);
  }

  fs::path dir_;
  std::unique_ptr<cache::MetaStore> meta_;
  policy::TimePoint now_ = policy::Clock::now();
};

const char* deny_bad = R"({"default": {"rules": [{"action": "deny", "repository": "it/bad", "reason": "CVE"}]}})";

TEST_F(ExplainTest, UncachedTagAndUnknownDigestAreErrors) {
  auto policy = parsed("{}");
  auto answer = run(policy, "a.io/it/app:v1");
  ASSERT_TRUE(answer.contains("error"));
  EXPECT_NE(answer["error"].get<std::string>().find("tag not cached: a.io/it/app:v1"), std::string::npos);
  EXPECT_FALSE(answer.contains("decision"));

  answer = run(policy, "a.io/it/app@" + digest('9').str());
  ASSERT_TRUE(answer.contains("error"));
  EXPECT_NE(answer["error"].get<std::string>().find("unknown to this mirror"), std::string::npos);
}

TEST_F(ExplainTest, ResolvesTheTagAndExplainsARuleDeny) {
  auto policy = parsed(deny_bad);
  cache_image("a.io", "it/bad", "v1", digest('a'));
  meta_->add_references(digest('a'), {digest('c')});
  auto answer = run(policy, "a.io/it/bad:v1");
  ASSERT_FALSE(answer.contains("error")) << answer.dump();
  EXPECT_EQ(answer["image"], "a.io/it/bad:v1");
  EXPECT_EQ(answer["kind"], "manifest");
  EXPECT_EQ(answer["digest"], digest('a').str());
  EXPECT_EQ(answer["resolved"]["tag"], "v1");
  EXPECT_EQ(answer["resolved"]["digest"], digest('a').str());
  EXPECT_EQ(answer["decision"], "deny");
  EXPECT_EQ(answer["served"], false);
  EXPECT_EQ(answer["mode"], "enforce");
  EXPECT_EQ(answer["scope"], "default");
  EXPECT_EQ(answer["source"], "rule");
  EXPECT_EQ(answer["reasons"], json::array({"rule 1 of scope default denies it/bad:v1: CVE"}));
  EXPECT_TRUE(answer["exception"].is_null());
  EXPECT_EQ(answer["policy_version"], policy.version);
  EXPECT_TRUE(answer["stored_verdict"].is_null());
  EXPECT_EQ(answer["referenced_by"], json::array());
  // explain stores nothing.
  EXPECT_FALSE(meta_->get_verdict(digest('a')));

  // The layer: referenced only by the denied manifest.
  answer = run(policy, "a.io/it/bad@" + digest('c').str());
  EXPECT_EQ(answer["kind"], "blob");
  EXPECT_EQ(answer["decision"], "deny");
  EXPECT_EQ(answer["served"], false);
  EXPECT_EQ(answer["referenced_by"], json::array({digest('a').str()}));
  EXPECT_EQ(answer["reasons"][0], "manifest " + digest('a').str() + ": rule 1 of scope default denies it/bad@" +
                                      digest('a').str() + ": CVE");
}

TEST_F(ExplainTest, WithAnIdentityTheAccessSectionIsDecidedToo) {
  auto policy = parsed(R"({"access": {"groups": {"prod-nodes": ["node-1"]},
                                      "rules": [{"repository": "prod/**", "who": ["prod-nodes"]}],
                                      "others": ["*"]}})");
  cache_image("a.io", "prod/api", "v1", digest('a'));
  auto query = query_of("a.io/prod/api:v1");
  EXPECT_FALSE(explain(*meta_, policy, {}, query, now_).contains("access")) << "no identity asked about";
  query.identity = "node-1";
  auto answer = explain(*meta_, policy, {}, query, now_);
  EXPECT_EQ(answer["access"], (json{{"identity", "node-1"}, {"may_pull", true}, {"by", "access.rules[0]"}}));
  EXPECT_EQ(answer["served"], true);
  query.identity = "ci";
  answer = explain(*meta_, policy, {}, query, now_);
  EXPECT_EQ(answer["access"], (json{{"identity", "ci"}, {"may_pull", false}, {"by", "access.rules[0]"}}));
  EXPECT_EQ(answer["decision"], "allow") << "the gate's decision on the image stays what it is";
  EXPECT_EQ(answer["served"], false) << "but ci is not served it";
  query.identity = "anonymous";
  EXPECT_EQ(explain(*meta_, parsed("{}"), {}, query, now_)["access"],
            (json{{"identity", "anonymous"}, {"may_pull", true}, {"by", "the policy has no access section"}}));
}

TEST_F(ExplainTest, RunTimeExceptionTurnsTheDenyAround) {
  auto policy = parsed(deny_bad);
  cache_image("a.io", "it/bad", "v1", digest('a'));
  std::vector<policy::Exception> extra = {
      policy::Exception{"RT-7", digest('a'), "", "", "rollback", "bob", now_ + hours(1)}};
  auto answer = run(policy, "a.io/it/bad:v1", extra);
  EXPECT_EQ(answer["decision"], "allow");
  EXPECT_EQ(answer["served"], true);
  EXPECT_EQ(answer["source"], "exception");
  EXPECT_EQ(answer["exception"]["id"], "RT-7");
  EXPECT_EQ(answer["exception"]["origin"], "runtime");
  EXPECT_EQ(answer["exception"]["who"], "bob");
  EXPECT_EQ(answer["reasons"][1], "set aside: rule 1 of scope default denies it/bad:v1: CVE");

  // Expired: the deny is back.
  extra[0].expires = now_;
  EXPECT_EQ(run(policy, "a.io/it/bad:v1", extra)["decision"], "deny");
}

TEST_F(ExplainTest, StoredVerdictsAndWhetherTheyCount) {
  auto policy = parsed("{}");
  cache_image("a.io", "it/app", "v1", digest('a'));
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now_.time_since_epoch()).count();

  meta_->put_verdict(digest('a'), cache::VerdictRecord{"deny", "manual", {"ops said no"}, "", "carol", now_ms, {}, ""});
  auto answer = run(policy, "a.io/it/app:v1");
  EXPECT_EQ(answer["decision"], "deny");
  EXPECT_EQ(answer["source"], "manual");
  EXPECT_EQ(answer["stored_verdict"]["counts"], true);
  EXPECT_EQ(answer["stored_verdict"]["set_by"], "carol");
  EXPECT_EQ(answer["reasons"], json::array({"manual verdict: deny (ops said no)"}));

  // An expired manual verdict does not count.
  meta_->put_verdict(digest('a'), cache::VerdictRecord{"deny", "manual", {"x"}, "", "carol", now_ms, now_ms - 1, ""});
  answer = run(policy, "a.io/it/app:v1");
  EXPECT_EQ(answer["decision"], "allow");
  EXPECT_EQ(answer["source"], "default");
  EXPECT_EQ(answer["stored_verdict"]["counts"], false);
  EXPECT_NE(answer["stored_verdict"]["why_not"].get<std::string>().find("expired"), std::string::npos);

  // A computed verdict from another policy version does not count.
  meta_->put_verdict(digest('a'), cache::VerdictRecord{"deny", "rule", {"old rule"}, "sha256:old", "", now_ms, {}, "default"});
  answer = run(policy, "a.io/it/app:v1");
  EXPECT_EQ(answer["decision"], "allow");
  EXPECT_EQ(answer["stored_verdict"]["counts"], false);
  EXPECT_NE(answer["stored_verdict"]["why_not"].get<std::string>().find("sha256:old"), std::string::npos);

  // Under the current version it does.
  meta_->put_verdict(digest('a'), cache::VerdictRecord{"deny", "rule", {"old rule"}, policy.version, "", now_ms, {}, "default"});
  answer = run(policy, "a.io/it/app:v1");
  EXPECT_EQ(answer["decision"], "deny");
  EXPECT_EQ(answer["source"], "rule");
}

TEST_F(ExplainTest, ADeniedIndexDeniesItsChildAndSharedLayersFollowTheServedImage) {
  auto policy = parsed(R"({"default": {"rules": [{"action": "deny", "repository": "it/multi", "tag": "v1"}]}})");
  cache_image("a.io", "it/multi", "v1", digest('1'));
  meta_->add_references(digest('1'), {digest('2')});  // the index lists a child
  meta_->mark_seen(digest('2'), "a.io", "it/multi");
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now_.time_since_epoch()).count();
  // What the gate stored when the index was pulled by tag.
  meta_->put_verdict(digest('1'), cache::VerdictRecord{"deny", "rule", {"rule 1 denies"}, policy.version, "", now_ms, {}, "default"});
  meta_->put_manifest(digest('2'), cache::ManifestRecord{"application/vnd.oci.image.manifest.v1+json", "{}", 1});
  auto answer = run(policy, "a.io/it/multi@" + digest('2').str());
  EXPECT_EQ(answer["kind"], "manifest");
  EXPECT_EQ(answer["decision"], "deny");
  EXPECT_EQ(answer["source"], "index");
  EXPECT_EQ(answer["reasons"], json::array({"index " + digest('1').str() + ": rule 1 denies"}));
  EXPECT_EQ(answer["referenced_by"], json::array({digest('1').str()}));

  // A layer shared with an allowed image is served through it.
  cache_image("a.io", "it/good", "v1", digest('3'));
  meta_->add_references(digest('2'), {digest('d')});
  meta_->add_references(digest('3'), {digest('d')});
  answer = run(policy, "a.io/it/good@" + digest('d').str());
  EXPECT_EQ(answer["kind"], "blob");
  EXPECT_EQ(answer["decision"], "allow");
  EXPECT_EQ(answer["served"], true);
  EXPECT_EQ(answer["reasons"], json::array({"referenced by manifest " + digest('3').str() + ", which is served"}));
}

// explain must decide exactly as the gate: compare on the same store and policy,
// before the gate stored a verdict and after.
TEST_F(ExplainTest, SameDecisionAsTheGate) {
  auto policy = parsed(R"({
    "scopes": [{"name": "lenient", "repository": "it/warned", "mode": "warn",
                "rules": [{"action": "deny", "reason": "legacy"}]},
               {"name": "strict", "repository": "prod/**", "unknown": "deny"}],
    "default": {"rules": [{"action": "deny", "repository": "it/bad", "reason": "CVE"},
                          {"action": "deny", "repository": "it/kid", "reason": "retired"},
                          {"action": "warn", "tag": "latest", "reason": "pin a version"}]},
    "exceptions": [{"id": "P-1", "repository": "it/excused", "expires": "2200-01-01T00:00:00Z"},
                   {"id": "P-2", "digest": "sha256:)" + std::string(64, '7') + R"(", "expires": "2200-01-01T00:00:00Z"}]})");
  PolicyHolder holder(policy);
  AuditLog audit(dir_ / "audit.log", 1 << 20, 2);
  PullgateMetrics metrics;
  Gate gate(*meta_, holder, audit, metrics);

  struct Case {
    std::string upstream, repository, tag;
    char fill;
  };
  std::vector<Case> cases = {{"a.io", "it/bad", "v1", 'a'},     {"a.io", "it/good", "latest", 'b'},
                             {"a.io", "it/good", "v2", 'c'},    {"a.io", "it/warned", "v1", 'd'},
                             {"a.io", "prod/api", "v1", 'e'},   {"a.io:5000", "it/excused", "v1", 'f'},
                             {"a.io", "it/bad", "latest", '0'}};
  for (int round = 0; round < 2; ++round) {
    for (auto& c : cases) {
      cache_image(c.upstream, c.repository, c.tag, digest(c.fill));
      auto answer = run(policy, c.upstream + "/" + c.repository + ":" + c.tag);
      auto decided = gate.decide(c.upstream, c.repository, c.tag, digest(c.fill));
      SCOPED_TRACE(c.repository + ":" + c.tag + " round " + std::to_string(round));
      EXPECT_EQ(answer["decision"], policy::to_string(decided.decision));
      EXPECT_EQ(answer["served"], decided.serve);
      EXPECT_EQ(answer["mode"], policy::to_string(decided.mode));
      EXPECT_EQ(answer["source"], decided.source);
      EXPECT_EQ(answer["reasons"], json(decided.reasons));
      EXPECT_EQ(answer["exception"].is_null() ? "" : answer["exception"]["id"].get<std::string>(),
                decided.exception_id);
      EXPECT_EQ(answer["scope"], decided.scope);
    }
  }

  // A child excepted by digest, listed by a refused index: refused with the index's
  // reasons, and no exception named (it did not decide).
  cache_image("a.io", "it/kid", "v1", digest('9'));
  meta_->add_references(digest('9'), {digest('7')});
  meta_->mark_seen(digest('7'), "a.io", "it/kid");
  meta_->put_manifest(digest('7'), cache::ManifestRecord{"application/vnd.oci.image.manifest.v1+json", "{}", 1});
  auto answer = run(policy, "a.io/it/kid@" + digest('7').str());
  auto decided = gate.decide("a.io", "it/kid", std::nullopt, digest('7'));
  EXPECT_EQ(decided.decision, policy::Decision::deny);
  EXPECT_EQ(decided.source, "index");
  EXPECT_EQ(decided.exception_id, "");
  EXPECT_EQ(answer["decision"], "deny");
  EXPECT_EQ(answer["source"], "index");
  EXPECT_TRUE(answer["exception"].is_null());
  EXPECT_EQ(answer["reasons"], json(decided.reasons));
}

}  // namespace
}  // namespace pullgate::proxy
