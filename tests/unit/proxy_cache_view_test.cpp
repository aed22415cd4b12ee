// GET /v1/cache and POST /v1/cache/evict as plain functions: the query's and the
// body's errors (one line each), and the JSON of an image and of the limits.
#include <gtest/gtest.h>

#include "proxy/gate/cache_view.hpp"

namespace pullgate::proxy {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

TEST(CacheQuery, DefaultsAndValidValues) {
  std::string error;
  auto query = parse_cache_query({}, error);
  ASSERT_TRUE(query);
  EXPECT_EQ(query->order, cache::ImageOrder::size);
  EXPECT_EQ(query->limit, 100u);
  query = parse_cache_query(Params{{"sort", "pulled"}, {"limit", "10000"}}, error);
  ASSERT_TRUE(query) << error;
  EXPECT_EQ(query->order, cache::ImageOrder::pulled);
  EXPECT_EQ(query->limit, max_cache_listing);
}

TEST(CacheQuery, BadParametersSayWhatIsWrong) {
  const std::vector<std::pair<Params, std::string>> cases = {
      {{{"sort", "name"}}, "sort must be size or pulled"},
      {{{"limit", "0"}}, "limit must be a number from 1 to 10000"},
      {{{"limit", "10001"}}, "limit must be a number from 1 to 10000"},
      {{{"limit", "-1"}}, "limit must be a number from 1 to 10000"},
      {{{"limit", "5x"}}, "limit must be a number from 1 to 10000"},
      {{{"limit", ""}}, "limit must be a number from 1 to 10000"},
      {{{"colour", "red"}}, "unknown parameter colour (sort, limit)"},
  };
  for (const auto& [params, expected] : cases) {
    std::string error;
    EXPECT_FALSE(parse_cache_query(params, error));
    EXPECT_EQ(error, expected);
  }
}

TEST(EvictRequest, ParsesImagesForceAndBy) {
  std::string error;
  auto request = parse_evict_request(R"({"images":["up/app:v1","sha256:)" + std::string(64, 'a') +
                                         R"("],"force":true,"by":"ops"})",
                                     error);
  ASSERT_TRUE(request) << error;
  EXPECT_EQ(request->images.size(), 2u);
  EXPECT_TRUE(request->force);
  EXPECT_EQ(request->by, "ops");
}

TEST(EvictRequest, RefusesWhatIsNotAListOfNames) {
  for (const char* body : {"", "[]", "{}", R"({"images":[]})", R"({"images":"up/app:v1"})", R"({"images":[1]})",
                           R"({"images":["a/b:c"],"force":"yes"})", R"({"images":["a/b:c"],"by":3})",
                           R"({"images":["a/b:c"],"extra":1})"}) {
    std::string error;
    EXPECT_FALSE(parse_evict_request(body, error)) << body;
    EXPECT_FALSE(error.empty()) << body;
    EXPECT_EQ(error.find('\n'), std::string::npos);
  }
  std::string many = R"({"images":[)";
  for (std::size_t i = 0; i <= max_evict_images; ++i) many += std::string(i ? "," : "") + R"("a/b:c")";
  std::string error;
  EXPECT_FALSE(parse_evict_request(many + "]}", error));
}

TEST(CacheView, AnImageAndTheLimits) {
  auto digest = *registry::Digest::parse("sha256:" + std::string(64, 'b'));
  cache::ListedImage listed{cache::CachedImage{digest, {digest}, 2, 1000, 600, 86'400'000, true},
                            {cache::ImageName{"docker.io", "library/debian", {"stable", "12"}}}};
  auto j = image_json(listed);
  EXPECT_EQ(j["digest"], digest.str());
  EXPECT_EQ(j["bytes"], 1000);
  EXPECT_EQ(j["bytes_alone"], 600);
  EXPECT_EQ(j["bytes_shared"], 400);
  EXPECT_EQ(j["blobs"], 2);
  EXPECT_EQ(j["manifests"], 1);
  EXPECT_EQ(j["pinned"], true);
  EXPECT_EQ(j["last_pull"], "1970-01-02T00:00:00Z");
  EXPECT_EQ(j["names"][0]["tags"], nlohmann::json({"stable", "12"}));

  auto limits = limits_json(cache::EvictionLimits{});
  EXPECT_TRUE(limits["max_size"].is_null());
  EXPECT_TRUE(limits["max_unpulled_s"].is_null());
  limits = limits_json(cache::EvictionLimits{1 << 20, 90, 80, 3'600'000});
  EXPECT_EQ(limits["max_size"], 1 << 20);
  EXPECT_EQ(limits["max_unpulled_s"], 3600);
  EXPECT_EQ(limits["low_watermark"], 80);
}

}  // namespace
}  // namespace pullgate::proxy
