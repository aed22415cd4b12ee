#pragma once
// Private to policy/: reading untrusted JSON documents (scanner reports, VEX) that stop
// at the first problem with one line naming where ("statements[3].status: ...").
// Fields are optional unless read with `required`; null counts as absent (Go writes
// absent slices and pointers as null).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "policy/rfc3339.hpp"

namespace pullgate::policy::detail {

using json = nlohmann::json;

// The first problem found stops the reading: `Failure` carries it out as one line.
struct Failure {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, const std::string& problem);

// Document text quoted inside an error: short, one line, printable.
std::string shown(std::string_view text);
std::string one_line(std::string text);

std::string join(const std::string& path, std::string_view key);
std::string index(const std::string& path, std::size_t i);
std::string_view type_name(const json& value);

void expect(bool ok, const json& value, const std::string& path, std::string_view wanted);
const json* field(const json& object, std::string_view key);
const json& required(const json& object, std::string_view key, const std::string& path);
const json& as_object(const json& value, const std::string& path);
const json& as_array(const json& value, const std::string& path);
std::string as_string(const json& value, const std::string& path);
std::string optional_string(const json& object, std::string_view key, const std::string& path);
std::string required_string(const json& object, std::string_view key, const std::string& path);
std::optional<TimePoint> time_field(const json& object, std::string_view key, const std::string& path);

// What a document may be before the parser sees it: `max_bytes` long (`size_name`
// says it in errors, "64 MiB"), brackets nested `max_nesting` deep (counted outside
// strings first, so a hostile document cannot make anything recurse deeply). Nullopt
// with `error` set to one line ("document: ...") otherwise, or when it is not JSON.
std::optional<json> parse_bounded(std::string_view document, std::size_t max_bytes, std::string_view size_name,
                                  int max_nesting, std::string& error);

}  // namespace pullgate::policy::detail
