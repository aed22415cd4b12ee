#pragma once
// RFC 3161 timestamps, as keyless Sigstore verification reads them (issue 15): a
// timestamp authority of the trusted root signed, at its genTime, a hash of the
// bundle's signature, so the signature existed then, and a Fulcio certificate that
// lives ten minutes can be checked at that time. Rekor v2 entries carry no time of
// their own: a bundle logged there is timed only by such timestamps. Pure: the
// timestamp's DER, the signature and the trusted root in, a time or a refusal out.
//
// Sources: RFC 3161 (TimeStampResp, TSTInfo), RFC 5816 (ESS signing certificate v2);
// sigstore-go pkg/verify/tsa.go and pkg/root/timestamping_authority.go; sigstore
// timestamp-authority pkg/verification (VerifyTimestampResponse), which reads the
// response with github.com/digitorus/timestamp. Real vectors: tests/fixtures/sigstore.
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/rfc3339.hpp"
#include "policy/trusted_root.hpp"

namespace pullgate::policy::sigstore {

// A timestamp that verified: when, and by which authority of the root.
struct VerifiedTimestamp {
  TimePoint time;           // the TSTInfo's genTime
  std::string authority;    // the authority's uri, or its leaf's subject when it has none
  // How far genTime may be from the true time, either way (RFC 3161 section 2.4.2):
  // the TSTInfo's accuracy, else a second under the baseline time-stamp policy of
  // RFC 3628 (0.4.0.2023.1.1), else zero. The Notary Project checks the whole range.
  Clock::duration accuracy{};
};

// `signed_timestamp` (a bundle's rfc3161Timestamps[].signedTimestamp, decoded: a DER
// TimeStampResp whose status is granted, as digitorus/timestamp ParseResponse reads
// it; nothing after it) is a token over `signature` (the bundle's message signature
// or its DSSE envelope's one signature) by a timestamp authority of `root`:
//  - the imprint is SHA-256, SHA-384 or SHA-512 (its own algorithm) of `signature`;
//  - the token has one signer, and its signature verifies with the authority's leaf
//    (the first certificate of its chain in the root); a certificate the token
//    embeds for its signer must be that leaf, not another with the same name;
//  - the leaf chains to the authority's anchor at genTime (validity periods closed),
//    is not a CA, and has a critical extended key usage of time stamping alone; an
//    intermediate that restricts its usages allows time stamping;
//  - the authority's validFor holds genTime (both ends included).
// The first authority that passes gives the answer; the refusal is one line naming
// the failed check (each authority's when none passes).
std::variant<VerifiedTimestamp, std::string> verify_rfc3161_timestamp(std::string_view signed_timestamp,
                                                                      std::string_view signature,
                                                                      const TrustedRoot& root);

// The same checks of a bare TimeStampToken (RFC 3161 section 2.4.2: the CMS
// ContentInfo of SignedData that a response carries; a Notary Project signature's
// io.cncf.notary.timestampSignature, policy/notation.hpp) against `authorities`, a
// trust store of timestamp authorities rather than a whole trusted root. `store` names
// them in the refusal ("TSA trust store"). Each authority's chain may be its anchor
// alone: the certificates the token embeds serve as intermediates up to it.
std::variant<VerifiedTimestamp, std::string> verify_rfc3161_token(std::string_view token, std::string_view signature,
                                                                  const std::vector<CertificateAuthority>& authorities,
                                                                  std::string_view store);

}  // namespace pullgate::policy::sigstore
