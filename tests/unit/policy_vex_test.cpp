// VEX documents (policy/vex.hpp), the "vulnerabilities.vex" policy field, and
// judge_report with VEX sources.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "policy/policy.hpp"
#include "policy/report.hpp"
#include "policy/vex.hpp"
#include "policy/vulnerabilities.hpp"
#include "tests/unit/fixtures.hpp"

namespace pullgate::policy {
namespace {

using json = nlohmann::json;

const std::string app_hex = "1f68475624e05e18b511c9925b291d8f2aa666ffeb29b17821c6c4200fed2132";
const std::string app = "sha256:" + app_hex;
const std::string other = "sha256:6e39086d3f9591de3f3c253612c4a997e4d7fcd2e632c615d8c481573c627a19";

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

std::string fixture(const std::string& name) { return testing_support::fixture_text("vex", name); }

VexDocument parsed(const std::string& text) {
  const VexParse result = parse_vex(text);
  EXPECT_TRUE(result.document) << result.error;
  return result.document ? *result.document : VexDocument{};
}

std::string error_of(const std::string& text) {
  const VexParse result = parse_vex(text);
  EXPECT_FALSE(result.document) << text;
  EXPECT_EQ(result.error.find('\n'), std::string::npos) << result.error;
  return result.error;
}

TimePoint at(const char* text) { return *parse_rfc3339(text); }

Finding finding(std::string id, std::string package = "openssl", std::string installed = "3.0.11-1~deb12u2",
                Severity severity = Severity::critical) {
  Finding out;
  out.id = std::move(id);
  out.package = std::move(package);
  out.installed_version = std::move(installed);
  out.fixed_version = "9.9.9";
  out.severity = severity;
  return out;
}

// An OpenVEX v0.2.0 document with `statements` as its statements, whatever they are.
std::string openvex_with(const json& statements, const std::string& timestamp = "2026-11-01T00:00:00Z") {
  return json{{"@context", "https://openvex.dev/ns/v0.2.0"},
              {"@id", "https://acme.example/vex/9"},
              {"author", "Acme PSIRT"},
              {"timestamp", timestamp},
              {"version", 1},
              {"statements", statements}}
      .dump();
}

// ... with a list of statements (a vector: `{statement}` as a json would be that object).
std::string openvex(const std::vector<json>& statements, const std::string& timestamp = "2026-11-01T00:00:00Z") {
  return openvex_with(json(statements), timestamp);
}

json statement(const std::string& status, const std::string& product = "pkg:oci/app@sha256%3A" + app_hex) {
  json out = {{"vulnerability", {{"name", "CVE-2024-1234"}}}, {"products", {{{"@id", product}}}}, {"status", status}};
  if (status == "not_affected") out["justification"] = "component_not_present";
  return out;
}

// ---- formats ----

TEST(VexParse, OpenVex020AsVexctlWritesIt) {
  const VexDocument document = parsed(fixture("openvex-v0.2.0.json"));
  EXPECT_EQ(document.format, VexFormat::openvex);
  EXPECT_EQ(document.id, "https://acme.example/vex/1");
  EXPECT_EQ(document.author, "Acme PSIRT");
  EXPECT_FALSE(document.in_toto);
  ASSERT_EQ(document.statements.size(), 3u);

  const VexStatement& first = document.statements[0];
  EXPECT_EQ(first.vulnerability, "CVE-2024-1234");
  EXPECT_EQ(first.status, VexStatus::not_affected);
  EXPECT_EQ(first.justification, "vulnerable_code_not_in_execute_path");
  EXPECT_EQ(first.impact_statement, "the TLS code is not linked");
  ASSERT_EQ(first.products.size(), 1u);
  ASSERT_EQ(first.products[0].subcomponents.size(), 1u);
  EXPECT_EQ(first.products[0].subcomponents[0].names,
            (std::vector<std::string>{"pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64"}));
  EXPECT_EQ(first.timestamp, at("2026-11-01T16:15:30.123456789Z"));

  const VexStatement& second = document.statements[1];
  EXPECT_EQ(second.vulnerability, "CVE-2023-45853");
  EXPECT_EQ(second.aliases, (std::vector<std::string>{"GHSA-2h3h-9f9r-87fv"}));
  EXPECT_EQ(second.status, VexStatus::affected);
  EXPECT_EQ(second.action_statement, "upgrade zlib1g to 1:1.3");

  const VexStatement& third = document.statements[2];
  EXPECT_EQ(third.status, VexStatus::fixed);
  EXPECT_EQ(third.products[0].names,
            (std::vector<std::string>{"https://acme.example/products/app", "pkg:oci/app@sha256:" + app_hex}));
  EXPECT_EQ(third.timestamp, document.timestamp) << "a statement without a time has the document's";
}

TEST(VexParse, OpenVex001WithStringProductsAndStatementSubcomponents) {
  const VexDocument document = parsed(fixture("openvex-v0.0.1.json"));
  ASSERT_EQ(document.statements.size(), 1u);
  const VexStatement& only = document.statements[0];
  EXPECT_EQ(only.vulnerability, "CVE-2023-12345");
  ASSERT_EQ(only.products.size(), 2u);
  EXPECT_EQ(only.products[1].names,
            (std::vector<std::string>{"pkg:oci/git@sha256:6e39086d3f9591de3f3c253612c4a997e4d7fcd2e632c615d8c481573c627a19"}));
  ASSERT_EQ(only.subcomponents.size(), 1u);
  EXPECT_TRUE(vex_covers(only, document, other, finding("cve-2023-12345", "git", "2.39.0-r1")));
  EXPECT_FALSE(vex_covers(only, document, other, finding("CVE-2023-12345", "curl", "")));
}

TEST(VexParse, CycloneDx15Vex) {
  const VexDocument document = parsed(fixture("cyclonedx-1.5-vex.json"));
  EXPECT_EQ(document.format, VexFormat::cyclonedx);
  EXPECT_EQ(document.id, "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79");
  EXPECT_EQ(document.author, "Acme PSIRT");
  ASSERT_EQ(document.statements.size(), 3u) << "the vulnerability without an analysis is a finding, not VEX";

  const VexStatement& openssl = document.statements[0];
  EXPECT_EQ(openssl.status, VexStatus::not_affected);
  EXPECT_EQ(openssl.justification, "code_not_reachable") << "CycloneDX justifications are kept as written";
  EXPECT_EQ(openssl.impact_statement, "the TLS code is not linked");
  EXPECT_EQ(openssl.action_statement, "will_not_fix");
  EXPECT_EQ(openssl.aliases, (std::vector<std::string>{"GHSA-xqr8-7jwr-rhp7"}));
  EXPECT_EQ(openssl.timestamp, at("2026-11-02T09:00:00Z"));
  EXPECT_TRUE(vex_names_image(openssl, document, app)) << "a package of metadata.component, the image";
  EXPECT_TRUE(vex_covers(openssl, document, app, finding("CVE-2024-1234")));
  EXPECT_TRUE(vex_covers(openssl, document, app, finding("GHSA-XQR8-7JWR-RHP7")));
  EXPECT_FALSE(vex_covers(openssl, document, app, finding("CVE-2024-1234", "libssl3")));
  EXPECT_FALSE(vex_covers(openssl, document, other, finding("CVE-2024-1234")));

  const VexStatement& zlib = document.statements[1];
  EXPECT_EQ(zlib.status, VexStatus::affected);
  EXPECT_EQ(zlib.timestamp, document.timestamp);
  EXPECT_TRUE(vex_covers(zlib, document, app, finding("CVE-2023-45853", "zlib1g", "1:1.2.13.dfsg-1")))
      << "the ref resolves to a purl whose percent-encoded version is the installed one";
  EXPECT_FALSE(vex_covers(zlib, document, app, finding("CVE-2023-45853", "zlib1g", "1:1.3")));

  const VexStatement& image = document.statements[2];
  EXPECT_EQ(image.status, VexStatus::fixed);
  EXPECT_TRUE(vex_covers(image, document, app, finding("CVE-2024-0727", "anything", "1")))
      << "about the image itself: any package";
}

TEST(VexParse, CycloneDxStatesMapToVexStatuses) {
  const std::pair<const char*, VexStatus> cases[] = {
      {"not_affected", VexStatus::not_affected},  {"false_positive", VexStatus::not_affected},
      {"resolved", VexStatus::fixed},             {"resolved_with_pedigree", VexStatus::fixed},
      {"exploitable", VexStatus::affected},       {"in_triage", VexStatus::under_investigation},
  };
  for (const auto& [state, status] : cases) {
    json bom = json::parse(fixture("cyclonedx-1.5-vex.json"));
    bom["specVersion"] = "1.6";
    bom["vulnerabilities"][0]["analysis"]["state"] = state;
    const VexDocument document = parsed(bom.dump());
    ASSERT_FALSE(document.statements.empty());
    EXPECT_EQ(document.statements[0].status, status) << state;
  }
}

TEST(VexParse, InTotoWrappedOpenVexIsAboutItsSubjects) {
  const VexDocument document = parsed(fixture("in-toto-openvex.json"));
  EXPECT_TRUE(document.in_toto);
  EXPECT_EQ(document.subjects, (std::vector<std::string>{app}));
  ASSERT_EQ(document.statements.size(), 2u);
  EXPECT_TRUE(vex_names_image(document.statements[0], document, app));
  EXPECT_FALSE(vex_names_image(document.statements[0], document, other));
  EXPECT_TRUE(vex_covers(document.statements[0], document, app, finding("CVE-2024-1234")));
  // A statement with products is about them, not the subjects.
  EXPECT_FALSE(vex_names_image(document.statements[1], document, app));
  EXPECT_TRUE(vex_names_image(document.statements[1], document, other));
}

TEST(VexParse, InTotoCycloneDxAsCosignWritesIt) {
  const json bom = json::parse(fixture("cyclonedx-1.5-vex.json"));
  const json subject = json::array({{{"name", "ghcr.io/acme/app"}, {"digest", {{"sha256", app_hex}}}}});
  const json predicates[] = {bom, json{{"Data", bom}}, json(bom.dump()), json{{"Data", bom.dump()}}};
  for (const char* type : {"https://cyclonedx.org/bom", "https://cyclonedx.org/vex"}) {
    for (const json& predicate : predicates) {
      const json statement = {{"_type", "https://in-toto.io/Statement/v1"},
                              {"predicateType", type},
                              {"subject", subject},
                              {"predicate", predicate}};
      const VexDocument document = parsed(statement.dump());
      EXPECT_TRUE(document.in_toto);
      EXPECT_EQ(document.format, VexFormat::cyclonedx);
      EXPECT_EQ(document.statements.size(), 3u) << predicate.dump().substr(0, 40);
    }
  }
}

TEST(VexParse, VexPredicateTypes) {
  for (const char* type : {"https://openvex.dev/ns", "https://openvex.dev/ns/v0.2.0", "https://openvex.dev/ns/v0.0.1",
                           "https://cyclonedx.org/vex", "https://cyclonedx.org/bom"}) {
    EXPECT_TRUE(is_vex_predicate(type)) << type;
  }
  for (const char* type : {"https://openvex.dev/ns/v9", "https://slsa.dev/provenance/v1", "https://spdx.dev/Document",
                           "https://cyclonedx.org/bom/extra", ""}) {
    EXPECT_FALSE(is_vex_predicate(type)) << type;
  }
}

// ---- errors ----

TEST(VexParse, MistakesAreOneLineNamingWhere) {
  json bad_status = json::parse(fixture("openvex-v0.2.0.json"));
  bad_status["statements"][2]["status"] = "maybe";
  EXPECT_EQ(error_of(bad_status.dump()),
            "statements[2].status: \"maybe\" is not a VEX status (not_affected, affected, fixed or under_investigation)");

  const std::pair<std::string, std::string> cases[] = {
      {"[]", "document: must be an object, not an array"},
      {"{", "document: not JSON: "},
      {"1E999999", "document: not JSON: "},
      {R"({"hello": 1})", "document: not an OpenVEX document"},
      {R"({"@context": "https://openvex.dev/ns/v9.0.0", "statements": []})", "@context: \"https://openvex.dev/ns/v9.0.0\" is not an OpenVEX version"},
      {openvex_with(json::array()).replace(openvex_with(json::array()).find("\"statements\""), 12, "\"statement\""), "statements: missing"},
      {openvex_with(json::object()), "statements: must be an array, not an object"},
      {openvex({{{"products", json::array()}, {"status", "affected"}}}), "statements[0].vulnerability: missing"},
      {openvex({{{"vulnerability", 7}, {"status", "affected"}}}), "statements[0].vulnerability: must be an object, not a number"},
      {openvex({{{"vulnerability", json::object()}, {"status", "affected"}}}), "statements[0].vulnerability: names no vulnerability"},
      {openvex({{{"vulnerability", {{"name", "CVE-1"}, {"aliases", {1}}}}, {"status", "affected"}}}),
       "statements[0].vulnerability.aliases[0]: must be a string, not a number"},
      {openvex({{{"vulnerability", "CVE-1"}, {"products", {json::object()}}, {"status", "affected"}}}),
       "statements[0].products[0]: names nothing (no @id or identifiers)"},
      {openvex({{{"vulnerability", "CVE-1"}, {"products", {{{"@id", "x"}, {"identifiers", {{"purl", false}}}}}}, {"status", "affected"}}}),
       "statements[0].products[0].identifiers.purl: must be a string, not a boolean"},
      {openvex({{{"vulnerability", "CVE-1"}, {"products", {{{"@id", "x"}, {"subcomponents", {""}}}}}, {"status", "affected"}}}),
       "statements[0].products[0].subcomponents[0]: must not be empty"},
      {openvex({{{"vulnerability", "CVE-1"}}}), "statements[0].status: missing"},
      {openvex({{{"vulnerability", "CVE-1"}, {"status", "not_affected"}}}),
       "statements[0]: not_affected needs a justification or an impact_statement"},
      {openvex({{{"vulnerability", "CVE-1"}, {"status", "not_affected"}, {"justification", "trust_me"}}}),
       "statements[0].justification: \"trust_me\" is not an OpenVEX justification"},
      {openvex({{{"vulnerability", "CVE-1"}, {"status", "affected"}, {"timestamp", "yesterday"}}}),
       "statements[0].timestamp: must be an RFC 3339 time, not \"yesterday\""},
      {openvex_with(json::array(), "soon"), "timestamp: must be an RFC 3339 time"},
      {R"({"bomFormat": "SPDX", "specVersion": "1.5"})", "bomFormat: \"SPDX\" is not \"CycloneDX\""},
      {R"({"bomFormat": "CycloneDX", "specVersion": "1.3", "vulnerabilities": []})",
       "specVersion: \"1.3\" is not a CycloneDX version with VEX (1.4 or later)"},
      {R"({"bomFormat": "CycloneDX", "specVersion": "1.5"})", "vulnerabilities: missing: a CycloneDX BOM without vulnerabilities holds no VEX"},
      {R"({"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "fine"}}]})",
       "vulnerabilities[0].analysis.state: \"fine\" is not a CycloneDX analysis state"},
      {R"({"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": [{"analysis": {"state": "exploitable"}}]})",
       "vulnerabilities[0].id: missing"},
      {R"({"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "exploitable"}, "affects": [{}]}]})",
       "vulnerabilities[0].affects[0].ref: missing"},
      {R"({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"bom-ref": 1}], "vulnerabilities": []})",
       "components[0].bom-ref: must be a string, not a number"},
      {R"({"_type": "https://in-toto.io/Statement/v2"})", "_type: \"https://in-toto.io/Statement/v2\" is not an in-toto statement type"},
      {R"({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1"})",
       "predicateType: \"https://slsa.dev/provenance/v1\" is not a VEX predicate type"},
      {R"({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://openvex.dev/ns", "subject": [{"digest": {"sha256": "ABC"}}], "predicate": {}})",
       "subject[0].digest.sha256: \"ABC\" is not 64 lowercase hex"},
      {R"({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://openvex.dev/ns", "subject": []})",
       "predicate: missing"},
      {R"({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://openvex.dev/ns", "subject": [], "predicate": 3})",
       "predicate: must be an object, not a number"},
      {R"({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://openvex.dev/ns", "subject": [], "predicate": "{"})",
       "predicate: a string that is not a document: document: not JSON: "},
      {R"({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://cyclonedx.org/vex", "subject": [], "predicate": {"@context": "https://openvex.dev/ns", "statements": []}})",
       "predicate: predicateType says CycloneDX, but this is an OpenVEX document"},
      {R"({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://openvex.dev/ns/v0.2.0", "subject": [], "predicate": {"bomFormat": "CycloneDX"}})",
       "predicate: predicateType says OpenVEX, but this is not an OpenVEX document"},
      {R"({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://openvex.dev/ns", "subject": [], "predicate": {"@context": "https://openvex.dev/ns", "statements": [{"vulnerability": "CVE-1", "status": "maybe"}]}})",
       "predicate.statements[0].status: \"maybe\" is not a VEX status"},
  };
  for (const auto& [document, error] : cases) {
    EXPECT_TRUE(error_of(document).starts_with(error)) << document << "\n" << error_of(document);
  }
}

TEST(VexParse, LimitsAreCheckedBeforeReading) {
  EXPECT_EQ(error_of(std::string((16u << 20) + 1, ' ')), "document: larger than 16777216 bytes (16 MiB)");
  EXPECT_EQ(error_of(std::string(65, '[') + std::string(65, ']')), "document: nested deeper than 64 levels");
  json many = json::array();
  for (int i = 0; i < 100'001; ++i) many.push_back(nullptr);
  EXPECT_EQ(error_of(openvex_with(many)), "statements: more than 100000 statements");
}

TEST(VexParse, ManyRefsToOneLongPurlAreBounded) {
  json bom = {{"bomFormat", "CycloneDX"},
              {"specVersion", "1.5"},
              {"components", {{{"bom-ref", "c"}, {"purl", "pkg:deb/debian/" + std::string(1 << 20, 'x')}}}}};
  json affects = json::array();
  for (int i = 0; i < 17; ++i) affects.push_back({{"ref", "c"}});
  bom["vulnerabilities"] = {{{"id", "CVE-1"}, {"analysis", {{"state", "exploitable"}}}, {"affects", affects}}};
  EXPECT_TRUE(error_of(bom.dump()).starts_with("vulnerabilities[0].affects[15].ref: refs resolve to more than"))
      << error_of(bom.dump());
}

const char* const fixture_names[] = {"openvex-v0.2.0.json", "openvex-v0.0.1.json", "cyclonedx-1.5-vex.json",
                                     "in-toto-openvex.json"};

// A document, or one line saying what is wrong; a document survives its encoding.
void expect_document_or_one_line(const std::string& text, const std::string& what) {
  const VexParse result = parse_vex(text);
  if (result.document) {
    const std::string encoded = encode_vex(*result.document);
    const auto decoded = decode_vex(encoded);
    EXPECT_TRUE(decoded && encode_vex(*decoded) == encoded) << what;
  } else {
    EXPECT_FALSE(result.error.empty()) << what;
    EXPECT_EQ(result.error.find('\n'), std::string::npos) << what << ": " << result.error;
  }
}

TEST(VexFuzz, EveryTruncationFailsCleanly) {
  for (const char* name : fixture_names) {
    const std::string document = json::parse(fixture(name)).dump();
    ASSERT_TRUE(parse_vex(document).document) << name;
    for (std::size_t length = 0; length + 1 < document.size(); ++length) {
      const VexParse result = parse_vex(document.substr(0, length));
      EXPECT_FALSE(result.document) << name << " truncated at " << length;
      EXPECT_EQ(result.error.find('\n'), std::string::npos) << result.error;
    }
  }
}

// Every value of every fixture replaced by each of a few of every JSON type: no
// exception escapes, no crash; a document or one line.
TEST(VexFuzz, WrongTypesAtEveryValue) {
  const json replacements[] = {json(nullptr), json(true), json(42), json(-1.5), json(""), json("text"),
                               json::array({1, 2}), json::array({"pkg:oci/x"}), json::object({{"k", "v"}})};
  std::size_t refusals = 0;
  for (const char* name : fixture_names) {
    const json original = json::parse(fixture(name));
    std::vector<json::json_pointer> places;
    std::vector<std::pair<const json*, json::json_pointer>> stack{{&original, json::json_pointer()}};
    while (!stack.empty()) {
      const auto [node, pointer] = stack.back();
      stack.pop_back();
      places.push_back(pointer);
      if (node->is_object()) {
        for (const auto& [key, child] : node->items()) stack.emplace_back(&child, pointer / key);
      } else if (node->is_array()) {
        for (std::size_t i = 0; i < node->size(); ++i) stack.emplace_back(&(*node)[i], pointer / i);
      }
    }
    for (const auto& place : places) {
      for (const json& replacement : replacements) {
        json mutated = original;
        mutated[place] = replacement;
        const std::string text = mutated.dump();
        expect_document_or_one_line(text, std::string(name) + " " + place.to_string() + " = " + replacement.dump());
        refusals += parse_vex(text).document ? 0 : 1;
      }
    }
  }
  EXPECT_GT(refusals, 100u) << "the readers check what they read";
}

// ---- matching ----

TEST(VexMatch, EveryFormOfNamingTheImage) {
  const std::string names[] = {
      "pkg:oci/app@sha256%3A" + app_hex,
      "pkg:oci/app@sha256%3a" + app_hex + "?repository_url=ghcr.io/acme/app&tag=v1",
      "pkg:oci/app@sha256:" + app_hex,
      "ghcr.io/acme/app@sha256:" + app_hex,
      "ghcr.io/acme/app:v1@sha256:" + app_hex,
      app,
  };
  for (const std::string& name : names) {
    const VexDocument document = parsed(openvex({statement("affected", name)}));
    EXPECT_TRUE(vex_names_image(document.statements[0], document, app)) << name;
    EXPECT_FALSE(vex_names_image(document.statements[0], document, other)) << name;
  }
  const std::string not_names[] = {
      "pkg:oci/app@sha256%3A" + app_hex.substr(1),
      "pkg:oci/app?digest=sha256%3A" + app_hex,
      "pkg:deb/debian/openssl@3.0.11",
      "ghcr.io/acme/app:v1",
      app_hex,
  };
  for (const std::string& name : not_names) {
    const VexDocument document = parsed(openvex({statement("affected", name)}));
    EXPECT_FALSE(vex_names_image(document.statements[0], document, app)) << name;
  }
  // No products outside an in-toto statement: about nothing.
  const VexDocument bare = parsed(openvex({{{"vulnerability", "CVE-2024-1234"}, {"status", "affected"}}}));
  EXPECT_FALSE(vex_names_image(bare.statements[0], bare, app));
  EXPECT_FALSE(vex_names_image(bare.statements[0], bare, "sha256:abc")) << "not a manifest digest";
}

TEST(VexMatch, SubcomponentsNameThePackageByPurl) {
  const auto covers = [](const std::string& purl, const Finding& f) {
    json s = statement("not_affected");
    s["products"][0]["subcomponents"] = {{{"@id", purl}}};
    const VexDocument document = parsed(openvex({s}));
    return vex_covers(document.statements[0], document, app, f);
  };
  EXPECT_TRUE(covers("pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64", finding("CVE-2024-1234")));
  EXPECT_TRUE(covers("pkg:deb/debian/OpenSSL", finding("CVE-2024-1234"))) << "no version: any installed version";
  EXPECT_TRUE(covers("pkg:deb/debian/openssl@3.0.11", finding("CVE-2024-1234", "openssl", "")))
      << "the finding names no version";
  EXPECT_FALSE(covers("pkg:deb/debian/openssl@3.0.10", finding("CVE-2024-1234")));
  EXPECT_FALSE(covers("pkg:deb/debian/libssl3@3.0.11-1~deb12u2", finding("CVE-2024-1234")));
  EXPECT_FALSE(covers("openssl", finding("CVE-2024-1234"))) << "only purls name packages";
  EXPECT_TRUE(covers("pkg:golang/github.com/foo/bar@v1.2.3", finding("CVE-2024-1234", "github.com/foo/bar", "v1.2.3")));
  EXPECT_TRUE(covers("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
                     finding("CVE-2024-1234", "org.apache.logging.log4j:log4j-core", "2.14.1")));
  EXPECT_TRUE(covers("pkg:npm/%40angular/core@17.0.0", finding("CVE-2024-1234", "@angular/core", "17.0.0")));
  EXPECT_FALSE(covers("pkg:deb/debian/openssl", finding("CVE-2024-9999"))) << "another vulnerability";
}

// ---- precedence ----

TEST(VexDecide, TheLatestStatementDecidesAndAffectedWinsATie) {
  const Finding f = finding("CVE-2024-1234");
  const auto decide = [&](const json& statements) {
    const VexDocument document = parsed(openvex(statements));
    const VexSource sources[] = {{&document, "imported"}};
    const auto decision = vex_decision(sources, app, f);
    EXPECT_TRUE(decision);
    return decision ? decision->statement->status : VexStatus::under_investigation;
  };
  auto timed = [](json s, const char* time) {
    s["timestamp"] = time;
    return s;
  };
  EXPECT_EQ(decide({timed(statement("affected"), "2026-11-01T00:00:00Z"), timed(statement("not_affected"), "2026-11-02T00:00:00Z")}),
            VexStatus::not_affected);
  EXPECT_EQ(decide({timed(statement("not_affected"), "2026-11-01T00:00:00Z"), timed(statement("affected"), "2026-11-02T00:00:00Z")}),
            VexStatus::affected);
  EXPECT_EQ(decide({statement("not_affected"), statement("affected")}), VexStatus::affected);
  EXPECT_EQ(decide({statement("under_investigation"), statement("fixed")}), VexStatus::under_investigation);
  EXPECT_EQ(decide({statement("fixed"), statement("not_affected")}), VexStatus::fixed);
}

TEST(VexDecide, AcrossSourcesAndOnlyAboutTheImage) {
  const Finding f = finding("CVE-2024-1234");
  const VexDocument loosening = parsed(openvex({statement("not_affected")}, "2026-11-05T00:00:00Z"));
  const VexDocument affected = parsed(openvex({statement("affected")}, "2026-11-05T00:00:00Z"));
  const VexDocument elsewhere = parsed(openvex({statement("affected", other)}, "2026-11-06T00:00:00Z"));
  const VexSource sources[] = {{&loosening, "imported"}, {&elsewhere, "imported"}, {&affected, "attested by key ci"}};
  const auto decision = vex_decision(sources, app, f);
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->source, &sources[2]);
  EXPECT_FALSE(sets_aside(*decision));

  const VexSource alone[] = {{&loosening, "imported"}, {&elsewhere, "imported"}};
  const auto set_aside = vex_decision(alone, app, f);
  ASSERT_TRUE(set_aside);
  EXPECT_TRUE(sets_aside(*set_aside));
  EXPECT_FALSE(vex_decision(alone, app, finding("CVE-2024-0001")));
}

TEST(VexDescribe, OneLineWithTheJustification) {
  const VexDocument document = parsed(fixture("openvex-v0.2.0.json"));
  const VexSource sources[] = {{&document, "imported"}};
  const auto decision = vex_decision(sources, app, finding("CVE-2024-1234"));
  ASSERT_TRUE(decision);
  EXPECT_EQ(describe_vex(finding("CVE-2024-1234"), *decision),
            "CVE-2024-1234 (openssl) not_affected per VEX from \"Acme PSIRT\" (https://acme.example/vex/1, imported): "
            "vulnerable_code_not_in_execute_path: the TLS code is not linked");

  json hostile = statement("not_affected");
  hostile["justification"] = nullptr;
  hostile["impact_statement"] = "line one\nline two " + std::string(300, 'z');
  json doc = json::parse(openvex({hostile}));
  doc.erase("author");
  doc.erase("@id");
  const VexDocument unnamed = parsed(doc.dump());
  const VexSource from[] = {{&unnamed, ""}};
  const auto line = describe_vex(finding("CVE-2024-1234"), *vex_decision(from, app, finding("CVE-2024-1234")));
  EXPECT_TRUE(line.starts_with("CVE-2024-1234 (openssl) not_affected per VEX from an unnamed author: line one?line two zzz"))
      << line;
  EXPECT_TRUE(line.ends_with("z...")) << line;
}

// ---- storage ----

TEST(VexEncode, RoundTripsEveryFormat) {
  for (const char* name : {"openvex-v0.2.0.json", "openvex-v0.0.1.json", "cyclonedx-1.5-vex.json", "in-toto-openvex.json"}) {
    const VexDocument document = parsed(fixture(name));
    const std::string encoded = encode_vex(document);
    const auto decoded = decode_vex(encoded);
    ASSERT_TRUE(decoded) << name;
    EXPECT_EQ(encode_vex(*decoded), encoded) << name;
    EXPECT_EQ(decoded->in_toto, document.in_toto);
    EXPECT_EQ(decoded->subjects, document.subjects);
    ASSERT_EQ(decoded->statements.size(), document.statements.size());
    for (std::size_t i = 0; i < document.statements.size(); ++i) {
      EXPECT_EQ(decoded->statements[i].status, document.statements[i].status);
      EXPECT_EQ(decoded->statements[i].timestamp.has_value(), document.statements[i].timestamp.has_value());
      EXPECT_EQ(vex_covers(decoded->statements[i], *decoded, app, finding("CVE-2024-1234")),
                vex_covers(document.statements[i], document, app, finding("CVE-2024-1234")));
    }
  }
}

TEST(VexEncode, DamagedRecordsDoNotDecode) {
  const std::string encoded = encode_vex(parsed(fixture("openvex-v0.2.0.json")));
  EXPECT_FALSE(decode_vex(""));
  EXPECT_FALSE(decode_vex(encoded.substr(0, encoded.size() / 2)));
  for (const auto& [key, value] : {std::pair<const char*, json>{"v", 2}, {"format", "csaf"}, {"in_toto", "no"},
                                   {"statements", json::object()}, {"subjects", {1}}}) {
    json damaged = json::parse(encoded);
    damaged[key] = value;
    EXPECT_FALSE(decode_vex(damaged.dump())) << key;
  }
  json bad_status = json::parse(encoded);
  bad_status["statements"][0]["status"] = "maybe";
  EXPECT_FALSE(decode_vex(bad_status.dump()));
}

// ---- the policy's "vulnerabilities.vex" ----

TEST(VexPolicy, ReadsTrustInImportedDocumentsWithoutRegistryLookups) {
  const auto imported = parse_policy(R"({"default": {"vulnerabilities": {"vex": {}}}})");
  ASSERT_TRUE(imported.policy) << joined(imported.errors);
  const auto& trust = imported.policy->scopes.back().vulnerabilities->vex;
  ASSERT_TRUE(trust);
  EXPECT_TRUE(trust->imported);
  EXPECT_FALSE(imported.policy->needs_signals) << "imported VEX needs no registry lookups";
  const auto explicit_true = parse_policy(R"({"default": {"vulnerabilities": {"vex": {"imported": true}}}})");
  ASSERT_TRUE(explicit_true.policy) << joined(explicit_true.errors);

  const auto without = parse_policy(R"({"default": {"vulnerabilities": {}}})");
  ASSERT_TRUE(without.policy);
  EXPECT_FALSE(without.policy->scopes.back().vulnerabilities->vex);
}

TEST(VexPolicy, MistakesAreNamedByPath) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"default": {"vulnerabilities": {"vex": true}}})", "default.vulnerabilities.vex: must be an object"},
      {R"({"default": {"vulnerabilities": {"vex": {"trusted": true}}}})", "default.vulnerabilities.vex.trusted: unknown field"},
      {R"({"default": {"vulnerabilities": {"vex": {"imported": "yes"}}}})", "default.vulnerabilities.vex.imported: must be true or false"},
      {R"({"default": {"vulnerabilities": {"vex": {"imported": false}}}})",
       "default.vulnerabilities.vex: trusts no VEX: set \"imported\" to true"},
      // Attached VEX is not looked for yet: naming signers for it is refused, not ignored.
      {R"({"keys": {"k": {"pem_file": "x"}}, "default": {"vulnerabilities": {"vex": {"keys": ["k"]}}}})",
       "default.vulnerabilities.vex.keys: attached VEX attestations are not looked for yet"},
      {R"({"default": {"vulnerabilities": {"vex": {"identities": [{"issuer": "i", "subject": "s"}]}}}})",
       "default.vulnerabilities.vex.identities: attached VEX attestations are not looked for yet"},
      {R"({"default": {"vulnerabilities": {"vex": {"recheck_s": 60}}}})",
       "default.vulnerabilities.vex.recheck_s: attached VEX attestations are not looked for yet"},
      {R"({"default": {"vulnerabilities": {"vex": {"recheck": "10m"}}}})", "default.vulnerabilities.vex.recheck: unknown field"},
  };
  for (const auto& [document, error] : cases) {
    const auto result = parse_policy(document);
    EXPECT_FALSE(result.policy) << document;
    EXPECT_FALSE(result.errors.empty()) << document;
    if (!result.errors.empty()) {
      EXPECT_TRUE(result.errors.front().starts_with(error)) << document << "\n" << joined(result.errors);
    }
  }
}

// ---- judge_report with VEX ----

const TimePoint now = at("2026-11-05T00:00:00Z");

Policy policy_with(const std::string& vulnerabilities, const std::string& rest = "") {
  const auto result = parse_policy(R"({"default": {"vulnerabilities": )" + vulnerabilities + "}" + rest + "}");
  EXPECT_TRUE(result.policy) << joined(result.errors);
  return result.policy ? *result.policy : Policy{};
}

ReportSummary report_of(std::vector<Finding> findings) {
  ReportSummary out;
  out.scanner = "trivy";
  out.digest = app;
  out.scanned_at = at("2026-11-04T00:00:00Z");
  for (const Finding& f : findings) ++out.counts[f.severity];
  out.findings = std::move(findings);
  return out;
}

VulnerabilityJudgement judged(const Policy& policy, const ReportSummary& report, std::span<const VexSource> vex) {
  auto judgement = judge_report(policy, policy.scopes.back(), report, now, vex);
  EXPECT_TRUE(judgement);
  return judgement ? *judgement : VulnerabilityJudgement{};
}

TEST(VexJudge, NotAffectedSetsTheFindingAsideWithTheVexLine) {
  const Policy policy = policy_with(R"({"vex": {}})");
  const VexDocument document = parsed(fixture("openvex-v0.2.0.json"));
  const VexSource vex[] = {{&document, "imported"}};
  const auto judgement = judged(policy, report_of({finding("CVE-2024-1234"), finding("CVE-2024-5555", "curl", "8.0", Severity::low)}), vex);
  EXPECT_EQ(judgement.decision, Decision::allow) << joined(judgement.reasons);
  ASSERT_EQ(judgement.excepted.size(), 1u);
  EXPECT_EQ(judgement.excepted[0],
            "CVE-2024-1234 (openssl) not_affected per VEX from \"Acme PSIRT\" (https://acme.example/vex/1, imported): "
            "vulnerable_code_not_in_execute_path: the TLS code is not linked");
  EXPECT_EQ(judgement.reasons.front(),
            "report from trivy at 2026-11-04T00:00:00Z: nothing blocks or warns (logged: 1 LOW; 1 set aside by VEX)");

  Outcome outcome;
  combine(outcome, judgement);
  EXPECT_EQ(outcome.reasons.back(), "set aside: " + judgement.excepted[0]);
}

TEST(VexJudge, FixedSetsAsideAndAffectedNeverLoosens) {
  const Policy policy = policy_with(R"({"vex": {}})");
  const VexDocument document = parsed(fixture("openvex-v0.2.0.json"));
  const VexSource vex[] = {{&document, "imported"}};
  const auto judgement = judged(
      policy, report_of({finding("CVE-2024-0727", "openssl", "3.0.11"), finding("GHSA-2h3h-9f9r-87fv", "zlib1g", "1:1.2.13")}), vex);
  EXPECT_EQ(judgement.decision, Decision::deny);
  ASSERT_EQ(judgement.excepted.size(), 1u);
  EXPECT_TRUE(judgement.excepted[0].starts_with("CVE-2024-0727 (openssl) fixed per VEX from \"Acme PSIRT\""))
      << judgement.excepted[0];
  EXPECT_EQ(judgement.reasons.front(), "1 CRITICAL finding blocks (GHSA-2h3h-9f9r-87fv in zlib1g 1:1.2.13, fixed in 9.9.9)");
}

TEST(VexJudge, ALaterAffectedOrOneAtATieKeepsTheFinding) {
  const Policy policy = policy_with(R"({"vex": {}})");
  const ReportSummary report = report_of({finding("CVE-2024-1234")});
  json later = statement("affected");
  later["timestamp"] = "2026-11-02T00:00:00Z";
  const VexDocument not_affected = parsed(openvex({statement("not_affected")}, "2026-11-01T00:00:00Z"));
  const VexDocument affected_later = parsed(openvex({later}, "2026-11-01T00:00:00Z"));
  const VexDocument affected_same_time = parsed(openvex({statement("affected")}, "2026-11-01T00:00:00Z"));

  const VexSource later_vex[] = {{&not_affected, "imported"}, {&affected_later, "attested by key ci"}};
  EXPECT_EQ(judged(policy, report, later_vex).decision, Decision::deny);
  EXPECT_TRUE(judged(policy, report, later_vex).excepted.empty());

  const VexSource tie[] = {{&affected_same_time, "imported"}, {&not_affected, "imported"}};
  EXPECT_EQ(judged(policy, report, tie).decision, Decision::deny);
  EXPECT_TRUE(judged(policy, report, tie).excepted.empty());
}

TEST(VexJudge, AScopeWithoutVexIgnoresIt) {
  const Policy policy = policy_with("{}");
  const VexDocument document = parsed(fixture("openvex-v0.2.0.json"));
  const VexSource vex[] = {{&document, "imported"}};
  const auto judgement = judged(policy, report_of({finding("CVE-2024-1234")}), vex);
  EXPECT_EQ(judgement.decision, Decision::deny);
  EXPECT_TRUE(judgement.excepted.empty());
}

TEST(VexJudge, CveExceptionsApplyFirst) {
  const Policy policy = policy_with(R"({"vex": {}})", R"(, "cve_exceptions": [{"id": "CVE-2024-1234", "who": "alice",
      "reason": "accepted", "expires": "2027-01-01T00:00:00Z"}])");
  const VexDocument document = parsed(fixture("openvex-v0.2.0.json"));
  const VexSource vex[] = {{&document, "imported"}};
  const auto judgement = judged(policy, report_of({finding("CVE-2024-1234")}), vex);
  EXPECT_EQ(judgement.decision, Decision::allow);
  EXPECT_EQ(judgement.excepted,
            (std::vector<std::string>{"CVE-2024-1234 (openssl) excepted by alice until 2027-01-01T00:00:00Z: accepted"}));
  EXPECT_TRUE(judgement.reasons.front().ends_with("nothing blocks or warns (1 excepted)")) << judgement.reasons.front();
}

TEST(VexJudge, AReportAboutAnotherImageIsNotCovered) {
  const Policy policy = policy_with(R"({"vex": {}})");
  const VexDocument document = parsed(fixture("openvex-v0.2.0.json"));
  const VexSource vex[] = {{&document, "imported"}};
  ReportSummary report = report_of({finding("CVE-2024-1234")});
  report.digest = other;
  EXPECT_EQ(judged(policy, report, vex).decision, Decision::deny);
}

}  // namespace
}  // namespace pullgate::policy
