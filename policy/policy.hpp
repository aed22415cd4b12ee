#pragma once
// The policy document and its evaluation. Pure: no sockets, no LMDB, no clock of
// its own (`now` is a parameter), so every decision is testable as a value.
//
// A decision combines two things:
//  - rules on where the image comes from (upstream, repository, tag) and on its
//    digest, evaluated for each request, and
//  - the digest's stored verdict (manual, or later from reports and signatures),
//    which the caller looks up and passes in.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/access.hpp"
#include "policy/notation.hpp"
#include "registry/digest.hpp"
#include "registry/glob.hpp"
#include "policy/rfc3339.hpp"  // Clock, TimePoint and how times are read and written

namespace pullgate::policy {

enum class Decision { allow, warn, deny };
enum class Mode { enforce, warn, audit };
// What a digest with no stored verdict gets in a scope.
enum class Unknown { evaluate, allow, warn, deny };
// report: a vulnerability report decided (stored by the gate); unscanned: the
// scope's "unscanned" setting decided for a digest without a fresh report.
// signature, sbom, provenance: the scope's signature, SBOM or provenance requirement decided.
// upstream: a pullgate this mirror pulls through refused the digest (its 403 DENIED):
// stored like a manual verdict, and final: neither an exception nor a scope's warn or
// audit mode serves what the upstream gate refused.
enum class Source { rule, default_, manual, exception, unknown, report, unscanned, signature, sbom, provenance, upstream };

// Verdicts that stand by themselves (set by a person, or by the gate upstream):
// kept per digest, counting in every scope and under every policy version.
inline bool standing(Source source) { return source == Source::manual || source == Source::upstream; }

std::string_view to_string(Decision);
std::string_view to_string(Mode);
std::string_view to_string(Unknown);
std::string_view to_string(Source);
std::optional<Decision> parse_decision(std::string_view);
std::optional<Source> parse_source(std::string_view);

// Defined in policy/report.hpp (which includes this header); declared here so a scope
// can name severities.
enum class Severity;

// A stored time (milliseconds since the epoch) as a TimePoint, clamped to what one
// can hold (years 1678 to 2261): a record from far ahead must not wrap around into
// the past (an expiry that far away is "never").
TimePoint time_from_ms(std::int64_t ms_since_epoch);
// And back: how records store times.
inline std::int64_t ms_of(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}
// The furthest ahead an expiry may be set from the CLI or the admin API.
inline constexpr std::int64_t max_expiry_ms = 100LL * 365 * 86'400'000;

// Shell-style glob (registry/glob.hpp): '*' one path segment's characters, '**' any.
using registry::glob_match;

struct Rule {
  Decision action = Decision::deny;   // allow | warn | deny
  std::string repository;             // glob; empty: any
  std::string tag;                    // glob; empty: any (a pull by digest has no tag)
  std::optional<registry::Digest> digest;  // exact digest; none: any
  std::string reason;                 // shown to users on a denial
};

struct Exception {
  std::string id;                     // stable name, for audit and removal
  std::optional<registry::Digest> digest;  // exact digest; none: any
  std::string repository;             // glob; empty: any
  std::string upstream;               // glob; empty: any
  std::string reason;
  std::string who;
  std::optional<TimePoint> expires;   // none: never (discouraged; `policy check` warns)
};

// What a digest without a (fresh) vulnerability report gets in a scope.
enum class Unscanned { deny, allow, warn, hold };

// Sets one finding aside: it is not counted while unexpired.
struct CveException {
  std::string id;                     // CVE-2024-1234, GHSA-...; matched case-insensitively
  std::string package;                // exact package name; empty: any
  std::string scope;                  // scope name; empty: any
  std::string reason;
  std::string who;
  TimePoint expires{};                // required: from this instant on it no longer applies
};

}  // namespace pullgate::policy
namespace pullgate::registry {
class PublicKey;  // registry/keys.hpp
}  // namespace pullgate::registry
namespace pullgate::policy::sigstore {
class TrustedRoot;  // policy/trusted_root.hpp
}  // namespace pullgate::policy::sigstore
namespace pullgate::policy {
using registry::PublicKey;

// A verification key named in the policy ("keys"): inline PEM, read when the document
// is parsed, or a PEM file, read by whoever loads the document from disk (see
// load_key_files in proxy/commands.hpp), since parsing does no I/O.
struct VerificationKey {
  std::string name;
  std::string pem_file;                    // as written (relative to the policy file's directory)
  std::shared_ptr<const PublicKey> key;    // null until read
};

// A Sigstore trusted root named in the policy ("trusted_roots"): the Fulcio CAs, Rekor
// and CT log keys keyless signatures are verified with, offline. Given inline (the
// document's "root" object, read when the policy is parsed) or as a file, read by
// whoever loads the document from disk (load_policy_file), since parsing does no I/O;
// either way its bytes are part of the policy's version, so a reload that changes the
// file changes what was checked under it.
struct TrustedRootRef {
  std::string name;
  std::string file;                                      // as written (relative to the policy file)
  std::shared_ptr<const sigstore::TrustedRoot> root;     // null until read
  std::vector<std::string> warnings;                     // the root's entries left out, one line each
};

// An issuer or subject of a keyless identity: the exact text, or an ECMAScript
// expression that must match all of it (cosign's --certificate-identity and
// --certificate-identity-regexp, except that an expression matches whole names only).
struct TextMatch {
  std::string text;
  std::shared_ptr<const std::regex> regex;  // null: exact
  bool matches(std::string_view value) const;
  std::string describe() const;             // "\"text\"" or "matching \"text\""
};

// A keyless signer a scope trusts: who the OIDC issuer said the signer was, in a
// certificate that chains to `trusted_root`, plus any Fulcio extensions pinned
// exactly (source_repository_uri, source_repository_ref, build_signer_uri, ...).
struct KeylessIdentity {
  std::string trusted_root;  // a name in Policy::trusted_roots
  TextMatch issuer;
  TextMatch subject;
  std::vector<std::pair<std::string, std::string>> extensions;  // (name, exact value)
};

// A Notary Project trust store named in the policy ("trust_stores"): the certificates
// of one type (ca: roots of notary.x509 signers; signingAuthority: of
// notary.x509.signingAuthority; tsa: of timestamp authorities), given inline ("pem")
// or as a PEM file read by whoever loads the document from disk (load_policy_file),
// its bytes part of the policy's version. Notation names a store "type:name"; here the
// type is the store's and a statement names it by its name alone.
struct NotationTrustStore {
  enum class Type { ca, signing_authority, tsa };
  std::string name;
  Type type = Type::ca;
  std::string file;                                          // as written (relative to the policy file)
  std::shared_ptr<const std::vector<Certificate>> certificates;  // null until read
};
inline constexpr std::size_t max_trust_store_certificates = 64;

// One Notation trust policy statement, as a scope holds it (the scope stands for the
// statement's registryScopes): the trust stores, trusted identities and verification
// level a Notation signature of the scope's images is verified with.
struct NotationStatement {
  std::vector<std::string> trust_stores;        // names in Policy::trust_stores
  std::vector<std::string> trusted_identities;  // "*" or "x509.subject: ..."
  notation::VerificationLevel level = notation::VerificationLevel::strict;  // never skip
  notation::VerifyTimestamp verify_timestamp = notation::VerifyTimestamp::always;
};

// A scope's signature requirement: a valid cosign signature by any of these keys, a
// keyless one by any of these identities, or a Notation signature any of these
// statements accepts.
struct SignaturePolicy {
  std::vector<std::string> keys;           // names in Policy::keys
  std::vector<KeylessIdentity> identities;
  std::vector<NotationStatement> notation;
  std::chrono::seconds recheck{60};        // how long "no valid signature" stands before the registry is asked again
};

// Which VEX documents a scope's vulnerability policy believes (policy/vex.hpp): those
// imported by an operator (pullgate vex import, POST /v1/vex). VEX attached to images
// as signed attestations is not looked for yet.
struct VexTrust {
  bool imported = true;
};

// A scope's vulnerability policy (see policy/vulnerabilities.hpp for the judgement).
// Severity's enumerators are not visible here, so the defaults for `block` (CRITICAL,
// HIGH) and `warn` (MEDIUM) are filled in by parse_policy, not by this struct.
struct VulnerabilityPolicy {
  std::vector<Severity> block;                  // a finding of these severities denies
  std::vector<Severity> warn;                   // ... warns; any other severity is only logged
  std::map<Severity, std::uint32_t> max;        // these deny only when their count exceeds the max
  bool ignore_unfixed = false;                  // findings without a known fix are not counted
  std::chrono::seconds max_report_age{7 * 24 * 3600};  // older reports count as absent
  Unscanned unscanned = Unscanned::deny;
  std::chrono::seconds hold_for{30};            // how long a hold waits for a report
  std::optional<VexTrust> vex;                  // none: VEX documents are not consulted
};

// A scope's SBOM requirement: an SBOM attached to the image.
struct SbomPolicy {
  std::chrono::seconds recheck{60};        // how long "no SBOM" stands before the registry is asked again
};

// A scope's provenance requirement: a SLSA provenance attestation (an in-toto
// statement with predicate https://slsa.dev/provenance/v0.2 or /v1, in a Sigstore
// bundle referrer or cosign's `.att` tag) about the image, signed by one of `signers`
// (keys and keyless identities, as signatures are), whose builder, build type and
// source meet every condition given (absent: any).
struct ProvenancePolicy {
  SignaturePolicy signers;                // its recheck: how long "no provenance" stands
  std::optional<TextMatch> builder_id;
  std::optional<TextMatch> build_type;
  std::string source_repository;          // glob on "host/path", e.g. "github.com/acme/*"; empty: any
  std::optional<TextMatch> source_ref;    // e.g. "refs/tags/v1.2.0"
};

struct Scope {
  std::string name;                   // for reasons and audit
  std::string upstream = "**";        // glob on the upstream name
  std::string repository = "**";      // glob on the repository
  Mode mode = Mode::enforce;
  Unknown unknown = Unknown::evaluate;
  Decision fallback = Decision::allow; // when no rule matches
  std::vector<Rule> rules;             // first match wins
  std::optional<VulnerabilityPolicy> vulnerabilities;  // none: reports are not consulted
  std::optional<SignaturePolicy> signatures;           // none: signatures are not required
  std::optional<SbomPolicy> sbom;                      // none: SBOMs are not required
  std::optional<ProvenancePolicy> provenance;          // none: provenance is not required
  std::size_t order = 0;               // position in the file, for ties
};

struct Policy {
  std::string version;                // sha256 of the document's bytes, "sha256:<hex>"
  std::vector<Scope> scopes;          // a catch-all default scope is always last
  std::vector<Exception> exceptions;
  std::vector<CveException> cve_exceptions;
  std::vector<VerificationKey> keys;
  std::vector<TrustedRootRef> trusted_roots;
  std::vector<NotationTrustStore> trust_stores;
  bool needs_signals = false;         // some scope requires signatures, an SBOM or provenance
  // Who may pull what (policy/access.hpp); none: everyone the listener let in.
  std::optional<AccessPolicy> access;

  const VerificationKey* key_named(std::string_view name) const {
    for (const auto& k : keys)
      if (k.name == name) return &k;
    return nullptr;
  }
  const TrustedRootRef* trusted_root_named(std::string_view name) const {
    for (const auto& r : trusted_roots)
      if (r.name == name) return &r;
    return nullptr;
  }
  const NotationTrustStore* trust_store_named(std::string_view name) const {
    for (const auto& s : trust_stores)
      if (s.name == name) return &s;
    return nullptr;
  }
};

// "sha256:<hex>" of the bytes: the policy version of a document (and of the key
// files it names, folded in by their loader).
std::string content_version(std::string_view bytes);

struct ParseResult {
  std::optional<Policy> policy;
  std::vector<std::string> errors;    // one line each; policy is empty when any
  std::vector<std::string> warnings;  // one line each (e.g. an exception without expiry)
};

// JSON with comments. Unknown fields, bad globs, bad digests, bad times (RFC 3339),
// duplicate scope names or exception ids are errors; likewise in "vulnerabilities"
// and "cve_exceptions" (bad severities, durations, ids, unknown scope names, duplicate
// (id, package, scope)).
ParseResult parse_policy(std::string_view document);

// The scope for (upstream, repository): the most specific matching scope, where
// specificity is the count of literal (non-wildcard) characters in its upstream and
// repository patterns together; ties go to the scope written first.
const Scope& scope_for(const Policy& policy, std::string_view upstream, std::string_view repository);

// Whether the scope could refuse an image the mirror has never seen: it enforces, and
// a rule, its fallback or its `unknown` setting denies, or it requires a scan, a
// signature or an SBOM. One that cannot (no policy at all, or a scope that only allows,
// warns or audits) lets a blob be served before any manifest listing it was pulled, as
// the OCI distribution spec expects of a registry.
bool can_refuse(const Scope& scope);

// What the request is about.
struct Subject {
  std::string upstream;
  std::string repository;
  std::optional<std::string> tag;     // absent when pulled by digest
  registry::Digest digest;
};

// A digest's stored verdict, as the caller found it.
struct StoredVerdict {
  Decision decision = Decision::allow;
  Source source = Source::manual;
  std::vector<std::string> reasons;
  std::optional<TimePoint> expires;
};

struct Outcome {
  Decision decision = Decision::allow;  // what the verdict says
  bool serve = true;                    // after the mode: enforce+deny => false
  Mode mode = Mode::enforce;
  Source source = Source::default_;
  std::string scope;
  std::vector<std::string> reasons;     // human-readable, each one line
  std::string exception_id;             // when an exception turned a deny around
  std::string policy_version;
};

// Order: a matching, unexpired exception allows (source exception); else an
// unexpired stored verdict decides (its source); else the scope's `unknown` setting
// (evaluate: the first matching rule, else `fallback`). A rule deny found while a
// stored verdict allows still denies: location rules always apply. Then the mode:
// enforce serves allow and warn; warn and audit serve everything.
// extra_exceptions (added at run time, kept in LMDB) apply exactly like the policy's
// own, consulted after them.
Outcome evaluate(const Policy& policy, const Subject& subject, const std::optional<StoredVerdict>& stored,
                 TimePoint now, std::span<const Exception> extra_exceptions = {});

}  // namespace pullgate::policy
