// trusted_root.json read into logs and certificate authorities, each with the period
// it is trusted for; look-ups by log id and time.
#include "policy/trusted_root.hpp"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "policy/text.hpp"
#include "registry/base64.hpp"
#include "registry/text.hpp"

namespace pullgate::policy::sigstore {
namespace {

using json = nlohmann::json;

constexpr std::array<std::string_view, 3> media_types = {
    "application/vnd.dev.sigstore.trustedroot.v0.2+json", "application/vnd.dev.sigstore.trustedroot.v0.1+json",
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",  // still in Sigstore's production root
};
constexpr std::size_t max_quoted_length = 80;
constexpr std::size_t max_parse_error_length = 200;
// Merkle trees and SCTs are SHA-256 (transparency::hash_size); the enum's other values
// name hashes nothing here computes.
constexpr std::string_view sha256_name = "SHA2_256";
constexpr std::string_view ecdsa_p256_name = "PKIX_ECDSA_P256_SHA_256";
constexpr std::string_view ed25519_name = "PKIX_ED25519";

// A mistake in the document, thrown where a reader finds it and caught once in
// TrustedRoot::parse: the readers below stay short and each names its own field.
struct Malformed {
  std::string reason;
};

std::string in_quotes(std::string_view text) { return "\"" + printable(text, max_quoted_length) + "\""; }

// Where a reader is: "tlogs[1]", then "tlogs[1] (https://rekor.sigstore.dev)" once the
// entry's URL is known, so that a mistake says which entry it is in.
struct Place {
  std::string where;

  // "trusted root's tlogs[1] (https://...): publicKey.validFor.start is missing"; the
  // document's own fields have no place, a whole entry no field.
  [[noreturn]] void fail(std::string_view field, std::string_view problem) const {
    std::string reason = "trusted root's " + where;
    if (!field.empty()) reason += (where.empty() ? "" : ": ") + std::string(field);
    throw Malformed{reason + " " + std::string(problem)};
  }
};

// A member that is there: proto3 JSON writes null for an absent field, as the
// conformance suite's roots do ("end": null).
const json* member(const json& object, std::string_view key) {
  const auto found = object.find(key);
  return found == object.end() || found->is_null() ? nullptr : &*found;
}

const json& object_at(const json& object, std::string_view key, const Place& place, std::string_view field) {
  const json* value = member(object, key);
  if (value == nullptr) place.fail(field, "is missing");
  if (!value->is_object()) place.fail(field, "is not an object");
  return *value;
}

std::optional<std::string> optional_string(const json& object, std::string_view key, const Place& place,
                                           std::string_view field) {
  const json* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) place.fail(field, "is not a string");
  return value->get<std::string>();
}

std::string string_at(const json& object, std::string_view key, const Place& place, std::string_view field) {
  std::optional<std::string> value = optional_string(object, key, place, field);
  if (!value || value->empty()) place.fail(field, "is missing");
  return std::move(*value);
}

// A URL that reasons quote later, whole: a control character in it is a mistake, and
// would break the reason's one line.
std::string url_at(const json& object, std::string_view key, const Place& place, std::string_view field,
                   bool required) {
  std::string url =
      required ? string_at(object, key, place, field) : optional_string(object, key, place, field).value_or("");
  const auto control = [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; };
  if (std::any_of(url.begin(), url.end(), control)) place.fail(field, "has a control character");
  return url;
}

// proto3 JSON bytes: standard base64.
std::string bytes_at(const json& object, std::string_view key, const Place& place, std::string_view field) {
  std::string bytes;
  if (!registry::base64_decode(string_at(object, key, place, field), bytes)) place.fail(field, "is not base64");
  return bytes;
}

TimePoint time_at(const json& object, std::string_view key, const Place& place, std::string_view field) {
  const std::string text = string_at(object, key, place, field);
  const std::optional<TimePoint> time = parse_rfc3339(text);
  if (!time) place.fail(field, in_quotes(text) + " is not an RFC 3339 time");
  return *time;
}

// `object`'s validFor. The start is required: proto marks only the end optional, and
// a missing start read as "always" would trust a key for a time it was never trusted
// (sigstore-conformance trust-root-tlog-missing-validity-start_fail).
ValidFor valid_for_at(const json& object, const Place& place, const std::string& prefix) {
  const json& range = object_at(object, "validFor", place, prefix + "validFor");
  ValidFor valid_for;
  valid_for.start = time_at(range, "start", place, prefix + "validFor.start");
  if (member(range, "end") != nullptr) {
    valid_for.end = time_at(range, "end", place, prefix + "validFor.end");
    if (*valid_for.end < valid_for.start) place.fail(prefix + "validFor", "ends before it starts");
  }
  return valid_for;
}

// An optional list of the document: absent and null are empty.
const json& list_at(const json& root, std::string_view key) {
  static const json empty = json::array();
  const json* value = member(root, key);
  if (value == nullptr) return empty;
  if (!value->is_array()) throw Malformed{"trusted root's " + std::string(key) + " is not a list"};
  return *value;
}

// The host of a baseUrl, which a log signs checkpoints with (sigstore-go:
// url.Hostname()). The proto allows a URL without a scheme.
std::string_view hostname(std::string_view url) {
  if (const std::size_t scheme = url.find("://"); scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find_first_of("/?#"));
  if (const std::size_t at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  if (url.starts_with('[')) {
    const std::size_t close = url.find(']');
    return close == std::string_view::npos ? std::string_view{} : url.substr(1, close - 1);
  }
  return url.substr(0, url.find(':'));
}

// What every tlogs[] and ctlogs[] entry holds, read before deciding whether its key is
// one pullgate can use: a skipped entry must still be a well-formed one.
struct LogInstance {
  Place place;
  std::string base_url;
  std::string hash_algorithm;
  std::string key_details;
  std::string key_der;
  std::string log_id;
  ValidFor valid_for;
  const json* checkpoint_key_id = nullptr;
};

LogInstance read_log_instance(const json& entry, Place place) {
  if (!entry.is_object()) place.fail("", "is not an object");
  LogInstance log;
  log.base_url = url_at(entry, "baseUrl", place, "baseUrl", true);
  place.where += " (" + printable(log.base_url, max_quoted_length) + ")";
  log.hash_algorithm = string_at(entry, "hashAlgorithm", place, "hashAlgorithm");
  const json& key = object_at(entry, "publicKey", place, "publicKey");
  log.key_details = string_at(key, "keyDetails", place, "publicKey.keyDetails");
  log.key_der = bytes_at(key, "rawBytes", place, "publicKey.rawBytes");
  log.valid_for = valid_for_at(key, place, "publicKey.");
  log.log_id = bytes_at(object_at(entry, "logId", place, "logId"), "keyId", place, "logId.keyId");
  log.checkpoint_key_id = member(entry, "checkpointKeyId");
  log.place = std::move(place);
  return log;
}

// The reason an entry is left out, or nothing when pullgate can check with its key.
std::optional<std::string> unusable(const LogInstance& log, std::string_view list,
                                    std::initializer_list<std::string_view> usable_keys) {
  if (log.hash_algorithm != sha256_name) {
    return log.place.where + " is left out: its hashAlgorithm is " + in_quotes(log.hash_algorithm) + ", not " +
           std::string(sha256_name);
  }
  if (std::find(usable_keys.begin(), usable_keys.end(), log.key_details) == usable_keys.end()) {
    std::string accepted;
    for (std::string_view name : usable_keys) accepted += (accepted.empty() ? "" : " or ") + std::string(name);
    return log.place.where + ", trusted " + log.valid_for.text() + ", is left out: its key is " +
           in_quotes(log.key_details) + ", and pullgate checks " + std::string(list) + " with " + accepted + " keys";
  }
  return std::nullopt;
}

// The key must be the kind keyDetails names: a root that says one thing and holds
// another is not one to guess about.
void check_key_kind(const LogInstance& log, const registry::PublicKey& key) {
  const std::string_view expected = log.key_details == ed25519_name ? "ed25519" : "ecdsa-p256";
  if (key.algorithm() != expected) {
    log.place.fail("publicKey.rawBytes",
                   "holds an " + key.algorithm() + " key, not the " + log.key_details + " its keyDetails names");
  }
}

void check_log_id(const LogInstance& log, std::string_view computed) {
  if (log.log_id != computed) {
    log.place.fail("logId.keyId", registry::base64_encode(log.log_id) + " is not its key's log id " +
                                      registry::base64_encode(computed));
  }
}

// The key read on its own first, so that LogKey's refusal can only be of the name.
registry::PublicKey read_key(const LogInstance& log) {
  auto key = registry::PublicKey::from_der(log.base_url, log.key_der);
  if (auto* error = std::get_if<std::string>(&key)) log.place.fail("publicKey.rawBytes", "is refused: " + *error);
  check_key_kind(log, std::get<registry::PublicKey>(key));
  return std::get<registry::PublicKey>(std::move(key));
}

// Either list's entry: LogKey's log id is the Rekor v1 and RFC 6962 one for the ECDSA
// keys of both lists, C2SP's for Rekor v2's Ed25519.
TransparencyLog read_log(LogInstance&& log) {
  read_key(log);
  auto key = transparency::LogKey::from_der(std::string(hostname(log.base_url)), log.key_der);
  if (auto* error = std::get_if<std::string>(&key)) log.place.fail("baseUrl", "is refused: " + *error);
  TransparencyLog out{std::move(log.base_url), std::get<transparency::LogKey>(std::move(key)), log.valid_for};
  check_log_id(log, out.key.log_id());
  // trustedroot v0.2: the C2SP key id of checkpoints, a prefix of the log id (4 bytes
  // by the proto's comment, all 32 for Rekor v2 by its other comment).
  if (log.checkpoint_key_id != nullptr) {
    if (!log.checkpoint_key_id->is_object()) log.place.fail("checkpointKeyId", "is not an object");
    const std::string id = bytes_at(*log.checkpoint_key_id, "keyId", log.place, "checkpointKeyId.keyId");
    if (id.size() < 4 || !out.key.log_id().starts_with(id)) {
      log.place.fail("checkpointKeyId.keyId", registry::base64_encode(id) + " is not the start of its log id " +
                                                  registry::base64_encode(out.key.log_id()));
    }
  }
  return out;
}

CertificateAuthority read_authority(const json& entry, Place place) {
  if (!entry.is_object()) place.fail("", "is not an object");
  CertificateAuthority authority;
  authority.uri = url_at(entry, "uri", place, "uri", false);
  if (!authority.uri.empty()) place.where += " (" + printable(authority.uri, max_quoted_length) + ")";
  const json& chain = object_at(entry, "certChain", place, "certChain");
  const json* certificates = member(chain, "certificates");
  if (certificates == nullptr || !certificates->is_array() || certificates->empty()) {
    place.fail("certChain.certificates", "is not a list of one or more certificates");
  }
  for (std::size_t i = 0; i < certificates->size(); ++i) {
    const std::string field = "certChain.certificates[" + std::to_string(i) + "]";
    const json& certificate = (*certificates)[i];
    if (!certificate.is_object()) place.fail(field, "is not an object");
    auto parsed = Certificate::from_der(bytes_at(certificate, "rawBytes", place, field + ".rawBytes"));
    if (auto* error = std::get_if<std::string>(&parsed)) place.fail(field + ".rawBytes", "is " + *error);
    authority.chain.push_back(std::get<Certificate>(std::move(parsed)));
  }
  authority.valid_for = valid_for_at(entry, place, "");
  return authority;
}

}  // namespace

std::string ValidFor::text() const {
  std::string out = "from " + format_rfc3339(start);
  out += end ? " to " + format_rfc3339(*end) : " on";
  return out;
}

std::variant<TrustedRoot, std::string> TrustedRoot::parse(std::string_view text) {
  // No guard against deep nesting (policy documents have one): a trusted root is the
  // operator's own configuration, as trusted as the policy that names it.
  json document;
  try {
    document = json::parse(text.begin(), text.end());
  } catch (const json::exception& error) {
    // parse_error, and out_of_range for a number too large for a double.
    return "trusted root is not JSON: " + printable(error.what(), max_parse_error_length);
  }
  if (!document.is_object()) return std::string("trusted root is not a JSON object");
  TrustedRoot root;
  try {
    root.media_type_ = string_at(document, "mediaType", Place{}, "mediaType");
    if (std::find(media_types.begin(), media_types.end(), root.media_type_) == media_types.end()) {
      return "trusted root's mediaType " + in_quotes(root.media_type_) + " is not a trusted root's (" +
             std::string(media_types[0]) + ", ...)";
    }
    // Both lists alike; only the keys pullgate checks them with differ. RFC 6962 also
    // allows RSA CT logs, but Sigstore's sign with ECDSA P-256 (the staging root's one
    // RSA key, PKCS#1 rather than SPKI, expired in 2022).
    const auto read_logs = [&root, &document](const char* list, std::initializer_list<std::string_view> usable_keys,
                                              std::vector<TransparencyLog>& out) {
      const json& entries = list_at(document, list);
      for (std::size_t i = 0; i < entries.size(); ++i) {
        LogInstance log = read_log_instance(entries[i], Place{list + ("[" + std::to_string(i) + "]")});
        if (auto reason = unusable(log, list, usable_keys)) {
          root.skipped_.push_back({list, log.log_id, "trusted root's " + *reason});
          root.warnings_.push_back(root.skipped_.back().reason);
          continue;
        }
        out.push_back(read_log(std::move(log)));
      }
    };
    read_logs("tlogs", {ecdsa_p256_name, ed25519_name}, root.tlogs_);
    read_logs("ctlogs", {ecdsa_p256_name}, root.ctlogs_);
    for (const auto& [key, out] : {std::pair{"certificateAuthorities", &root.certificate_authorities_},
                                   std::pair{"timestampAuthorities", &root.timestamp_authorities_}}) {
      const json& authorities = list_at(document, key);
      for (std::size_t i = 0; i < authorities.size(); ++i) {
        out->push_back(read_authority(authorities[i], Place{std::string(key) + "[" + std::to_string(i) + "]"}));
      }
    }
  } catch (const Malformed& malformed) {
    return registry::one_line(malformed.reason);
  }
  return root;
}

FoundLog TrustedRoot::find(const std::vector<TransparencyLog>& logs, std::string_view list, std::string_view log_id,
                           TimePoint time) const {
  const std::string id = registry::base64_encode(log_id);
  std::vector<const TransparencyLog*> others;  // of this id, trusted at other times
  for (const TransparencyLog& log : logs) {
    if (log.key.log_id() != log_id) continue;
    if (log.valid_for.contains(time)) return {&log, {}};
    others.push_back(&log);
  }
  const std::string when = ", not at " + format_rfc3339(time);
  if (others.size() == 1) {
    return {nullptr, std::string(list) + " entry " + others[0]->base_url + " (log id " + id + ") is trusted " +
                         others[0]->valid_for.text() + when};
  }
  if (!others.empty()) {
    std::string periods;
    for (const TransparencyLog* log : others)
      periods += (periods.empty() ? "" : " and ") + log->base_url + " " + log->valid_for.text();
    return {nullptr, std::string(list) + " entries of log id " + id + " are trusted " + periods + when};
  }
  for (const Skipped& skipped : skipped_) {
    if (skipped.list == list && skipped.log_id == log_id) return {nullptr, skipped.reason};
  }
  return {nullptr, "no " + std::string(list) + " entry of the trusted root has log id " + id};
}

FoundLog TrustedRoot::tlog(std::string_view log_id, TimePoint time) const {
  return find(tlogs_, "tlogs", log_id, time);
}

FoundLog TrustedRoot::ctlog(std::string_view log_id, TimePoint time) const {
  return find(ctlogs_, "ctlogs", log_id, time);
}

std::vector<const CertificateAuthority*> TrustedRoot::certificate_authorities_at(TimePoint time) const {
  std::vector<const CertificateAuthority*> out;
  for (const CertificateAuthority& authority : certificate_authorities_) {
    if (authority.valid_for.contains(time)) out.push_back(&authority);
  }
  return out;
}

}  // namespace pullgate::policy::sigstore
