#pragma once
// The pieces every admin endpoint reads a request with and answers an error with.
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pullgate::proxy::admin_parts {

inline nlohmann::json error_json(std::string_view message) { return nlohmann::json{{"error", message}}; }

// "a=b&c=d" → decoded map (read as every query is, registry::parse_query); nullopt
// when an escape is malformed.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

// A request body that must be a JSON object; nullopt with `error` saying why not.
std::optional<nlohmann::json> object_body(const std::string& text, std::string& error);

}  // namespace pullgate::proxy::admin_parts
