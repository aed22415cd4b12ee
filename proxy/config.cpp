#include "proxy/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cache/meta_store.hpp"
#include "cache/pins.hpp"
#include "registry/text.hpp"

namespace pullgate::proxy {

using nlohmann::json;

namespace {

// A mistake is one line whatever the config holds: the values it quotes (a listen
// address, a file name) may carry line breaks and other control characters.
using registry::one_line_each;

// Reads one typed field; records a mistake instead of throwing.
class FieldReader {
 public:
  FieldReader(const json& object, std::string where, std::vector<std::string>& errors)
      : object_(object), where_(std::move(where)), errors_(errors) {}

  void string(const char* key, std::string& out) {
    if (auto* v = find(key)) {
      if (v->is_string()) out = v->get<std::string>();
      else mistake(key, "must be a string");
    }
  }
  void boolean(const char* key, bool& out) {
    if (auto* v = find(key)) {
      if (v->is_boolean()) out = v->get<bool>();
      else mistake(key, "must be true or false");
    }
  }
  template <typename Int>
  void integer(const char* key, Int& out, std::int64_t min, std::int64_t max) {
    if (auto* v = find(key)) {
      if (!v->is_number_integer()) return mistake(key, "must be a whole number");
      auto n = v->get<std::int64_t>();
      if (n < min || n > max)
        return mistake(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      out = static_cast<Int>(n);
    }
  }
  const json* object(const char* key) {
    auto* v = find(key);
    if (v && !v->is_object()) {
      mistake(key, "must be an object");
      return nullptr;
    }
    return v;
  }
  // Every key of the object must be one the reader asked for.
  void refuse_unknown() {
    for (auto& [key, value] : object_.items())
      if (!seen_.count(key)) errors_.push_back(where_ + key + ": unknown field");
  }
  void mistake(const std::string& key, const std::string& what) {
    errors_.push_back(where_ + key + ": " + what);
  }
  const json* find(const char* key) {
    seen_.insert(key);
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

 private:
  const json& object_;
  std::string where_;
  std::vector<std::string>& errors_;
  std::set<std::string> seen_;
};

std::string read_password_file(const std::string& path, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot read " + path;
    return {};
  }
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

// host[:port] of an http(s) URL, or empty when the URL is not one.
std::string url_authority(const std::string& url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.rfind(scheme, 0) == 0) {
      auto rest = url.substr(scheme.size());
      auto end = rest.find_first_of("/?#");
      return rest.substr(0, end);
    }
  }
  return {};
}

// What a parent mirror can know an upstream by: a host[:port] (letters, digits, '.',
// '-', '_', ':'), so that it goes into a path segment or a query unescaped.
bool is_upstream_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' && c != ':') return false;
  return true;
}

void parse_upstream(const json& item, std::size_t index, Config& config, std::vector<std::string>& errors) {
  std::string where = "upstreams[" + std::to_string(index) + "].";
  if (!item.is_object()) {
    errors.push_back(where.substr(0, where.size() - 1) + ": must be an object");
    return;
  }
  UpstreamConfig up;
  FieldReader r(item, where, errors);
  std::string password_file;
  std::int64_t connect_s = 10, response_s = 30, read_s = 30;
  r.string("name", up.settings.name);
  r.string("url", up.settings.url);
  r.string("username", up.settings.username);
  r.string("password", up.settings.password);
  r.string("password_file", password_file);
  r.string("ca_file", up.settings.ca_file);
  r.boolean("insecure", up.settings.insecure);
  std::string parent_upstream, parent_naming;
  r.string("parent_upstream", parent_upstream);
  r.string("parent_naming", parent_naming);
  r.integer("tag_ttl_s", up.tag_ttl_s, -1, 365LL * 24 * 3600);
  r.boolean("default", up.is_default);
  r.integer("connect_timeout_s", connect_s, 1, 600);
  r.integer("response_timeout_s", response_s, 1, 3600);
  r.integer("read_timeout_s", read_s, 1, 3600);
  if (auto* aliases = r.find("aliases")) {
    if (!aliases->is_array()) {
      r.mistake("aliases", "must be a list of strings");
    } else {
      for (auto& a : *aliases) {
        if (a.is_string() && !a.get<std::string>().empty()) up.aliases.push_back(a.get<std::string>());
        else r.mistake("aliases", "must be a list of non-empty strings");
      }
    }
  }
  r.refuse_unknown();

  up.settings.connect_timeout = std::chrono::seconds(connect_s);
  up.settings.response_timeout = std::chrono::seconds(response_s);
  up.settings.read_timeout = std::chrono::seconds(read_s);
  auto authority = url_authority(up.settings.url);
  if (up.settings.url.empty()) r.mistake("url", "is required");
  else if (authority.empty()) r.mistake("url", "must start with http:// or https:// and name a host");
  if (up.settings.name.empty()) up.settings.name = authority;
  if (!password_file.empty()) {
    if (!up.settings.password.empty()) r.mistake("password_file", "cannot be set together with password");
    std::string error;
    up.settings.password = read_password_file(password_file, error);
    if (!error.empty()) r.mistake("password_file", error);
  }
  if (!up.settings.password.empty() && up.settings.username.empty())
    r.mistake("username", "is required when a password is set");
  if (!up.settings.ca_file.empty() && !std::ifstream(up.settings.ca_file))
    r.mistake("ca_file", "cannot read " + up.settings.ca_file);
  if (!parent_upstream.empty()) {
    auto form = registry::parse_parent_naming(parent_naming.empty() ? "ns" : parent_naming);
    if (!form) r.mistake("parent_naming", "must be \"ns\" or \"path\", got \"" + parent_naming + "\"");
    else if (!is_upstream_name(parent_upstream))
      r.mistake("parent_upstream", "must be a registry host[:port] as the parent names it, got \"" + parent_upstream + "\"");
    else up.settings.parent = registry::ParentNaming{parent_upstream, *form};
  } else if (!parent_naming.empty()) {
    r.mistake("parent_naming", "needs parent_upstream (the name the parent mirror knows the upstream by)");
  }
  // Behind a parent, Docker Hub's one-segment names are the original upstream's matter.
  const std::string& original = up.settings.parent ? up.settings.parent->upstream : authority;
  up.docker_hub = up.settings.name == "docker.io" || original == "docker.io" || original == "registry-1.docker.io" ||
                  original == "index.docker.io";
  config.upstreams.push_back(std::move(up));
}

void parse_fleet(const json& fleet, Config& config, std::vector<std::string>& errors) {
  auto& f = config.fleet;
  FieldReader r(fleet, "fleet.", errors);
  r.string("replica_id", f.replica_id);
  r.string("on_store_down", f.on_store_down);
  if (f.on_store_down != "fail_closed" && f.on_store_down != "serve_cached")
    r.mistake("on_store_down", "must be \"fail_closed\" or \"serve_cached\"");
  r.string("policy", f.policy);
  if (f.policy != "file" && f.policy != "etcd") r.mistake("policy", "must be \"file\" or \"etcd\"");
  r.string("tokens", f.tokens);
  if (f.tokens != "file" && f.tokens != "etcd") r.mistake("tokens", "must be \"file\" or \"etcd\"");
  if (auto* etcd = r.object("etcd")) {
    FieldReader e(*etcd, "fleet.etcd.", errors);
    std::string password_file;
    if (auto* v = e.find("endpoints")) {
      bool ok = v->is_array() && !v->empty();
      if (ok)
        for (auto& item : *v) {
          auto text = item.is_string() ? item.get<std::string>() : std::string();
          if (url_authority(text).empty()) ok = false;
          else f.etcd_endpoints.push_back(text);
        }
      if (!ok) e.mistake("endpoints", "must be a list of http:// or https:// URLs of etcd members");
    }
    e.string("prefix", f.etcd_prefix);
    if (f.etcd_prefix.empty() || f.etcd_prefix.front() != '/' || f.etcd_prefix.back() != '/')
      e.mistake("prefix", "must start and end with /, e.g. \"/pullgate/\"");
    e.string("ca_file", f.etcd_ca_file);
    e.string("cert_file", f.etcd_cert_file);
    e.string("key_file", f.etcd_key_file);
    e.string("username", f.etcd_username);
    e.string("password", f.etcd_password);
    e.string("password_file", password_file);
    e.integer("request_timeout_s", f.etcd_request_timeout_s, 1, 600);
    e.refuse_unknown();
    if (!password_file.empty()) {
      if (!f.etcd_password.empty()) e.mistake("password_file", "cannot be set together with password");
      std::string error;
      f.etcd_password = read_password_file(password_file, error);
      if (!error.empty()) e.mistake("password_file", error);
    }
    if (!f.etcd_password.empty() && f.etcd_username.empty()) e.mistake("username", "is required when a password is set");
    if (f.etcd_cert_file.empty() != f.etcd_key_file.empty())
      e.mistake(f.etcd_cert_file.empty() ? "cert_file" : "key_file", "cert_file and key_file go together");
    for (auto [key, file] : {std::pair{"ca_file", &f.etcd_ca_file}, std::pair{"cert_file", &f.etcd_cert_file},
                             std::pair{"key_file", &f.etcd_key_file}})
      if (!file->empty() && !std::ifstream(*file)) e.mistake(key, "cannot read " + *file);
  }
  r.refuse_unknown();
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "pullgate";
  return name;
}

void validate(Config& config, std::vector<std::string>& errors) {
  if (config.fleet.replica_id.empty()) config.fleet.replica_id = host_name();
  // It goes into audit lines, log fields, metric labels and etcd keys as it is.
  const auto& id = config.fleet.replica_id;
  if (id.size() > 63 || !std::all_of(id.begin(), id.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == '_';
      }))
    errors.push_back("fleet.replica_id: must be 1 to 63 letters, digits, '.', '-' or '_', got \"" + id.substr(0, 80) + "\"");
  if (config.fleet.policy_in_etcd() && !config.fleet.enabled())
    errors.push_back("fleet.policy: \"etcd\" needs fleet.etcd.endpoints");
  if (config.fleet.policy_in_etcd() && !config.policy_file.empty())
    errors.push_back("gate.policy_file: not with fleet.policy \"etcd\" (the policy is etcd's; push a file with "
                     "`pullgate policy push FILE`)");
  if (config.fleet.tokens_in_etcd() && !config.fleet.enabled())
    errors.push_back("fleet.tokens: \"etcd\" needs fleet.etcd.endpoints");
  if (config.fleet.tokens_in_etcd() && !config.clients.tokens_file.empty())
    errors.push_back("clients.tokens_file: not with fleet.tokens \"etcd\" (the tokens are etcd's; add one with "
                     "`pullgate token new NAME --config CONFIG`)");
  if (!parse_host_port(config.listen)) errors.push_back("listen: must be HOST:PORT, got \"" + config.listen + "\"");
  if (!config.admin_listen.empty() && !parse_host_port(config.admin_listen))
    errors.push_back("admin.listen: must be HOST:PORT or empty, got \"" + config.admin_listen + "\"");
  if (config.data_dir.empty()) errors.push_back("data_dir: must not be empty");
  if (config.tls_cert_file.empty() != config.tls_key_file.empty())
    errors.push_back("tls: cert_file and key_file must be set together");
  for (auto* f : {&config.tls_cert_file, &config.tls_key_file})
    if (!f->empty() && !std::ifstream(*f)) errors.push_back("tls: cannot read " + *f);
  if (config.upstreams.empty() && !config.offline) errors.push_back("upstreams: at least one upstream is required");
  if (!config.clients.ca_file.empty() && config.tls_cert_file.empty())
    errors.push_back("clients.ca_file: client certificates need TLS on the listener (tls.cert_file, tls.key_file)");
  if (config.clients.certificates == "require" && config.clients.ca_file.empty())
    errors.push_back("clients.certificates: \"require\" needs clients.ca_file");
  for (auto* f : {&config.clients.ca_file, &config.clients.tokens_file})
    if (!f->empty() && !std::ifstream(*f)) errors.push_back("clients: cannot read " + *f);
  if (config.clients.anonymous && !config.client_auth())
    errors.push_back("clients.anonymous: has no effect without clients.ca_file, clients.tokens_file or fleet.tokens "
                     "(without them every client is anonymous)");

  std::set<std::string> names;
  int defaults = 0;
  for (auto& up : config.upstreams) {
    defaults += up.is_default;
    std::vector<std::string> all = up.aliases;
    all.push_back(up.settings.name);
    for (auto& n : all)
      if (!names.insert(n).second) errors.push_back("upstreams: name or alias \"" + n + "\" is used twice");
  }
  if (defaults > 1) errors.push_back("upstreams: only one upstream may be the default");
  if (defaults == 0 && !config.upstreams.empty()) config.upstreams.front().is_default = true;
}

}  // namespace

std::string open_listener_warning(const Config& config) {
  if (config.client_auth()) return {};
  auto listen = parse_host_port(config.listen);
  if (!listen) return {};
  const auto& host = listen->host;
  if (host == "localhost" || host.starts_with("127.") || host == "::1") return {};
  return "listen: " + config.listen + " is reachable from other hosts and no client authentication is configured "
         "(clients.ca_file, clients.tokens_file, fleet.tokens): anyone who reaches it pulls whatever the upstreams "
         "serve this mirror, private images included; that is only safe for a node-local mirror on loopback";
}

std::unique_ptr<cache::MetaStore> open_meta_store(const Config& config) {
  return cache::MetaStore::open(config.data_dir / "lmdb", config.lmdb_map_size_mb << 20,
                                config.lmdb_max_map_size_mb << 20);
}

std::optional<HostPort> parse_host_port(const std::string& text) {
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) return std::nullopt;
  }
  if (host.empty() || port.empty() || port.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + unsigned(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return HostPort{host, static_cast<std::uint16_t>(value)};
}

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < digits; ++i) n = n * 10 + std::uint64_t(text[i] - '0');
  const auto unit_name = text.substr(digits);
  unsigned shift = 0;
  if (unit_name.empty() || unit_name == "B") shift = 0;
  else if (unit_name == "KiB") shift = 10;
  else if (unit_name == "MiB") shift = 20;
  else if (unit_name == "GiB") shift = 30;
  else if (unit_name == "TiB") shift = 40;
  else return std::nullopt;
  if (n == 0 || n > (std::numeric_limits<std::uint64_t>::max() >> shift)) return std::nullopt;
  return n << shift;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view text) {
  if (text.size() < 2 || text.size() > 12) return std::nullopt;
  std::int64_t n = 0;  // at most 11 digits: no overflow
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    n = n * 10 + (text[i] - '0');
  }
  std::int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1000; break;
    case 'm': unit = 60'000; break;
    case 'h': unit = 3'600'000; break;
    case 'd': unit = 86'400'000; break;
    default: return std::nullopt;
  }
  if (n <= 0) return std::nullopt;
  return n * unit;
}

Config default_config() {
  Config config;
  UpstreamConfig hub;
  hub.settings.name = "docker.io";
  hub.settings.url = "https://registry-1.docker.io";
  hub.aliases = {"registry-1.docker.io", "index.docker.io"};
  hub.is_default = true;
  hub.docker_hub = true;
  config.upstreams.push_back(std::move(hub));
  return config;
}

ConfigResult parse_config(const std::string& text) {
  ConfigResult result;
  json doc;
  try {
    doc = json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    result.errors.push_back(std::string("not valid JSON: ") + e.what());
    one_line_each(result.errors);
    return result;
  }
  if (!doc.is_object()) {
    result.errors.push_back("the config must be a JSON object");
    return result;
  }
  auto& c = result.config;
  auto& errors = result.errors;
  FieldReader r(doc, "", errors);
  std::string data_dir = c.data_dir.string();
  r.string("listen", c.listen);
  r.string("data_dir", data_dir);
  c.data_dir = data_dir;
  r.integer("threads", c.threads, 1, 256);
  r.boolean("offline", c.offline);
  r.string("access_log", c.access_log);
  if (auto* tls = r.object("tls")) {
    FieldReader t(*tls, "tls.", errors);
    t.string("cert_file", c.tls_cert_file);
    t.string("key_file", c.tls_key_file);
    t.refuse_unknown();
  }
  if (auto* limits = r.object("limits")) {
    FieldReader l(*limits, "limits.", errors);
    l.integer("max_header_bytes", c.max_header_bytes, 1024, 1024 * 1024);
    l.integer("max_requests_per_connection", c.max_requests_per_connection, 1, 10'000'000);
    l.integer("idle_timeout_s", c.idle_timeout_s, 1, 3600);
    l.integer("header_timeout_s", c.header_timeout_s, 1, 3600);
    l.integer("shutdown_grace_s", c.shutdown_grace_s, 0, 3600);
    l.refuse_unknown();
  }
  if (auto* cache = r.object("cache")) {
    FieldReader k(*cache, "cache.", errors);
    k.integer("lmdb_map_size_mb", c.lmdb_map_size_mb, 16, 1024 * 1024);
    k.integer("lmdb_max_map_size_mb", c.lmdb_max_map_size_mb, 16, std::size_t(64) << 20);
    if (c.lmdb_max_map_size_mb < c.lmdb_map_size_mb)
      errors.push_back("cache.lmdb_max_map_size_mb: must be at least lmdb_map_size_mb (" +
                       std::to_string(c.lmdb_map_size_mb) + ")");
    k.integer("max_blob_mb", c.max_blob_mb, 1, 1024 * 1024 * 1024);
    k.integer("min_free_mb", c.min_free_mb, 0, 1024 * 1024 * 1024);
    if (auto* v = k.find("max_size")) {
      std::optional<std::uint64_t> bytes;
      if (v->is_number_unsigned()) bytes = v->get<std::uint64_t>();
      else if (v->is_string()) bytes = parse_byte_size(v->get<std::string>());
      if (bytes && *bytes > 0) c.cache_max_bytes = bytes;
      else k.mistake("max_size", "must be a size such as \"200GiB\", \"500MiB\" or a number of bytes");
    }
    k.integer("high_watermark", c.cache_high_watermark, 1, 100);
    k.integer("low_watermark", c.cache_low_watermark, 0, 100);
    if (c.cache_low_watermark >= c.cache_high_watermark)
      k.mistake("low_watermark", "must be below high_watermark (" + std::to_string(c.cache_high_watermark) + ")");
    if (auto* v = k.find("max_unpulled")) {
      auto ms = v->is_string() ? parse_duration_ms(v->get<std::string>()) : std::nullopt;
      if (ms) c.cache_max_unpulled_ms = ms;
      else k.mistake("max_unpulled", "must be a duration such as \"30d\", \"12h\", \"15m\" or \"90s\"");
    }
    k.integer("eviction_interval_s", c.cache_eviction_interval_s, 1, 24 * 3600);
    k.integer("memory_mb", c.cache_memory_mb, 1, 64 * 1024);
    if (auto* v = k.find("pin")) {
      if (!v->is_array()) k.mistake("pin", "must be a list of images");
      else
        for (const auto& item : *v) {
          std::string problem = "is not a string";
          if (item.is_string() && cache::parse_image_pin(item.get<std::string>(), &problem)) {
            c.cache_pins.push_back(item.get<std::string>());
            continue;
          }
          k.mistake("pin", "must name images as UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@DIGEST (the "
                           "repository and tag may be globs), got " + item.dump() + ": " + problem);
          break;
        }
    }
    k.refuse_unknown();
  }
  if (auto* gate = r.object("gate")) {
    FieldReader g(*gate, "gate.", errors);
    g.boolean("enabled", c.gate_enabled);
    g.string("policy_file", c.policy_file);
    g.string("audit_log", c.audit_log);
    g.integer("audit_max_mb", c.audit_max_mb, 1, 1024 * 1024);
    g.integer("audit_keep", c.audit_keep, 0, 1000);
    g.integer("audit_queue_max_mb", c.audit_queue_max_mb, 1, 64 * 1024);
    g.string("audit_on_full", c.audit_on_full);
    if (c.audit_on_full != "refuse" && c.audit_on_full != "serve")
      g.mistake("audit_on_full", "must be \"refuse\" or \"serve\"");
    g.string("denial_hint", c.denial_hint);
    g.refuse_unknown();
  }
  if (auto* admin = r.object("admin")) {
    FieldReader a(*admin, "admin.", errors);
    a.string("listen", c.admin_listen);
    a.string("token_file", c.admin_token_file);
    a.string("scanner_token_file", c.scanner_token_file);
    a.string("metrics_token_file", c.metrics_token_file);
    a.refuse_unknown();
  }
  if (auto* clients = r.object("clients")) {
    FieldReader a(*clients, "clients.", errors);
    a.string("ca_file", c.clients.ca_file);
    a.string("certificates", c.clients.certificates);
    if (c.clients.certificates != "require" && c.clients.certificates != "optional")
      a.mistake("certificates", "must be \"require\" or \"optional\"");
    a.string("tokens_file", c.clients.tokens_file);
    a.boolean("anonymous", c.clients.anonymous);
    a.refuse_unknown();
  }
  if (auto* bundle = r.object("bundle")) {
    FieldReader b(*bundle, "bundle.", errors);
    if (auto* v = b.find("trusted_keys")) {
      if (!v->is_array()) b.mistake("trusted_keys", "must be a list of PEM public key files");
      else
        for (const auto& item : *v) {
          if (item.is_string() && !item.get<std::string>().empty()) {
            c.bundle_trusted_keys.push_back(item.get<std::string>());
            continue;
          }
          b.mistake("trusted_keys", "must name PEM public key files, got " + item.dump());
          break;
        }
    }
    if (auto* v = b.find("require_signature")) {
      if (v->is_boolean()) c.bundle_require_signature = v->get<bool>();
      else b.mistake("require_signature", "must be true or false");
    }
    b.refuse_unknown();
  }
  if (auto* fleet = r.object("fleet")) parse_fleet(*fleet, c, errors);
  if (auto* ups = r.find("upstreams")) {
    if (!ups->is_array()) r.mistake("upstreams", "must be a list");
    else
      for (std::size_t i = 0; i < ups->size(); ++i) parse_upstream((*ups)[i], i, c, errors);
  } else {
    c.upstreams = default_config().upstreams;
  }
  r.refuse_unknown();
  validate(c, errors);
  one_line_each(errors);
  return result;
}

ConfigResult load_config_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigResult result;
    result.errors.push_back("cannot read config file " + path.string());
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str());
}

void apply_overrides(ConfigResult& result, const Overrides& o) {
  auto& c = result.config;
  if (o.listen) c.listen = *o.listen;
  if (o.data_dir) c.data_dir = *o.data_dir;
  if (o.threads) c.threads = *o.threads;
  if (o.policy_file) c.policy_file = *o.policy_file;
  if (o.admin_listen) c.admin_listen = *o.admin_listen;
  if (o.offline) c.offline = true;
  if (o.upstream_url) {
    UpstreamConfig up;
    up.settings.url = *o.upstream_url;
    up.settings.name = url_authority(*o.upstream_url);
    up.is_default = true;
    if (up.settings.name.empty())
      result.errors.push_back("--upstream: must be an http:// or https:// URL, got \"" + *o.upstream_url + "\"");
    up.docker_hub = up.settings.name == "registry-1.docker.io" || up.settings.name == "docker.io";
    if (up.docker_hub) up.aliases = {"docker.io"};
    c.upstreams.clear();
    c.upstreams.push_back(std::move(up));
  }
  // Re-run the checks that flags can break; drop duplicates of earlier lines.
  std::vector<std::string> again;
  validate(c, again);
  one_line_each(again);
  for (auto& e : again)
    if (std::find(result.errors.begin(), result.errors.end(), e) == result.errors.end())
      result.errors.push_back(e);
  one_line_each(result.errors);
}

cache::FleetSettings fleet_settings(const Config& config) {
  const auto& f = config.fleet;
  cache::FleetSettings settings;
  settings.prefix = f.etcd_prefix;
  settings.replica_id = f.replica_id;
  settings.etcd.endpoints = f.etcd_endpoints;
  settings.etcd.ca_file = f.etcd_ca_file;
  settings.etcd.cert_file = f.etcd_cert_file;
  settings.etcd.key_file = f.etcd_key_file;
  settings.etcd.username = f.etcd_username;
  settings.etcd.password = f.etcd_password;
  settings.etcd.request_timeout = std::chrono::seconds(f.etcd_request_timeout_s);
  return settings;
}

HostPort reachable_locally(HostPort listen) {
  if (listen.host == "0.0.0.0") listen.host = "127.0.0.1";
  else if (listen.host == "::") listen.host = "::1";
  return listen;
}

}  // namespace pullgate::proxy
