#pragma once
// The two Notary Project signature envelopes read into one Envelope, for
// policy/notation.cpp to verify: JWS (signature-envelope-jws.md, in
// notation_envelope.cpp) and COSE_Sign1 (signature-envelope-cose.md, in
// notation_cose.cpp). Each reader checks its own format's syntax and types and hands
// the protected header's meaning to check_headers and the payload to read_payload, so
// the rules of signature-specification.md are written once. Internal to policy.
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/certificate.hpp"
#include "policy/notation.hpp"
#include "policy/rfc3339.hpp"

namespace pullgate::policy::notation {

// What an envelope says, read but not yet checked against keys or trust.
struct Envelope {
  std::string signed_bytes;  // what the signature covers
  std::string signature;     // raw: RSASSA-PSS, or ECDSA's R || S
  std::string alg;           // JWS's name for the algorithm ("PS256", ...)
  SigningScheme scheme = SigningScheme::x509;
  std::optional<TimePoint> signing_time;            // notary.x509's claim
  std::optional<TimePoint> authentic_signing_time;  // signingAuthority's
  std::optional<TimePoint> expiry;
  TargetArtifact target;
  std::vector<Certificate> chain;  // at least one, at most max_certificates
  std::string timestamp_token;     // a DER TimeStampToken, or empty
  std::string signing_agent;       // printable; may be empty
};

// The protected header in either format, its values converted but not yet judged.
struct ProtectedHeaders {
  std::string alg;  // a JWS name; a COSE algorithm Notary does not allow as "COSE alg N"
  std::optional<std::string> content_type;
  std::optional<std::vector<std::string>> critical;  // COSE integer labels as "label N"
  std::set<std::string> present;                     // every header's name (or "label N")
  std::optional<std::string> signing_scheme;
  std::optional<TimePoint> signing_time;
  std::optional<TimePoint> authentic_signing_time;
  std::optional<TimePoint> expiry;
  std::optional<std::string> plugin;  // a verification plugin named, with its value as text
};

inline constexpr std::string_view signing_scheme_header = "io.cncf.notary.signingScheme";
inline constexpr std::string_view signing_time_header = "io.cncf.notary.signingTime";
inline constexpr std::string_view authentic_signing_time_header = "io.cncf.notary.authenticSigningTime";
inline constexpr std::string_view expiry_header = "io.cncf.notary.expiry";
inline constexpr std::string_view plugin_header = "io.cncf.notary.verificationPlugin";
inline constexpr std::string_view plugin_version_header = "io.cncf.notary.verificationPluginMinVersion";
inline constexpr std::string_view timestamp_header = "io.cncf.notary.timestampSignature";
inline constexpr std::string_view signing_agent_header = "io.cncf.notary.signingAgent";
inline constexpr std::size_t max_quoted = 80;

// `text` quoted for a reason: printable, at most max_quoted characters.
std::string in_quotes(std::string_view text);

// signature-specification.md's rules for the protected header: alg allowed, cty the
// Notary payload, crit naming only what this code understands and what the header
// holds, the signing scheme and its times, no verification plugin. Fills `envelope`.
std::optional<std::string> check_headers(const ProtectedHeaders& headers, Envelope& envelope);
// The payload, JSON text in both formats: {"targetArtifact": {mediaType, digest, size, annotations?}}.
std::optional<std::string> read_payload(std::string_view text, Envelope& envelope);
// x5c / x5chain: 1 to max_certificates DER certificates, leaf first.
std::optional<std::string> read_chain(const std::vector<std::string>& ders, std::string_view field, Envelope& envelope);

std::variant<Envelope, std::string> read_jws(std::string_view bytes);
std::variant<Envelope, std::string> read_cose(std::string_view bytes);

}  // namespace pullgate::policy::notation
