#pragma once
// The LMDB environment: tag records, manifests (inline), the blob index, cached
// small upstream answers (tags/list, referrers) and the schema version. One
// environment per process; transactions are short and never span a co_await.
// Safe to call from several threads. Records are encoded as versioned JSON.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/map_usage.hpp"
#include "registry/digest.hpp"
#include "registry/manifest.hpp"

namespace pullgate::cache {

using registry::Digest;

struct TagRecord {
  Digest digest;
  std::string media_type;
  std::int64_t fetched_at_ms = 0;  // unix ms of the last upstream confirmation
};

struct ManifestRecord {
  std::string media_type;
  std::string bytes;  // exactly as the upstream sent them
  std::int64_t stored_at_ms = 0;
};

struct BlobRecord {
  std::uint64_t size = 0;
  std::int64_t stored_at_ms = 0;
  // When the blob was stored. Not updated on hits (a synced write per hit would cost
  // more than the hit): pull times for eviction are kept in memory and written in batches.
  std::int64_t last_access_ms = 0;
};

// A small upstream answer kept for offline use (tags/list pages, referrers).
struct CachedResponse {
  std::string content_type;
  std::string body;
  std::int64_t fetched_at_ms = 0;
};

// A digest's stored verdict (see ../shared/DESIGN.md, "Gate semantics").
struct VerdictRecord {
  std::string decision;               // "allow" | "warn" | "deny"
  std::string source;                 // "manual" | "rule" | "report" | "signature" | ...
  std::vector<std::string> reasons;   // one line each
  std::string policy_version;         // the policy it was computed under ("" for manual)
  std::string set_by;                 // who set it (manual verdicts)
  std::int64_t evaluated_at_ms = 0;
  std::optional<std::int64_t> expires_at_ms;  // none: does not expire
  // The policy scope a computed verdict was evaluated in ("" for manual ones): it
  // counts only there. Another scope (other rules, other signal requirements) decides
  // for itself.
  std::string scope;
};

// An exception added at run time (CLI, admin API): applies like one written in the
// policy (see docs/policy.md, "Exceptions"). Keyed by id.
struct ExceptionRecord {
  std::string id;
  std::string digest;      // exact digest; empty: any
  std::string repository;  // glob; empty: any
  std::string upstream;    // glob; empty: any
  std::string reason;
  std::string who;
  std::int64_t created_at_ms = 0;
  std::optional<std::int64_t> expires_at_ms;  // none: never
};

// A pin added at run time (`pullgate pin add`, docs/cache.md "Pins"): eviction keeps
// what it names, like a cache.pin of the config. Keyed by the pin's text.
struct PinRecord {
  std::string pin;  // UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@DIGEST, as written by format_image_pin
  std::string who;
  std::int64_t created_at_ms = 0;
  std::string note;  // empty: none
};

// A scan report imported for a manifest digest. The summary is opaque here: the
// policy layer encodes and decodes it (encode_summary); stored byte for byte.
struct ReportRecord {
  std::string summary_json;
  std::string scanner;              // e.g. "trivy", "grype"
  std::int64_t scanned_at_ms = 0;   // when the scanner ran
  std::int64_t imported_at_ms = 0;  // when the mirror stored it
};

// A VEX document imported for a manifest digest (`pullgate vex import`). The document
// is opaque here, as a report's summary is: the policy layer encodes it (encode_vex).
// One digest may have several, keyed by name (the document's id, or its sha256).
struct VexRecord {
  std::string name;
  std::string document_json;
  std::int64_t imported_at_ms = 0;
  std::string by;                   // who imported it, when known
};

// A digest waiting for a scan, with the references it was pulled by, so a scanner
// worker has something pullable.
struct PendingRecord {
  // "<upstream>/<repo>:<tag>" or "<upstream>/<repo>@<digest>" forms; at most
  // MetaStore::max_pending_references kept, newest last, no duplicates.
  std::vector<std::string> references;
  std::int64_t first_seen_ms = 0;
  std::int64_t last_seen_ms = 0;
  std::uint32_t requests = 0;  // saturates
};

// What was found about a manifest digest's signatures and SBOM, under one policy
// version (its keys); filled by proxy/signals.cpp, read by the gate.
struct SignalRecord {
  std::string policy_version;
  std::int64_t checked_at_ms = 0;
  std::string signature;         // "valid" | "invalid" | "missing" | "" (not looked for)
  std::string signature_detail;  // one line
  std::string key;               // the verifying key, when valid
  std::string sbom;              // "found" | "missing" | "" (not looked for)
  std::string sbom_detail;       // one line
  bool artifact = false;         // itself a signature, attestation or SBOM manifest
  std::string provenance;        // "valid" | "invalid" | "missing" | "" (not looked for)
  std::string provenance_detail; // one line
  // When a valid signature stops counting by itself (a Notation signature's expiry, or
  // its chain's notAfter when no timestamp vouched for the signing time); 0: never.
  std::int64_t signature_valid_until_ms = 0;
};

// What one pull learned in one upstream repository, written in one transaction (one
// synced commit instead of one per record): a tag there and the manifest it resolved
// to, a manifest with what it references (blobs, child manifests), and the manifests
// seen there. Every part may be empty; upstream and repository are needed only for
// a tag or seen manifests.
struct ManifestBatch {
  std::string upstream;
  std::string repository;
  struct Tag {
    std::string name;
    TagRecord record;
  };
  std::optional<Tag> tag;
  struct Manifest {
    Digest digest;
    ManifestRecord record;
    std::vector<Digest> referenced;
  };
  std::optional<Manifest> manifest;
  std::vector<Digest> seen;  // only the pairs that are new are written (see mark_seen)
};

// What a bundle brings (cache/bundle.hpp), written by import_records in one
// transaction. Adds, never weakens: see import_records.
struct ImportBatch {
  std::vector<ManifestBatch> manifests;  // each with its tag and where it was seen
  std::vector<std::pair<Digest, BlobRecord>> blobs;
  std::vector<std::pair<std::string, CachedResponse>> responses;  // referrers answers
  std::vector<std::pair<Digest, VerdictRecord>> verdicts;         // standing ones (manual, upstream)
  std::vector<std::pair<Digest, ReportRecord>> reports;
  std::vector<ExceptionRecord> exceptions;
};

// When content was last pulled (cache/pull_times.hpp): a manifest by its digest, a
// cached response by its key.
struct PullTime {
  std::string key;
  std::int64_t at_ms = 0;
};

// A cached manifest to evict, with what it references (its blobs and child
// manifests: the references it recorded go with it).
struct EvictedManifest {
  Digest digest;
  std::vector<Digest> referenced;
};

// What one eviction run removes, in one transaction (cache/evictor.hpp).
struct EvictionBatch {
  std::vector<EvictedManifest> manifests;
  std::vector<Digest> blobs;           // blob records (the evictor removes the files)
  std::vector<std::string> responses;  // cached answers, by their stored key
};

// The fleet store's records (cache/fleet.hpp): what etcd holds for the fleet, as
// one watch answer or one full read brings it, applied to LMDB in one transaction
// with the etcd revision it is at.
struct FleetRecord {
  enum class Kind { verdict, exception, report, pending };
  Kind kind = Kind::verdict;
  std::string key;                   // a digest (verdict, report, pending) or an exception id
  std::optional<std::string> value;  // the record as encode_record writes it; none: deleted
};
struct FleetBatch {
  std::vector<FleetRecord> records;  // in the order etcd applied them
  // The etcd revision the batch brings the store to. 0: this replica's own write,
  // which etcd has taken, applied at once without moving the revision (the watch
  // brings it again, in order with the writes of others).
  std::int64_t revision = 0;
  // A full read (a first sync, or after etcd compacted the revisions this replica
  // missed): the records are everything etcd holds, and what the store holds of these
  // kinds that the batch does not name goes, in the same transaction.
  bool full = false;
};
struct FleetApplied {
  std::uint64_t written = 0;
  std::uint64_t removed = 0;
  std::uint64_t skipped = 0;   // records that do not decode, or keys that are not one
  bool stale = false;          // a batch at or before the revision already applied: nothing done
};

struct VerdictFilter {
  std::optional<std::string> decision;  // only this decision
  std::optional<std::string> source;    // only this source
  std::size_t limit = 1000;
};

class MetaStore {
 public:
  static constexpr std::uint32_t schema_version = 1;
  static constexpr std::size_t max_pending_references = 16;
  static constexpr std::size_t max_pending_reference_bytes = 2048;

  // Creates dir if needed, opens (or creates) the environment. Throws
  // std::runtime_error with a one-line message: unwritable dir, a newer schema
  // version than this build knows, a corrupt environment. The map starts at
  // map_size_bytes (0: what the environment records, or LMDB's default) and grows
  // by itself up to max_map_size_bytes (0 or less than the start: it never grows).
  static std::unique_ptr<MetaStore> open(const std::filesystem::path& dir, std::size_t map_size_bytes,
                                         std::size_t max_map_size_bytes = 0);
  virtual ~MetaStore() = default;

  // Tags are keyed by upstream name, repository and tag.
  virtual std::optional<TagRecord> get_tag(std::string_view upstream, std::string_view repository,
                                           std::string_view tag) = 0;
  virtual void put_tag(std::string_view upstream, std::string_view repository, std::string_view tag,
                       const TagRecord& record) = 0;

  // Manifests are content addressed: keyed by digest alone.
  virtual std::optional<ManifestRecord> get_manifest(const Digest& digest) = 0;
  virtual void put_manifest(const Digest& digest, const ManifestRecord& record) = 0;

  virtual std::optional<BlobRecord> get_blob(const Digest& digest) = 0;
  virtual void put_blob(const Digest& digest, const BlobRecord& record) = 0;
  virtual void remove_blob(const Digest& digest) = 0;

  virtual std::optional<CachedResponse> get_response(std::string_view key) = 0;
  virtual void put_response(std::string_view key, const CachedResponse& response) = 0;

  // Verdicts by manifest digest. remove_verdict returns whether one was there.
  // A manual verdict is kept per digest (it counts in every scope); a computed one per
  // digest and scope (record.scope), so that each scope keeps the decision it made
  // with its own rules and tags, and blobs and children there follow it.
  // get_verdict: the digest's manual verdict, else one of its computed verdicts (for
  // showing); get_verdicts_in: its manual one and the one computed in `scope`.
  virtual std::optional<VerdictRecord> get_verdict(const Digest& digest) = 0;
  struct ScopeVerdicts {
    std::optional<VerdictRecord> manual;  // (or one written before verdicts had scopes)
    std::optional<VerdictRecord> computed;
  };
  virtual ScopeVerdicts get_verdicts_in(const Digest& digest, std::string_view scope) = 0;
  virtual void put_verdict(const Digest& digest, const VerdictRecord& record) = 0;
  // Every verdict of the digest (manual and computed); whether there was one.
  virtual bool remove_verdict(const Digest& digest) = 0;
  // The computed ones only (a new vulnerability report makes them stale); whether
  // there was one.
  virtual bool remove_computed_verdicts(const Digest& digest) = 0;
  // In digest order, at most filter.limit entries.
  virtual std::vector<std::pair<Digest, VerdictRecord>> list_verdicts(const VerdictFilter& filter) = 0;

  // What the mirror has seen a manifest reference: its config and layers (image
  // manifests) or its child manifests (indexes). Idempotent; one transaction.
  virtual void add_references(const Digest& manifest, const std::vector<Digest>& referenced) = 0;
  // The manifests known to reference `digest` (a blob or a child manifest), at most
  // `limit`, in digest order.
  virtual std::vector<Digest> referenced_by(const Digest& digest, std::size_t limit) = 0;

  // Where the mirror has seen a manifest: the upstreams and repositories it came from
  // (a tag there resolved to it, it was fetched there, or an index fetched there
  // lists it). Manifests and blobs are cached by digest, for every repository; a
  // repository's content is only what was seen in it, so that naming another
  // repository (one the policy allows) never gets a refused image's bytes out of the
  // cache. mark_seen writes only the pairs that are new, in one transaction.
  virtual void mark_seen(std::span<const Digest> manifests, std::string_view upstream,
                         std::string_view repository) = 0;
  void mark_seen(const Digest& manifest, std::string_view upstream, std::string_view repository) {
    mark_seen(std::span<const Digest>(&manifest, 1), upstream, repository);
  }
  virtual bool seen_in(const Digest& manifest, std::string_view upstream, std::string_view repository) = 0;
  // All of the batch in one write transaction, or nothing (it throws, as the single
  // puts do). Writes nothing when there is nothing new: the generation stays.
  virtual void write(const ManifestBatch& batch) = 0;
  // referenced_by, only the manifests seen in (upstream, repository): at most `limit`
  // of them, from at most max_references_scanned references.
  virtual std::vector<Digest> referenced_by_in(const Digest& digest, std::string_view upstream,
                                               std::string_view repository, std::size_t limit) = 0;
  static constexpr std::size_t max_references_scanned = 4096;

  // Run-time exceptions by id. put_exception refuses (std::invalid_argument) an
  // empty id, an id LMDB cannot key, and a record with neither digest nor
  // repository (it would switch the gate off for a whole upstream).
  virtual std::optional<ExceptionRecord> get_exception(std::string_view id) = 0;
  virtual void put_exception(const ExceptionRecord& record) = 0;
  virtual bool remove_exception(std::string_view id) = 0;
  // In id order; records that do not decode are skipped.
  virtual std::vector<ExceptionRecord> list_exceptions() = 0;

  // Scan reports by manifest digest. put_report replaces any report and, in the
  // same transaction, takes the digest off the pending queue (the wait is over).
  // Refuses (std::invalid_argument) a scanner name that is not valid UTF-8.
  virtual std::optional<ReportRecord> get_report(const Digest& digest) = 0;
  virtual void put_report(const Digest& digest, const ReportRecord& record) = 0;
  virtual bool remove_report(const Digest& digest) = 0;

  // Imported VEX documents by manifest digest and document name: put_vex adds or
  // replaces (true: it replaced one), remove_vex removes the named one or, with an
  // empty name, all of the digest's (how many). vex_for lists them in name order, at
  // most max_vex_per_digest. Refuses (std::invalid_argument) a name that LMDB cannot
  // key or that is not valid UTF-8.
  static constexpr std::size_t max_vex_per_digest = 64;
  virtual std::vector<VexRecord> vex_for(const Digest& digest) = 0;
  virtual bool put_vex(const Digest& digest, const VexRecord& record) = 0;
  virtual std::size_t remove_vex(const Digest& digest, std::string_view name) = 0;

  // The pending-scan queue. add_pending creates the entry or updates it (the
  // reference moves to the newest place, the oldest falls off past the cap,
  // last_seen never moves back, requests counts up) in one write transaction.
  // Refuses (std::invalid_argument) an empty reference, one longer than
  // max_pending_reference_bytes, or one that is not valid UTF-8.

  // What the signal look-up found for a digest, per policy scope: each scope has its
  // own keys and requirements, so a signature by a key one scope trusts says nothing
  // in another.
  virtual std::optional<SignalRecord> get_signals(const Digest& digest, std::string_view scope) = 0;
  virtual void put_signals(const Digest& digest, std::string_view scope, const SignalRecord& record) = 0;

  virtual void add_pending(const Digest& digest, std::string_view reference, std::int64_t now_ms) = 0;
  virtual std::optional<PendingRecord> get_pending(const Digest& digest) = 0;
  virtual bool remove_pending(const Digest& digest) = 0;
  // Oldest first_seen_ms first (ties in digest order), at most `limit` entries;
  // entries that do not decode are skipped.
  virtual std::vector<std::pair<Digest, PendingRecord>> list_pending(std::size_t limit) = 0;

  // The id of the last write transaction, by any process, whose data a read begun
  // now sees. Changes whenever anything is written, so a reader can cache what it
  // derived from reads begun after it took the generation (e.g. the exceptions)
  // until the generation moves.
  virtual std::uint64_t generation() = 0;

  // How full the LMDB map is; and a listener told when it grew or cannot grow
  // (called on the writing thread; set once, before the store is shared).
  virtual MapUsage map_usage() = 0;
  virtual void on_map_event(std::function<void(const MapEvent&)> listener) = 0;

  // Reader slots left by processes that died in a read transaction, cleared by open.
  virtual std::size_t stale_readers_cleared() const = 0;
  // The process ids holding a reader slot in the environment now (any process).
  virtual std::vector<long> reader_pids() = 0;

  // Counts, for /readyz and logs.
  virtual std::uint64_t manifest_count() = 0;
  virtual std::uint64_t blob_count() = 0;
  virtual std::uint64_t verdict_count() = 0;
  virtual std::uint64_t report_count() = 0;
  virtual std::uint64_t pending_count() = 0;

  // A bundle's records, all in one write transaction or none (throws as the puts do).
  // What is there already stays: a manifest, blob record, report, cached answer or
  // exception id present is kept; a tag is replaced only when it names another
  // digest; a standing verdict is written only where the digest has none or a weaker
  // one (allow < warn < deny), so an import never turns a local deny into an allow.
  // Importing the same batch twice writes nothing the second time. Returns the number
  // of records written.
  virtual std::size_t import_records(const ImportBatch& batch) = 0;

  // Last pull times, written in batches (cache/pull_times.hpp), in one transaction; a
  // stored time never moves back. Keys are digests or cached responses' keys.
  virtual void put_pull_times(std::span<const PullTime> times) = 0;
  virtual std::optional<std::int64_t> get_pull_time(std::string_view key) = 0;
  // Every stored time, in key order (a long key reads back hashed: look it up with
  // get_pull_time); records that do not decode are skipped.
  virtual std::vector<PullTime> list_pull_times() = 0;

  // What is cached, for eviction: every manifest (decoded, one at a time, inside one
  // read transaction: `visit` must not touch the store), every blob record, and every
  // cached answer (by its stored key, with its size and when it was fetched).
  virtual void for_each_manifest(const std::function<void(const Digest&, const ManifestRecord&)>& visit) = 0;
  virtual std::vector<std::pair<Digest, BlobRecord>> list_blobs() = 0;
  struct StoredResponse {
    std::string key;
    std::uint64_t bytes = 0;
    std::int64_t fetched_at_ms = 0;
  };
  virtual std::vector<StoredResponse> list_responses() = 0;
  // Every tag record, in key order, with its names (a tag whose names are too long
  // for an LMDB key is stored hashed and not listed; get_tag finds it).
  struct StoredTag {
    std::string upstream;
    std::string repository;
    std::string tag;
    TagRecord record;
  };
  virtual std::vector<StoredTag> list_tags() = 0;
  // Where `manifest` was seen (see mark_seen): at most `limit` (upstream, repository)
  // pairs, in order (pairs too long for an LMDB key are not listed; seen_in finds them).
  virtual std::vector<std::pair<std::string, std::string>> seen_where(const Digest& manifest, std::size_t limit) = 0;
  // Removes cached content in one write transaction: each manifest with its
  // references, the tags that resolve to it, where it was seen, its computed verdicts
  // and signal findings and its pull time; each blob record; each cached answer and
  // its pull time. Decisions stay: manual and upstream verdicts, exceptions, reports
  // and the pending queue are not cache.
  virtual void remove_cached(const EvictionBatch& batch) = 0;

  // Garbage (cache/garbage.hpp). remove_blob_if removes the blob's record only when it
  // is the one that was read (stored at `stored_at_ms`): a blob published again since
  // keeps its new record. Whether it removed one.
  virtual bool remove_blob_if(const Digest& digest, std::int64_t stored_at_ms) = 0;
  // Seen entries and signal findings of manifests that are not cached and that no
  // cached manifest references (an index's children not fetched yet keep theirs),
  // signal findings only when checked before `checked_before_ms` (one being written
  // for a pull in progress stays), in one write transaction.
  struct RecordsRemoved {
    std::uint64_t seen = 0;
    std::uint64_t signals = 0;
    std::uint64_t verdicts = 0;
  };
  virtual RecordsRemoved remove_orphan_manifest_records(std::int64_t checked_before_ms) = 0;
  // Computed verdicts and signal findings kept for a scope not in `live_scopes` (the
  // policy in force no longer has it), in one write transaction. Manual and upstream
  // verdicts count in every scope and are never touched.
  virtual RecordsRemoved remove_records_of_other_scopes(const std::vector<std::string>& live_scopes) = 0;

  // Run-time pins by their text (the store does not parse them: cache/pins.hpp does).
  // add_pin stores `record` unless a pin of that text is stored, in one write
  // transaction, and says whether it stored it; it refuses (std::invalid_argument) an
  // empty pin, one LMDB cannot key, and text that is not UTF-8.
  virtual std::optional<PinRecord> get_pin(std::string_view pin) = 0;
  virtual bool add_pin(const PinRecord& record) = 0;
  virtual bool remove_pin(std::string_view pin) = 0;
  // In the pins' byte order; records that do not decode are skipped.
  virtual std::vector<PinRecord> list_pins() = 0;

  // The fleet store's records (cache/fleet.hpp), with the revision they are at, in
  // one write transaction. A verdict put is a standing verdict (manual, per digest);
  // its delete removes the digest's manual verdict and its computed ones (they are
  // made again). A report put replaces the report, ends the digest's wait in the
  // pending queue and removes its computed verdicts (made from the old report); a
  // pending put replaces the queue entry. A full batch also removes the manual
  // verdicts, exceptions, reports and pending entries it does not name (an upstream
  // gate's verdicts, which are this mirror's own, stay). A batch not past
  // fleet_revision() is stale: nothing is written.
  virtual FleetApplied apply_fleet(const FleetBatch& batch) = 0;
  // The revision the last applied batch brought the store to; 0: none yet.
  virtual std::int64_t fleet_revision() = 0;
};

// The stored form of the records the fleet store shares: the same bytes LMDB keeps.
// Refuses (std::invalid_argument) text that is not UTF-8.
std::string encode_record(const VerdictRecord& record);
std::string encode_record(const ExceptionRecord& record);
std::string encode_record(const ReportRecord& record);
std::string encode_record(const PendingRecord& record);
// And back; nullopt for a value that is not one (the exception's id is its key).
std::optional<VerdictRecord> decode_verdict_record(std::string_view value);
std::optional<ExceptionRecord> decode_exception_record(std::string_view id, std::string_view value);
std::optional<ReportRecord> decode_report_record(std::string_view value);
std::optional<PendingRecord> decode_pending_record(std::string_view value);

// What `parsed` references (its blobs, then its child manifests).
std::vector<Digest> references_of(const registry::ParsedManifest& parsed);

// Stores a manifest that parsed as `parsed` with its references (blobs, children), in
// one transaction: a manifest in the cache always has what it references known to the gate.
void store_manifest(MetaStore& meta, const Digest& digest, const ManifestRecord& record,
                    const registry::ParsedManifest& parsed);

// The key under which a referrers answer for `digest` in (upstream, repository) is
// cached (the mirror's referrers route, the signal look-up and bundles share it).
std::string referrers_response_key(std::string_view upstream, std::string_view repository, const Digest& digest);

}  // namespace pullgate::cache
