#include "registry/link.hpp"

#include <gtest/gtest.h>

namespace pullgate::registry {
namespace {

TEST(MirrorLink, RelativeLinkGetsTheClientsRepository) {
  EXPECT_EQ(mirror_link(R"(</v2/library/nginx/tags/list?last=1.25&n=2>; rel="next")", "library/nginx", "nginx",
                        std::nullopt),
            R"(</v2/nginx/tags/list?last=1.25&n=2>; rel="next")");
  // Path-prefix clients keep their prefix.
  EXPECT_EQ(mirror_link(R"(</v2/team/app/tags/list?n=1&last=a>; rel="next")", "team/app", "ghcr.io-alias/team/app",
                        std::nullopt),
            R"(</v2/ghcr.io-alias/team/app/tags/list?n=1&last=a>; rel="next")");
}

TEST(MirrorLink, AbsoluteLinkComesBackToTheMirror) {
  EXPECT_EQ(mirror_link(R"(<https://registry-1.docker.io/v2/library/nginx/tags/list?n=2&last=b>; rel="next")",
                        "library/nginx", "library/nginx", std::nullopt),
            R"(</v2/library/nginx/tags/list?n=2&last=b>; rel="next")");
}

TEST(MirrorLink, NsIsAddedForContainerdStyleClients) {
  EXPECT_EQ(mirror_link(R"(</v2/library/nginx/referrers/sha256:)" + std::string(64, 'a') + R"(?n=1>; rel="next")",
                        "library/nginx", "library/nginx", std::string_view("docker.io")),
            R"(</v2/library/nginx/referrers/sha256:)" + std::string(64, 'a') + R"(?n=1&ns=docker.io>; rel="next")");
  EXPECT_EQ(mirror_link(R"(</v2/a/tags/list>; rel="next")", "a", "a", std::string_view("my reg")),
            R"(</v2/a/tags/list?ns=my%20reg>; rel="next")");
}

TEST(MirrorLink, AParentMirrorsNsDoesNotReachTheClient) {
  // Asked with ?ns=ghcr.io, a parent pullgate's link carries it: the client of this
  // mirror gets its own ns, or none.
  EXPECT_EQ(mirror_link(R"(</v2/team/app/tags/list?n=1&last=a&ns=ghcr.io>; rel="next")", "team/app", "team/app",
                        std::nullopt),
            R"(</v2/team/app/tags/list?n=1&last=a>; rel="next")");
  EXPECT_EQ(mirror_link(R"(</v2/team/app/tags/list?ns=ghcr.io&n=1>; rel="next")", "team/app", "team/app",
                        std::string_view("edge-name")),
            R"(</v2/team/app/tags/list?n=1&ns=edge-name>; rel="next")");
  // Asked with the path form, its links carry the prefix: matched as the repository it was asked for.
  EXPECT_EQ(mirror_link(R"(</v2/ghcr.io/team/app/tags/list?n=1>; rel="next")", "ghcr.io/team/app", "team/app",
                        std::nullopt),
            R"(</v2/team/app/tags/list?n=1>; rel="next")");
}

TEST(MirrorLink, LinksElsewhereAreDropped) {
  EXPECT_FALSE(mirror_link(R"(</v2/other/repo/tags/list?n=1>; rel="next")", "team/app", "team/app", std::nullopt));
  EXPECT_FALSE(mirror_link(R"(</v2/team/app/manifests/latest>; rel="next")", "team/app", "team/app", std::nullopt));
  EXPECT_FALSE(mirror_link(R"(<https://evil.example/>; rel="next")", "team/app", "team/app", std::nullopt));
  // Of several, only the ones about this repository remain.
  EXPECT_EQ(mirror_link(R"(</v2/x/tags/list?n=1>; rel="next", </v2/y/tags/list>; rel="prev")", "x", "x", std::nullopt),
            R"(</v2/x/tags/list?n=1>; rel="next")");
}

TEST(MirrorLink, GarbageIsDropped) {
  for (std::string_view bad : {"", "next", "<", "</v2/x/tags/list", "</v2/x/tags/list\n>; rel=next",
                               "</v2/x/tags/list>; rel=\"next\"\r\nX-Injected: 1", "<https://host>; rel=\"next\""})
    EXPECT_FALSE(mirror_link(bad, "x", "x", std::nullopt)) << bad;
}

}  // namespace
}  // namespace pullgate::registry
