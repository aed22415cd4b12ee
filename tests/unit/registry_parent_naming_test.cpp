#include "registry/parent_naming.hpp"

#include <gtest/gtest.h>

namespace pullgate::registry {
namespace {

const ParentNaming hub_ns{"registry-1.docker.io", ParentNaming::Form::ns};
const ParentNaming ghcr_path{"ghcr.io", ParentNaming::Form::path};

TEST(ParentNaming, TheNsFormAddsTheUpstreamToEveryRequest) {
  EXPECT_EQ(name_for_parent("/v2/library/nginx/manifests/1.25", hub_ns),
            "/v2/library/nginx/manifests/1.25?ns=registry-1.docker.io");
  EXPECT_EQ(name_for_parent("/v2/library/nginx/tags/list?n=2&last=a", hub_ns),
            "/v2/library/nginx/tags/list?n=2&last=a&ns=registry-1.docker.io");
  EXPECT_EQ(name_for_parent("/v2/", hub_ns), "/v2/?ns=registry-1.docker.io");
  // An ns already there names another upstream: it is replaced, not doubled.
  EXPECT_EQ(name_for_parent("/v2/a/tags/list?ns=other.io&n=1", hub_ns), "/v2/a/tags/list?n=1&ns=registry-1.docker.io");
  // A port's colon is escaped, as containerd sends it.
  EXPECT_EQ(name_for_parent("/v2/a/blobs/sha256:00", ParentNaming{"reg.corp:5000", ParentNaming::Form::ns}),
            "/v2/a/blobs/sha256:00?ns=reg.corp%3A5000");
}

TEST(ParentNaming, ThePathFormLeadsTheRepositoryWithTheUpstream) {
  EXPECT_EQ(name_for_parent("/v2/team/app/manifests/v1", ghcr_path), "/v2/ghcr.io/team/app/manifests/v1");
  EXPECT_EQ(name_for_parent("/v2/team/app/tags/list?n=1", ghcr_path), "/v2/ghcr.io/team/app/tags/list?n=1");
  // The base names no repository: nothing to lead.
  EXPECT_EQ(name_for_parent("/v2/", ghcr_path), "/v2/");
}

TEST(ParentNaming, ScopesAndLinksNameTheRepositoryAsTheParentDoes) {
  EXPECT_EQ(scope_for_parent("repository:team/app:pull", ghcr_path), "repository:ghcr.io/team/app:pull");
  EXPECT_EQ(scope_for_parent("repository:team/app:pull", hub_ns), "repository:team/app:pull");
  EXPECT_EQ(scope_for_parent("", ghcr_path), "");
  EXPECT_EQ(repository_at_parent("team/app", ghcr_path), "ghcr.io/team/app");
  EXPECT_EQ(repository_at_parent("library/nginx", hub_ns), "library/nginx");
}

TEST(ParentNaming, FormsParseFromTheirConfigNames) {
  EXPECT_EQ(parse_parent_naming("ns"), ParentNaming::Form::ns);
  EXPECT_EQ(parse_parent_naming("path"), ParentNaming::Form::path);
  EXPECT_FALSE(parse_parent_naming("prefix"));
  EXPECT_FALSE(parse_parent_naming(""));
  EXPECT_EQ(to_string(ParentNaming::Form::path), "path");
  EXPECT_EQ(query_without_ns("ns=a&n=1&&ns=b&last=x"), "n=1&last=x");
}

}  // namespace
}  // namespace pullgate::registry
