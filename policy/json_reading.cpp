// Reading untrusted JSON one checked value at a time (policy/json_reading.hpp).
#include "policy/json_reading.hpp"

#include "policy/text.hpp"

namespace pullgate::policy::detail {
namespace {

bool nested_too_deep(std::string_view text, int max_nesting) {
  bool in_string = false;
  int depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_nesting) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

}  // namespace

void fail(const std::string& path, const std::string& problem) {
  throw Failure{(path.empty() ? std::string("document") : path) + ": " + problem};
}

std::string shown(std::string_view text) { return "\"" + printable(text, 80) + "\""; }

std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string index(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

std::string_view type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "not a JSON value";
  }
}

void expect(bool ok, const json& value, const std::string& path, std::string_view wanted) {
  if (!ok) fail(path, "must be " + std::string(wanted) + ", not " + std::string(type_name(value)));
}

const json* field(const json& object, std::string_view key) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return nullptr;
  return &*found;
}

const json& required(const json& object, std::string_view key, const std::string& path) {
  const json* value = field(object, key);
  if (!value) fail(join(path, key), "missing");
  return *value;
}

const json& as_object(const json& value, const std::string& path) {
  expect(value.is_object(), value, path, "an object");
  return value;
}

const json& as_array(const json& value, const std::string& path) {
  expect(value.is_array(), value, path, "an array");
  return value;
}

std::string as_string(const json& value, const std::string& path) {
  expect(value.is_string(), value, path, "a string");
  return value.get<std::string>();
}

std::string optional_string(const json& object, std::string_view key, const std::string& path) {
  const json* value = field(object, key);
  return value ? as_string(*value, join(path, key)) : std::string();
}

std::string required_string(const json& object, std::string_view key, const std::string& path) {
  std::string text = as_string(required(object, key, path), join(path, key));
  if (text.empty()) fail(join(path, key), "must not be empty");
  return text;
}

std::optional<TimePoint> time_field(const json& object, std::string_view key, const std::string& path) {
  const json* value = field(object, key);
  if (!value) return std::nullopt;
  const std::string text = as_string(*value, join(path, key));
  const auto time = parse_rfc3339(text);
  if (!time) fail(join(path, key), "must be an RFC 3339 time, not " + shown(text));
  return time;
}

std::optional<json> parse_bounded(std::string_view document, std::size_t max_bytes, std::string_view size_name,
                                  int max_nesting, std::string& error) {
  if (document.size() > max_bytes) {
    error = "document: larger than " + std::to_string(max_bytes) + " bytes (" + std::string(size_name) + ")";
    return std::nullopt;
  }
  if (nested_too_deep(document, max_nesting)) {
    error = "document: nested deeper than " + std::to_string(max_nesting) + " levels";
    return std::nullopt;
  }
  try {
    return json::parse(document.begin(), document.end());
  } catch (const json::exception& e) {
    error = one_line("document: not JSON: " + std::string(e.what()));
    return std::nullopt;
  }
}

}  // namespace pullgate::policy::detail
