#include "registry/route.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pullgate::registry {
namespace {

const std::string digest_text = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

bool known_alias(std::string_view segment) {
  return segment == "docker.io" || segment == "127.0.0.1:5000" || segment == "ghcr";
}

Route route_ok(std::string_view target, const AliasPredicate& is_alias = known_alias) {
  auto result = parse_route(target, is_alias);
  if (auto* error = std::get_if<RouteError>(&result)) {
    ADD_FAILURE() << "refused " << target << ": " << error->status << " " << error->message;
    return {};
  }
  return std::get<Route>(std::move(result));
}

RouteError route_error(std::string_view target, const AliasPredicate& is_alias = known_alias) {
  auto result = parse_route(target, is_alias);
  if (auto* error = std::get_if<RouteError>(&result)) return *error;
  ADD_FAILURE() << "accepted " << target;
  return {0, ErrorCode::unknown, ""};
}

struct RouteCase {
  std::string target;
  RouteKind kind;
  std::string repository;  // empty for base/health/ready
  std::string reference;   // manifest reference, blob/referrers digest, else empty
  std::string alias;       // empty when none
};

TEST(Route, Kinds) {
  const RouteCase cases[] = {
      {"/v2/", RouteKind::base, "", "", ""},
      {"/v2", RouteKind::base, "", "", ""},
      {"/v2/?ns=docker.io", RouteKind::base, "", "", ""},
      {"/healthz", RouteKind::health, "", "", ""},
      {"/readyz", RouteKind::ready, "", "", ""},
      {"/v2/library/nginx/manifests/latest", RouteKind::manifest, "library/nginx", "latest", ""},
      {"/v2/nginx/manifests/" + digest_text, RouteKind::manifest, "nginx", digest_text, ""},
      {"/v2/a/b/c/blobs/" + digest_text, RouteKind::blob, "a/b/c", digest_text, ""},
      {"/v2/a/blobs/uploads/", RouteKind::blob_upload, "a", "", ""},
      {"/v2/a/blobs/uploads", RouteKind::blob_upload, "a", "", ""},
      {"/v2/a/blobs/uploads/1f2e-uuid", RouteKind::blob_upload, "a", "", ""},
      {"/v2/a/blobs/uploads/" + digest_text, RouteKind::blob_upload, "a", "", ""},
      {"/v2/a/tags/list", RouteKind::tags_list, "a", "", ""},
      {"/v2/a/referrers/" + digest_text, RouteKind::referrers, "a", digest_text, ""},
      // Keywords inside names: the right-most structure wins.
      {"/v2/manifests/manifests/latest", RouteKind::manifest, "manifests", "latest", ""},
      {"/v2/a/manifests/b/manifests/c", RouteKind::manifest, "a/manifests/b", "c", ""},
      {"/v2/blobs/blobs/" + digest_text, RouteKind::blob, "blobs", digest_text, ""},
      {"/v2/tags/list/tags/list", RouteKind::tags_list, "tags/list", "", ""},
      {"/v2/a/blobs/uploads/x/blobs/" + digest_text, RouteKind::blob, "a/blobs/uploads/x", digest_text, ""},
      {"/v2/a/blobs/uploads/manifests/v1", RouteKind::manifest, "a/blobs/uploads", "v1", ""},
      {"/v2/referrers/tags/list", RouteKind::tags_list, "referrers", "", ""},
      // Aliases.
      {"/v2/docker.io/library/nginx/manifests/1.25", RouteKind::manifest, "library/nginx", "1.25", "docker.io"},
      {"/v2/127.0.0.1:5000/app/blobs/" + digest_text, RouteKind::blob, "app", digest_text, "127.0.0.1:5000"},
      {"/v2/127.0.0.1%3A5000/app/tags/list", RouteKind::tags_list, "app", "", "127.0.0.1:5000"},
      {"/v2/ghcr/org/tool/referrers/" + digest_text, RouteKind::referrers, "org/tool", digest_text, "ghcr"},
      // An alias alone cannot be the repository: "ghcr" is then the name itself.
      {"/v2/ghcr/manifests/latest", RouteKind::manifest, "ghcr", "latest", ""},
      // Percent-decoding of ordinary characters.
      {"/v2/%6cibrary/nginx/manifests/%6catest", RouteKind::manifest, "library/nginx", "latest", ""},
      {"/v2/a/manifests/sha256%3Aba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
       RouteKind::manifest, "a", digest_text, ""},
      // Absolute form.
      {"http://mirror.local:5000/v2/a/manifests/v1", RouteKind::manifest, "a", "v1", ""},
      {"HTTPS://mirror.local/v2/a/tags/list?n=5", RouteKind::tags_list, "a", "", ""},
      {"http://mirror.local/v2/", RouteKind::base, "", "", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.target);
    const auto route = route_ok(c.target);
    EXPECT_EQ(route.kind, c.kind);
    if (c.repository.empty()) {
      EXPECT_FALSE(route.repository);
    } else {
      ASSERT_TRUE(route.repository);
      EXPECT_EQ(route.repository->str(), c.repository);
    }
    if (c.kind == RouteKind::manifest) {
      ASSERT_TRUE(route.reference);
      EXPECT_EQ(route.reference->str(), c.reference);
    } else {
      EXPECT_FALSE(route.reference);
    }
    if (c.kind == RouteKind::blob || c.kind == RouteKind::referrers) {
      ASSERT_TRUE(route.digest);
      EXPECT_EQ(route.digest->str(), c.reference);
    } else {
      EXPECT_FALSE(route.digest);
    }
    EXPECT_EQ(route.alias.value_or(""), c.alias);
  }
}

TEST(Route, NoAliasPredicateMeansNoAlias) {
  const auto route = route_ok("/v2/docker.io/library/nginx/manifests/latest", AliasPredicate{});
  // Without the predicate "docker.io" is part of the name, and "docker.io/library/nginx" is valid.
  EXPECT_FALSE(route.alias);
  ASSERT_TRUE(route.repository);
  EXPECT_EQ(route.repository->str(), "docker.io/library/nginx");
}

TEST(Route, ReferenceKinds) {
  const auto by_tag = route_ok("/v2/a/manifests/v1.0");
  ASSERT_TRUE(by_tag.reference);
  EXPECT_FALSE(by_tag.reference->is_digest());
  const auto by_digest = route_ok("/v2/a/manifests/" + digest_text);
  ASSERT_TRUE(by_digest.reference);
  EXPECT_TRUE(by_digest.reference->is_digest());
}

TEST(Route, Query) {
  const auto route = route_ok("/v2/a/tags/list?ns=registry-1.docker.io&n=50&last=v1%2B2&unknown=%zz&artifactType=application%2Fvnd.x%2Bjson");
  EXPECT_EQ(route.ns, "registry-1.docker.io");
  EXPECT_EQ(route.n, 50u);
  EXPECT_EQ(route.last, "v1+2");
  EXPECT_EQ(route.artifact_type, "application/vnd.x+json");

  const auto plus = route_ok("/v2/a/tags/list?last=a+b&ns=127.0.0.1%3A5000");
  EXPECT_EQ(plus.last, "a+b");  // '+' is not a space in a registry query
  EXPECT_EQ(plus.ns, "127.0.0.1:5000");

  const auto empty = route_ok("/v2/a/tags/list?&&ns=&");
  EXPECT_EQ(empty.ns, "");
  EXPECT_FALSE(empty.n);

  const auto huge = route_ok("/v2/a/tags/list?n=0");
  EXPECT_EQ(huge.n, 0u);

  const auto none = route_ok("/v2/a/manifests/latest?");
  EXPECT_FALSE(none.ns);
  EXPECT_FALSE(none.last);
  EXPECT_FALSE(none.artifact_type);
}

struct ErrorCase {
  std::string target;
  unsigned status;
  ErrorCode code;
};

TEST(Route, Refusals) {
  const ErrorCase cases[] = {
      // Dot segments, raw and encoded.
      {"/v2/a/../b/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a/./manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a/%2e%2e/b/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a/%2E/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a/manifests/..", 400, ErrorCode::name_invalid},
      {"/v2/../healthz", 400, ErrorCode::name_invalid},
      // Encoded '/', malformed escapes, NUL and control characters.
      {"/v2/library%2Fnginx/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/library%2fnginx/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a/manifests/lat%2Fest", 400, ErrorCode::name_invalid},
      {"/v2/a%/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a%4/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a%zz/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a/manifests/latest%00", 400, ErrorCode::name_invalid},
      {"/v2/a%0a/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a%7f/manifests/latest", 400, ErrorCode::name_invalid},
      {std::string("/v2/a\0/manifests/latest", 24), 400, ErrorCode::name_invalid},
      {"/v2/a\r\n/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a b/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/caf\xc3\xa9/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a/manifests/latest#frag", 400, ErrorCode::name_invalid},
      {"/v2/a/tags/list?ns=%00", 400, ErrorCode::name_invalid},
      {"/v2/a/tags/list?last=%g0", 400, ErrorCode::name_invalid},
      // A leading "." segment, which Boost.URL's segments view would hide.
      {"/./v2/a/manifests/latest", 400, ErrorCode::name_invalid},
      {"http://mirror.local/./v2/a/manifests/latest", 400, ErrorCode::name_invalid},
      // Absolute form: the authority must be one too, and the path escapes well-formed.
      {"http://mirror.local:x/v2/a/manifests/latest", 400, ErrorCode::name_invalid},
      {"http://mirror.local/v2/a%zz/manifests/latest", 400, ErrorCode::name_invalid},
      // Empty segments.
      {"/v2//a/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a//b/manifests/latest", 400, ErrorCode::name_invalid},
      {"//v2/a/manifests/latest", 400, ErrorCode::name_invalid},
      // Names.
      {"/v2/Library/nginx/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/caf%C3%A9/manifests/latest", 400, ErrorCode::name_invalid},
      {"/v2/a-/tags/list", 400, ErrorCode::name_invalid},
      {"/v2/" + std::string(256, 'a') + "/tags/list", 400, ErrorCode::name_invalid},
      // Alias followed by an invalid repository.
      {"/v2/docker.io/Nginx/manifests/latest", 400, ErrorCode::name_invalid},
      // Digests.
      {"/v2/a/blobs/sha256:abc", 400, ErrorCode::digest_invalid},
      {"/v2/a/blobs/latest", 400, ErrorCode::digest_invalid},
      {"/v2/a/blobs/SHA256:" + std::string(64, 'a'), 400, ErrorCode::digest_invalid},
      {"/v2/a/manifests/sha256:" + std::string(64, 'A'), 400, ErrorCode::digest_invalid},
      {"/v2/a/referrers/v1", 400, ErrorCode::digest_invalid},
      // Tags that cannot exist name no manifest (the distribution spec's pull tests
      // expect 404 MANIFEST_UNKNOWN for ".INVALID_MANIFEST_NAME").
      {"/v2/a/manifests/.hidden", 404, ErrorCode::manifest_unknown},
      {"/v2/a/manifests/.INVALID_MANIFEST_NAME", 404, ErrorCode::manifest_unknown},
      {"/v2/a/manifests/-x", 404, ErrorCode::manifest_unknown},
      {"/v2/a/manifests/" + std::string(129, 'x'), 404, ErrorCode::manifest_unknown},
      {"/v2/a/manifests/a%20b", 404, ErrorCode::manifest_unknown},
      // Query numbers.
      {"/v2/a/tags/list?n=abc", 400, ErrorCode::unsupported},
      {"/v2/a/tags/list?n=-1", 400, ErrorCode::unsupported},
      {"/v2/a/tags/list?n=", 400, ErrorCode::unsupported},
      {"/v2/a/tags/list?n=1e3", 400, ErrorCode::unsupported},
      {"/v2/a/tags/list?n=99999999999999999999999999", 400, ErrorCode::unsupported},
      {"/v2/a/tags/list?ns=a&ns=b", 400, ErrorCode::unsupported},
      // Unknown paths.
      {"/", 404, ErrorCode::name_unknown},
      {"", 404, ErrorCode::name_unknown},
      {"*", 404, ErrorCode::name_unknown},
      {"v2/a/manifests/latest", 404, ErrorCode::name_unknown},
      {"/v1/a/manifests/latest", 404, ErrorCode::name_unknown},
      {"/V2/a/manifests/latest", 404, ErrorCode::name_unknown},
      {"/v2/a", 404, ErrorCode::name_unknown},
      {"/v2/a/manifests", 404, ErrorCode::name_unknown},
      {"/v2/manifests/latest", 404, ErrorCode::name_unknown},
      {"/v2/a/tags", 404, ErrorCode::name_unknown},
      {"/v2/a/tags/list/", 404, ErrorCode::name_unknown},
      {"/v2/a/catalog", 404, ErrorCode::name_unknown},
      {"/v2/_catalog", 404, ErrorCode::name_unknown},
      {"/healthz/", 404, ErrorCode::name_unknown},
      {"/healthz/x", 404, ErrorCode::name_unknown},
      {"/metrics", 404, ErrorCode::name_unknown},
      {"http://host", 404, ErrorCode::name_unknown},
      {"http://host?ns=x", 404, ErrorCode::name_unknown},
      {"ftp://host/v2/", 404, ErrorCode::name_unknown},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.target.substr(0, 80));
    const auto error = route_error(c.target);
    EXPECT_EQ(error.status, c.status);
    EXPECT_EQ(code_name(error.code), code_name(c.code)) << error.message;
    EXPECT_FALSE(error.message.empty());
  }
}

TEST(Route, MessagesSayWhatIsWrong) {
  EXPECT_EQ(route_error("/nowhere").message, "not found");
  EXPECT_EQ(route_error("/v2/a/tags/list?n=x").message, "invalid n");
  EXPECT_NE(route_error("/v2/a/manifests/.x").message.find("tag"), std::string::npos);
  EXPECT_NE(route_error("/v2/a/manifests/" + std::string(200, 'x')).message.find("128"), std::string::npos);
}

TEST(Route, AliasPredicateSeesDecodedFirstSegmentOnly) {
  std::vector<std::string> asked;
  const AliasPredicate record = [&](std::string_view segment) {
    asked.emplace_back(segment);
    return false;
  };
  route_ok("/v2/a%2Db/c/manifests/latest", record);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], "a-b");
  asked.clear();
  route_ok("/v2/single/manifests/latest", record);
  EXPECT_TRUE(asked.empty());  // one segment left: it must be the repository
}

TEST(Route, HostileLongTargetsAreRefusedQuickly) {
  std::string deep = "/v2";
  for (int i = 0; i < 20000; ++i) deep += "/a";
  deep += "/manifests/latest";
  EXPECT_EQ(route_error(deep).code, ErrorCode::name_invalid);  // name over 255 chars

  std::string escapes = "/v2/";
  for (int i = 0; i < 20000; ++i) escapes += "%25";
  escapes += "/manifests/latest";
  EXPECT_EQ(route_error(escapes).code, ErrorCode::name_invalid);
}

TEST(QueryParams, SplitAndDecodedOnce) {
  const auto params = parse_query("a=1&&b=%41%2Bc+d&flag&e=&a=2&bad=%zz&");
  ASSERT_TRUE(params);
  const std::vector<std::pair<std::string, std::optional<std::string>>> expected = {
      {"a", "1"}, {"b", "A+c+d"}, {"flag", ""}, {"e", ""}, {"a", "2"}, {"bad", std::nullopt}};
  ASSERT_EQ(params->size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ((*params)[i].name, expected[i].first);
    EXPECT_EQ((*params)[i].value, expected[i].second) << (*params)[i].name;
  }
  EXPECT_EQ(parse_query("x=a=b")->front().value, "a=b");  // split at the first '='
  EXPECT_TRUE(parse_query("")->empty());
  EXPECT_FALSE(parse_query("ok=1&%zz=1"));  // a malformed name: nothing can be trusted
}

TEST(PercentDecode, Cases) {
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("abc"), "abc");
  EXPECT_EQ(percent_decode("%41%62%2f%2F"), "Ab//");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("%25"), "%");
  EXPECT_EQ(percent_decode("%2525"), "%25");  // decoded once, not twice
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
  EXPECT_EQ(percent_decode("%c3%a9"), "\xc3\xa9");
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("%4"));
  EXPECT_FALSE(percent_decode("abc%"));
  EXPECT_FALSE(percent_decode("%g1"));
  EXPECT_FALSE(percent_decode("%1g"));
  EXPECT_FALSE(percent_decode("%%41"));
}

}  // namespace
}  // namespace pullgate::registry
