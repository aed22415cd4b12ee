#include "proxy/gate/cache_view.hpp"

#include "policy/rfc3339.hpp"

namespace pullgate::proxy {

using nlohmann::json;

json totals_json(const cache::CacheTotals& t) {
  return {{"bytes", t.bytes},           {"blob_files", t.blob_files}, {"blob_bytes", t.blob_bytes},
          {"manifests", t.manifests},   {"manifest_bytes", t.manifest_bytes},
          {"responses", t.responses},   {"response_bytes", t.response_bytes}};
}

json image_json(const cache::ListedImage& listed) {
  const auto& image = listed.image;
  json names = json::array();
  for (const auto& name : listed.names)
    names.push_back({{"upstream", name.upstream}, {"repository", name.repository}, {"tags", name.tags}});
  return {{"digest", image.root.str()},
          {"names", names},
          {"bytes", image.bytes},
          {"bytes_alone", image.bytes_alone},
          {"bytes_shared", image.bytes - image.bytes_alone},
          {"manifests", image.manifests.size()},
          {"blobs", image.blobs},
          {"last_pull", policy::format_ms(image.last_pull_ms)},
          {"last_pull_ms", image.last_pull_ms},
          {"pinned", image.pinned}};
}

json pin_json(const cache::ListedPin& pin) {
  json keeps = json::array();
  for (const auto& digest : pin.keeps) keeps.push_back(digest.str());
  json out = {{"pin", pin.pin}, {"source", pin.from_config ? "config" : "store"}, {"keeps", keeps}};
  if (pin.record) {
    out["by"] = pin.record->who;
    out["since"] = policy::format_ms(pin.record->created_at_ms);
    if (!pin.record->note.empty()) out["note"] = pin.record->note;
  }
  return out;
}

json limits_json(const cache::EvictionLimits& limits) {
  json out = {{"max_size", nullptr},
              {"high_watermark", limits.high_watermark},
              {"low_watermark", limits.low_watermark},
              {"max_unpulled_s", nullptr}};
  if (limits.max_bytes) out["max_size"] = *limits.max_bytes;
  if (limits.max_unpulled_ms) out["max_unpulled_s"] = *limits.max_unpulled_ms / 1000;
  return out;
}

json digests_json(const std::vector<registry::Digest>& digests) {
  json out = json::array();
  for (const auto& d : digests) out.push_back(d.str());
  return out;
}

json eviction_json(const std::vector<registry::Digest>& roots, const cache::EvictionPlan& plan,
                   const std::vector<registry::Digest>& forced_pinned, const std::string& by) {
  return {{"evicted", digests_json(roots)},
          {"manifests", plan.manifests.size()},
          {"blobs", plan.blobs.size()},
          {"bytes_freed", plan.bytes_before - plan.bytes_after},
          {"forced_pinned", digests_json(forced_pinned)},
          {"by", by}};
}

std::optional<CacheQuery> parse_cache_query(const std::vector<std::pair<std::string, std::string>>& params,
                                            std::string& error) {
  CacheQuery query;
  for (const auto& [name, value] : params) {
    if (name == "sort") {
      auto order = cache::parse_image_order(value);
      if (!order) {
        error = "sort must be size or pulled";
        return std::nullopt;
      }
      query.order = *order;
    } else if (name == "limit") {
      char* end = nullptr;
      auto n = std::strtoull(value.c_str(), &end, 10);
      if (value.empty() || *end || value[0] == '-' || n == 0 || n > max_cache_listing) {
        error = "limit must be a number from 1 to " + std::to_string(max_cache_listing);
        return std::nullopt;
      }
      query.limit = n;
    } else {
      error = "unknown parameter " + name.substr(0, 100) + " (sort, limit)";
      return std::nullopt;
    }
  }
  return query;
}

std::optional<EvictRequest> parse_evict_request(const std::string& text, std::string& error) {
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    error = "body must be a JSON object: {\"images\": [...], \"force\": false, \"by\": \"who\"}";
    return std::nullopt;
  }
  EvictRequest out;
  auto images = body.find("images");
  if (images == body.end() || !images->is_array() || images->empty() || images->size() > max_evict_images) {
    error = "images must be a list of 1 to " + std::to_string(max_evict_images) + " image names or digests";
    return std::nullopt;
  }
  for (const auto& image : *images) {
    if (!image.is_string()) {
      error = "images must be strings";
      return std::nullopt;
    }
    out.images.push_back(image.get<std::string>());
  }
  if (auto force = body.find("force"); force != body.end()) {
    if (!force->is_boolean()) {
      error = "force must be true or false";
      return std::nullopt;
    }
    out.force = force->get<bool>();
  }
  if (auto by = body.find("by"); by != body.end()) {
    if (!by->is_string()) {
      error = "by must be a string";
      return std::nullopt;
    }
    out.by = by->get<std::string>().substr(0, 200);
  }
  for (const auto& [key, value] : body.items())
    if (key != "images" && key != "force" && key != "by") {
      error = "unknown field " + key.substr(0, 100) + " (images, force, by)";
      return std::nullopt;
    }
  return out;
}

}  // namespace pullgate::proxy
