#include "proxy/admin/request_parts.hpp"

#include "registry/route.hpp"

namespace pullgate::proxy::admin_parts {

using nlohmann::json;

std::optional<std::map<std::string, std::string>> parse_query(std::string_view query) {
  auto params = registry::parse_query(query);
  if (!params) return std::nullopt;
  std::map<std::string, std::string> out;
  for (auto& [name, value] : *params) {
    if (!value) return std::nullopt;
    out[name] = std::move(*value);
  }
  return out;
}

std::optional<json> object_body(const std::string& text, std::string& error) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    error = std::string("body is not JSON: ") + e.what();
    return std::nullopt;
  }
  if (!body.is_object()) {
    error = "body must be a JSON object";
    return std::nullopt;
  }
  return body;
}

}  // namespace pullgate::proxy::admin_parts
