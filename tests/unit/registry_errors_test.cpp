#include "registry/errors.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace pullgate::registry {
namespace {

TEST(ErrorCodes, NamesMatchTheSpec) {
  const std::pair<ErrorCode, std::string_view> cases[] = {
      {ErrorCode::blob_unknown, "BLOB_UNKNOWN"},
      {ErrorCode::blob_upload_invalid, "BLOB_UPLOAD_INVALID"},
      {ErrorCode::blob_upload_unknown, "BLOB_UPLOAD_UNKNOWN"},
      {ErrorCode::digest_invalid, "DIGEST_INVALID"},
      {ErrorCode::manifest_blob_unknown, "MANIFEST_BLOB_UNKNOWN"},
      {ErrorCode::manifest_invalid, "MANIFEST_INVALID"},
      {ErrorCode::manifest_unknown, "MANIFEST_UNKNOWN"},
      {ErrorCode::name_invalid, "NAME_INVALID"},
      {ErrorCode::name_unknown, "NAME_UNKNOWN"},
      {ErrorCode::size_invalid, "SIZE_INVALID"},
      {ErrorCode::unauthorized, "UNAUTHORIZED"},
      {ErrorCode::denied, "DENIED"},
      {ErrorCode::unsupported, "UNSUPPORTED"},
      {ErrorCode::toomanyrequests, "TOOMANYREQUESTS"},
      {ErrorCode::range_invalid, "RANGE_INVALID"},
      {ErrorCode::unknown, "UNKNOWN"},
      {ErrorCode::unavailable, "UNAVAILABLE"},
  };
  for (const auto& [code, name] : cases) EXPECT_EQ(code_name(code), name);
}

TEST(ErrorBody, ShapeWithoutDetail) {
  const auto body = nlohmann::json::parse(error_body(ErrorCode::denied, "image denied by policy"));
  ASSERT_TRUE(body["errors"].is_array());
  ASSERT_EQ(body["errors"].size(), 1u);
  const auto& error = body["errors"][0];
  EXPECT_EQ(error["code"], "DENIED");
  EXPECT_EQ(error["message"], "image denied by policy");
  EXPECT_FALSE(error.contains("detail"));
}

TEST(ErrorBody, DetailInsertedAsJson) {
  const auto body =
      nlohmann::json::parse(error_body(ErrorCode::denied, "no", R"({"reasons":["cve"],"digest":"sha256:x"})"));
  const auto& detail = body["errors"][0]["detail"];
  ASSERT_TRUE(detail.is_object());
  EXPECT_EQ(detail["reasons"][0], "cve");
  EXPECT_EQ(detail["digest"], "sha256:x");
}

TEST(ErrorBody, EscapesHostileMessages) {
  const std::string messages[] = {
      "quote \" backslash \\ newline \n tab \t",
      std::string("nul \0 inside", 12),
      "</script><script>alert(1)</script>",
      "\xff\xfe invalid utf-8",
      "caf\xc3\xa9",
  };
  for (const auto& message : messages) {
    const auto text = error_body(ErrorCode::name_invalid, message);
    EXPECT_EQ(text.find('\n'), std::string::npos);
    const auto body = nlohmann::json::parse(text);  // throws on broken JSON
    EXPECT_EQ(body["errors"][0]["code"], "NAME_INVALID");
    EXPECT_TRUE(body["errors"][0]["message"].is_string());
  }
  const auto exact = nlohmann::json::parse(error_body(ErrorCode::unknown, messages[0]));
  EXPECT_EQ(exact["errors"][0]["message"], messages[0]);
  const auto unicode = nlohmann::json::parse(error_body(ErrorCode::unknown, "caf\xc3\xa9"));
  EXPECT_EQ(unicode["errors"][0]["message"], "caf\xc3\xa9");
}

TEST(ErrorBody, BrokenDetailStillGivesValidJson) {
  const auto body = nlohmann::json::parse(error_body(ErrorCode::unknown, "m", "{not json"));
  EXPECT_EQ(body["errors"][0]["detail"], "{not json");
}

}  // namespace
}  // namespace pullgate::registry
