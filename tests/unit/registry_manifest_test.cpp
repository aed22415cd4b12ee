#include "registry/manifest.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace pullgate::registry {
namespace {

using nlohmann::json;

const std::string d1 = "sha256:" + std::string(64, '1');
const std::string d2 = "sha256:" + std::string(64, '2');
const std::string d3 = "sha256:" + std::string(64, '3');
const std::string d4 = "sha512:" + std::string(128, '4');

json descriptor(const std::string& media, const std::string& digest, std::int64_t size) {
  return {{"mediaType", media}, {"digest", digest}, {"size", size}};
}

json image_manifest() {
  return {{"schemaVersion", 2},
          {"mediaType", media_type::oci_manifest},
          {"config", descriptor("application/vnd.oci.image.config.v1+json", d1, 100)},
          {"layers",
           json::array({descriptor("application/vnd.oci.image.layer.v1.tar+gzip", d2, 2000),
                        descriptor("application/vnd.oci.image.layer.v1.tar+gzip", d4, 3000)})}};
}

json image_index() {
  json child = descriptor(std::string(media_type::oci_manifest), d1, 500);
  child["platform"] = {{"os", "linux"}, {"architecture", "arm64"}, {"variant", "v8"}};
  json plain = descriptor(std::string(media_type::oci_manifest), d2, 600);
  return {{"schemaVersion", 2}, {"mediaType", media_type::oci_index}, {"manifests", json::array({child, plain})}};
}

ParsedManifest parse_ok(const std::string& bytes, std::string_view content_type = {}) {
  auto result = parse_manifest(bytes, content_type);
  if (auto* error = std::get_if<std::string>(&result)) {
    ADD_FAILURE() << "refused: " << *error;
    return {};
  }
  return std::get<ParsedManifest>(std::move(result));
}

std::string parse_error(const std::string& bytes, std::string_view content_type = {}) {
  auto result = parse_manifest(bytes, content_type);
  if (auto* error = std::get_if<std::string>(&result)) return *error;
  ADD_FAILURE() << "accepted: " << bytes.substr(0, 200);
  return {};
}

TEST(Manifest, ImageManifest) {
  const auto parsed = parse_ok(image_manifest().dump());
  EXPECT_EQ(parsed.media_type, media_type::oci_manifest);
  EXPECT_FALSE(parsed.is_index);
  ASSERT_EQ(parsed.blobs.size(), 3u);
  EXPECT_EQ(parsed.blobs[0].digest.str(), d1);  // config first
  EXPECT_EQ(parsed.blobs[0].media_type, "application/vnd.oci.image.config.v1+json");
  EXPECT_EQ(parsed.blobs[0].size, 100);
  EXPECT_EQ(parsed.blobs[1].digest.str(), d2);
  EXPECT_EQ(parsed.blobs[2].digest.str(), d4);
  EXPECT_EQ(parsed.blobs[2].size, 3000);
  EXPECT_TRUE(parsed.children.empty());
  EXPECT_FALSE(parsed.subject);
  EXPECT_TRUE(parsed.artifact_type.empty());
}

TEST(Manifest, DockerManifestAndList) {
  auto docker = image_manifest();
  docker["mediaType"] = media_type::docker_manifest;
  EXPECT_EQ(parse_ok(docker.dump()).media_type, media_type::docker_manifest);

  auto list = image_index();
  list["mediaType"] = media_type::docker_list;
  const auto parsed = parse_ok(list.dump());
  EXPECT_TRUE(parsed.is_index);
  EXPECT_EQ(parsed.children.size(), 2u);
}

TEST(Manifest, Index) {
  const auto parsed = parse_ok(image_index().dump());
  EXPECT_TRUE(parsed.is_index);
  EXPECT_TRUE(parsed.blobs.empty());
  ASSERT_EQ(parsed.children.size(), 2u);
  ASSERT_TRUE(parsed.children[0].platform);
  EXPECT_EQ(parsed.children[0].platform->os, "linux");
  EXPECT_EQ(parsed.children[0].platform->architecture, "arm64");
  EXPECT_EQ(parsed.children[0].platform->variant, "v8");
  EXPECT_FALSE(parsed.children[1].platform);
  EXPECT_EQ(parsed.children[1].size, 600);
}

TEST(Manifest, MediaTypeFromContentType) {
  auto doc = image_manifest();
  doc.erase("mediaType");
  EXPECT_EQ(parse_ok(doc.dump(), "application/vnd.oci.image.manifest.v1+json").media_type, media_type::oci_manifest);
  EXPECT_EQ(parse_ok(doc.dump(), " Application/VND.oci.image.manifest.v1+json ; charset=utf-8").media_type,
            media_type::oci_manifest);
  auto index = image_index();
  index.erase("mediaType");
  EXPECT_TRUE(parse_ok(index.dump(), media_type::oci_index).is_index);
  EXPECT_NE(parse_error(doc.dump()), "");
  EXPECT_NE(parse_error(doc.dump(), "application/json"), "");
}

TEST(Manifest, SubjectAndArtifactType) {
  auto doc = image_manifest();
  doc["subject"] = descriptor(std::string(media_type::oci_manifest), d3, 42);
  doc["artifactType"] = "application/vnd.example.sbom";
  doc["layers"][0]["artifactType"] = "application/x-layer";
  const auto parsed = parse_ok(doc.dump());
  ASSERT_TRUE(parsed.subject);
  EXPECT_EQ(parsed.subject->digest.str(), d3);
  EXPECT_EQ(parsed.subject->size, 42);
  EXPECT_EQ(parsed.artifact_type, "application/vnd.example.sbom");
  EXPECT_EQ(parsed.blobs[1].artifact_type, "application/x-layer");
}

TEST(Manifest, EmptyLayersAndZeroSizeAreValid) {
  auto doc = image_manifest();
  doc["layers"] = json::array();
  doc["config"]["size"] = 0;
  const auto parsed = parse_ok(doc.dump());
  ASSERT_EQ(parsed.blobs.size(), 1u);
  EXPECT_EQ(parsed.blobs[0].size, 0);
}

TEST(Manifest, UnknownFieldsAreIgnored) {
  auto doc = image_manifest();
  doc["annotations"] = {{"a", "b"}};
  doc["layers"][0]["urls"] = json::array({"https://example.com"});
  doc["extra"] = json::array({1, 2, 3});
  EXPECT_EQ(parse_ok(doc.dump()).blobs.size(), 3u);
}

struct Mutation {
  const char* what;
  void (*apply)(json&);
};

TEST(Manifest, RefusesWrongShapes) {
  const Mutation mutations[] = {
      {"schemaVersion missing", [](json& d) { d.erase("schemaVersion"); }},
      {"schemaVersion 1", [](json& d) { d["schemaVersion"] = 1; }},
      {"schemaVersion string", [](json& d) { d["schemaVersion"] = "2"; }},
      {"schemaVersion float", [](json& d) { d["schemaVersion"] = 2.0; }},
      {"mediaType number", [](json& d) { d["mediaType"] = 7; }},
      {"mediaType unknown", [](json& d) { d["mediaType"] = "application/json"; }},
      {"config missing", [](json& d) { d.erase("config"); }},
      {"config array", [](json& d) { d["config"] = json::array(); }},
      {"layers missing", [](json& d) { d.erase("layers"); }},
      {"layers object", [](json& d) { d["layers"] = json::object(); }},
      {"layer null", [](json& d) { d["layers"][0] = nullptr; }},
      {"layer string", [](json& d) { d["layers"][0] = "sha256:x"; }},
      {"digest missing", [](json& d) { d["layers"][0].erase("digest"); }},
      {"digest number", [](json& d) { d["layers"][0]["digest"] = 5; }},
      {"digest invalid", [](json& d) { d["layers"][0]["digest"] = "sha256:abc"; }},
      {"digest upper", [](json& d) { d["config"]["digest"] = "sha256:" + std::string(64, 'A'); }},
      {"digest traversal", [](json& d) { d["config"]["digest"] = "sha256:../../etc/passwd"; }},
      {"mediaType missing in descriptor", [](json& d) { d["layers"][1].erase("mediaType"); }},
      {"mediaType empty in descriptor", [](json& d) { d["layers"][1]["mediaType"] = ""; }},
      {"mediaType array in descriptor", [](json& d) { d["layers"][1]["mediaType"] = json::array(); }},
      {"size missing", [](json& d) { d["layers"][0].erase("size"); }},
      {"size negative", [](json& d) { d["layers"][0]["size"] = -1; }},
      {"size float", [](json& d) { d["layers"][0]["size"] = 1.5; }},
      {"size string", [](json& d) { d["layers"][0]["size"] = "10"; }},
      {"size bool", [](json& d) { d["layers"][0]["size"] = true; }},
      {"size above int64", [](json& d) { d["layers"][0]["size"] = 18446744073709551615ull; }},
      {"subject wrong type", [](json& d) { d["subject"] = "x"; }},
      {"subject bad digest", [](json& d) { d["subject"] = descriptor("a/b", "sha256:1", 1); }},
      {"artifactType number", [](json& d) { d["artifactType"] = 1; }},
      {"descriptor artifactType object", [](json& d) { d["config"]["artifactType"] = json::object(); }},
  };
  for (const auto& m : mutations) {
    SCOPED_TRACE(m.what);
    auto doc = image_manifest();
    m.apply(doc);
    const auto error = parse_error(doc.dump());
    EXPECT_FALSE(error.empty());
    EXPECT_EQ(error.find('\n'), std::string::npos);
  }
}

TEST(Manifest, RefusesWrongIndexShapes) {
  const Mutation mutations[] = {
      {"manifests missing", [](json& d) { d.erase("manifests"); }},
      {"manifests string", [](json& d) { d["manifests"] = "x"; }},
      {"child digest bad", [](json& d) { d["manifests"][0]["digest"] = "sha256:"; }},
      {"platform string", [](json& d) { d["manifests"][0]["platform"] = "linux/amd64"; }},
      {"platform os missing", [](json& d) { d["manifests"][0]["platform"].erase("os"); }},
      {"platform arch number", [](json& d) { d["manifests"][0]["platform"]["architecture"] = 64; }},
      {"platform variant number", [](json& d) { d["manifests"][0]["platform"]["variant"] = 8; }},
  };
  for (const auto& m : mutations) {
    SCOPED_TRACE(m.what);
    auto doc = image_index();
    m.apply(doc);
    EXPECT_FALSE(parse_error(doc.dump()).empty());
  }
}

TEST(Manifest, RefusesSpellingsGoClientsWouldFold) {
  // Go's encoding/json fills Layers from "LAYERS" and Size from "\u017fize": a
  // document like this would show the gate one set of blobs and the client another.
  const Mutation mutations[] = {
      {"LAYERS", [](json& d) { d["LAYERS"] = json::array(); }},
      {"Config", [](json& d) { d["Config"] = d["config"]; }},
      {"SchemaVersion", [](json& d) { d["SchemaVersion"] = 1; }},
      {"Manifests on an image", [](json& d) { d["Manifests"] = json::array(); }},
      {"DIGEST", [](json& d) { d["layers"][0]["DIGEST"] = "sha256:" + std::string(64, '9'); }},
      {"long s in size", [](json& d) { d["layers"][0]["\u017fize"] = 1; }},
      {"Subject", [](json& d) { d["Subject"] = 1; }},
  };
  for (const auto& m : mutations) {
    SCOPED_TRACE(m.what);
    auto doc = image_manifest();
    m.apply(doc);
    EXPECT_NE(parse_error(doc.dump()).find("spelled differently"), std::string::npos);
  }
  auto index = image_index();
  index["manifests"][0]["platform"]["OS"] = "windows";
  EXPECT_NE(parse_error(index.dump()).find("platform.os"), std::string::npos);

  // Other keys (annotations, unknown fields) may use any case.
  auto doc = image_manifest();
  doc["annotations"] = {{"Layers", "x"}, {"layers", "y"}};
  doc["Annotations"] = "z";
  EXPECT_EQ(parse_ok(doc.dump()).blobs.size(), 3u);
}

TEST(Manifest, DuplicateKeysLastWinsLikeGo) {
  const std::string bytes = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                            R"("config":{"mediaType":"c","digest":")" + d1 + R"(","size":1},)"
                            R"("layers":[],"layers":[{"mediaType":"l","digest":")" + d2 + R"(","size":2}]})";
  const auto parsed = parse_ok(bytes);
  ASSERT_EQ(parsed.blobs.size(), 2u);
  EXPECT_EQ(parsed.blobs[1].digest.str(), d2);
}

TEST(Manifest, ErrorsNameTheField) {
  auto doc = image_manifest();
  doc["layers"][1]["digest"] = "nope";
  EXPECT_NE(parse_error(doc.dump()).find("layers[1].digest"), std::string::npos);
  doc = image_manifest();
  doc["config"]["size"] = -5;
  EXPECT_NE(parse_error(doc.dump()).find("config.size"), std::string::npos);
}

TEST(Manifest, RefusesBadJson) {
  const std::string full = image_manifest().dump();
  const std::string cases[] = {
      "",
      "null",
      "[]",
      "\"manifest\"",
      "2",
      "{",
      full.substr(0, full.size() / 2),  // truncated
      full.substr(0, full.size() - 1),
      full + "x",                       // trailing junk
      "{\"schemaVersion\":2,}",
      "{'schemaVersion':2}",
      "\xef\xbb\xbf" + full,            // byte order mark
      "{\"mediaType\":\"\xff\xfe\"}",   // invalid UTF-8
      std::string("{\"a\":\0}", 7),
  };
  for (const auto& bytes : cases) {
    SCOPED_TRACE(bytes.substr(0, 60));
    EXPECT_FALSE(parse_error(bytes).empty());
  }
}

TEST(Manifest, RefusesOversize) {
  auto doc = image_manifest();
  doc["annotations"] = {{"pad", std::string(max_manifest_bytes, 'x')}};
  EXPECT_NE(parse_error(doc.dump()).find("4 MiB"), std::string::npos);

  // Just under the limit is fine.
  auto fits = image_manifest();
  const auto base = fits.dump().size();
  fits["annotations"] = {{"pad", ""}};
  const auto overhead = fits.dump().size() - base;
  fits["annotations"]["pad"] = std::string(max_manifest_bytes - base - overhead, 'x');
  ASSERT_EQ(fits.dump().size(), max_manifest_bytes);
  EXPECT_EQ(parse_ok(fits.dump()).blobs.size(), 3u);
}

TEST(Manifest, RefusesDeepNestingBeforeParsing) {
  auto nested = [](int depth) {
    std::string open, close;
    for (int i = 0; i < depth; ++i) {
      open += "[";
      close += "]";
    }
    return open + close;
  };
  // Depth counts the outer object: 1 + 63 arrays = 64 levels is allowed.
  auto doc = image_manifest();
  const std::string within = doc.dump().substr(0, doc.dump().size() - 1) + ",\"x\":" + nested(63) + "}";
  EXPECT_EQ(parse_ok(within).blobs.size(), 3u);
  const std::string beyond = doc.dump().substr(0, doc.dump().size() - 1) + ",\"x\":" + nested(64) + "}";
  EXPECT_NE(parse_error(beyond).find("nested"), std::string::npos);

  // A million brackets, unbalanced: refused by the scan, no stack exhaustion.
  EXPECT_NE(parse_error(std::string(1000000, '[')).find("nested"), std::string::npos);
  EXPECT_NE(parse_error(std::string(1000000, '{')).find("nested"), std::string::npos);

  // Brackets inside strings, escaped quotes included, do not count.
  auto quoted = image_manifest();
  quoted["annotations"] = {{"brackets", std::string(200, '[') + "\\\"" + std::string(200, '{')}};
  EXPECT_EQ(parse_ok(quoted.dump()).blobs.size(), 3u);
}

TEST(Accepts, Table) {
  const auto manifest = media_type::oci_manifest;
  struct Case {
    std::vector<std::string> values;
    bool expected;
  };
  const Case cases[] = {
      {{}, true},
      {{""}, true},
      {{std::string(manifest)}, true},
      {{"application/vnd.oci.image.index.v1+json"}, false},
      {{std::string(media_type::accept_all)}, true},
      {{"application/vnd.oci.image.index.v1+json", std::string(manifest)}, true},  // separate lines
      {{"application/json, */*"}, true},
      {{"application/*"}, true},
      {{"text/*"}, false},
      {{"APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON"}, true},
      {{std::string(manifest) + ";q=0.5"}, true},
      {{std::string(manifest) + " ; q=0"}, false},
      {{std::string(manifest) + ";q=0.000"}, false},
      {{std::string(manifest) + ";q=0.001"}, true},
      {{std::string(manifest) + ";Q=0"}, false},
      {{std::string(manifest) + ";charset=utf-8;q=0"}, false},
      {{std::string(manifest) + ";q=0, */*"}, false},   // the specific range decides
      {{"*/*;q=0"}, false},
      {{"*/*;q=0, application/*"}, true},
      {{"application/*;q=0, */*"}, false},
      {{" , ,"}, true},
      {{"application/vnd.oci.image.manifest.v1+jsonx"}, false},
      {{"application/vnd.oci.image.manifest"}, false},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& v : c.values) joined += "[" + v + "]";
    SCOPED_TRACE(joined);
    EXPECT_EQ(accepts(c.values, manifest), c.expected);
  }
}

}  // namespace
}  // namespace pullgate::registry
