#pragma once
// TOML (containerd's hosts.toml and config.toml, containers' registries.conf) read
// into JSON values, so the analysis of node configurations works on one kind of
// value. The parser is toml++ (Debian's libtomlplusplus-dev, TOML 1.0, used
// header-only in toml.cpp alone, so no shared library is added to what pullgate
// needs at run time); the files are untrusted, so every mistake is a value with the
// line it is on, never a crash.
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace pullgate::proxy::doctor {

// What a TOML file could not be read as: "line 3, column 7: ...".
struct TomlError {
  std::string message;
};

// Tables become objects whose keys are in the order they appear in the file (containerd
// tries [host] entries in file order), arrays arrays, strings, integers, floats and
// booleans themselves; dates and times become their TOML text.
std::variant<nlohmann::ordered_json, TomlError> parse_toml(std::string_view text);

}  // namespace pullgate::proxy::doctor
