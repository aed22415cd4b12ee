#pragma once
// VEX (Vulnerability Exploitability eXchange): documents in which a supplier says
// whether a vulnerability affects a product. Read from OpenVEX (v0.0.1 to v0.2.0) and
// CycloneDX (1.4 and later) documents, bare or as the predicate of an in-toto
// statement, normalized to one shape; and which statement decides about a finding in
// an image. Pure: the document's bytes in (its signature, when attached, is checked by
// the caller), values out; no clock of its own.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/rfc3339.hpp"

namespace pullgate::policy {

struct Finding;  // policy/report.hpp

enum class VexStatus { not_affected, affected, fixed, under_investigation };
std::string_view to_string(VexStatus);

enum class VexFormat { openvex, cyclonedx };
std::string_view to_string(VexFormat);

// True for "https://openvex.dev/ns" and its versioned forms ("https://openvex.dev/ns/v0.2.0"),
// "https://cyclonedx.org/vex" and "https://cyclonedx.org/bom": the predicate types of
// in-toto statements parse_vex reads (cosign attest --type openvex / cyclonedx).
bool is_vex_predicate(std::string_view predicate_type);

// A part of a product (a package in an image), by every name it goes by: its @id and
// identifiers (purl, cpe, ...) as written; for CycloneDX, the bom-ref and the purl of
// the component it resolves to.
struct VexComponent {
  std::vector<std::string> names;
};

// What a statement is about. With subcomponents, only those parts of it.
struct VexProduct {
  std::vector<std::string> names;
  std::vector<VexComponent> subcomponents;
};

struct VexStatement {
  std::string vulnerability;              // its name (CVE-2024-1234, GHSA-...), else its @id
  std::vector<std::string> aliases;
  std::vector<VexProduct> products;       // none: about the in-toto statement's subjects
  // Of every product (OpenVEX v0.0.x writes them beside the products), or of the
  // subjects when there are no products.
  std::vector<VexComponent> subcomponents;
  VexStatus status = VexStatus::under_investigation;
  std::string justification;              // OpenVEX label, or CycloneDX's as written
  std::string impact_statement;           // CycloneDX: analysis.detail
  std::string action_statement;           // CycloneDX: analysis.response, joined
  std::optional<TimePoint> timestamp;     // the statement's, else the document's
};

struct VexDocument {
  VexFormat format = VexFormat::openvex;
  std::string id;                         // OpenVEX @id; CycloneDX serialNumber
  std::string author;                     // OpenVEX author; CycloneDX's first author, supplier or manufacturer
  std::optional<TimePoint> timestamp;
  std::vector<VexStatement> statements;
  bool in_toto = false;                   // came as an in-toto statement's predicate
  std::vector<std::string> subjects;      // its subjects' "sha256:<hex>" digests
};

struct VexParse {
  std::optional<VexDocument> document;
  std::string error;  // one line naming where, when document is empty
};

// Detects the format: OpenVEX by its @context, CycloneDX by bomFormat, an in-toto
// statement by _type (its predicate one of those). Limits: 16 MiB, nesting depth 64,
// 100,000 statements. CycloneDX vulnerabilities without an analysis state say nothing
// about exploitability and are left out.
VexParse parse_vex(std::string_view json);

// Whether a product of the statement names the image whose manifest digest is
// `manifest_digest` ("sha256:<64 hex>"): by pkg:oci/NAME@sha256%3A<hex> (or @sha256:<hex>)
// as @id or identifier, an image reference ending in @sha256:<hex>, or the bare digest.
// A statement without products in an in-toto statement is about its subjects.
bool vex_names_image(const VexStatement& statement, const VexDocument& document, std::string_view manifest_digest);

// Whether the statement, about that image, covers the finding: its vulnerability or an
// alias is the finding's id (ignoring case), and a product (or the subjects) naming the
// image lists no subcomponents (its own or the statement's) or one whose purl names the
// finding's package: its name, namespace/name or namespace:name (maven), ignoring case,
// and, when both say, its installed version.
bool vex_covers(const VexStatement& statement, const VexDocument& document, std::string_view manifest_digest,
                const Finding& finding);

// A VEX document and how the gate came by it, for reasons: "imported", "attested by
// key NAME", "attested by <identity>". The caller passes only documents the scope's
// VexTrust believes.
struct VexSource {
  const VexDocument* document = nullptr;
  std::string origin;
};

struct VexDecision {
  const VexStatement* statement = nullptr;
  const VexSource* source = nullptr;
};

// Of the statements over all sources that name the image and cover the finding, the
// one with the latest timestamp (none counts as earliest); at a tie, affected and
// under_investigation win over not_affected and fixed, so such a statement is never
// outweighed by an equally recent one that loosens. Nullopt when none covers it.
std::optional<VexDecision> vex_decision(std::span<const VexSource> sources, std::string_view manifest_digest,
                                        const Finding& finding);

// Whether the decision sets the finding aside: its statement says not_affected or fixed.
bool sets_aside(const VexDecision& decision);

// One line for reasons: `CVE-2024-1234 (openssl) not_affected per VEX from "Acme PSIRT"
// (https://acme.example/vex/1, imported): vulnerable_code_not_in_execute_path: the TLS
// code is not linked`. Document text is made printable and shortened.
std::string describe_vex(const Finding& finding, const VexDecision& decision);

// Normalized JSON for LMDB, and back (nullopt when it does not decode).
std::string encode_vex(const VexDocument& document);
std::optional<VexDocument> decode_vex(std::string_view json);

}  // namespace pullgate::policy
