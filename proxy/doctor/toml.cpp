#include "proxy/doctor/toml.hpp"

#include <algorithm>
#include <sstream>
#include <tuple>
#include <vector>

#define TOML_HEADER_ONLY 1
#define TOML_ENABLE_FORMATTERS 1
#include <toml++/toml.h>

namespace pullgate::proxy::doctor {

namespace {

nlohmann::ordered_json to_json(const toml::node& node);

nlohmann::ordered_json table_to_json(const toml::table& table) {
  // toml++ keeps a table's keys sorted; the file's order is the order of their
  // sources.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, value] : table) entries.emplace_back(&key, &value);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& x = a.second->source().begin;
    const auto& y = b.second->source().begin;
    return std::tie(x.line, x.column) < std::tie(y.line, y.column);
  });
  auto out = nlohmann::ordered_json::object();
  for (const auto& [key, value] : entries) out[std::string(key->str())] = to_json(*value);
  return out;
}

nlohmann::ordered_json to_json(const toml::node& node) {
  if (auto* table = node.as_table()) return table_to_json(*table);
  if (auto* array = node.as_array()) {
    auto out = nlohmann::ordered_json::array();
    for (const auto& element : *array) out.push_back(to_json(element));
    return out;
  }
  if (auto* s = node.as_string()) return s->get();
  if (auto* i = node.as_integer()) return i->get();
  if (auto* f = node.as_floating_point()) return f->get();
  if (auto* b = node.as_boolean()) return b->get();
  std::ostringstream text;  // dates and times
  node.visit([&](const auto& value) { text << value; });
  return text.str();
}

}  // namespace

std::variant<nlohmann::ordered_json, TomlError> parse_toml(std::string_view text) {
  try {
    auto table = toml::parse(text);
    return table_to_json(table);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return TomlError{"line " + std::to_string(at.line) + ", column " + std::to_string(at.column) + ": " +
                     std::string(e.description())};
  }
}

}  // namespace pullgate::proxy::doctor
