// SLSA provenance in the policy (policy/provenance.hpp): a scope's conditions read from
// the document, statements of both predicate versions reduced to builder, build type
// and source, and the conditions held up to them, each failure one line naming it.
#include "policy/provenance.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace pullgate::policy {
namespace {

using nlohmann::json;

const std::string generator =
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.9.0";

// A statement as slsa-github-generator writes v0.2 provenance.
std::string v02(const std::string& builder = generator,
                const std::string& source = "git+https://github.com/acme/app@refs/tags/v1.4.0") {
  json statement = {{"_type", "https://in-toto.io/Statement/v0.1"},
                    {"subject", {{{"name", "app"}, {"digest", {{"sha256", std::string(64, 'a')}}}}}},
                    {"predicateType", "https://slsa.dev/provenance/v0.2"},
                    {"predicate",
                     {{"builder", {{"id", builder}}},
                      {"buildType", "https://github.com/slsa-framework/slsa-github-generator/generic@v1"},
                      {"invocation", {{"configSource", {{"uri", source}, {"entryPoint", ".github/workflows/release.yml"}}}}},
                      {"materials", {{{"uri", "git+https://github.com/other/repo@refs/heads/main"}}}}}}};
  return statement.dump();
}

// v1 provenance as GitHub's generator writes it (the workflow's repository and ref).
std::string v1_github() {
  json statement = {
      {"_type", "https://in-toto.io/Statement/v1"},
      {"subject", json::array()},
      {"predicateType", "https://slsa.dev/provenance/v1"},
      {"predicate",
       {{"buildDefinition",
         {{"buildType", "https://actions.github.io/buildtypes/workflow/v1"},
          {"externalParameters",
           {{"workflow", {{"ref", "refs/heads/main"}, {"repository", "https://github.com/Acme/App"}, {"path", ".github/workflows/ci.yml"}}}}}}},
        {"runDetails", {{"builder", {{"id", "https://github.com/actions/runner/github-hosted"}}}}}}}};
  return statement.dump();
}

// v1 provenance naming its source only as a resolved dependency.
std::string v1_dependency() {
  json statement = {
      {"_type", "https://in-toto.io/Statement/v1"},
      {"predicateType", "https://slsa.dev/provenance/v1"},
      {"predicate",
       {{"buildDefinition",
         {{"buildType", "https://tekton.dev/chains/v2/slsa"},
          {"resolvedDependencies", {{{"uri", "git+https://gitlab.example/team/svc.git@refs/tags/v2"}}}}}},
        {"runDetails", {{"builder", {{"id", "https://tekton.example/chains"}}}}}}}};
  return statement.dump();
}

Provenance read(const std::string& statement) {
  auto result = read_provenance(statement);
  if (auto* error = std::get_if<std::string>(&result)) {
    ADD_FAILURE() << *error;
    return {};
  }
  return std::get<Provenance>(result);
}

TEST(ProvenanceReadTest, BothVersionsGiveBuilderTypeAndSource) {
  const Provenance a = read(v02());
  EXPECT_EQ(a.predicate_type, slsa_provenance_v02);
  EXPECT_EQ(a.builder_id, generator);
  EXPECT_EQ(a.build_type, "https://github.com/slsa-framework/slsa-github-generator/generic@v1");
  EXPECT_EQ(a.source_repository, "github.com/acme/app");  // the config source before the materials
  EXPECT_EQ(a.source_ref, "refs/tags/v1.4.0");

  const Provenance b = read(v1_github());
  EXPECT_EQ(b.builder_id, "https://github.com/actions/runner/github-hosted");
  EXPECT_EQ(b.build_type, "https://actions.github.io/buildtypes/workflow/v1");
  EXPECT_EQ(b.source_repository, "github.com/Acme/App");
  EXPECT_EQ(b.source_ref, "refs/heads/main");

  const Provenance c = read(v1_dependency());
  EXPECT_EQ(c.source_repository, "gitlab.example/team/svc");  // no scheme, no git+, no .git
  EXPECT_EQ(c.source_ref, "refs/tags/v2");
  EXPECT_EQ(describe_provenance(c),
            "built by \"https://tekton.example/chains\" from gitlab.example/team/svc@refs/tags/v2 (build type "
            "\"https://tekton.dev/chains/v2/slsa\")");
}

TEST(ProvenanceReadTest, WhatIsNotProvenanceIsOneLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"not json", "the provenance statement is not JSON"},
      {R"({"predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}})",
       "the statement's predicate \"https://sigstore.dev/cosign/sign/v1\" is not SLSA provenance v0.2 or v1"},
      {R"({"predicateType": "https://slsa.dev/provenance/v1", "predicate": 3})",
       "the provenance statement has no predicate object"},
      {R"({"predicateType": "https://slsa.dev/provenance/v0.2", "predicate": {"builder": {"id": 5}}})",
       "the provenance names no builder id"},
  };
  for (const auto& [statement, words] : cases) {
    auto result = read_provenance(statement);
    ASSERT_TRUE(std::holds_alternative<std::string>(result)) << statement;
    EXPECT_EQ(std::get<std::string>(result), words);
  }
}

json ci_key() {
  return {{"ci", {{"pem", "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEaZXDtms2WLP1OHdUuNzsIKgM50Gk\nb18p2ZzXohW6ZHfNft5BGMyy9hhiPaVPMPYBu8FW2jns11w9ic8O1GRNCA==\n-----END PUBLIC KEY-----\n"}}}};
}

ProvenancePolicy required_by(const json& provenance) {
  json doc = {{"keys", ci_key()},
             {"scopes", {{{"name", "prod"}, {"repository", "prod/**"}, {"provenance", provenance}}}}};
  auto result = parse_policy(doc.dump());
  if (!result.policy) {
    ADD_FAILURE() << (result.errors.empty() ? "no policy" : result.errors.front());
    return {};
  }
  EXPECT_TRUE(result.policy->needs_signals);
  const Scope& scope = scope_for(*result.policy, "docker.io", "prod/app");
  EXPECT_TRUE(can_refuse(scope));
  return *scope.provenance;
}

TEST(ProvenancePolicyTest, ConditionsAreHeldUpToTheStatement) {
  const ProvenancePolicy ours = required_by({{"keys", {"ci"}},
                                             {"builder_id_regexp", "https://github\\.com/slsa-framework/slsa-github-generator/.*"},
                                             {"source_repository", "github.com/acme/*"},
                                             {"source_ref_regexp", "refs/tags/v.*"}});
  EXPECT_EQ(ours.signers.keys, std::vector<std::string>{"ci"});
  EXPECT_EQ(provenance_unmet(ours, read(v02())), "");
  EXPECT_EQ(provenance_unmet(ours, read(v02("https://evil.example/builder"))),
            "builder \"https://evil.example/builder\" is not matching "
            "\"https://github\\.com/slsa-framework/slsa-github-generator/.*\"");
  EXPECT_EQ(provenance_unmet(ours, read(v02(generator, "git+https://github.com/mallory/app@refs/tags/v1"))),
            "source \"github.com/mallory/app\" is not \"github.com/acme/*\"");
  EXPECT_EQ(provenance_unmet(ours, read(v02(generator, "git+https://github.com/acme/app@refs/heads/dev"))),
            "source ref \"refs/heads/dev\" is not matching \"refs/tags/v.*\"");
  // A glob matches names whatever their case (GitHub's are case-insensitive), one path
  // segment per '*'.
  const ProvenancePolicy any_acme = required_by({{"keys", {"ci"}}, {"source_repository", "github.com/acme/*"}});
  EXPECT_EQ(provenance_unmet(any_acme, read(v1_github())), "");
  EXPECT_EQ(provenance_unmet(any_acme, read(v02(generator, "git+https://github.com/acme/app/sub@refs/x"))),
            "source \"github.com/acme/app/sub\" is not \"github.com/acme/*\"");
  const ProvenancePolicy typed = required_by({{"keys", {"ci"}}, {"build_type", "https://tekton.dev/chains/v2/slsa"}});
  EXPECT_EQ(provenance_unmet(typed, read(v1_dependency())), "");
  EXPECT_EQ(provenance_unmet(typed, read(v1_github())),
            "build type \"https://actions.github.io/buildtypes/workflow/v1\" is not \"https://tekton.dev/chains/v2/slsa\"");
  // No conditions: any provenance by the signers.
  EXPECT_EQ(provenance_unmet(required_by({{"keys", {"ci"}}}), read(v1_dependency())), "");
}

TEST(ProvenancePolicyTest, MistakesAreOneLineNamingTheField) {
  const std::pair<json, std::string> cases[] = {
      {json::object(), "scopes[0].provenance: must list at least one key name"},
      {{{"keys", {"ci"}}, {"builder_id", "a"}, {"builder_id_regexp", "b"}},
       "scopes[0].provenance: give exactly one of builder_id (the exact text) or builder_id_regexp"},
      {{{"keys", {"ci"}}, {"source_repository", "https://github.com/acme/*"}},
       "scopes[0].provenance.source_repository: a glob on host/path without a scheme"},
      {{{"keys", {"ci"}}, {"source_ref_regexp", "(refs"}}, "scopes[0].provenance.source_ref_regexp: not a regular"},
      {{{"keys", {"ci"}}, {"builder", "x"}}, "scopes[0].provenance.builder: unknown field"},
      {{{"keys", {"nope"}}}, "scopes[0].provenance.keys[0]: no key named \"nope\""},
  };
  for (const auto& [provenance, words] : cases) {
    json doc = {{"keys", ci_key()},
                {"scopes", {{{"name", "prod"}, {"repository", "prod/**"}, {"provenance", provenance}}}}};
    auto result = parse_policy(doc.dump());
    EXPECT_FALSE(result.policy.has_value()) << provenance.dump();
    ASSERT_FALSE(result.errors.empty());
    EXPECT_NE(result.errors.front().find(words), std::string::npos) << result.errors.front() << "\nwanted: " << words;
  }
}

}  // namespace
}  // namespace pullgate::policy
