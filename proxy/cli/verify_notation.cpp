// `pullgate verify-notation`: one Notary Project (Notation) signature envelope
// verified offline against trust stores and a trust policy, with the checks of
// policy/notation.hpp, for whoever debugs a refusal or tries a trust policy before
// writing it. Reads only the files it is given.
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/certificate.hpp"
#include "policy/notation.hpp"
#include "policy/rfc3339.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "registry/clock.hpp"
#include "registry/digest.hpp"

namespace pullgate::proxy::cli {

const char verify_notation_help[] = R"(Usage:
  pullgate verify-notation --envelope FILE --digest sha256:HEX
                           --trust-store FILE [--signing-authority FILE] [--tsa FILE]
                           [--identity 'x509.subject: C=..., ST=..., O=...' ...]
                           [--level strict|permissive|audit|skip]
                           [--verify-timestamp always|afterCertExpiry]
                           [--media-type application/jose+json|application/cose]
                           [--time RFC3339]

Verifies one Notary Project signature envelope (the layer of a signature artifact of
type application/vnd.cncf.notary.signature), offline, with the checks of the
Notary Project trust policy in its order: integrity (the envelope, the signature by
its leaf certificate, the payload naming the digest), authenticity (the chain to a
certificate of the trust store, the signer a trusted identity), expiry, and the
authentic timestamp (with a TSA store, an RFC 3161 countersignature inside every
chain certificate's validity; without one, the chain valid at the time).

  --envelope FILE          the envelope (JWS or COSE), as the signature's layer holds it
  --digest sha256:HEX      the manifest the signature must be for
  --trust-store FILE       PEM certificates: the "ca" store, for notary.x509 signatures
  --signing-authority FILE PEM certificates: the "signingAuthority" store
  --tsa FILE               PEM certificates: the "tsa" store (timestamp authorities)
  --identity TEXT          a trusted identity, "*" (the default: any signer the store
                           vouches for) or "x509.subject: C=US, ST=WA, O=acme";
                           repeat for several
  --level LEVEL            strict (the default), permissive, audit or skip
  --verify-timestamp WHEN  always (the default) or afterCertExpiry
  --media-type TYPE        the envelope's media type; without it a JSON object is
                           read as JWS, anything else as COSE
  --time RFC3339           verify as at this time (default: now)
At least one of --trust-store and --signing-authority is needed.

Exit 0 and the signer, the signing scheme and time, the expiry, the target artifact,
the signing agent and the checks the level only logs when it verifies; 1 and one line
naming the check that failed when it does not; 2 for a usage mistake or a file that
cannot be read. Revocation is not checked (no CRL or OCSP is fetched); the report
says so.
)";

namespace {

namespace notation = policy::notation;

constexpr std::string_view command = "verify-notation";

// The certificates of a PEM file named by `option`; nullopt (the error printed, its
// exit status in `status`) when the file cannot be read (2) or holds no certificate (1).
std::optional<std::vector<policy::Certificate>> trust_store(const CliArgs& cli, const std::string& option,
                                                            int& status) {
  const std::string* file = cli.get(option);
  if (!file) return std::vector<policy::Certificate>{};
  const auto text = read_document(*file);
  if (!text) {
    status = usage("cannot read " + option + " " + *file, command);
    return std::nullopt;
  }
  // A trust store is a handful of roots; this bounds what a stray file costs.
  auto certificates = policy::certificates_of_pem(*text, option + " " + *file, 1000);
  if (auto* error = std::get_if<std::string>(&certificates)) {
    std::cerr << "pullgate: not verified: " << *error << "\n";
    status = 1;
    return std::nullopt;
  }
  return std::get<std::vector<policy::Certificate>>(std::move(certificates));
}

std::optional<notation::VerificationLevel> level_of(const std::string& text) {
  using Level = notation::VerificationLevel;
  if (text == "strict") return Level::strict;
  if (text == "permissive") return Level::permissive;
  if (text == "audit") return Level::audit;
  if (text == "skip") return Level::skip;
  return std::nullopt;
}

// notation's own word for the level, for the report.
const char* level_name(notation::VerificationLevel level) {
  using Level = notation::VerificationLevel;
  switch (level) {
    case Level::strict: return "strict";
    case Level::permissive: return "permissive";
    case Level::audit: return "audit";
    case Level::skip: return "skip";
  }
  return "";
}

// The envelope's media type when --media-type is absent: a JWS envelope is a JSON
// object, a COSE_Sign1_Tagged message begins with a CBOR tag, never with '{'.
std::string_view media_type_of(std::string_view envelope) {
  const auto first = envelope.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && envelope[first] == '{' ? notation::jws_media_type
                                                                     : notation::cose_media_type;
}

void print_verified(const std::string& envelope_file, notation::VerificationLevel level,
                    const notation::NotationVerified& verified) {
  std::cout << "verified: " << envelope_file << " (level " << level_name(level) << ")\n";
  std::cout << "signer: " << verified.signer << "\n";
  std::cout << "scheme: "
            << (verified.scheme == notation::SigningScheme::x509 ? "notary.x509" : "notary.x509.signingAuthority")
            << "\n";
  std::cout << "signed at: " << policy::format_rfc3339(verified.signing_time);
  if (verified.timestamped) {
    std::cout << " (its RFC 3161 countersignature's time)\n";
  } else if (verified.scheme == notation::SigningScheme::x509) {
    std::cout << " (the signer's own claim; not timestamped)\n";
  } else {
    std::cout << " (the signing authority's authentic signing time)\n";
  }
  std::cout << "expires: " << (verified.expiry ? policy::format_rfc3339(*verified.expiry) : std::string("never"))
            << "\n";
  std::cout << "target artifact: " << verified.target.digest << " " << verified.target.media_type << " ("
            << verified.target.size << " bytes)\n";
  if (!verified.signing_agent.empty()) std::cout << "signing agent: " << verified.signing_agent << "\n";
  for (const std::string& line : verified.logged) std::cout << "logged, not enforced: " << line << "\n";
  std::cout << verified.revocation << "\n";
}

}  // namespace

int run_verify_notation(const std::vector<std::string>& args) {
  // --identity may be given several times; parse_cli takes each option once, so the
  // identities are taken out first (a trailing --identity is left for its error).
  std::vector<std::string> identities, rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--identity" && i + 1 < args.size()) {
      identities.push_back(args[++i]);
    } else {
      rest.push_back(args[i]);
    }
  }
  auto cli = parse_cli(rest, 0,
                       {"--envelope", "--digest", "--trust-store", "--signing-authority", "--tsa", "--identity",
                        "--level", "--verify-timestamp", "--media-type", "--time"});
  if (cli.help) {
    std::cout << verify_notation_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, command);
  if (!cli.positional.empty()) return usage("unexpected argument " + cli.positional.front(), command);
  const std::string* envelope_file = cli.get("--envelope");
  const std::string* digest_text = cli.get("--digest");
  if (!envelope_file) return usage("verify-notation needs --envelope FILE", command);
  if (!digest_text) return usage("verify-notation needs --digest sha256:HEX", command);
  if (!cli.get("--trust-store") && !cli.get("--signing-authority")) {
    return usage("verify-notation needs --trust-store FILE or --signing-authority FILE", command);
  }
  const auto digest = registry::Digest::parse(*digest_text);
  if (!digest) return usage("--digest " + *digest_text + " is not sha256:<64 hex digits>", command);

  notation::NotationTrust trust;
  trust.trusted_identities = identities.empty() ? std::vector<std::string>{"*"} : identities;
  if (auto refusal = notation::trusted_identities_refusal(trust.trusted_identities)) {
    return usage("--identity: " + *refusal, command);
  }
  if (const std::string* level = cli.get("--level")) {
    const auto parsed = level_of(*level);
    if (!parsed) return usage("--level " + *level + " is not strict, permissive, audit or skip", command);
    trust.level = *parsed;
  }
  if (const std::string* when = cli.get("--verify-timestamp")) {
    if (*when == "always") {
      trust.verify_timestamp = notation::VerifyTimestamp::always;
    } else if (*when == "afterCertExpiry") {
      trust.verify_timestamp = notation::VerifyTimestamp::after_cert_expiry;
    } else {
      return usage("--verify-timestamp " + *when + " is not always or afterCertExpiry", command);
    }
  }
  const std::string* media_type = cli.get("--media-type");
  if (media_type && *media_type != notation::jws_media_type && *media_type != notation::cose_media_type) {
    return usage("--media-type " + *media_type + " is not " + std::string(notation::jws_media_type) + " or " +
                     std::string(notation::cose_media_type),
                 command);
  }
  // Whole seconds: the time appears in refusals, where a fraction only distracts.
  policy::TimePoint now = std::chrono::floor<std::chrono::seconds>(system_wall_clock()());
  if (const std::string* time = cli.get("--time")) {
    const auto parsed = policy::parse_rfc3339(*time);
    if (!parsed) return usage("--time " + *time + " is not an RFC 3339 time", command);
    now = *parsed;
  }

  const auto envelope = read_document(*envelope_file);
  if (!envelope) return usage("cannot read --envelope " + *envelope_file, command);
  int status = 0;
  auto ca = trust_store(cli, "--trust-store", status);
  if (!ca) return status;
  auto authorities = trust_store(cli, "--signing-authority", status);
  if (!authorities) return status;
  auto tsa = trust_store(cli, "--tsa", status);
  if (!tsa) return status;
  trust.ca_roots = std::move(*ca);
  trust.signing_authority_roots = std::move(*authorities);
  trust.tsa_roots = std::move(*tsa);

  const auto verdict = notation::verify_notation_signature(media_type ? *media_type : media_type_of(*envelope),
                                                           *envelope, *digest, trust, now);
  if (const auto* refusal = std::get_if<std::string>(&verdict)) {
    std::cerr << "pullgate: not verified: " << *refusal << "\n";
    return 1;
  }
  const auto& verified = std::get<notation::NotationVerified>(verdict);
  if (verified.skipped) {
    std::cout << "skipped: " << *envelope_file << " (level skip verifies nothing)\n";
    return 0;
  }
  print_verified(*envelope_file, trust.level, verified);
  return 0;
}

}  // namespace pullgate::proxy::cli
