#pragma once
// Importing a VEX document (`pullgate vex import`, POST /v1/vex): parse it, file it
// under every manifest digest its statements name, and drop those digests' computed
// verdicts so that the next pull decides again with it. Shared by the CLI and the
// admin API. Which scopes believe imported documents is the policy's business
// (vulnerabilities.vex.imported); this only stores them.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/meta_store.hpp"
#include "proxy/gate/decision_writes.hpp"

namespace pullgate::proxy {

struct VexImportResult {
  bool ok = false;
  std::string error;                 // one line, when !ok
  std::string name;                  // the document's id, or "sha256:<hex>" of its bytes
  std::vector<std::string> digests;  // where it was filed
  std::size_t statements = 0;
  std::string statuses;              // "2 not_affected, 1 affected"
  bool replaced_verdict = false;     // a computed verdict was dropped
};

// `digest_override`: file it under this digest only, which one of its statements must
// name (by product, or an in-toto statement's subject); otherwise under every digest
// its statements name. A document that names no image by digest is refused: products
// are matched by digest (pkg:oci/NAME@sha256:..., REF@sha256:..., or the digest).
VexImportResult import_vex(DecisionWrites& writes, std::string_view document, std::string_view digest_override,
                           std::string_view by, std::int64_t now_ms);

// {"digest","documents":[{"name","format","author","imported_at","by","statements":[...]}]}
nlohmann::json vex_json(const std::string& digest, const std::vector<cache::VexRecord>& records);

}  // namespace pullgate::proxy
