// Hostile and broken scanner reports: each gives one clear line of error and no crash.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "policy/report.hpp"
#include "tests/unit/fixtures.hpp"

namespace pullgate::policy {
namespace {

using json = nlohmann::json;

const std::string fixture_names[] = {"trivy-image.json", "grype-image.json"};

std::string fixture(const std::string& name) { return testing_support::fixture_text("reports", name); }

void expect_clear_failure(const ReportParse& result, const std::string& what) {
  EXPECT_FALSE(result.summary) << what;
  EXPECT_FALSE(result.error.empty()) << what;
  EXPECT_EQ(result.error.find('\n'), std::string::npos) << what << ": " << result.error;
}

TEST(ReportFuzz, EveryTruncationFailsCleanly) {
  for (const auto& name : fixture_names) {
    const std::string pretty = fixture(name);
    const std::string compact = json::parse(pretty).dump();
    for (const std::string& document : {pretty, compact}) {
      ASSERT_TRUE(parse_report(document).summary) << name;
      // Everything before the final '}' is an unfinished document.
      const std::size_t end = document.rfind('}');
      for (std::size_t length = 0; length < end + 1; ++length) {
        expect_clear_failure(parse_report(document.substr(0, length)), name + " truncated at " + std::to_string(length));
      }
    }
  }
}

// Every value in the document with its path as errors spell it ("a.b[2].c").
void walk(const json& node, const json::json_pointer& pointer, const std::string& path,
          std::vector<std::pair<json::json_pointer, std::string>>& out) {
  out.emplace_back(pointer, path);
  if (node.is_object()) {
    for (const auto& [key, child] : node.items()) walk(child, pointer / key, path.empty() ? key : path + "." + key, out);
  } else if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) walk(node[i], pointer / i, path + "[" + std::to_string(i) + "]", out);
  }
}

// Fields the reader uses (array indexes written as []): a value of the wrong type
// there is refused. Elsewhere (titles, CVSS, layers, ...) it changes nothing.
const std::set<std::string> read_fields = {
    "",
    "SchemaVersion",
    "CreatedAt",
    "Metadata",
    "Metadata.RepoDigests",
    "Metadata.RepoDigests[]",
    "Results",
    "Results[]",
    "Results[].Vulnerabilities",
    "Results[].Vulnerabilities[]",
    "Results[].Vulnerabilities[].VulnerabilityID",
    "Results[].Vulnerabilities[].PkgName",
    "Results[].Vulnerabilities[].InstalledVersion",
    "Results[].Vulnerabilities[].FixedVersion",
    "Results[].Vulnerabilities[].Severity",
    "matches",
    "matches[]",
    "matches[].vulnerability",
    "matches[].vulnerability.id",
    "matches[].vulnerability.severity",
    "matches[].vulnerability.fix",
    "matches[].vulnerability.fix.state",
    "matches[].vulnerability.fix.versions",
    "matches[].vulnerability.fix.versions[]",
    "matches[].artifact",
    "matches[].artifact.name",
    "matches[].artifact.version",
    "source",
    "source.type",
    "source.target",
    "source.target.manifestDigest",
    "descriptor",
    "descriptor.name",
    "descriptor.version",
    "descriptor.timestamp",
};

bool names(const std::string& error, const std::string& path) {
  const std::string expected = path.empty() ? "document" : path;
  if (!error.starts_with(expected) || error.size() == expected.size()) return false;
  const char next = error[expected.size()];
  return next == ':' || next == '.' || next == '[';
}

TEST(ReportFuzz, WrongTypesAtEveryField) {
  const json replacements[] = {json(nullptr), json(true), json(42), json(-1.5), json("text"),
                               json::array({1, 2}), json::object({{"k", "v"}})};
  const std::regex array_index(R"(\[\d+\])");
  std::size_t refusals = 0;
  for (const auto& name : fixture_names) {
    const json original = json::parse(fixture(name));
    const ReportParse base = parse_report(original.dump());
    ASSERT_TRUE(base.summary) << base.error;
    const std::string original_summary = encode_summary(*base.summary);
    std::vector<std::pair<json::json_pointer, std::string>> places;
    walk(original, json::json_pointer(), "", places);
    for (const auto& [pointer, path] : places) {
      const bool read = read_fields.contains(std::regex_replace(path, array_index, "[]"));
      const json& current = original.at(pointer);
      for (const json& replacement : replacements) {
        if (replacement.type() == current.type()) continue;
        json changed = original;
        changed.at(pointer) = replacement;
        const ReportParse result = parse_report(changed.dump());
        const std::string what = name + ": " + (path.empty() ? "document" : path) + " = " + replacement.dump();
        if (result.summary) {
          // Accepted: only a field the reader ignores, or an optional one set to null.
          EXPECT_TRUE(!read || replacement.is_null()) << what;
          if (!read) {
            EXPECT_EQ(encode_summary(*result.summary), original_summary) << what;
          }
        } else {
          expect_clear_failure(result, what);
          EXPECT_TRUE(read) << what << ": " << result.error;
          EXPECT_TRUE(names(result.error, path)) << what << ": " << result.error;
          ++refusals;
        }
      }
    }
  }
  EXPECT_GT(refusals, 150u);
}

TEST(ReportFuzz, DeepNesting) {
  for (const std::string& opening : {std::string("["), std::string("{\"a\":")}) {
    std::string deep;
    for (int i = 0; i < 100000; ++i) deep += opening;
    const ReportParse result = parse_report(deep);
    expect_clear_failure(result, "deep " + opening);
    EXPECT_EQ(result.error, "document: nested deeper than 64 levels");
  }
  // Deep inside an otherwise good report, at a field nobody reads.
  json report = json::parse(fixture("trivy-image.json"));
  std::string nested;
  for (int i = 0; i < 70; ++i) nested += "[";
  for (int i = 0; i < 70; ++i) nested += "]";
  std::string document = report.dump();
  const std::string marker = "\"ArtifactType\":\"container_image\"";
  ASSERT_NE(document.find(marker), std::string::npos);
  document.replace(document.find(marker), marker.size(), "\"ArtifactType\":" + nested);
  EXPECT_EQ(parse_report(document).error, "document: nested deeper than 64 levels");
  // Brackets inside strings are text, not nesting.
  report["ArtifactName"] = std::string(1000, '[') + "\\\"{{{";
  EXPECT_TRUE(parse_report(report.dump()).summary);
  // Exactly 64 levels are read, and the reader names the wrong type.
  std::string sixty_four = R"({"SchemaVersion": 2, "Results": )";
  for (int i = 0; i < 63; ++i) sixty_four += "[";
  for (int i = 0; i < 63; ++i) sixty_four += "]";
  sixty_four += "}";
  EXPECT_EQ(parse_report(sixty_four, "sha256:" + std::string(64, 'c')).error, "Results[0]: must be an object, not an array");
}

TEST(ReportFuzz, Oversized) {
  // Over 64 MiB: refused before parsing.
  std::string huge = R"({"matches": [], "pad": ")";
  huge += std::string((std::size_t{64} << 20) - huge.size() - 1, 'a');
  huge += "\"}";
  ASSERT_GT(huge.size(), std::size_t{64} << 20);
  const ReportParse result = parse_report(huge);
  expect_clear_failure(result, "over 64 MiB");
  EXPECT_EQ(result.error, "document: larger than 67108864 bytes (64 MiB)");
}

TEST(ReportFuzz, TooManyFindings) {
  // 200,001 entries (the limit counts what the report lists, before merging).
  std::string document = R"({"SchemaVersion": 2, "Results": [{"Target": "t", "Vulnerabilities": [)";
  const std::string entry = R"({"VulnerabilityID":"CVE-1","PkgName":"p","Severity":"LOW"})";
  document.reserve(document.size() + 200'001 * (entry.size() + 1) + 8);
  for (int i = 0; i < 200'001; ++i) document += (i ? "," : "") + entry;
  document += "]}]}";
  const ReportParse result = parse_report(document, "sha256:" + std::string(64, 'a'));
  expect_clear_failure(result, "too many findings");
  EXPECT_EQ(result.error, "Results[0].Vulnerabilities[200000]: more than 200000 findings");
}

TEST(ReportFuzz, GarbageAndOddValues) {
  std::string garbage(1 << 16, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919 + 13) % 256);
  expect_clear_failure(parse_report(garbage), "garbage");
  for (const std::string& odd :
       {std::string(""), std::string("null"), std::string("[]"), std::string("\"{}\""), std::string("42"),
        std::string("{} {}"), std::string("{\"SchemaVersion\": 2} x"), std::string("{\"matches\": [] // c\n}"),
        std::string("{\"matches\": [{\"vulnerability\": {\"id\": \"\xff\"}}]}"),
        std::string("{\"matches\": [], \"a") + '\0' + "b\": 1}", std::string("\xef\xbb\xbf{\"matches\": [")}) {
    expect_clear_failure(parse_report(odd, "sha256:" + std::string(64, 'b')), "odd: " + odd);
  }
  EXPECT_EQ(parse_report("[]").error, "document: must be an object, not an array");
  // Control characters from the report do not break the one-line error.
  const ReportParse result = parse_report(R"({"SchemaVersion": 2, "CreatedAt": "a\nb\r\u0000"})");
  expect_clear_failure(result, "control characters");
}

TEST(ReportFuzz, DecodeSummaryRefusesBrokenRecords) {
  for (const auto& name : fixture_names) {
    const ReportParse base = parse_report(fixture(name));
    ASSERT_TRUE(base.summary) << base.error;
    const std::string encoded = encode_summary(*base.summary);
    ASSERT_TRUE(decode_summary(encoded));
    for (std::size_t length = 0; length + 1 < encoded.size(); ++length) {
      EXPECT_FALSE(decode_summary(encoded.substr(0, length))) << name << " truncated at " << length;
    }
    const json original = json::parse(encoded);
    std::vector<std::pair<json::json_pointer, std::string>> places;
    walk(original, json::json_pointer(), "", places);
    for (const auto& [pointer, path] : places) {
      for (const json& replacement : {json(true), json(-1), json(1.5), json::array(), json::object()}) {
        if (replacement.type() == original.at(pointer).type()) continue;
        json changed = original;
        changed.at(pointer) = replacement;
        EXPECT_FALSE(decode_summary(changed.dump())) << path << " = " << replacement.dump();
      }
    }
  }
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "[";
  EXPECT_FALSE(decode_summary(deep));
}

}  // namespace
}  // namespace pullgate::policy
