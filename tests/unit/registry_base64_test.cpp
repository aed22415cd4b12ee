// Base64 as signatures, DSSE payloads, Basic credentials and stored records use it.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "registry/base64.hpp"

namespace pullgate::registry {
namespace {

TEST(Base64Test, KnownVectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {"\xff\xfe", "//4="},
  };
  for (const auto& [bytes, text] : vectors) {
    EXPECT_EQ(base64_encode(bytes), text);
    std::string decoded;
    ASSERT_TRUE(base64_decode(text, decoded)) << text;
    EXPECT_EQ(decoded, bytes);
  }
}

TEST(Base64Test, PaddingIsOptional) {
  std::string decoded;
  ASSERT_TRUE(base64_decode("Zg", decoded));
  EXPECT_EQ(decoded, "f");
  ASSERT_TRUE(base64_decode("Zm8", decoded));
  EXPECT_EQ(decoded, "fo");
}

TEST(Base64Test, RoundTripsRandomBytes) {
  std::mt19937 random(7);
  for (std::size_t length = 0; length < 200; ++length) {
    std::string bytes(length, '\0');
    for (char& byte : bytes) byte = static_cast<char>(random() & 0xff);
    std::string decoded;
    ASSERT_TRUE(base64_decode(base64_encode(bytes), decoded)) << length;
    EXPECT_EQ(decoded, bytes);
  }
}

TEST(Base64Test, RejectsEverythingElse) {
  for (const std::string text : {"Z", "Zg=", "Zm9v=", "Z===", "====", "=", "Zg==Zg==", "Zm=v", "Zm9v\n", " Zm9v",
                                 "Zm9v Zm9v", "Zm9\tv", "-_8=", "Zm9v_w==", "Zh==", "Zm9=", "é"}) {
    std::string decoded;
    EXPECT_FALSE(base64_decode(text, decoded)) << text;
  }
  std::string decoded;
  EXPECT_FALSE(base64_decode(std::string_view("Zg\0\0", 4), decoded));
}

}  // namespace
}  // namespace pullgate::registry
