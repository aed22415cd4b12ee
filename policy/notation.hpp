#pragma once
// Notary Project (Notation) signatures, verified offline. A signature is an OCI
// artifact (artifactType application/vnd.cncf.notary.signature) whose one layer is a
// signature envelope; the caller fetches the layer and hands over its media type and
// exact bytes. Pure: the envelope, the manifest digest it must name, the trust store
// and policy, and `now` in; a verdict out. Both envelopes are read: JWS
// (application/jose+json) and COSE_Sign1 (application/cose, with policy/cbor.hpp),
// into one form that one core verifies (policy/notation_envelope.hpp).
//
// Sources: notaryproject/specifications specs/signature-specification.md (algorithms,
// certificate requirements), signature-envelope-jws.md and signature-envelope-cose.md
// (the envelopes and their headers),
// signing-scheme.md, trust-store-trust-policy.md (levels, trusted identities, the
// verification steps); notation-go verifier/verifier.go (verifyTimestamp) and
// notation-core-go x509 (the certificate requirements) where the prose is terse.
// Real envelopes: tests/fixtures/notation.
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/certificate.hpp"
#include "policy/rfc3339.hpp"
#include "registry/digest.hpp"

namespace pullgate::policy::notation {

inline constexpr std::string_view signature_artifact_type = "application/vnd.cncf.notary.signature";
inline constexpr std::string_view jws_media_type = "application/jose+json";
inline constexpr std::string_view cose_media_type = "application/cose";
inline constexpr std::string_view payload_content_type = "application/vnd.cncf.notary.payload.v1+json";

inline constexpr std::size_t max_envelope_size = 4 << 20;
inline constexpr std::size_t max_certificates = 10;

// trust-store-trust-policy.md "Signature Verification details": what each level does
// with a failed check. Integrity is always enforced; authenticity is enforced at
// strict and permissive, logged at audit; the authentic timestamp (the chain valid at
// a trusted time) and expiry are enforced at strict only; skip verifies nothing.
// Revocation (enforced at strict) is not checked at all: pullgate fetches no CRL or
// OCSP response, and every verified result says so (NotationVerified::revocation).
enum class VerificationLevel { strict, permissive, audit, skip };

// A trusted identity: "*" (any signer the trust store vouches for) or
// "x509.subject: C=US, ST=WA, O=acme, CN=release", the RDNs a signer's subject must
// hold, each with an equal value (and possibly more). S is read as ST.
struct TrustedIdentity {
  bool any = false;
  std::vector<std::pair<std::string, std::string>> attributes;  // type, value; in the text's order
};

// The specification's rules: the prefix "x509.subject:", comma-separated TYPE=VALUE
// RDNs with "\," "\;" "\\" "\+" and "\ " escapes (a space at a value's ends must be
// escaped, others are trimmed), each type once, C, ST (or S) and O present; one line
// naming the fault otherwise. Multi-valued RDNs (an unescaped '+') are refused.
std::variant<TrustedIdentity, std::string> parse_trusted_identity(std::string_view text);

// The trusted identities of one trust policy statement, as the specification
// constrains them: at least one; each parses; "*" stands alone; no two overlap, that
// is no certificate could match both (every attribute type they share has equal
// values: the specification's definition, which also catches pairs that are not
// subsets of one another, as notation-go's check is). One line naming the fault.
// verify_notation_signature applies it; a policy reader may call it at load time.
std::optional<std::string> trusted_identities_refusal(const std::vector<std::string>& identities);

enum class VerifyTimestamp { always, after_cert_expiry };

// What a pullgate scope names for Notation signatures: the trust stores (the
// certificates the policy's files hold, parsed) and the trust policy.
struct NotationTrust {
  std::vector<Certificate> ca_roots;                 // trust store type "ca": notary.x509 signers
  std::vector<Certificate> signing_authority_roots;  // "signingAuthority": notary.x509.signingAuthority
  std::vector<Certificate> tsa_roots;                // "tsa": timestamp countersignatures
  std::vector<std::string> trusted_identities;       // parse_trusted_identity's texts
  VerificationLevel level = VerificationLevel::strict;
  // signatureVerification.verifyTimestamp: "always" (the default), or
  // "afterCertExpiry": the countersignature is read only once a certificate of the
  // chain has expired at `now`; until then the chain is checked at `now`.
  VerifyTimestamp verify_timestamp = VerifyTimestamp::always;
};

enum class SigningScheme { x509, x509_signing_authority };

// The artifact the signature is for (the payload's targetArtifact).
struct TargetArtifact {
  std::string media_type;
  std::string digest;
  std::int64_t size = 0;
};

struct NotationVerified {
  bool skipped = false;  // level skip: nothing was read, and nothing below is set
  // The leaf's subject in the order of the certificate, as a trusted identity names
  // it: "C=US, ST=WA, O=acme, CN=release".
  std::string signer;
  SigningScheme scheme = SigningScheme::x509;
  // The countersignature's genTime when a timestamp verified; else the signer's own
  // claim (io.cncf.notary.signingTime, untrusted) or, for a signing authority, its
  // authenticSigningTime.
  TimePoint signing_time;
  bool timestamped = false;
  std::optional<TimePoint> expiry;
  // The first instant at which verifying again would refuse for time alone: the
  // expiry, and, when the chain was checked at `now` (no countersignature read), its
  // first certificate's notAfter; only where the level enforces that check. None: the
  // result does not lapse by itself.
  std::optional<TimePoint> valid_until;
  TargetArtifact target;
  std::string signing_agent;  // io.cncf.notary.signingAgent, printable; may be empty
  // Checks that failed and were only logged (permissive, audit), one line each.
  std::vector<std::string> logged;
  std::string revocation = "revocation not checked: pullgate fetches no CRL or OCSP response";
};

// `envelope` (a signature artifact's layer of `media_type`) is a Notary Project
// signature of `manifest` that `trust` accepts at `now`. The checks, in the
// specification's order, each enforced or logged as trust.level says:
//  - integrity: at most max_envelope_size bytes; for JWS a flattened JWS JSON object
//    with exactly payload, protected, header and signature, base64url without
//    padding; for COSE a COSE_Sign1_Tagged message with an attached payload, times as
//    epoch date/times (tag 1); the protected header's alg one of PS256/384/512,
//    ES256/384/512 (COSE -37/-38/-39, -7/-35/-36) and the one the leaf's key requires
//    (RSA 2048/3072/4096 with PSS, P-256/384/521 with the hash of its size; ECDSA as
//    raw r||s); content type the Notary payload; crit listing
//    io.cncf.notary.signingScheme, the expiry and authentic signing time when present,
//    and nothing this code does not know (a verification plugin it cannot run
//    included; COSE's labels 0 to 8 never); the signature by x5c[0] / x5chain[0] over
//    ASCII(protected '.' payload) or COSE's Sig_structure; the payload's
//    targetArtifact.digest equal to `manifest`;
//  - authenticity: the chain (1 to max_certificates DER certificates) in
//    order, each issued by the next, ending with a root, no SHA-1 signature, the
//    leaf a code-signing certificate and the CAs CAs as signature-specification.md
//    requires; the chain leads to a certificate of the store for the scheme (ca
//    roots for notary.x509, signing authority roots for signingAuthority); the leaf's
//    subject matches a trusted identity;
//  - expiry: `now` not after io.cncf.notary.expiry;
//  - authentic timestamp: for notary.x509, when trust.tsa_roots is not empty (a TSA
//    trust store configured; with verify_timestamp after_cert_expiry, only once a
//    chain certificate has expired at `now`), the envelope must carry a
//    countersignature: an RFC 3161 TimeStampToken over the signature bytes that
//    verifies against the TSA store (policy/timestamp.hpp; the token's embedded
//    certificates serve as intermediates), and genTime, widened by its accuracy, lies
//    within every chain certificate's validity. Without a TSA store the chain must be
//    valid at `now`. For signingAuthority, the chain is valid at authenticSigningTime.
// The refusal is one line naming the failed check.
std::variant<NotationVerified, std::string> verify_notation_signature(std::string_view media_type,
                                                                      std::string_view envelope,
                                                                      const registry::Digest& manifest,
                                                                      const NotationTrust& trust, TimePoint now);

}  // namespace pullgate::policy::notation
