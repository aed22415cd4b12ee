#include "registry/manifest.hpp"

#include <array>
#include <limits>

#include <nlohmann/json.hpp>

namespace pullgate::registry {
namespace {

using nlohmann::json;

constexpr std::size_t max_json_depth = 64;

// Parse errors travel as exceptions inside this file only; parse_manifest turns
// them into the one-line error value.
struct ManifestError {
  std::string message;
};

constexpr std::array known_types = {media_type::oci_manifest, media_type::oci_index,
                                    media_type::docker_manifest, media_type::docker_list};

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_ows(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_ows(text.back())) text.remove_suffix(1);
  return text;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "type/subtype; charset=x" -> "type/subtype", lower case.
std::string bare_media_type(std::string_view value) {
  return lower(trim(value.substr(0, value.find(';'))));
}

bool is_known_type(std::string_view type) {
  for (auto known : known_types) {
    if (type == known) return true;
  }
  return false;
}

// Counts bracket nesting outside strings, so a hostile document is refused before
// a parser walks it.
bool nesting_within(std::string_view bytes, std::size_t limit) {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : bytes) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return false;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return true;
}

// Go's encoding/json (containerd, Docker, CRI-O) matches field names case-
// insensitively, with Unicode folding: "LAYERS" and "\u017fize" fill Layers and
// Size. A document whose spelling a client would read differently from us is
// refused, so the blobs the gate sees are the blobs the client pulls. (Exact
// duplicate keys are harmless: nlohmann and Go both keep the last.)
std::string fold_key(std::string_view key) {
  std::string folded;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (key.substr(i, 2) == "\xc5\xbf") {  // U+017F LATIN SMALL LETTER LONG S
      folded.push_back('s');
      ++i;
    } else if (key.substr(i, 3) == "\xe2\x84\xaa") {  // U+212A KELVIN SIGN
      folded.push_back('k');
      i += 2;
    } else {
      char c = key[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      folded.push_back(c);
    }
  }
  return folded;
}

void refuse_folded_spellings(const json& object, std::initializer_list<std::string_view> fields,
                             const std::string& where) {
  for (const auto& item : object.items()) {
    const std::string& key = item.key();
    const std::string folded = fold_key(key);
    for (auto field : fields) {
      if (key != field && folded == lower(field)) {
        throw ManifestError{where + std::string(field) + ": spelled differently (\"" + key + "\")"};
      }
    }
  }
}

const json* member(const json& object, const char* name) {
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

std::string required_string(const json& object, const char* name, const std::string& where) {
  const json* value = member(object, name);
  if (value == nullptr) throw ManifestError{where + name + ": missing"};
  if (!value->is_string()) throw ManifestError{where + name + ": not a string"};
  return value->get<std::string>();
}

std::string optional_string(const json& object, const char* name, const std::string& where) {
  const json* value = member(object, name);
  if (value == nullptr) return {};
  if (!value->is_string()) throw ManifestError{where + name + ": not a string"};
  return value->get<std::string>();
}

Platform parse_platform(const json& value, const std::string& where) {
  if (!value.is_object()) throw ManifestError{where + ": not an object"};
  const std::string prefix = where + ".";
  refuse_folded_spellings(value, {"os", "architecture", "variant"}, prefix);
  Platform platform;
  platform.os = required_string(value, "os", prefix);
  platform.architecture = required_string(value, "architecture", prefix);
  platform.variant = optional_string(value, "variant", prefix);
  return platform;
}

Descriptor parse_descriptor(const json& value, const std::string& where, bool with_platform) {
  if (!value.is_object()) throw ManifestError{where + ": not an object"};
  const std::string prefix = where + ".";
  refuse_folded_spellings(value, {"mediaType", "digest", "size", "platform", "artifactType"}, prefix);
  const auto media = required_string(value, "mediaType", prefix);
  if (media.empty()) throw ManifestError{prefix + "mediaType: empty"};

  auto digest = Digest::parse(required_string(value, "digest", prefix));
  if (!digest) throw ManifestError{prefix + "digest: invalid digest"};

  const json* size = member(value, "size");
  if (size == nullptr) throw ManifestError{prefix + "size: missing"};
  std::int64_t size_value = 0;
  if (size->is_number_unsigned()) {
    const auto u = size->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      throw ManifestError{prefix + "size: too large"};
    }
    size_value = static_cast<std::int64_t>(u);
  } else if (size->is_number_integer()) {
    size_value = size->get<std::int64_t>();
    if (size_value < 0) throw ManifestError{prefix + "size: negative"};
  } else {
    throw ManifestError{prefix + "size: not an integer"};
  }

  Descriptor descriptor{media, std::move(*digest), size_value, std::nullopt,
                        optional_string(value, "artifactType", prefix)};
  if (with_platform) {
    if (const json* platform = member(value, "platform")) {
      descriptor.platform = parse_platform(*platform, prefix + "platform");
    }
  }
  return descriptor;
}

const json& required_array(const json& document, const char* name) {
  const json* value = member(document, name);
  if (value == nullptr) throw ManifestError{std::string(name) + ": missing"};
  if (!value->is_array()) throw ManifestError{std::string(name) + ": not an array"};
  return *value;
}

ParsedManifest parse_document(std::string_view bytes, std::string_view content_type) {
  if (bytes.size() > max_manifest_bytes) throw ManifestError{"manifest larger than 4 MiB"};
  if (!nesting_within(bytes, max_json_depth)) throw ManifestError{"JSON nested deeper than 64 levels"};

  // nlohmann skips a UTF-8 byte order mark; Go's encoding/json (every client) refuses
  // it. Refuse too, so the gate never reads a document the client reads differently.
  if (bytes.starts_with("\xef\xbb\xbf")) throw ManifestError{"invalid JSON: byte order mark"};
  const json document = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) throw ManifestError{"invalid JSON"};
  if (!document.is_object()) throw ManifestError{"manifest is not a JSON object"};
  refuse_folded_spellings(
      document, {"schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "artifactType"}, "");

  const json* version = member(document, "schemaVersion");
  if (version == nullptr) throw ManifestError{"schemaVersion: missing"};
  if (!version->is_number_integer() || version->get<std::int64_t>() != 2) {
    throw ManifestError{"schemaVersion: must be 2"};
  }

  ParsedManifest parsed;
  parsed.media_type = optional_string(document, "mediaType", "");
  if (parsed.media_type.empty()) parsed.media_type = bare_media_type(content_type);
  if (!is_known_type(parsed.media_type)) throw ManifestError{"unsupported manifest media type"};
  parsed.is_index = parsed.media_type == media_type::oci_index || parsed.media_type == media_type::docker_list;

  if (parsed.is_index) {
    const json& manifests = required_array(document, "manifests");
    parsed.children.reserve(manifests.size());
    for (std::size_t i = 0; i < manifests.size(); ++i) {
      parsed.children.push_back(
          parse_descriptor(manifests[i], "manifests[" + std::to_string(i) + "]", /*with_platform=*/true));
    }
  } else {
    const json* config = member(document, "config");
    if (config == nullptr) throw ManifestError{"config: missing"};
    parsed.blobs.push_back(parse_descriptor(*config, "config", false));
    const json& layers = required_array(document, "layers");
    parsed.blobs.reserve(1 + layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) {
      parsed.blobs.push_back(parse_descriptor(layers[i], "layers[" + std::to_string(i) + "]", false));
    }
  }

  if (const json* subject = member(document, "subject")) {
    parsed.subject = parse_descriptor(*subject, "subject", false);
  }
  parsed.artifact_type = optional_string(document, "artifactType", "");
  return parsed;
}

// qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]. Only an explicit zero
// refuses; a malformed q is read as acceptance, the way lenient servers do.
bool is_zero_q(std::string_view q) {
  if (q.empty() || q.front() != '0') return false;
  q.remove_prefix(1);
  if (q.empty()) return true;
  if (q.front() != '.') return false;
  q.remove_prefix(1);
  if (q.size() > 3) return false;
  for (char c : q) {
    if (c != '0') return false;
  }
  return true;
}

}  // namespace

std::variant<ParsedManifest, std::string> parse_manifest(std::string_view bytes, std::string_view content_type) {
  try {
    return parse_document(bytes, content_type);
  } catch (const ManifestError& error) {
    return error.message;
  } catch (const json::exception& error) {
    // Type checks above should make this unreachable; a library surprise still
    // becomes a refusal, not a crash.
    return std::string("invalid manifest: ") + error.what();
  }
}

bool accepts(const std::vector<std::string>& accept_values, std::string_view media_type) {
  const std::string wanted = lower(media_type);
  const auto slash = wanted.find('/');
  const std::string type_wildcard = slash == std::string::npos ? std::string() : wanted.substr(0, slash) + "/*";

  // RFC 9110 section 12.5.1: the most specific matching range decides, so
  // "x;q=0, */*" refuses x.
  enum Specificity { any = 0, type = 1, exact = 2 };
  int best = -1;
  bool best_accepted = false;
  bool saw_any_value = false;

  for (const auto& line : accept_values) {
    std::string_view rest = line;
    while (true) {
      const auto comma = rest.find(',');
      const auto element = trim(rest.substr(0, comma));
      if (!element.empty()) {
        saw_any_value = true;
        const auto semicolon = element.find(';');
        const std::string range = lower(trim(element.substr(0, semicolon)));
        bool zero = false;
        std::string_view params = semicolon == std::string_view::npos ? std::string_view{} : element.substr(semicolon + 1);
        while (!params.empty()) {
          const auto next = params.find(';');
          const auto param = trim(params.substr(0, next));
          const auto eq = param.find('=');
          if (eq != std::string_view::npos && lower(trim(param.substr(0, eq))) == "q") {
            zero = is_zero_q(trim(param.substr(eq + 1)));
          }
          if (next == std::string_view::npos) break;
          params.remove_prefix(next + 1);
        }

        int specificity = -1;
        if (range == wanted) specificity = exact;
        else if (!type_wildcard.empty() && range == type_wildcard) specificity = type;
        else if (range == "*/*") specificity = any;
        if (specificity > best) {
          best = specificity;
          best_accepted = !zero;
        } else if (specificity >= 0 && specificity == best) {
          best_accepted = best_accepted || !zero;
        }
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (!saw_any_value) return true;
  return best >= 0 && best_accepted;
}

}  // namespace pullgate::registry
