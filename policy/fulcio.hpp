#pragma once
// Fulcio certificates, as keyless Sigstore verification checks them (issue 15): that a
// signing certificate chains to a certificate authority of the trusted root at the time
// it was used, that a certificate transparency log of the root saw it (its embedded
// SCT), and who it names (the identity a policy pins: the subject alternative name,
// the OIDC issuer and Fulcio's other extensions). Pure: certificates and the time in,
// a verdict out; the time is the signing time a log or a timestamp authority vouched
// for, never "now" (a Fulcio certificate lives ten minutes).
//
// Sources: sigstore-go pkg/root/certificate_authority.go (the chain at a time, code
// signing), pkg/verify/sct.go (SCTs, threshold one), pkg/fulcio/certificate (the
// extensions); Fulcio docs/oid-info.md; RFC 6962 section 3.2 (SCTs); RFC 5280.
#include <string>
#include <variant>
#include <vector>

#include "policy/certificate.hpp"
#include "policy/rfc3339.hpp"
#include "policy/trusted_root.hpp"

namespace pullgate::policy::sigstore {

// A verified path: the signing certificate first, then the certificates that issued
// it, the trust anchor of one of the root's certificate authorities last.
using CertificateChain = std::vector<Certificate>;

// `leaf` (a bundle's certificate, or the first of its x509CertificateChain: only the
// trusted root supplies issuers) was valid when it signed, at `signed_at`, and chains
// to a certificate authority of `root` whose validFor holds that time, the chain valid
// then too (OpenSSL's path validation at that time; the anchor may be an intermediate).
// It must be a code-signing certificate: not a CA, with the code-signing extended key
// usage, which its issuers must allow if they restrict theirs. The refusal says what
// failed: the signing time outside the leaf's validity (both given), no authority
// trusted at that time, OpenSSL's reason for each authority's chain, the key usage.
std::variant<CertificateChain, std::string> verify_fulcio_chain(const Certificate& leaf, const TrustedRoot& root,
                                                                TimePoint signed_at);

// OpenSSL's path validation from `leaf` to `authority`'s trust anchor at `time` (whole
// seconds), validity periods closed at both ends as RFC 5280 and Go's verifier count
// them; the anchor may be an intermediate. The refusal is OpenSSL's reason and the
// certificate it names. No key usage is checked: the caller checks the usage it needs
// (code signing here, time stamping for a timestamp authority, policy/timestamp.hpp).
std::variant<CertificateChain, std::string> chain_to(const Certificate& leaf, const CertificateAuthority& authority,
                                                     TimePoint time);

// The leaf of a verified `chain` carries an SCT (RFC 6962 section 3.3, embedded) that
// a CT log of `root`, trusted at the SCT's time, signed over the leaf's precertificate
// (its TBSCertificate without the SCT list) and the key of the certificate that
// issued it. One such SCT suffices (sigstore-go's threshold); the others may be of
// logs the root does not know. The refusal names each SCT's failure.
Check verify_embedded_sct(const CertificateChain& chain, const TrustedRoot& root);

// The signer a Fulcio certificate names: what a policy compares, byte for byte.
struct FulcioIdentity {
  // The subject alternative name, Fulcio's only one: a URI (CI workflows, SPIFFE), an
  // email address, or a username (an otherName of type 1.3.6.1.4.1.57264.1.7).
  enum class Kind { uri, email, username };
  Kind kind = Kind::uri;
  std::string subject;
  // The OIDC issuer that vouched for it: 1.3.6.1.4.1.57264.1.8, or the older .1.1.
  std::string issuer;

  // Extensions of CI identities (1.3.6.1.4.1.57264.1.x, x in 9 to 24); empty when
  // the certificate has none.
  std::string build_signer_uri;                    // .9
  std::string build_signer_digest;                 // .10
  std::string runner_environment;                  // .11
  std::string source_repository_uri;               // .12
  std::string source_repository_digest;            // .13
  std::string source_repository_ref;               // .14
  std::string source_repository_identifier;        // .15
  std::string source_repository_owner_uri;         // .16
  std::string source_repository_owner_identifier;  // .17
  std::string build_config_uri;                    // .18
  std::string build_config_digest;                 // .19
  std::string build_trigger;                       // .20
  std::string run_invocation_uri;                  // .21
  std::string source_repository_visibility;        // .22
  std::string deployment_environment;              // .23
  std::string token_subject;                       // .24
  // GitHub's, deprecated (.2 to .6) but in every certificate Fulcio gave GitHub
  // Actions until 2023, and still written.
  std::string github_workflow_trigger;     // .2
  std::string github_workflow_sha;         // .3
  std::string github_workflow_name;        // .4
  std::string github_workflow_repository;  // .5
  std::string github_workflow_ref;         // .6
};

// The identity of `leaf`; an error line when it has no subject alternative name Fulcio
// issues (or more than one), no issuer or two that disagree, or an extension that is
// not encoded as Fulcio encodes it (.1 to .6 raw UTF-8, .8 to .24 a DER UTF8String),
// or twice.
std::variant<FulcioIdentity, std::string> read_fulcio_identity(const Certificate& leaf);

}  // namespace pullgate::policy::sigstore
