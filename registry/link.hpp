#pragma once
// Link headers of paginated answers (tags/list, referrers), made to point at the
// mirror. The upstream names its own repository (library/nginx where the client said
// nginx, no path prefix) and may give an absolute URL to itself: passed through, a
// client would page on the wrong upstream, or go around the mirror.
#include <optional>
#include <string>
#include <string_view>

namespace pullgate::registry {

// Each `<target>; params` of `link` whose target's path is
// "/v2/<upstream_repository>/<endpoint>" becomes "</v2/<client_repository>/<endpoint>...>;
// params": an absolute URL loses its scheme and host, the query is kept but for an
// ns= (a parent mirror's, see parent_naming.hpp), and "ns=<ns>" is added when the
// client used ?ns=. Behind a parent mirror, `upstream_repository` is the repository
// as the parent names it (repository_at_parent). Links to anything else are dropped.
// nullopt when none is left (or the header cannot be read).
std::optional<std::string> mirror_link(std::string_view link, std::string_view upstream_repository,
                                       std::string_view client_repository, std::optional<std::string_view> ns);

}  // namespace pullgate::registry
