#pragma once
// A Sigstore trusted root (trusted_root.json, protobuf-specs' TrustedRoot in proto3
// JSON): the transparency logs, certificate transparency logs, certificate authorities
// (Fulcio) and timestamp authorities that keyless verification trusts (issue 15), each
// for a period of time. Pure: the document's text in, a value out; no file paths, no
// clock. Keyless checks take the time something was signed, never "now": a Fulcio
// certificate lives ten minutes, a log key for years.
//
// Sources: protobuf-specs sigstore_trustroot.proto and sigstore_common.proto;
// sigstore-go pkg/root/trusted_root.go. Real roots: tests/fixtures/sigstore.
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/certificate.hpp"
#include "policy/rfc3339.hpp"
#include "policy/transparency.hpp"

// Sigstore's own notions (trusted roots, Fulcio certificates); the Merkle trees and
// checkpoints they rest on are in policy::transparency, which is not Sigstore's alone.
namespace pullgate::policy::sigstore {

using transparency::Check;

// validFor: a closed interval, [start, end] (sigstore_common.proto TimeRange); no end
// means still trusted.
struct ValidFor {
  TimePoint start;
  std::optional<TimePoint> end;

  bool contains(TimePoint time) const { return start <= time && (!end || time <= *end); }
  // "from 2021-01-12T11:53:27Z to 2022-10-31T23:59:59.999Z" or "from 2021-01-12T11:53:27Z on"
  std::string text() const;
};

// A tlogs[] entry, a Rekor log, v1 (ECDSA P-256) or v2 (Ed25519); or a ctlogs[] entry,
// a certificate transparency log whose SCTs Fulcio embeds (ECDSA P-256, so its key's
// log id is RFC 6962's, SHA-256 of the SubjectPublicKeyInfo).
struct TransparencyLog {
  std::string base_url;
  transparency::LogKey key;  // named for checkpoints by base_url's hostname
  ValidFor valid_for;
};

// A certificateAuthorities[] (Fulcio) or timestampAuthorities[] entry.
struct CertificateAuthority {
  std::string uri;                 // may be empty
  std::vector<Certificate> chain;  // never empty; intermediates first, the trust anchor last
  ValidFor valid_for;              // when the whole chain may be trusted

  const Certificate& anchor() const { return chain.back(); }
};

// What a log look-up found, or one line saying why nothing was.
struct FoundLog {
  const TransparencyLog* log = nullptr;
  std::string reason;  // empty when found
  explicit operator bool() const { return log != nullptr; }
};

class TrustedRoot {
 public:
  // Accepts the three media types in use: application/vnd.dev.sigstore.trustedroot.v0.2+json,
  // ...trustedroot.v0.1+json and the old ...trustedroot+json;version=0.1, which
  // Sigstore's production root still carries. bytes are standard base64 of DER;
  // times RFC 3339; null is the same as absent (proto3 JSON). A document that is not
  // a trusted root, or an entry missing what it needs (a validFor start, a key, a log
  // id that is not its key's, a certificate that is not DER), is one error line naming
  // the entry and the field. An entry whose key or hash pullgate cannot check (the
  // staging root's expired PKCS#1 RSA CT key, say) is left out with a warning line.
  static std::variant<TrustedRoot, std::string> parse(std::string_view json);

  const std::string& media_type() const { return media_type_; }
  const std::vector<TransparencyLog>& tlogs() const { return tlogs_; }
  const std::vector<TransparencyLog>& ctlogs() const { return ctlogs_; }
  const std::vector<CertificateAuthority>& certificate_authorities() const { return certificate_authorities_; }
  const std::vector<CertificateAuthority>& timestamp_authorities() const { return timestamp_authorities_; }
  // One line each: the entries left out, and why.
  const std::vector<std::string>& warnings() const { return warnings_; }

  // The tlog with this log id (32 raw bytes: a bundle's tlogEntries[].logId.keyId)
  // whose validFor holds `time`. Several entries may share an id (a key trusted over
  // two periods, or for two URLs); the first that holds `time` is the answer.
  FoundLog tlog(std::string_view log_id, TimePoint time) const;
  // The same for a CT log, by the log id an SCT names, at the SCT's time.
  FoundLog ctlog(std::string_view log_id, TimePoint time) const;
  // The certificate authorities whose validFor holds `time`, in the root's order
  // (periods may overlap while a CA is rotated).
  std::vector<const CertificateAuthority*> certificate_authorities_at(TimePoint time) const;

 private:
  // An entry left out, so that a look-up of its id says why it finds nothing.
  struct Skipped {
    std::string list;  // "tlogs" or "ctlogs"
    std::string log_id;
    std::string reason;
  };
  FoundLog find(const std::vector<TransparencyLog>& logs, std::string_view list, std::string_view log_id,
                TimePoint time) const;

  std::string media_type_;
  std::vector<TransparencyLog> tlogs_;
  std::vector<TransparencyLog> ctlogs_;
  std::vector<CertificateAuthority> certificate_authorities_;
  std::vector<CertificateAuthority> timestamp_authorities_;
  std::vector<std::string> warnings_;
  std::vector<Skipped> skipped_;
};

}  // namespace pullgate::policy::sigstore
