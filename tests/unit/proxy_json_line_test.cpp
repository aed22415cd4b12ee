#include "proxy/telemetry/json_line.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace pullgate::proxy {
namespace {

TEST(JsonLine, WritesOneParsableLine) {
  JsonLine line;
  auto text = line.field("s", "a\"b\\c\n\t\x01")
                  .field("n", std::uint64_t{18446744073709551615ull})
                  .field("i", std::int64_t{-5})
                  .field("d", 1.5)
                  .field("b", true)
                  .field("v", std::vector<std::string>{"x", "y\"z"})
                  .finish();
  ASSERT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["s"], "a\"b\\c\n\t\x01");
  EXPECT_EQ(j["n"].get<std::uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(j["i"], -5);
  EXPECT_DOUBLE_EQ(j["d"].get<double>(), 1.5);
  EXPECT_EQ(j["b"], true);
  EXPECT_EQ(j["v"][1], "y\"z");
}

TEST(JsonLine, InvalidUtf8BecomesReplacementCharacter) {
  JsonLine line;
  auto text = line.field("bad", std::string("ok\xff\xc3(\xed\xa0\x80 é 𝄞")).finish();
  auto j = nlohmann::json::parse(text);  // throws on invalid UTF-8
  EXPECT_EQ(j["bad"], "ok\xEF\xBF\xBD\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD é 𝄞");
}

TEST(JsonLine, EmptyObjectAndReuse) {
  JsonLine line;
  EXPECT_EQ(line.finish(), "{}\n");
  EXPECT_EQ(line.field("a", 1).finish(), "{\"a\":1}\n");
}

}  // namespace
}  // namespace pullgate::proxy
