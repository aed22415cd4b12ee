#pragma once
// How an edge mirror names the original upstream to a parent mirror (a regional
// pullgate serving several upstreams): containerd's `?ns=<upstream>` on every /v2/
// request, or the path prefix `/v2/<upstream>/<repository>/...`. The edge keeps
// its own names (its repository, its scopes); only what goes on the wire changes,
// here, in one place.
#include <optional>
#include <string>
#include <string_view>

namespace pullgate::registry {

struct ParentNaming {
  enum class Form { ns, path };
  std::string upstream;  // the name the parent knows the original upstream by, e.g. "ghcr.io"
  Form form = Form::ns;
};

// "ns" or "path"; nullopt for anything else.
std::optional<ParentNaming::Form> parse_parent_naming(std::string_view text);
std::string_view to_string(ParentNaming::Form form);

// An origin-form target as the parent must get it: a /v2/<repository>/... target with
// `ns=<upstream>` added to its query (Form::ns) or its repository led by the upstream
// (Form::path). The base `/v2/` (and anything outside /v2/) gets ns= in the ns form
// and is left alone in the path form, which names no repository there.
std::string name_for_parent(std::string_view target, const ParentNaming& naming);

// A query string (without its '?') without its ns= parameters.
std::string query_without_ns(std::string_view query);

// A bearer scope ("repository:<name>:pull") as the parent names the repository: the
// path form leads it with the upstream, the ns form leaves it.
std::string scope_for_parent(std::string_view scope, const ParentNaming& naming);

// The repository as it appears in the parent's own answers (its Link headers).
std::string repository_at_parent(std::string_view repository, const ParentNaming& naming);

}  // namespace pullgate::registry
