// What `pullgate prefetch` asks the mirror for: platforms, the mirror's address,
// request targets, an index's children, the result lines.
#include "proxy/prefetch/plan.hpp"

#include <gtest/gtest.h>

namespace pullgate::proxy::prefetch {
namespace {

using registry::Descriptor;
using registry::Digest;
using registry::Platform;

Digest digest(char hex) { return Digest::parse("sha256:" + std::string(64, hex)).value(); }

Descriptor child(char c, std::optional<Platform> platform) {
  Descriptor d{"application/vnd.oci.image.manifest.v1+json", digest(c), 100, std::move(platform), ""};
  return d;
}

std::vector<Descriptor> blobs(std::string_view chars) {
  std::vector<Descriptor> out;
  for (char c : chars) out.push_back(child(c, std::nullopt));
  return out;
}

ExplainQuery query(std::string upstream, std::string repository) {
  ExplainQuery q;
  q.image = upstream + "/" + repository + ":v1";
  q.upstream = std::move(upstream);
  q.repository = std::move(repository);
  q.tag = "v1";
  return q;
}

TEST(PrefetchPlan, PlatformsParseAsOsArchAndVariant) {
  auto p = parse_platform("linux/arm/v7");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->os, "linux");
  EXPECT_EQ(p->architecture, "arm");
  EXPECT_EQ(p->variant, "v7");
  p = parse_platform("linux/amd64");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->variant, "");
  for (auto bad : {"", "linux", "linux/", "/amd64", "linux/arm/v7/x", "Linux/AMD64", "linux//amd64", "linux/amd 64"})
    EXPECT_FALSE(parse_platform(bad)) << bad;
}

TEST(PrefetchPlan, PlatformsMatchOsArchAndTheVariantOnlyWhenAskedFor) {
  Platform arm64{"linux", "arm64", ""};
  EXPECT_TRUE(platform_matches(arm64, Platform{"linux", "arm64", ""}));
  EXPECT_TRUE(platform_matches(arm64, Platform{"linux", "arm64", "v8"}));
  EXPECT_FALSE(platform_matches(arm64, Platform{"linux", "amd64", ""}));
  EXPECT_FALSE(platform_matches(arm64, Platform{"windows", "arm64", ""}));
  EXPECT_FALSE(platform_matches(arm64, std::nullopt)) << "an entry without a platform is no platform's";
  // arm64's unnamed variant is v8, both ways.
  EXPECT_TRUE(platform_matches(Platform{"linux", "arm64", "v8"}, Platform{"linux", "arm64", ""}));
  EXPECT_TRUE(platform_matches(Platform{"linux", "arm", "v7"}, Platform{"linux", "arm", "v7"}));
  EXPECT_FALSE(platform_matches(Platform{"linux", "arm", "v7"}, Platform{"linux", "arm", "v6"}));
  EXPECT_FALSE(platform_matches(Platform{"linux", "arm", "v7"}, Platform{"linux", "arm", ""}));
}

TEST(PrefetchPlan, AnIndexGivesAllItsChildrenOrThoseOfThePlatform) {
  registry::ParsedManifest index;
  index.is_index = true;
  index.children.push_back(child('a', Platform{"linux", "amd64", ""}));
  index.children.push_back(child('b', Platform{"linux", "arm64", "v8"}));
  index.children.push_back(child('c', std::nullopt));
  EXPECT_EQ(children_to_fetch(index, std::nullopt).size(), 3u);
  auto arm = children_to_fetch(index, Platform{"linux", "arm64", ""});
  ASSERT_EQ(arm.size(), 1u);
  EXPECT_EQ(arm[0].digest, digest('b'));
  EXPECT_TRUE(children_to_fetch(index, Platform{"linux", "s390x", ""}).empty());
  EXPECT_EQ(platform_name(index.children[1].platform), "linux/arm64/v8");
  EXPECT_EQ(platform_name(std::nullopt), "unknown");
}

TEST(PrefetchPlan, TheMirrorIsReachedAtItsListenAddress) {
  EXPECT_EQ(mirror_url_of("0.0.0.0:5000", false), "http://127.0.0.1:5000");
  EXPECT_EQ(mirror_url_of("[::]:5000", false), "http://[::1]:5000");
  EXPECT_EQ(mirror_url_of("10.1.2.3:443", true), "https://10.1.2.3:443");
  EXPECT_EQ(mirror_url_of("[fd00::1]:80", false), "http://[fd00::1]:80");
  EXPECT_FALSE(mirror_url_of("nonsense", false));
}

TEST(PrefetchPlan, TargetsNameTheUpstreamAsContainerdDoes) {
  auto q = query("127.0.0.1:5000", "it/app");
  EXPECT_EQ(manifest_target(q, "v1"), "/v2/it/app/manifests/v1?ns=127.0.0.1%3A5000");
  EXPECT_EQ(blob_target(q, digest('a')), "/v2/it/app/blobs/sha256:" + std::string(64, 'a') + "?ns=127.0.0.1%3A5000");
  EXPECT_EQ(manifest_target(query("docker.io", "library/nginx"), digest('b').str()),
            "/v2/library/nginx/manifests/" + digest('b').str() + "?ns=docker.io");
}

TEST(PrefetchPlan, AnOciErrorBodyGivesItsFirstErrorOnOneLine) {
  EXPECT_EQ(oci_error_message(R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"no\nsuch"},{"code":"X"}]})"),
            "MANIFEST_UNKNOWN: no such");
  EXPECT_EQ(oci_error_message(R"({"errors":[{"code":"UNKNOWN"}]})"), "UNKNOWN");
  EXPECT_EQ(oci_error_message("<html>bad gateway</html>"), "");
  EXPECT_EQ(oci_error_message(R"({"errors":[]})"), "");
  EXPECT_EQ(oci_error_message(R"({"errors":[{"code":"DENIED","message":")" + std::string(5000, 'x') + R"("}]})")
                .size(),
            1000u);
}

TEST(PrefetchPlan, BlobsAreCountedOnceAcrossManifests) {
  std::vector<registry::ParsedManifest> manifests(2);
  manifests[0].blobs = blobs("cea");
  manifests[1].blobs = blobs("deb");
  std::vector<Digest> digests;
  for (auto& b : blobs_of(manifests)) digests.push_back(b.digest);
  EXPECT_EQ(digests, (std::vector<Digest>{digest('c'), digest('e'), digest('a'), digest('d'), digest('b')}));
}

TEST(PrefetchPlan, ResultLines) {
  EXPECT_EQ(ok_line("up/it/app:v1", digest('a'), 3, 1234), "ok up/it/app:v1 " + digest('a').str() + " 3 blobs, 1234 bytes");
  EXPECT_EQ(denied_line("up/it/bad:v1", digest('b').str(), "rule 1 denies it"),
            "denied up/it/bad:v1 " + digest('b').str() + ": rule 1 denies it");
  EXPECT_EQ(failed_line("up/it/gone:v1", "the mirror answered 404"), "failed up/it/gone:v1: the mirror answered 404");
}

}  // namespace
}  // namespace pullgate::proxy::prefetch
