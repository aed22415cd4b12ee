// The bounded CBOR reader (policy/cbor.hpp): RFC 8949's appendix A examples it reads,
// and each kind of input it refuses, in one line, without reading past the end.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "policy/cbor.hpp"

namespace pullgate::policy::cbor {
namespace {

std::string bytes_of(std::initializer_list<unsigned> values) {
  std::string out;
  for (const unsigned value : values) out += static_cast<char>(value);
  return out;
}

Item read(const std::string& bytes) {
  auto item = decode(bytes);
  EXPECT_TRUE(std::holds_alternative<Item>(item)) << std::get<std::string>(item);
  return std::holds_alternative<Item>(item) ? std::get<Item>(std::move(item)) : Item{};
}

std::string refusal(const std::string& bytes) {
  auto item = decode(bytes);
  return std::holds_alternative<std::string>(item) ? std::get<std::string>(item) : "read";
}

TEST(CborTest, ReadsIntegersStringsAndTags) {
  EXPECT_EQ(read(bytes_of({0x17})).value, 23);
  EXPECT_EQ(read(bytes_of({0x19, 0x03, 0xe8})).value, 1000);
  EXPECT_EQ(read(bytes_of({0x38, 0x63})).value, -100);
  EXPECT_EQ(read(bytes_of({0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})).value, INT64_MAX);
  const Item text = read(bytes_of({0x64, 0x49, 0x45, 0x54, 0x46}));
  EXPECT_TRUE(text.is(Item::Kind::text));
  EXPECT_EQ(text.bytes, "IETF");
  const Item tagged = read(bytes_of({0xc1, 0x1a, 0x51, 0x4b, 0x67, 0xb0}));
  ASSERT_TRUE(tagged.is(Item::Kind::tag));
  EXPECT_EQ(tagged.value, 1);
  EXPECT_EQ(tagged.items[0].value, 1363896240);
  EXPECT_EQ(read(bytes_of({0xf6})).value, 22);
}

TEST(CborTest, ReadsMapsAndFindsByKey) {
  // {1: 2, "a": [3, 4]}
  const Item map = read(bytes_of({0xa2, 0x01, 0x02, 0x61, 0x61, 0x82, 0x03, 0x04}));
  ASSERT_NE(map.find(1), nullptr);
  EXPECT_EQ(map.find(1)->value, 2);
  ASSERT_NE(map.find("a"), nullptr);
  EXPECT_EQ(map.find("a")->items.size(), 2u);
  EXPECT_EQ(map.find(2), nullptr);
  EXPECT_EQ(map.find("b"), nullptr);
}

TEST(CborTest, RefusesWhatItDoesNotRead) {
  EXPECT_EQ(refusal(""), "not CBOR: ends inside an item");
  EXPECT_EQ(refusal(bytes_of({0x19, 0x03})), "not CBOR: ends inside an item's head");
  EXPECT_EQ(refusal(bytes_of({0x01, 0x02})), "not CBOR: bytes after the data item");
  EXPECT_EQ(refusal(bytes_of({0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0})), "not CBOR: an integer beyond 64-bit signed range");
  EXPECT_EQ(refusal(bytes_of({0x5f, 0x41, 0x00, 0xff})), "not CBOR: an indefinite length, which is not supported");
  EXPECT_EQ(refusal(bytes_of({0x1c})), "not CBOR: reserved additional information 28");
  EXPECT_EQ(refusal(bytes_of({0xf9, 0x3c, 0x00})), "not CBOR: a floating-point number, which is not supported");
  EXPECT_EQ(refusal(bytes_of({0xe0})), "not CBOR: simple value 0, which is not supported");
  EXPECT_EQ(refusal(bytes_of({0xa2, 0x01, 0x02, 0x01, 0x03})), "not CBOR: a map with a key twice");
  EXPECT_EQ(refusal(bytes_of({0xa1, 0x41, 0x00, 0x01})), "not CBOR: a map key that is neither an integer nor text");
}

TEST(CborTest, LengthsAndNestingAreBounded) {
  // A string, an array and a map that claim more than the input holds: refused before
  // anything is allocated for them.
  EXPECT_EQ(refusal(bytes_of({0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
            "not CBOR: a string longer than what follows it");
  EXPECT_EQ(refusal(bytes_of({0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
            "not CBOR: an array or map longer than what follows it");
  EXPECT_EQ(refusal(bytes_of({0xbb, 0x40, 0, 0, 0, 0, 0, 0, 0})),
            "not CBOR: an array or map longer than what follows it");
  std::string deep(max_depth + 1, static_cast<char>(0x81));
  EXPECT_EQ(refusal(deep + bytes_of({0x00})), "not CBOR: nested deeper than 16 levels");
  EXPECT_TRUE(std::holds_alternative<Item>(decode(std::string(max_depth, static_cast<char>(0x81)) + bytes_of({0x00}))));
  std::string many = bytes_of({0x99, 0x27, 0x10});  // an array of 10,000 zeros: 10,001 items
  many.append(10'000, '\0');
  EXPECT_EQ(refusal(many), "not CBOR: more than 10000 items");
  // An array of arrays, each claiming 9,000 elements of what follows: refused before
  // the second claim is given room, so a 4 MiB input cannot ask for millions of items.
  std::string claims = bytes_of({0x82, 0x99, 0x23, 0x28});
  claims.append(9'000, '\0');
  claims += bytes_of({0x99, 0x23, 0x28});
  claims.append(9'000, '\0');
  EXPECT_EQ(refusal(claims), "not CBOR: more than 10000 items");
  std::string one_claim = bytes_of({0x9a, 0x00, 0x40, 0x00, 0x00});  // 4 Mi elements
  one_claim.append(4 << 20, '\0');
  EXPECT_EQ(refusal(one_claim), "not CBOR: more than 10000 items");
}

TEST(CborTest, WritesShortestHeads) {
  std::string out;
  append_head(out, 0, 23);
  append_head(out, 0, 24);
  append_head(out, 2, 256);
  append_string(out, 3, "a");
  EXPECT_EQ(out, bytes_of({0x17, 0x18, 0x18, 0x59, 0x01, 0x00, 0x61, 0x61}));
}

}  // namespace
}  // namespace pullgate::policy::cbor
