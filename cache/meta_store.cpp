// MetaStore on LMDB. Records are versioned JSON objects ({"v":1,...}); byte
// strings from the upstream (manifest bytes, response bodies) are base64 inside
// the JSON because they need not be UTF-8. A record that does not decode is
// treated as absent: the caller refetches instead of crashing on a bad file.
#include "cache/meta_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "cache/lmdb.hpp"
#include "registry/base64.hpp"

namespace pullgate::cache {
namespace {

using nlohmann::json;

constexpr int record_version = 1;
constexpr std::string_view schema_key = "schema_version";
constexpr std::string_view fleet_revision_key = "fleet_revision";

// ---- record encoding ----

// Bytes inside JSON records are base64 (registry/base64.hpp).
using registry::base64_encode;
std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  if (!registry::base64_decode(text, out)) return std::nullopt;
  return out;
}

// Text fields (media types) must be valid UTF-8 to be stored as JSON; anything
// else is refused with a clear error rather than silently altered.
std::string dump(const json& record, std::string_view what) {
  try {
    return record.dump();
  } catch (const json::exception& e) {
    throw std::invalid_argument("cannot store " + std::string(what) + ": " + e.what());
  }
}

json header() { return json{{"v", record_version}}; }

// Parses a stored value into an object of our record version; nullopt otherwise.
std::optional<json> parse_record(std::string_view value) {
  json j = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer() || v->get<std::int64_t>() != record_version) return std::nullopt;
  return j;
}

template <typename T>
std::optional<T> field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return std::nullopt;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return std::nullopt;
  } else if constexpr (std::is_same_v<T, std::uint64_t>) {
    if (!it->is_number_unsigned()) return std::nullopt;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return std::nullopt;
  } else {
    static_assert(std::is_same_v<T, std::int64_t>);
    if (!it->is_number_integer()) return std::nullopt;
  }
  return it->get<T>();
}

std::string encode(const TagRecord& r) {
  json j = header();
  j["digest"] = r.digest.str();
  j["media_type"] = r.media_type;
  j["fetched_at_ms"] = r.fetched_at_ms;
  return dump(j, "tag record");
}

std::optional<TagRecord> decode_tag(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto digest_text = field<std::string>(*j, "digest");
  auto media_type = field<std::string>(*j, "media_type");
  auto fetched = field<std::int64_t>(*j, "fetched_at_ms");
  if (!digest_text || !media_type || !fetched) return std::nullopt;
  auto digest = Digest::parse(*digest_text);
  if (!digest) return std::nullopt;
  return TagRecord{*digest, *media_type, *fetched};
}

std::string encode(const ManifestRecord& r) {
  json j = header();
  j["media_type"] = r.media_type;
  j["bytes_base64"] = base64_encode(r.bytes);
  j["stored_at_ms"] = r.stored_at_ms;
  return dump(j, "manifest record");
}

std::optional<ManifestRecord> decode_manifest(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto media_type = field<std::string>(*j, "media_type");
  auto bytes_base64 = field<std::string>(*j, "bytes_base64");
  auto stored = field<std::int64_t>(*j, "stored_at_ms");
  if (!media_type || !bytes_base64 || !stored) return std::nullopt;
  auto bytes = base64_decode(*bytes_base64);
  if (!bytes) return std::nullopt;
  return ManifestRecord{*media_type, std::move(*bytes), *stored};
}

std::string encode(const BlobRecord& r) {
  json j = header();
  j["size"] = r.size;
  j["stored_at_ms"] = r.stored_at_ms;
  j["last_access_ms"] = r.last_access_ms;
  return dump(j, "blob record");
}

std::optional<BlobRecord> decode_blob(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto size = field<std::uint64_t>(*j, "size");
  auto stored = field<std::int64_t>(*j, "stored_at_ms");
  auto last_access = field<std::int64_t>(*j, "last_access_ms");
  if (!size || !stored || !last_access) return std::nullopt;
  return BlobRecord{*size, *stored, *last_access};
}

std::string encode(const CachedResponse& r) {
  json j = header();
  j["content_type"] = r.content_type;
  j["body_base64"] = base64_encode(r.body);
  j["fetched_at_ms"] = r.fetched_at_ms;
  return dump(j, "cached response");
}

std::optional<CachedResponse> decode_response(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto content_type = field<std::string>(*j, "content_type");
  auto body_base64 = field<std::string>(*j, "body_base64");
  auto fetched = field<std::int64_t>(*j, "fetched_at_ms");
  if (!content_type || !body_base64 || !fetched) return std::nullopt;
  auto body = base64_decode(*body_base64);
  if (!body) return std::nullopt;
  return CachedResponse{*content_type, std::move(*body), *fetched};
}

std::string encode_pull_time(std::int64_t at_ms) {
  json j = header();
  j["at_ms"] = at_ms;
  return dump(j, "pull time");
}

std::optional<std::int64_t> decode_pull_time(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  return field<std::int64_t>(*j, "at_ms");
}

// The decisions a verdict can carry; anything else is refused on write and
// reads as absent, so a bad record can never be mistaken for an allow.
bool known_decision(std::string_view decision) {
  return decision == "allow" || decision == "warn" || decision == "deny";
}

std::string encode(const VerdictRecord& r) {
  if (!known_decision(r.decision)) {
    throw std::invalid_argument("cannot store verdict: unknown decision \"" + r.decision +
                                "\" (allow, warn or deny)");
  }
  json j = header();
  j["decision"] = r.decision;
  j["source"] = r.source;
  j["reasons"] = r.reasons;
  j["policy_version"] = r.policy_version;
  j["set_by"] = r.set_by;
  j["evaluated_at_ms"] = r.evaluated_at_ms;
  j["expires_at_ms"] = r.expires_at_ms ? json(*r.expires_at_ms) : json(nullptr);
  j["scope"] = r.scope;
  return dump(j, "verdict");
}

std::optional<VerdictRecord> decode_verdict(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto decision = field<std::string>(*j, "decision");
  auto source = field<std::string>(*j, "source");
  auto policy_version = field<std::string>(*j, "policy_version");
  auto set_by = field<std::string>(*j, "set_by");
  auto evaluated = field<std::int64_t>(*j, "evaluated_at_ms");
  if (!decision || !known_decision(*decision) || !source || !policy_version || !set_by || !evaluated) {
    return std::nullopt;
  }
  auto reasons_it = j->find("reasons");
  if (reasons_it == j->end() || !reasons_it->is_array()) return std::nullopt;
  std::vector<std::string> reasons;
  reasons.reserve(reasons_it->size());
  for (const auto& reason : *reasons_it) {
    if (!reason.is_string()) return std::nullopt;
    reasons.push_back(reason.get<std::string>());
  }
  // "expires_at_ms" is required: null means "does not expire", absence means a bad record.
  auto expires_it = j->find("expires_at_ms");
  if (expires_it == j->end()) return std::nullopt;
  std::optional<std::int64_t> expires;
  if (!expires_it->is_null()) {
    if (!expires_it->is_number_integer()) return std::nullopt;
    expires = expires_it->get<std::int64_t>();
  }
  // "scope" came later: a record without one was computed before verdicts were kept
  // per scope, and counts in none (it is computed again).
  std::string scope;
  if (auto it = j->find("scope"); it != j->end()) {
    if (!it->is_string()) return std::nullopt;
    scope = it->get<std::string>();
  }
  return VerdictRecord{std::move(*decision), std::move(*source), std::move(reasons), std::move(*policy_version),
                       std::move(*set_by),   *evaluated,         expires,           std::move(scope)};
}

// Refused on write and read as absent: an exception that names neither a digest
// nor a repository would allow everything from its upstreams.
bool usable_exception(const ExceptionRecord& r) { return !r.id.empty() && (!r.digest.empty() || !r.repository.empty()); }

std::string encode(const ExceptionRecord& r) {
  if (!usable_exception(r)) {
    throw std::invalid_argument("cannot store exception \"" + r.id +
                                "\": it needs an id and a digest or a repository");
  }
  json j = header();
  j["id"] = r.id;
  j["digest"] = r.digest;
  j["repository"] = r.repository;
  j["upstream"] = r.upstream;
  j["reason"] = r.reason;
  j["who"] = r.who;
  j["created_at_ms"] = r.created_at_ms;
  j["expires_at_ms"] = r.expires_at_ms ? json(*r.expires_at_ms) : json(nullptr);
  return dump(j, "exception");
}

std::optional<ExceptionRecord> decode_exception(std::string_view key, std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  ExceptionRecord r;
  auto id = field<std::string>(*j, "id");
  auto digest = field<std::string>(*j, "digest");
  auto repository = field<std::string>(*j, "repository");
  auto upstream = field<std::string>(*j, "upstream");
  auto reason = field<std::string>(*j, "reason");
  auto who = field<std::string>(*j, "who");
  auto created = field<std::int64_t>(*j, "created_at_ms");
  if (!id || *id != key || !digest || !repository || !upstream || !reason || !who || !created) return std::nullopt;
  auto expires_it = j->find("expires_at_ms");
  if (expires_it == j->end()) return std::nullopt;
  if (!expires_it->is_null()) {
    if (!expires_it->is_number_integer()) return std::nullopt;
    r.expires_at_ms = expires_it->get<std::int64_t>();
  }
  r.id = std::move(*id);
  r.digest = std::move(*digest);
  r.repository = std::move(*repository);
  r.upstream = std::move(*upstream);
  r.reason = std::move(*reason);
  r.who = std::move(*who);
  r.created_at_ms = *created;
  if (!usable_exception(r)) return std::nullopt;
  return r;
}

std::string encode(const PinRecord& r) {
  json j = header();
  j["pin"] = r.pin;
  j["who"] = r.who;
  j["created_at_ms"] = r.created_at_ms;
  j["note"] = r.note;
  return dump(j, "pin");
}

std::optional<PinRecord> decode_pin(std::string_view key, std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto pin = field<std::string>(*j, "pin");
  auto who = field<std::string>(*j, "who");
  auto created = field<std::int64_t>(*j, "created_at_ms");
  auto note = field<std::string>(*j, "note");
  if (!pin || *pin != key || !who || !created || !note) return std::nullopt;
  return PinRecord{std::move(*pin), std::move(*who), *created, std::move(*note)};
}

std::string encode(const ReportRecord& r) {
  json j = header();
  // Opaque to the store: kept as base64 so any bytes the caller chose round-trip.
  j["summary_base64"] = base64_encode(r.summary_json);
  j["scanner"] = r.scanner;
  j["scanned_at_ms"] = r.scanned_at_ms;
  j["imported_at_ms"] = r.imported_at_ms;
  return dump(j, "report");
}

std::optional<ReportRecord> decode_report(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto summary_base64 = field<std::string>(*j, "summary_base64");
  auto scanner = field<std::string>(*j, "scanner");
  auto scanned = field<std::int64_t>(*j, "scanned_at_ms");
  auto imported = field<std::int64_t>(*j, "imported_at_ms");
  if (!summary_base64 || !scanner || !scanned || !imported) return std::nullopt;
  auto summary = base64_decode(*summary_base64);
  if (!summary) return std::nullopt;
  return ReportRecord{std::move(*summary), std::move(*scanner), *scanned, *imported};
}

std::string encode(const VexRecord& r) {
  json j = header();
  j["name"] = r.name;
  j["document_base64"] = base64_encode(r.document_json);
  j["imported_at_ms"] = r.imported_at_ms;
  j["by"] = r.by;
  return dump(j, "VEX document");
}

std::optional<VexRecord> decode_vex(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto name = field<std::string>(*j, "name");
  auto document_base64 = field<std::string>(*j, "document_base64");
  auto imported = field<std::int64_t>(*j, "imported_at_ms");
  auto by = field<std::string>(*j, "by");
  if (!name || !document_base64 || !imported || !by) return std::nullopt;
  auto document = base64_decode(*document_base64);
  if (!document) return std::nullopt;
  return VexRecord{std::move(*name), std::move(*document), *imported, std::move(*by)};
}

std::string encode(const SignalRecord& r) {
  json j = header();
  j["policy_version"] = r.policy_version;
  j["checked_at_ms"] = r.checked_at_ms;
  j["signature"] = r.signature;
  j["signature_detail"] = r.signature_detail;
  j["key"] = r.key;
  j["sbom"] = r.sbom;
  j["sbom_detail"] = r.sbom_detail;
  j["artifact"] = r.artifact;
  if (!r.provenance.empty()) {
    j["provenance"] = r.provenance;
    j["provenance_detail"] = r.provenance_detail;
  }
  if (r.signature_valid_until_ms != 0) j["signature_valid_until_ms"] = r.signature_valid_until_ms;
  return dump(j, "signal record");
}

std::optional<SignalRecord> decode_signals(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  SignalRecord r;
  auto version = field<std::string>(*j, "policy_version");
  auto checked = field<std::int64_t>(*j, "checked_at_ms");
  auto signature = field<std::string>(*j, "signature");
  auto signature_detail = field<std::string>(*j, "signature_detail");
  auto key = field<std::string>(*j, "key");
  auto sbom = field<std::string>(*j, "sbom");
  auto sbom_detail = field<std::string>(*j, "sbom_detail");
  auto artifact = field<bool>(*j, "artifact");
  if (!version || !checked || !signature || !signature_detail || !key || !sbom || !sbom_detail || !artifact)
    return std::nullopt;
  SignalRecord record{std::move(*version), *checked,          std::move(*signature), std::move(*signature_detail),
                      std::move(*key),     std::move(*sbom), std::move(*sbom_detail), *artifact, {}, {}, 0};
  // Written since provenance was added; absent in older records (not looked for).
  if (j->contains("provenance")) {
    auto provenance = field<std::string>(*j, "provenance");
    auto provenance_detail = field<std::string>(*j, "provenance_detail");
    if (!provenance || !provenance_detail) return std::nullopt;
    record.provenance = std::move(*provenance);
    record.provenance_detail = std::move(*provenance_detail);
  }
  // Written since Notation signatures were checked, and only when a signature lapses.
  if (j->contains("signature_valid_until_ms")) {
    auto until = field<std::int64_t>(*j, "signature_valid_until_ms");
    if (!until) return std::nullopt;
    record.signature_valid_until_ms = *until;
  }
  return record;
}

std::string encode(const PendingRecord& r) {
  json j = header();
  j["references"] = r.references;
  j["first_seen_ms"] = r.first_seen_ms;
  j["last_seen_ms"] = r.last_seen_ms;
  j["requests"] = r.requests;
  return dump(j, "pending entry");
}

std::optional<PendingRecord> decode_pending(std::string_view value) {
  auto j = parse_record(value);
  if (!j) return std::nullopt;
  auto first = field<std::int64_t>(*j, "first_seen_ms");
  auto last = field<std::int64_t>(*j, "last_seen_ms");
  auto requests = field<std::uint64_t>(*j, "requests");
  if (!first || !last || !requests || *requests > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  auto references_it = j->find("references");
  if (references_it == j->end() || !references_it->is_array()) return std::nullopt;
  if (references_it->size() > MetaStore::max_pending_references) return std::nullopt;
  PendingRecord r;
  for (const auto& reference : *references_it) {
    if (!reference.is_string()) return std::nullopt;
    r.references.push_back(reference.get<std::string>());
  }
  r.first_seen_ms = *first;
  r.last_seen_ms = *last;
  r.requests = static_cast<std::uint32_t>(*requests);
  return r;
}

// Newest last, no duplicates, the oldest dropped past the cap.
void note_reference(PendingRecord& r, std::string_view reference) {
  auto& refs = r.references;
  refs.erase(std::remove(refs.begin(), refs.end(), reference), refs.end());
  refs.emplace_back(reference);
  if (refs.size() > MetaStore::max_pending_references) {
    refs.erase(refs.begin(), refs.end() - std::ptrdiff_t(MetaStore::max_pending_references));
  }
}

// ---- keys ----

// NUL separates the parts, so no part may contain one: otherwise
// ("a\0b", "c") and ("a", "b\0c") would share a key.
std::optional<std::string> tag_key(std::string_view upstream, std::string_view repository, std::string_view tag) {
  for (std::string_view part : {upstream, repository, tag}) {
    if (part.find('\0') != std::string_view::npos) return std::nullopt;
  }
  std::string key;
  key.reserve(upstream.size() + repository.size() + tag.size() + 2);
  key.append(upstream).push_back('\0');
  key.append(repository).push_back('\0');
  key.append(tag);
  return key;
}

// The names of a stored tag key: upstream, repository and tag; nullopt for a hashed
// key (storable_key), whose names are not in it.
struct TagNames {
  std::string_view upstream, repository, tag;
};
std::optional<TagNames> tag_names(std::string_view key) {
  if (key.empty() || key.front() == '\0') return std::nullopt;
  auto first = key.find('\0');
  auto second = first == std::string_view::npos ? first : key.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  return TagNames{key.substr(0, first), key.substr(first + 1, second - first - 1), key.substr(second + 1)};
}

// LMDB keys are 1 to 511 bytes (by default). Any other key is replaced by
// "\0sha256:<hex of the key>"; stored plain keys never start with NUL (those are
// hashed too), so a hashed key cannot alias a plain one.
std::string storable_key(std::string key, std::size_t max_key) {
  if (!key.empty() && key.size() <= max_key && key.front() != '\0') return key;
  return '\0' + registry::digest_of(registry::DigestAlgorithm::sha256, key).str();
}

// A reference is the key "<referenced digest>\n<manifest digest>" with an empty
// value: referenced_by is a prefix scan, adding one twice rewrites the same key.
// A digest never contains '\n', so the prefix "<digest>\n" cannot match a longer
// digest that starts with the same characters. Two sha512 digests and the
// separator make 271 bytes, under LMDB's 511-byte key limit.
constexpr char reference_separator = '\n';

std::string reference_prefix(const Digest& referenced) {
  std::string prefix = referenced.str();
  prefix.push_back(reference_separator);
  return prefix;
}

std::string reference_key(const Digest& referenced, const Digest& manifest) {
  return reference_prefix(referenced) + manifest.str();
}

// Where a manifest was seen: "<digest>\n<upstream>\n<repository>", empty value (a
// long one hashed by storable_key: looked up exactly, never scanned).
std::optional<std::string> seen_key(const Digest& manifest, std::string_view upstream, std::string_view repository) {
  for (std::string_view part : {upstream, repository})
    if (part.empty() || part.find('\n') != std::string_view::npos || part.find('\0') != std::string_view::npos)
      return std::nullopt;
  std::string key = manifest.str();
  key.push_back('\n');
  key.append(upstream).push_back('\n');
  key.append(repository);
  return key;
}

// The pending queue's order index: "<first_seen as 16 hex digits>\n<digest>" with
// an empty value. The time is offset by 2^63 so that the byte order of the hex
// is the numeric order, negative times included; the digest breaks ties.
constexpr std::size_t pending_time_width = 16;

std::string pending_order_key(std::int64_t first_seen_ms, const Digest& digest) {
  static constexpr std::string_view hex = "0123456789abcdef";
  std::uint64_t biased = static_cast<std::uint64_t>(first_seen_ms) ^ (std::uint64_t{1} << 63);
  std::string key(pending_time_width, '0');
  for (std::size_t i = pending_time_width; i-- > 0; biased >>= 4) key[i] = hex[biased & 15];
  key.push_back('\n');
  key += digest.str();
  return key;
}

// The digest part of an order key; nullopt for a key that is not one.
std::optional<Digest> pending_order_digest(std::string_view key) {
  if (key.size() <= pending_time_width + 1 || key[pending_time_width] != '\n') return std::nullopt;
  return Digest::parse(key.substr(pending_time_width + 1));
}

// ---- the store ----

class LmdbMetaStore final : public MetaStore {
 public:
  LmdbMetaStore(std::filesystem::path dir, std::unique_ptr<lmdb::MapGrowth> growth, lmdb::Env env,
                std::size_t stale_readers_cleared)
      : dir_(std::move(dir)),
        growth_(std::move(growth)),
        env_(std::move(env)),
        stale_readers_cleared_(stale_readers_cleared) {
    max_key_ = std::size_t(mdb_env_get_maxkeysize(env_.get()));
    auto txn = lmdb::Txn::write(env_.get());
    meta_ = txn.open_dbi("meta", MDB_CREATE);
    tags_ = txn.open_dbi("tags", MDB_CREATE);
    manifests_ = txn.open_dbi("manifests", MDB_CREATE);
    blobs_ = txn.open_dbi("blobs", MDB_CREATE);
    responses_ = txn.open_dbi("responses", MDB_CREATE);
    // Added after schema version 1 was first written. Created here when missing,
    // so an older store opens as is; no existing record changed, hence the schema
    // version stays 1.
    verdicts_ = txn.open_dbi("verdicts", MDB_CREATE);
    refs_ = txn.open_dbi("refs", MDB_CREATE);
    exceptions_ = txn.open_dbi("exceptions", MDB_CREATE);
    reports_ = txn.open_dbi("reports", MDB_CREATE);
    pending_ = txn.open_dbi("pending", MDB_CREATE);
    pending_order_ = txn.open_dbi("pending_order", MDB_CREATE);
    signals_ = txn.open_dbi("signals", MDB_CREATE);
    vex_ = txn.open_dbi("vex", MDB_CREATE);
    pulls_ = txn.open_dbi("pulls", MDB_CREATE);
    pins_ = txn.open_dbi("pins", MDB_CREATE);
    check_schema(txn);
    // "seen" came last: a store written before it learns where its manifests were
    // seen from its tag records (and the indexes they name); a manifest pulled only
    // by digest is confirmed with the upstream on its next pull.
    MDB_dbi seen = 0;
    int rc = mdb_dbi_open(txn.get(), "seen", 0, &seen);
    if (rc == MDB_NOTFOUND) {
      seen_ = txn.open_dbi("seen", MDB_CREATE);
      backfill_seen(txn);
    } else {
      lmdb::check(rc, "open database seen");
      seen_ = seen;
    }
    txn.commit();
  }

  using MetaStore::mark_seen;
  void mark_seen(std::span<const Digest> manifests, std::string_view upstream,
                 std::string_view repository) override {
    auto fresh = unseen_keys(manifests, upstream, repository);
    if (fresh.empty()) return;  // all known: no write, the store's generation stays
    auto txn = lmdb::Txn::write(env_.get());
    for (const auto& key : fresh) txn.put(seen_, key, "", "mark manifest seen");
    txn.commit();
  }

  void write(const ManifestBatch& batch) override {
    // Everything that can be refused is encoded before the write lock is taken.
    std::optional<std::string> tag_key_value, tag_value, manifest_value;
    if (batch.tag) {
      tag_key_value = tag_key(batch.upstream, batch.repository, batch.tag->name);
      if (!tag_key_value) throw std::invalid_argument("cannot store tag record: a name contains a NUL byte");
      tag_key_value = storable_key(std::move(*tag_key_value), max_key_);
      tag_value = encode(batch.tag->record);
    }
    if (batch.manifest) manifest_value = encode(batch.manifest->record);
    auto fresh = unseen_keys(batch.seen, batch.upstream, batch.repository);
    if (!batch.tag && !batch.manifest && fresh.empty()) return;
    auto txn = lmdb::Txn::write(env_.get());
    if (batch.manifest) {
      const auto& manifest = batch.manifest->digest;
      const std::string what = "put manifest " + manifest.str();
      for (const auto& digest : batch.manifest->referenced) txn.put(refs_, reference_key(digest, manifest), "", what);
      txn.put(manifests_, manifest.str(), *manifest_value, what);
    }
    for (const auto& key : fresh) txn.put(seen_, key, "", "mark manifest seen");
    if (batch.tag) txn.put(tags_, *tag_key_value, *tag_value, "put tag");
    txn.commit();
  }

  bool seen_in(const Digest& manifest, std::string_view upstream, std::string_view repository) override {
    auto key = stored_seen_key(manifest, upstream, repository);
    if (!key) return false;
    auto txn = lmdb::Txn::read(env_.get());
    return txn.get(seen_, *key).has_value();
  }

  std::vector<Digest> referenced_by_in(const Digest& digest, std::string_view upstream, std::string_view repository,
                                       std::size_t limit) override {
    std::vector<Digest> out;
    if (limit == 0) return out;
    const std::string prefix = reference_prefix(digest);
    auto txn = lmdb::Txn::read(env_.get());
    lmdb::Cursor cursor(txn, refs_);
    std::size_t scanned = 0;
    for (auto entry = cursor.seek(prefix); entry && entry->first.starts_with(prefix) && out.size() < limit &&
                                           scanned < max_references_scanned;
         entry = cursor.next(), ++scanned) {
      auto manifest = Digest::parse(entry->first.substr(prefix.size()));
      if (!manifest) continue;
      auto key = stored_seen_key(*manifest, upstream, repository);
      if (key && txn.get(seen_, *key)) out.push_back(std::move(*manifest));
    }
    return out;
  }

  std::optional<TagRecord> get_tag(std::string_view upstream, std::string_view repository,
                                   std::string_view tag) override {
    auto key = tag_key(upstream, repository, tag);
    if (!key) return std::nullopt;  // such a tag was never stored: put_tag refuses it
    auto txn = lmdb::Txn::read(env_.get());
    auto value = txn.get(tags_, storable_key(std::move(*key), max_key_));
    if (!value) return std::nullopt;
    return decode_tag(*value);
  }

  void put_tag(std::string_view upstream, std::string_view repository, std::string_view tag,
               const TagRecord& record) override {
    auto key = tag_key(upstream, repository, tag);
    if (!key) throw std::invalid_argument("cannot store tag record: a name contains a NUL byte");
    put(tags_, storable_key(std::move(*key), max_key_), encode(record), "put tag");
  }

  std::optional<ManifestRecord> get_manifest(const Digest& digest) override {
    return read(manifests_, digest.str(), decode_manifest);
  }

  void put_manifest(const Digest& digest, const ManifestRecord& record) override {
    put(manifests_, digest.str(), encode(record), "put manifest " + digest.str());
  }

  std::optional<BlobRecord> get_blob(const Digest& digest) override {
    return read(blobs_, digest.str(), decode_blob);
  }

  void put_blob(const Digest& digest, const BlobRecord& record) override {
    put(blobs_, digest.str(), encode(record), "put blob " + digest.str());
  }

  void remove_blob(const Digest& digest) override {
    auto txn = lmdb::Txn::write(env_.get());
    txn.del(blobs_, digest.str(), "remove blob " + digest.str());
    txn.commit();
  }

  std::optional<CachedResponse> get_response(std::string_view key) override {
    auto txn = lmdb::Txn::read(env_.get());
    auto value = txn.get(responses_, storable_key(std::string(key), max_key_));
    if (!value) return std::nullopt;
    return decode_response(*value);
  }

  void put_response(std::string_view key, const CachedResponse& response) override {
    put(responses_, storable_key(std::string(key), max_key_), encode(response), "put response");
  }

  std::optional<VerdictRecord> get_verdict(const Digest& digest) override {
    if (auto own = read(verdicts_, digest.str(), decode_verdict)) return own;
    auto txn = lmdb::Txn::read(env_.get());
    lmdb::Cursor cursor(txn, verdicts_);
    const std::string prefix = verdict_prefix(digest);
    for (auto entry = cursor.seek(prefix); entry && entry->first.starts_with(prefix); entry = cursor.next())
      if (auto record = decode_verdict(entry->second)) return record;
    return std::nullopt;
  }

  ScopeVerdicts get_verdicts_in(const Digest& digest, std::string_view scope) override {
    ScopeVerdicts out;
    auto txn = lmdb::Txn::read(env_.get());
    if (auto value = txn.get(verdicts_, digest.str())) out.manual = decode_verdict(*value);
    if (!scope.empty())
      if (auto value = txn.get(verdicts_, scoped_key(digest, scope)))
        out.computed = decode_verdict(*value);
    return out;
  }

  void put_verdict(const Digest& digest, const VerdictRecord& record) override {
    const std::string value = encode(record);
    const std::string what = "put verdict " + digest.str();
    auto txn = lmdb::Txn::write(env_.get());
    auto key = verdict_key(digest, record);
    if (key != digest.str()) {
      // A computed verdict: the digest's own record goes if it no longer decides
      // anything (one computed before verdicts had scopes, or a manual one that has
      // expired), so that what the CLI and the API show is what counts.
      if (auto own = txn.get(verdicts_, digest.str())) {
        auto old = decode_verdict(*own);
        if (!old || !standing_source(old->source) ||
            (old->expires_at_ms && *old->expires_at_ms <= record.evaluated_at_ms))
          txn.del(verdicts_, digest.str(), what);
      }
    }
    txn.put(verdicts_, key, value, what);
    txn.commit();
  }

  bool remove_verdict(const Digest& digest) override { return remove_verdicts(digest, true); }
  bool remove_computed_verdicts(const Digest& digest) override { return remove_verdicts(digest, false); }

  std::vector<std::pair<Digest, VerdictRecord>> list_verdicts(const VerdictFilter& filter) override {
    std::vector<std::pair<Digest, VerdictRecord>> out;
    if (filter.limit == 0) return out;
    auto txn = lmdb::Txn::read(env_.get());
    lmdb::Cursor cursor(txn, verdicts_);
    for (auto entry = cursor.first(); entry && out.size() < filter.limit; entry = cursor.next()) {
      // Keys or records that do not decode are skipped, as get_verdict treats them as absent.
      auto digest = Digest::parse(entry->first.substr(0, entry->first.find('\n')));
      if (!digest) continue;
      auto record = decode_verdict(entry->second);
      if (!record) continue;
      if (filter.decision && record->decision != *filter.decision) continue;
      if (filter.source && record->source != *filter.source) continue;
      out.emplace_back(std::move(*digest), std::move(*record));
    }
    return out;
  }

  void add_references(const Digest& manifest, const std::vector<Digest>& referenced) override {
    if (referenced.empty()) return;
    const std::string what = "add references from " + manifest.str();
    auto txn = lmdb::Txn::write(env_.get());
    for (const auto& digest : referenced) txn.put(refs_, reference_key(digest, manifest), "", what);
    txn.commit();
  }

  std::vector<Digest> referenced_by(const Digest& digest, std::size_t limit) override {
    std::vector<Digest> out;
    if (limit == 0) return out;
    const std::string prefix = reference_prefix(digest);
    auto txn = lmdb::Txn::read(env_.get());
    lmdb::Cursor cursor(txn, refs_);
    for (auto entry = cursor.seek(prefix); entry && entry->first.starts_with(prefix) && out.size() < limit;
         entry = cursor.next()) {
      // Only a whole, valid digest after the separator counts; anything else is a bad key.
      auto manifest = Digest::parse(entry->first.substr(prefix.size()));
      if (manifest) out.push_back(std::move(*manifest));
    }
    return out;
  }

  std::optional<ExceptionRecord> get_exception(std::string_view id) override {
    if (!text_key_ok(id)) return std::nullopt;  // never stored: put_exception refuses it
    auto txn = lmdb::Txn::read(env_.get());
    auto value = txn.get(exceptions_, id);
    if (!value) return std::nullopt;
    return decode_exception(id, *value);
  }

  void put_exception(const ExceptionRecord& record) override {
    if (!text_key_ok(record.id)) {
      throw std::invalid_argument("cannot store exception: the id must be 1 to " + std::to_string(max_key_) +
                                  " bytes without NUL");
    }
    put(exceptions_, record.id, encode(record), "put exception " + record.id);
  }

  bool remove_exception(std::string_view id) override { return remove_keyed(exceptions_, id, "exception"); }

  std::vector<ExceptionRecord> list_exceptions() override { return list_decoded<ExceptionRecord>(exceptions_, decode_exception); }

  std::optional<PinRecord> get_pin(std::string_view pin) override {
    if (!text_key_ok(pin)) return std::nullopt;  // never stored: add_pin refuses it
    return read(pins_, pin, [&](std::string_view value) { return decode_pin(pin, value); });
  }

  bool add_pin(const PinRecord& record) override {
    if (!text_key_ok(record.pin)) {
      throw std::invalid_argument("cannot store pin: it must be 1 to " + std::to_string(max_key_) +
                                  " bytes without NUL");
    }
    const std::string value = encode(record);  // refuses bad text before the write lock
    auto txn = lmdb::Txn::write(env_.get());
    if (txn.get(pins_, record.pin)) return false;
    txn.put(pins_, record.pin, value, "put pin " + record.pin);
    txn.commit();
    return true;
  }

  bool remove_pin(std::string_view pin) override { return remove_keyed(pins_, pin, "pin"); }

  std::vector<PinRecord> list_pins() override { return list_decoded<PinRecord>(pins_, decode_pin); }

  std::optional<ReportRecord> get_report(const Digest& digest) override {
    return read(reports_, digest.str(), decode_report);
  }

  void put_report(const Digest& digest, const ReportRecord& record) override {
    const std::string value = encode(record);  // refuses bad text before the write lock
    auto txn = lmdb::Txn::write(env_.get());
    txn.put(reports_, digest.str(), value, "put report " + digest.str());
    erase_pending(txn, digest);
    txn.commit();
  }

  bool remove_report(const Digest& digest) override {
    auto txn = lmdb::Txn::write(env_.get());
    bool existed = txn.del(reports_, digest.str(), "remove report " + digest.str());
    if (existed) txn.commit();
    return existed;
  }

  std::vector<VexRecord> vex_for(const Digest& digest) override {
    std::vector<VexRecord> out;
    const std::string prefix = verdict_prefix(digest);
    auto txn = lmdb::Txn::read(env_.get());
    lmdb::Cursor cursor(txn, vex_);
    for (auto entry = cursor.seek(prefix); entry && entry->first.starts_with(prefix) && out.size() < max_vex_per_digest;
         entry = cursor.next())
      if (auto record = decode_vex(entry->second)) out.push_back(std::move(*record));
    return out;
  }

  bool put_vex(const Digest& digest, const VexRecord& record) override {
    const std::string key = verdict_prefix(digest) + record.name;
    if (!text_key_ok(record.name) || key.size() > max_key_)
      throw std::invalid_argument("a VEX document's name must be 1 to " +
                                  std::to_string(max_key_ - verdict_prefix(digest).size()) + " bytes without NUL");
    const std::string value = encode(record);  // refuses a name or text that is not UTF-8
    auto txn = lmdb::Txn::write(env_.get());
    const bool replaced = txn.get(vex_, key).has_value();
    txn.put(vex_, key, value, "put VEX " + digest.str());
    txn.commit();
    return replaced;
  }

  std::size_t remove_vex(const Digest& digest, std::string_view name) override {
    auto txn = lmdb::Txn::write(env_.get());
    std::size_t removed = 0;
    if (name.empty()) {
      std::vector<std::string> keys;
      {
        lmdb::Cursor cursor(txn, vex_);
        const std::string prefix = verdict_prefix(digest);
        for (auto entry = cursor.seek(prefix); entry && entry->first.starts_with(prefix); entry = cursor.next())
          keys.emplace_back(entry->first);
      }
      for (const auto& key : keys) removed += txn.del(vex_, key, "remove VEX " + digest.str());
    } else {
      removed = txn.del(vex_, verdict_prefix(digest) + std::string(name), "remove VEX " + digest.str());
    }
    if (removed) txn.commit();
    return removed;
  }

  std::optional<SignalRecord> get_signals(const Digest& digest, std::string_view scope) override {
    return read(signals_, scoped_key(digest, scope), decode_signals);
  }

  void put_signals(const Digest& digest, std::string_view scope, const SignalRecord& record) override {
    const std::string value = encode(record);
    auto txn = lmdb::Txn::write(env_.get());
    txn.put(signals_, scoped_key(digest, scope), value, "put signals " + digest.str());
    txn.commit();
  }

  void add_pending(const Digest& digest, std::string_view reference, std::int64_t now_ms) override {
    if (reference.empty() || reference.size() > max_pending_reference_bytes) {
      throw std::invalid_argument("cannot queue " + digest.str() + " for a scan: the reference must be 1 to " +
                                  std::to_string(max_pending_reference_bytes) + " bytes");
    }
    const std::string what = "add pending " + digest.str();
    auto txn = lmdb::Txn::write(env_.get());
    std::optional<PendingRecord> record;
    if (auto value = txn.get(pending_, digest.str())) record = decode_pending(*value);
    if (!record) {
      // New, or a record that does not decode: start over, dropping any stale order entry.
      erase_pending(txn, digest);
      record = PendingRecord{{}, now_ms, now_ms, 0};
    }
    note_reference(*record, reference);
    record->last_seen_ms = std::max(record->last_seen_ms, now_ms);  // never move time back
    if (record->requests < std::numeric_limits<std::uint32_t>::max()) ++record->requests;
    txn.put(pending_, digest.str(), encode(*record), what);  // a bad reference throws: the txn aborts
    // Rewritten each time (same key): a record never loses its place in the order.
    txn.put(pending_order_, pending_order_key(record->first_seen_ms, digest), "", what);
    txn.commit();
  }

  std::optional<PendingRecord> get_pending(const Digest& digest) override {
    return read(pending_, digest.str(), decode_pending);
  }

  bool remove_pending(const Digest& digest) override {
    auto txn = lmdb::Txn::write(env_.get());
    bool existed = erase_pending(txn, digest);
    if (existed) txn.commit();
    return existed;
  }

  std::vector<std::pair<Digest, PendingRecord>> list_pending(std::size_t limit) override {
    std::vector<std::pair<Digest, PendingRecord>> out;
    if (limit == 0) return out;
    auto txn = lmdb::Txn::read(env_.get());
    lmdb::Cursor cursor(txn, pending_order_);
    for (auto entry = cursor.first(); entry && out.size() < limit; entry = cursor.next()) {
      auto digest = pending_order_digest(entry->first);
      if (!digest) continue;
      auto value = txn.get(pending_, digest->str());
      if (!value) continue;
      auto record = decode_pending(*value);
      // An order entry that disagrees with its record is stale; the record's own entry counts.
      if (!record || pending_order_key(record->first_seen_ms, *digest) != entry->first) continue;
      out.emplace_back(std::move(*digest), std::move(*record));
    }
    return out;
  }

  FleetApplied apply_fleet(const FleetBatch& batch) override {
    FleetApplied applied;
    const std::string what = "apply fleet revision " + std::to_string(batch.revision);
    auto txn = lmdb::Txn::write(env_.get());
    const bool echo = !batch.full && batch.revision == 0;
    if (!echo && !batch.full && batch.revision <= read_fleet_revision(txn)) {
      applied.stale = true;
      return applied;
    }
    using Kind = FleetRecord::Kind;
    // What a full batch names, by kind: the rest of that kind goes.
    std::unordered_set<std::string> named[4];
    for (const auto& r : batch.records) {
      const auto kind = static_cast<std::size_t>(r.kind);
      std::optional<Digest> digest;
      if (r.kind != Kind::exception) {
        digest = Digest::parse(r.key);
        if (!digest) {
          ++applied.skipped;
          continue;
        }
      } else if (!text_key_ok(r.key)) {
        ++applied.skipped;
        continue;
      }
      if (!r.value) {
        bool existed = false;
        switch (r.kind) {
          case Kind::verdict: existed = erase_verdicts(txn, *digest, true); break;
          case Kind::exception: existed = txn.del(exceptions_, r.key, what); break;
          case Kind::report: existed = txn.del(reports_, r.key, what); break;
          case Kind::pending: existed = erase_pending(txn, *digest); break;
        }
        if (existed) ++applied.removed;
        continue;
      }
      bool ok = false;
      switch (r.kind) {
        case Kind::verdict:
          // Only a person's verdict is the fleet's: computed ones each replica makes.
          if (auto v = decode_verdict(*r.value); v && v->source == "manual" && known_decision(v->decision)) {
            txn.put(verdicts_, r.key, *r.value, what);
            ok = true;
          }
          break;
        case Kind::exception:
          if (decode_exception(r.key, *r.value)) {
            txn.put(exceptions_, r.key, *r.value, what);
            ok = true;
          }
          break;
        case Kind::report:
          if (decode_report(*r.value)) {
            txn.put(reports_, r.key, *r.value, what);
            erase_pending(txn, *digest);
            erase_verdicts(txn, *digest, false);
            ok = true;
          }
          break;
        case Kind::pending:
          if (auto p = decode_pending(*r.value)) {
            erase_pending(txn, *digest);
            txn.put(pending_, r.key, *r.value, what);
            txn.put(pending_order_, pending_order_key(p->first_seen_ms, *digest), "", what);
            ok = true;
          }
          break;
      }
      if (!ok) {
        ++applied.skipped;
        continue;
      }
      ++applied.written;
      if (batch.full) named[kind].insert(r.key);
    }
    if (batch.full) {
      // Pending entries stay: a replica's own, not in etcd yet, are offered again
      // (cache/fleet.cpp); those a report ended went with the report above.
      std::vector<Digest> verdicts, reports;
      std::vector<std::string> exceptions;
      {
        lmdb::Cursor cursor(txn, verdicts_);
        for (auto entry = cursor.first(); entry; entry = cursor.next()) {
          if (entry->first.find('\n') != std::string_view::npos) continue;
          auto v = decode_verdict(entry->second);
          if (!v || v->source != "manual" || named[0].contains(std::string(entry->first))) continue;
          if (auto d = Digest::parse(entry->first)) verdicts.push_back(std::move(*d));
        }
      }
      {
        lmdb::Cursor cursor(txn, exceptions_);
        for (auto entry = cursor.first(); entry; entry = cursor.next())
          if (!named[1].contains(std::string(entry->first))) exceptions.emplace_back(entry->first);
      }
      {
        lmdb::Cursor cursor(txn, reports_);
        for (auto entry = cursor.first(); entry; entry = cursor.next())
          if (!named[2].contains(std::string(entry->first)))
            if (auto d = Digest::parse(entry->first)) reports.push_back(std::move(*d));
      }
      for (const auto& d : verdicts) applied.removed += erase_verdicts(txn, d, true);
      for (const auto& id : exceptions) applied.removed += txn.del(exceptions_, id, what);
      for (const auto& d : reports) {
        applied.removed += txn.del(reports_, d.str(), what);
        erase_verdicts(txn, d, false);
      }
    }
    if (!echo) txn.put(meta_, fleet_revision_key, std::to_string(batch.revision), what);
    txn.commit();
    return applied;
  }

  std::int64_t fleet_revision() override {
    auto txn = lmdb::Txn::read(env_.get());
    return read_fleet_revision(txn);
  }

  std::uint64_t generation() override {
    // The snapshot a read begun now sees, not mdb_env_info's me_last_txnid: LMDB
    // counts a commit there while it still syncs the meta page, before readers can
    // see the commit's data, so a reader could derive from the old data and file it
    // under the new generation, and keep serving it (a revoked verdict) until the next
    // write (bench/README.md, "Fleet": replicas answered the old verdict up to 1 s).
    auto txn = lmdb::Txn::read(env_.get());
    return static_cast<std::uint64_t>(mdb_txn_id(txn.get()));
  }

  MapUsage map_usage() override { return growth_->usage(env_.get()); }
  void on_map_event(std::function<void(const MapEvent&)> listener) override {
    growth_->on_event = std::move(listener);
  }

  std::size_t stale_readers_cleared() const override { return stale_readers_cleared_; }

  std::vector<long> reader_pids() override {
    std::vector<long> pids;
    // One line per held slot, "<pid> <thread> <txnid>", after a header line.
    auto collect = [](const char* line, void* out) {
      char* end = nullptr;
      long pid = std::strtol(line, &end, 10);
      if (end != line) static_cast<std::vector<long>*>(out)->push_back(pid);
      return 0;
    };
    lmdb::check(mdb_reader_list(env_.get(), collect, &pids), "list readers");
    return pids;
  }

  std::uint64_t manifest_count() override { return lmdb::Txn::read(env_.get()).entries(manifests_); }
  std::uint64_t blob_count() override { return lmdb::Txn::read(env_.get()).entries(blobs_); }
  std::uint64_t verdict_count() override { return lmdb::Txn::read(env_.get()).entries(verdicts_); }
  std::uint64_t report_count() override { return lmdb::Txn::read(env_.get()).entries(reports_); }
  std::uint64_t pending_count() override { return lmdb::Txn::read(env_.get()).entries(pending_); }

  std::size_t import_records(const ImportBatch& batch) override {
    // Encoded (and refused) before the write lock is taken, as in write().
    struct Put {
      MDB_dbi dbi;
      std::string key, value;
      enum class When { absent, differs } when;
    };
    std::vector<Put> puts;
    auto add = [&](MDB_dbi dbi, std::string key, std::string value, Put::When when = Put::When::absent) {
      puts.push_back(Put{dbi, std::move(key), std::move(value), when});
    };
    for (const auto& m : batch.manifests) {
      if (m.manifest) {
        for (const auto& d : m.manifest->referenced) add(refs_, reference_key(d, m.manifest->digest), "");
        add(manifests_, m.manifest->digest.str(), encode(m.manifest->record));
      }
      for (const auto& d : m.seen) {
        auto key = stored_seen_key(d, m.upstream, m.repository);
        if (!key) throw std::invalid_argument("cannot record where a manifest was seen: bad upstream or repository name");
        add(seen_, std::move(*key), "");
      }
      if (m.tag) {
        auto key = tag_key(m.upstream, m.repository, m.tag->name);
        if (!key) throw std::invalid_argument("cannot store tag record: a name contains a NUL byte");
        add(tags_, storable_key(std::move(*key), max_key_), encode(m.tag->record), Put::When::differs);
      }
    }
    for (const auto& [digest, record] : batch.blobs) add(blobs_, digest.str(), encode(record));
    for (const auto& [key, response] : batch.responses) add(responses_, storable_key(key, max_key_), encode(response));
    for (const auto& [digest, record] : batch.reports) add(reports_, digest.str(), encode(record));
    for (const auto& record : batch.exceptions) {
      if (!usable_exception(record) || !text_key_ok(record.id))
        throw std::invalid_argument("unusable exception record " + record.id.substr(0, 100));
      add(exceptions_, record.id, encode(record));
    }

    auto txn = lmdb::Txn::write(env_.get());
    std::size_t written = 0;
    for (const auto& p : puts) {
      if (auto existing = txn.get(p.dbi, p.key)) {
        if (p.when == Put::When::absent) continue;
        auto local = decode_tag(*existing);  // a tag: kept while it names the same digest
        if (local && local->digest == decode_tag(p.value)->digest) continue;
      }
      txn.put(p.dbi, p.key, p.value, "import");
      ++written;
    }
    for (const auto& [digest, record] : batch.verdicts) {
      if (!standing_source(record.source) || !known_decision(record.decision)) continue;
      if (auto existing = txn.get(verdicts_, digest.str())) {
        auto local = decode_verdict(*existing);
        if (local && decision_rank(local->decision) >= decision_rank(record.decision)) continue;
      }
      txn.put(verdicts_, digest.str(), encode(record), "import verdict " + digest.str());
      ++written;
    }
    if (written > 0) txn.commit();
    return written;
  }

  void put_pull_times(std::span<const PullTime> times) override {
    if (times.empty()) return;
    auto txn = lmdb::Txn::write(env_.get());
    for (const auto& time : times) {
      auto key = storable_key(time.key, max_key_);
      if (auto old = txn.get(pulls_, key))
        if (auto at = decode_pull_time(*old); at && *at >= time.at_ms) continue;
      txn.put(pulls_, key, encode_pull_time(time.at_ms), "put pull time");
    }
    txn.commit();
  }

  std::optional<std::int64_t> get_pull_time(std::string_view key) override {
    return read(pulls_, storable_key(std::string(key), max_key_), decode_pull_time);
  }

  void for_each_manifest(const std::function<void(const Digest&, const ManifestRecord&)>& visit) override {
    scan(manifests_, [&](std::string_view key, std::string_view value) {
      auto digest = Digest::parse(key);
      auto record = digest ? decode_manifest(value) : std::nullopt;
      if (record) visit(*digest, *record);
    });
  }

  std::vector<std::pair<Digest, BlobRecord>> list_blobs() override {
    std::vector<std::pair<Digest, BlobRecord>> out;
    scan(blobs_, [&](std::string_view key, std::string_view value) {
      auto digest = Digest::parse(key);
      auto record = digest ? decode_blob(value) : std::nullopt;
      if (record) out.emplace_back(std::move(*digest), *record);
    });
    return out;
  }

  std::vector<StoredResponse> list_responses() override {
    std::vector<StoredResponse> out;
    scan(responses_, [&](std::string_view key, std::string_view value) {
      if (auto record = decode_response(value))
        out.push_back(StoredResponse{std::string(key), record->body.size(), record->fetched_at_ms});
    });
    return out;
  }

  void remove_cached(const EvictionBatch& batch) override {
    if (batch.manifests.empty() && batch.blobs.empty() && batch.responses.empty()) return;
    std::unordered_set<std::string> evicted;
    for (const auto& m : batch.manifests) evicted.insert(m.digest.str());
    auto txn = lmdb::Txn::write(env_.get());
    const std::string what = "evict";
    for (const auto& m : batch.manifests) {
      const auto& key = m.digest.str();
      txn.del(manifests_, key, what);
      txn.del(pulls_, key, what);
      for (const auto& referenced : m.referenced) txn.del(refs_, reference_key(referenced, m.digest), what);
      // Seen entries, computed verdicts and signal findings: "<digest>\n..." keys.
      erase_prefixed(txn, seen_, key + '\n');
      erase_prefixed(txn, signals_, verdict_prefix(m.digest));
      erase_verdicts(txn, m.digest, /*manual=*/false);  // manual and upstream ones are decisions
    }
    if (!evicted.empty()) {
      std::vector<std::string> tags;
      {
        lmdb::Cursor cursor(txn, tags_);
        for (auto entry = cursor.first(); entry; entry = cursor.next())
          if (auto record = decode_tag(entry->second); record && evicted.contains(record->digest.str()))
            tags.emplace_back(entry->first);
      }
      for (const auto& k : tags) txn.del(tags_, k, what);
    }
    for (const auto& blob : batch.blobs) txn.del(blobs_, blob.str(), what);
    for (const auto& key : batch.responses) {
      txn.del(responses_, key, what);
      txn.del(pulls_, key, what);
    }
    txn.commit();
  }

  std::vector<StoredTag> list_tags() override {
    std::vector<StoredTag> out;
    scan(tags_, [&](std::string_view key, std::string_view value) {
      auto names = tag_names(key);
      auto record = names ? decode_tag(value) : std::nullopt;
      if (record)
        out.push_back(StoredTag{std::string(names->upstream), std::string(names->repository), std::string(names->tag),
                                std::move(*record)});
    });
    return out;
  }

  std::vector<std::pair<std::string, std::string>> seen_where(const Digest& manifest, std::size_t limit) override {
    std::vector<std::pair<std::string, std::string>> out;
    const std::string prefix = manifest.str() + '\n';
    auto txn = lmdb::Txn::read(env_.get());
    lmdb::Cursor cursor(txn, seen_);
    for (auto entry = cursor.seek(prefix); entry && entry->first.starts_with(prefix) && out.size() < limit;
         entry = cursor.next()) {
      auto rest = entry->first.substr(prefix.size());  // "<upstream>\n<repository>"
      auto separator = rest.find('\n');
      if (separator != std::string_view::npos)
        out.emplace_back(std::string(rest.substr(0, separator)), std::string(rest.substr(separator + 1)));
    }
    return out;
  }

  bool remove_blob_if(const Digest& digest, std::int64_t stored_at_ms) override {
    auto txn = lmdb::Txn::write(env_.get());
    auto value = txn.get(blobs_, digest.str());
    if (!value) return false;
    auto record = decode_blob(*value);
    if (record && record->stored_at_ms != stored_at_ms) return false;  // published again
    txn.del(blobs_, digest.str(), "remove blob " + digest.str());
    txn.commit();
    return true;
  }

  RecordsRemoved remove_orphan_manifest_records(std::int64_t checked_before_ms) override {
    RecordsRemoved removed;
    auto txn = lmdb::Txn::write(env_.get());
    // Kept: what is cached and what a cached manifest references ("<referenced>\n<manifest>").
    std::unordered_set<std::string> kept;
    {
      lmdb::Cursor cursor(txn, manifests_);
      for (auto entry = cursor.first(); entry; entry = cursor.next()) kept.emplace(entry->first);
    }
    {
      lmdb::Cursor cursor(txn, refs_);
      for (auto entry = cursor.first(); entry; entry = cursor.next())
        if (auto at = entry->first.find(reference_separator); at != std::string_view::npos)
          kept.emplace(entry->first.substr(0, at));
    }
    // "<digest>\n..." keys whose digest is not kept (hashed keys name no digest: left).
    auto orphan = [&](std::string_view key) {
      auto at = key.find('\n');
      return !key.empty() && key.front() != '\0' && at != std::string_view::npos &&
             !kept.contains(std::string(key.substr(0, at)));
    };
    std::vector<std::string> seen, signals;
    {
      lmdb::Cursor cursor(txn, seen_);
      for (auto entry = cursor.first(); entry; entry = cursor.next())
        if (orphan(entry->first)) seen.emplace_back(entry->first);
    }
    {
      lmdb::Cursor cursor(txn, signals_);
      for (auto entry = cursor.first(); entry; entry = cursor.next()) {
        if (!orphan(entry->first)) continue;
        auto record = decode_signals(entry->second);
        if (!record || record->checked_at_ms < checked_before_ms) signals.emplace_back(entry->first);
      }
    }
    for (const auto& key : seen) txn.del(seen_, key, "remove seen entry");
    for (const auto& key : signals) txn.del(signals_, key, "remove signal findings");
    removed.seen = seen.size();
    removed.signals = signals.size();
    if (!seen.empty() || !signals.empty()) txn.commit();
    return removed;
  }

  RecordsRemoved remove_records_of_other_scopes(const std::vector<std::string>& live_scopes) override {
    RecordsRemoved removed;
    const std::unordered_set<std::string> live(live_scopes.begin(), live_scopes.end());
    auto txn = lmdb::Txn::write(env_.get());
    // Scoped keys are "<digest>\n<scope>" (never hashed: scope names are short).
    auto other_scope = [&](std::string_view key) {
      auto at = key.find('\n');
      return !key.empty() && key.front() != '\0' && at != std::string_view::npos &&
             !live.contains(std::string(key.substr(at + 1)));
    };
    std::vector<std::string> verdicts, signals;
    {
      lmdb::Cursor cursor(txn, verdicts_);
      for (auto entry = cursor.first(); entry; entry = cursor.next()) {
        if (!other_scope(entry->first)) continue;
        auto record = decode_verdict(entry->second);
        if (record && standing_source(record->source)) continue;  // a decision, whatever its key
        verdicts.emplace_back(entry->first);
      }
    }
    {
      lmdb::Cursor cursor(txn, signals_);
      for (auto entry = cursor.first(); entry; entry = cursor.next())
        if (other_scope(entry->first)) signals.emplace_back(entry->first);
    }
    for (const auto& key : verdicts) txn.del(verdicts_, key, "remove verdict of a removed scope");
    for (const auto& key : signals) txn.del(signals_, key, "remove signal findings of a removed scope");
    removed.verdicts = verdicts.size();
    removed.signals = signals.size();
    if (!verdicts.empty() || !signals.empty()) txn.commit();
    return removed;
  }

  std::vector<PullTime> list_pull_times() override {
    std::vector<PullTime> out;
    scan(pulls_, [&](std::string_view key, std::string_view value) {
      if (auto at = decode_pull_time(value)) out.push_back(PullTime{std::string(key), *at});
    });
    return out;
  }

 private:
  std::int64_t read_fleet_revision(lmdb::Txn& txn) {
    auto value = txn.get(meta_, fleet_revision_key);
    if (!value) return 0;
    std::int64_t revision = 0;
    auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), revision);
    if (ec != std::errc() || end != value->data() + value->size() || revision < 0) return 0;  // read again in full
    return revision;
  }

  // Takes a digest off the pending queue with its order entry, inside the caller's
  // write transaction. When the record does not decode its order key is unknown,
  // so the order index is scanned for entries naming the digest (rare: corruption).
  bool erase_pending(lmdb::Txn& txn, const Digest& digest) {
    const std::string key = digest.str();
    const std::string what = "remove pending " + key;
    auto value = txn.get(pending_, key);
    if (!value) return false;
    if (auto record = decode_pending(*value)) {
      txn.del(pending_order_, pending_order_key(record->first_seen_ms, digest), what);
    } else {
      std::vector<std::string> stale;
      {
        lmdb::Cursor cursor(txn, pending_order_);
        for (auto entry = cursor.first(); entry; entry = cursor.next()) {
          if (pending_order_digest(entry->first) == digest) stale.emplace_back(entry->first);
        }
      }
      for (const auto& order_key : stale) txn.del(pending_order_, order_key, what);
    }
    return txn.del(pending_, key, what);
  }

  // Calls visit(key, value) for every entry of `dbi`, in key order, inside one read
  // transaction (the views die with it: visit copies what it keeps).
  template <class Visit>
  void scan(MDB_dbi dbi, Visit visit) {
    auto txn = lmdb::Txn::read(env_.get());
    lmdb::Cursor cursor(txn, dbi);
    for (auto entry = cursor.first(); entry; entry = cursor.next()) visit(entry->first, entry->second);
  }

  // Deletes every key of `dbi` that starts with `prefix`, inside the caller's write
  // transaction (the cursor is closed before the deletes); whether there was one.
  static bool erase_prefixed(lmdb::Txn& txn, MDB_dbi dbi, const std::string& prefix) {
    std::vector<std::string> keys;
    {
      lmdb::Cursor cursor(txn, dbi);
      for (auto entry = cursor.seek(prefix); entry && entry->first.starts_with(prefix); entry = cursor.next())
        keys.emplace_back(entry->first);
    }
    for (const auto& key : keys) txn.del(dbi, key, "evict");
    return !keys.empty();
  }

  // An exception's id or a pin: text LMDB can key.
  bool text_key_ok(std::string_view key) const {
    return !key.empty() && key.size() <= max_key_ && key.find('\0') == std::string_view::npos;
  }

  // Removes the record of an exception or a pin (a text key); whether there was one.
  bool remove_keyed(MDB_dbi dbi, std::string_view key, std::string_view what) {
    if (!text_key_ok(key)) return false;
    auto txn = lmdb::Txn::write(env_.get());
    bool existed = txn.del(dbi, key, "remove " + std::string(what) + " " + std::string(key));
    if (existed) txn.commit();
    return existed;
  }

  // Every record of `dbi` that decodes (decode(key, value)), in key order.
  template <class Record, class Decode>
  std::vector<Record> list_decoded(MDB_dbi dbi, Decode decode) {
    std::vector<Record> out;
    scan(dbi, [&](std::string_view key, std::string_view value) {
      if (auto record = decode(key, value)) out.push_back(std::move(*record));
    });
    return out;
  }

  // One record by key, decoded (copied out) inside a short read transaction;
  // absent and undecodable both read as nullopt.
  template <class Decode>
  auto read(MDB_dbi dbi, std::string_view key, Decode decode) -> decltype(decode(std::string_view{})) {
    auto txn = lmdb::Txn::read(env_.get());
    auto value = txn.get(dbi, key);
    if (!value) return std::nullopt;
    return decode(*value);
  }

  void put(MDB_dbi dbi, std::string_view key, std::string_view value, const std::string& what) {
    auto txn = lmdb::Txn::write(env_.get());
    txn.put(dbi, key, value, what);
    txn.commit();
  }

  // A computed verdict's or a signal finding's key: "<digest>\n<scope>" (scope names
  // are at most 128 bytes: never hashed, so the digest's prefix scan finds them all).
  // Signal findings from before scopes (keyed by the digest alone) are not read.
  static std::string verdict_prefix(const Digest& digest) { return digest.str() + '\n'; }
  std::string scoped_key(const Digest& digest, std::string_view scope) const {
    return storable_key(verdict_prefix(digest) + std::string(scope), max_key_);
  }
  // Verdicts kept per digest, counting in every scope: a person's ("manual") and an
  // upstream gate's refusal ("upstream"); a new report or policy leaves them alone.
  static bool standing_source(std::string_view source) { return source == "manual" || source == "upstream"; }
  static int decision_rank(std::string_view decision) { return decision == "deny" ? 2 : decision == "warn" ? 1 : 0; }
  // "<digest>" for a standing verdict (and those written before scopes).
  std::string verdict_key(const Digest& digest, const VerdictRecord& record) const {
    if (standing_source(record.source) || record.scope.empty()) return digest.str();
    return scoped_key(digest, record.scope);
  }

  std::optional<std::string> stored_seen_key(const Digest& manifest, std::string_view upstream,
                                             std::string_view repository) const {
    auto key = seen_key(manifest, upstream, repository);
    if (!key) return std::nullopt;
    return storable_key(std::move(*key), max_key_);
  }

  // The seen keys of the manifests not yet seen in (upstream, repository), looked up in
  // a read transaction: what is known already costs no write lock.
  std::vector<std::string> unseen_keys(std::span<const Digest> manifests, std::string_view upstream,
                                       std::string_view repository) {
    std::vector<std::string> fresh;
    if (manifests.empty()) return fresh;
    auto txn = lmdb::Txn::read(env_.get());
    for (const auto& manifest : manifests) {
      auto key = stored_seen_key(manifest, upstream, repository);
      if (!key) throw std::invalid_argument("cannot record where a manifest was seen: bad upstream or repository name");
      if (!txn.get(seen_, *key)) fresh.push_back(std::move(*key));
    }
    return fresh;
  }

  // The digest's computed verdicts (its scoped keys, and an unscoped one that is not
  // manual), and with `manual` its manual one too.
  bool remove_verdicts(const Digest& digest, bool manual) {
    auto txn = lmdb::Txn::write(env_.get());
    bool existed = erase_verdicts(txn, digest, manual);
    if (existed) txn.commit();
    return existed;
  }
  // remove_verdicts inside the caller's write transaction.
  bool erase_verdicts(lmdb::Txn& txn, const Digest& digest, bool manual) {
    const std::string what = "remove verdict " + digest.str();
    bool existed = false;
    if (auto own = txn.get(verdicts_, digest.str())) {
      auto record = decode_verdict(*own);
      if (manual || !record || !standing_source(record->source)) existed = txn.del(verdicts_, digest.str(), what);
    }
    return erase_prefixed(txn, verdicts_, verdict_prefix(digest)) || existed;
  }

  // Each tag record names an upstream, a repository and the manifest it resolved
  // to there; an index seen there has its child manifests there too.
  void backfill_seen(lmdb::Txn& txn) {
    std::unordered_map<std::string, std::vector<std::string>> children;  // index digest -> child digests
    {
      lmdb::Cursor refs(txn, refs_);
      for (auto entry = refs.first(); entry; entry = refs.next()) {
        auto separator = entry->first.find(reference_separator);
        if (separator == std::string_view::npos) continue;
        auto child = entry->first.substr(0, separator);
        if (txn.get(manifests_, child))
          children[std::string(entry->first.substr(separator + 1))].emplace_back(child);
      }
    }
    std::vector<std::string> keys;
    lmdb::Cursor tags(txn, tags_);
    for (auto entry = tags.first(); entry; entry = tags.next()) {
      auto names = tag_names(entry->first);
      if (!names) continue;  // a hashed key: the names are not in it
      auto record = decode_tag(entry->second);
      if (!record) continue;
      auto upstream = names->upstream;
      auto repository = names->repository;
      auto add = [&](const Digest& d) {
        if (auto k = stored_seen_key(d, upstream, repository)) keys.push_back(std::move(*k));
      };
      add(record->digest);
      if (auto it = children.find(record->digest.str()); it != children.end())
        for (auto& child : it->second)
          if (auto d = Digest::parse(child)) add(*d);
    }
    for (auto& k : keys) txn.put(seen_, k, "", "backfill seen manifests");
  }

  void check_schema(lmdb::Txn& txn) {
    auto value = txn.get(meta_, schema_key);
    if (!value) {
      txn.put(meta_, schema_key, json{{"schema_version", schema_version}}.dump(), "write schema version");
      return;
    }
    json j = json::parse(*value, nullptr, /*allow_exceptions=*/false);
    auto it = j.is_object() ? j.find("schema_version") : j.end();
    if (!j.is_object() || it == j.end() || !it->is_number_unsigned()) {
      throw std::runtime_error("metadata store " + dir_.string() + " is corrupt: unreadable schema version");
    }
    auto found = it->get<std::uint64_t>();
    if (found > schema_version) {
      throw std::runtime_error("metadata store " + dir_.string() + " has schema version " + std::to_string(found) +
                               ", newer than this build supports (" + std::to_string(schema_version) +
                               "); refusing to open it");
    }
  }

  std::filesystem::path dir_;
  std::unique_ptr<lmdb::MapGrowth> growth_;  // the environment's user context: outlives env_
  lmdb::Env env_;
  std::size_t stale_readers_cleared_ = 0;
  std::size_t max_key_ = 0;
  MDB_dbi meta_ = 0;
  MDB_dbi tags_ = 0;
  MDB_dbi manifests_ = 0;
  MDB_dbi blobs_ = 0;
  MDB_dbi responses_ = 0;
  MDB_dbi verdicts_ = 0;
  MDB_dbi refs_ = 0;
  MDB_dbi seen_ = 0;
  MDB_dbi exceptions_ = 0;
  MDB_dbi reports_ = 0;
  MDB_dbi pending_ = 0;
  MDB_dbi pending_order_ = 0;
  MDB_dbi signals_ = 0;
  MDB_dbi vex_ = 0;  // "<digest>\n<name>" -> VexRecord
  MDB_dbi pulls_ = 0;
  MDB_dbi pins_ = 0;
};

std::size_t round_up_to_page(std::size_t bytes) {
  long page = sysconf(_SC_PAGESIZE);
  std::size_t p = page > 0 ? std::size_t(page) : 4096;
  return (bytes + p - 1) / p * p;
}

}  // namespace

std::string encode_record(const VerdictRecord& record) { return encode(record); }
std::string encode_record(const ExceptionRecord& record) { return encode(record); }
std::string encode_record(const ReportRecord& record) { return encode(record); }
std::string encode_record(const PendingRecord& record) { return encode(record); }
std::optional<VerdictRecord> decode_verdict_record(std::string_view value) { return decode_verdict(value); }
std::optional<ExceptionRecord> decode_exception_record(std::string_view id, std::string_view value) {
  return decode_exception(id, value);
}
std::optional<ReportRecord> decode_report_record(std::string_view value) { return decode_report(value); }
std::optional<PendingRecord> decode_pending_record(std::string_view value) { return decode_pending(value); }

std::unique_ptr<MetaStore> MetaStore::open(const std::filesystem::path& dir, std::size_t map_size_bytes,
                                           std::size_t max_map_size_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("metadata directory " + dir.string() + " is not writable: " + ec.message());

  MDB_env* raw = nullptr;
  lmdb::check(mdb_env_create(&raw), "create environment");
  lmdb::Env env(raw);
  // 15 databases are in use (the constructor opens them); room for those later work adds.
  lmdb::check(mdb_env_set_maxdbs(env.get(), 24), "set max databases");
  // 0 keeps the size recorded in an existing environment (or LMDB's default).
  if (map_size_bytes > 0) {
    lmdb::check(mdb_env_set_mapsize(env.get(), round_up_to_page(map_size_bytes)), "set map size");
  }
  auto growth = std::make_unique<lmdb::MapGrowth>(max_map_size_bytes);
  lmdb::check(mdb_env_set_userctx(env.get(), growth.get()), "attach map growth");
  // MDB_NOTLS: read transactions are not tied to a thread (an io_context runs on several).
  int rc = mdb_env_open(env.get(), dir.c_str(), MDB_NOTLS, 0640);
  if (rc != MDB_SUCCESS) {
    std::string reason = rc == EACCES || rc == EROFS || rc == EPERM ? "is not writable"
                         : rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH
                             ? "is corrupt or not a compatible LMDB environment"
                             : "cannot be opened";
    throw std::runtime_error("metadata store " + dir.string() + " " + reason + ": " + mdb_strerror(rc));
  }
  // A process that died inside a read transaction (a CLI killed mid-read while the
  // server keeps the environment open) leaves its reader slot behind, and the slot
  // pins the pages of that old snapshot: freed pages are never reused and the map
  // grows. Clear such slots whenever a process opens the environment.
  int stale = 0;
  lmdb::check(mdb_reader_check(env.get(), &stale), "check stale readers");
  try {
    return std::make_unique<LmdbMetaStore>(dir, std::move(growth), std::move(env), static_cast<std::size_t>(stale));
  } catch (const std::runtime_error& e) {
    // Keep one line that names the directory.
    std::string message = e.what();
    std::string prefix = "metadata store " + dir.string();
    if (message.starts_with(prefix)) throw;
    throw std::runtime_error(prefix + " cannot be opened: " + message);
  }
}

std::vector<Digest> references_of(const registry::ParsedManifest& parsed) {
  std::vector<Digest> referenced;
  for (auto& d : parsed.blobs) referenced.push_back(d.digest);
  for (auto& d : parsed.children) referenced.push_back(d.digest);
  return referenced;
}

std::string referrers_response_key(std::string_view upstream, std::string_view repository, const Digest& digest) {
  return "referrers\n" + std::string(upstream) + "\n" + std::string(repository) + "\n" + digest.str();
}

void store_manifest(MetaStore& meta, const Digest& digest, const ManifestRecord& record,
                    const registry::ParsedManifest& parsed) {
  ManifestBatch batch;
  batch.manifest = ManifestBatch::Manifest{digest, record, references_of(parsed)};
  meta.write(batch);
}

}  // namespace pullgate::cache
