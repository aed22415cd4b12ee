#pragma once
// SLSA provenance as the gate reads it: an in-toto statement's predicate
// (https://slsa.dev/provenance/v0.2 or /v1) reduced to what policies name (the
// builder, the build type, the source repository and ref), and a scope's conditions
// held up to it. Pure: the statement's bytes in (its signature is checked by the
// caller), one line out.
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "policy/policy.hpp"

namespace pullgate::policy {

inline constexpr std::string_view slsa_provenance_v02 = "https://slsa.dev/provenance/v0.2";
inline constexpr std::string_view slsa_provenance_v1 = "https://slsa.dev/provenance/v1";

bool is_provenance_predicate(std::string_view predicate_type);

struct Provenance {
  std::string predicate_type;
  std::string builder_id;
  std::string build_type;
  std::string source_uri;         // as written ("git+https://github.com/acme/app@refs/tags/v1")
  std::string source_repository;  // "github.com/acme/app": no scheme, no "git+", no ".git", no ref
  std::string source_ref;         // "refs/tags/v1", when the source names one
};

// Reads a statement (JSON) whose predicate is SLSA provenance v0.2 or v1: the builder
// (v0.2 predicate.builder.id, v1 runDetails.builder.id), the build type (buildType,
// buildDefinition.buildType) and the source (v0.2 invocation.configSource.uri, else
// the first material; v1 the GitHub workflow's externalParameters.workflow.repository
// and ref, else the first resolved dependency). One line when it cannot be read.
std::variant<Provenance, std::string> read_provenance(std::string_view statement_json);

// Empty when `provenance` meets every condition of `required`; else one line naming
// the first that it does not ("builder ... is not ...").
std::string provenance_unmet(const ProvenancePolicy& required, const Provenance& provenance);

// "built by BUILDER from SOURCE (build type TYPE)": what a provenance says, for reasons.
std::string describe_provenance(const Provenance& provenance);

}  // namespace pullgate::policy
