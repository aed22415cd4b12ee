// `pullgate verify-bundle`: one Sigstore bundle verified keyless, or with the public
// key given, against a trusted root, offline, with the checks of
// policy/sigstore_bundle.hpp, for whoever debugs a refusal. Reads only the files it is
// given.
#include <iostream>
#include <optional>
#include <regex>
#include <string>
#include <variant>
#include <vector>

#include "policy/rfc3339.hpp"
#include "policy/sigstore_bundle.hpp"
#include "policy/trusted_root.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "registry/keys.hpp"

namespace pullgate::proxy::cli {

const char verify_bundle_help[] = R"(Usage:
  pullgate verify-bundle --bundle FILE (--artifact FILE | --digest sha256:HEX)
                         --trusted-root FILE
                         [--identity EXACT | --identity-regexp RE]
                         [--issuer EXACT | --issuer-regexp RE]
  pullgate verify-bundle --bundle FILE (--artifact FILE | --digest sha256:HEX)
                         --trusted-root FILE --key PEM

Verifies one Sigstore bundle (v0.1 to v0.3) offline, with the checks the gate uses
for keyless signatures: the transparency-log entry, Rekor v1 or v2 (its signed entry
timestamp, inclusion proof and checkpoint, and its body against the bundle), every
RFC 3161 timestamp (by a timestamp authority of the trusted root, over the
signature), the Fulcio certificate's chain to a certificate authority of the trusted
root at each time the log and the timestamps vouch for and its embedded SCT, the
signature over the artifact (or the DSSE envelope whose in-toto subject is the
artifact), and the signer's identity.

With --key, a key-based bundle (cosign sign-blob --key, a managed key) instead: the
same log entry, body and timestamp checks, the log entry naming that key, and the
signature by it. The key is the signer: there is no identity to match. (At the gate
a policy key's DSSE bundle counts by its signature alone, as with keys everywhere in
the policy; this command holds it to its log entry too, as cosign verify-blob does.)

  --bundle FILE        the bundle (.sigstore.json)
  --artifact FILE      what was signed; or
  --digest sha256:HEX  its digest only (then only ECDSA P-256 signatures verify)
  --trusted-root FILE  a trusted_root.json (Sigstore's is in its TUF repository)
  --identity EXACT     the certificate's subject alternative name must be this
  --identity-regexp RE ... or match all of this ECMAScript expression
  --issuer EXACT       the OIDC issuer must be this (--issuer-regexp RE: match RE)
  --key PEM            the public key of a key-based bundle (PEM PUBLIC KEY)
Without an identity or issuer option any is accepted, and printed.

Exit 0 and the signer (its identity and Fulcio extensions, or the key's algorithm
and sha256 fingerprint), the signing time, each timestamp and its authority, and the
log entry when it verifies; 1 and one line naming the check that failed when it does
not (a key that is not a usable public key is one); 2 for a usage mistake or a file
that cannot be read.
)";

namespace {

constexpr std::string_view command = "verify-bundle";

// --NAME EXACT or --NAME-regexp RE, at most one; any name when neither is given.
// nullopt (the usage error printed) when both are, or RE is not an expression.
std::optional<policy::sigstore::IdentityMatch> identity_option(const CliArgs& cli, const std::string& name, int& status) {
  const std::string* exact = cli.get("--" + name);
  const std::string* pattern = cli.get("--" + name + "-regexp");
  if (exact && pattern) {
    status = usage("give --" + name + " or --" + name + "-regexp, not both", command);
    return std::nullopt;
  }
  if (exact) return policy::sigstore::IdentityMatch::exact(*exact);
  if (!pattern) return policy::sigstore::IdentityMatch::pattern("[\\s\\S]*");
  try {
    std::regex(*pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    status = usage("--" + name + "-regexp " + *pattern + " is not a regular expression: " + e.what(), command);
    return std::nullopt;
  }
  return policy::sigstore::IdentityMatch::pattern(*pattern);
}

void print_if(std::string_view label, const std::string& value) {
  if (!value.empty()) std::cout << label << value << "\n";
}

const char* kind_name(policy::sigstore::FulcioIdentity::Kind kind) {
  using Kind = policy::sigstore::FulcioIdentity::Kind;
  switch (kind) {
    case Kind::uri: return "URI";
    case Kind::email: return "email";
    case Kind::username: return "username";
  }
  return "";
}

// The signing time, each timestamp and the log entry, keyless or key-based alike.
void print_times_and_log(const policy::sigstore::BundleVerdict& verdict) {
  std::cout << "signed at: " << policy::format_rfc3339(verdict.signed_at)
            << (verdict.logged_time ? " (the log's integrated time, vouched for by its signed entry timestamp)\n"
                                    : " (its RFC 3161 timestamp's time; the log gives none)\n");
  for (const auto& stamp : verdict.timestamps) {
    std::cout << "timestamped at: " << policy::format_rfc3339(stamp.time) << " by " << stamp.authority << "\n";
  }
  std::cout << "log entry: " << verdict.log_index << " in " << verdict.log_base_url << "\n";
}

void print_verified(const std::string& bundle_file, const policy::sigstore::KeylessVerdict& verdict) {
  const auto& id = verdict.identity;
  std::cout << "verified: " << bundle_file << "\n";
  std::cout << "identity: " << id.subject << " (" << kind_name(id.kind) << ")\n";
  std::cout << "issuer: " << id.issuer << "\n";
  // The CI extensions people match policies on, the newer ones before GitHub's own.
  print_if("source repository: ",
           id.source_repository_uri.empty() ? id.github_workflow_repository : id.source_repository_uri);
  print_if("source ref: ", id.source_repository_ref.empty() ? id.github_workflow_ref : id.source_repository_ref);
  print_if("source digest: ",
           id.source_repository_digest.empty() ? id.github_workflow_sha : id.source_repository_digest);
  print_if("build config: ", id.build_config_uri);
  print_if("build signer: ", id.build_signer_uri);
  print_if("build trigger: ", id.build_trigger.empty() ? id.github_workflow_trigger : id.build_trigger);
  print_if("run: ", id.run_invocation_uri);
  print_if("runner: ", id.runner_environment);
  print_times_and_log(verdict);
}

}  // namespace

int run_verify_bundle(const std::vector<std::string>& args) {
  auto cli = parse_cli(args, 0,
                       {"--bundle", "--artifact", "--digest", "--trusted-root", "--identity", "--identity-regexp",
                        "--issuer", "--issuer-regexp", "--key"});
  if (cli.help) {
    std::cout << verify_bundle_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, command);
  if (!cli.positional.empty()) return usage("unexpected argument " + cli.positional.front(), command);
  const std::string* bundle_file = cli.get("--bundle");
  const std::string* root_file = cli.get("--trusted-root");
  const std::string* artifact_file = cli.get("--artifact");
  const std::string* digest = cli.get("--digest");
  if (!bundle_file) return usage("verify-bundle needs --bundle FILE", command);
  if (!root_file) return usage("verify-bundle needs --trusted-root FILE", command);
  if (artifact_file && digest) return usage("give --artifact FILE or --digest sha256:HEX, not both", command);
  if (!artifact_file && !digest) return usage("verify-bundle needs --artifact FILE or --digest sha256:HEX", command);
  const std::string* key_file = cli.get("--key");
  if (key_file) {
    for (const char* option : {"--identity", "--identity-regexp", "--issuer", "--issuer-regexp"}) {
      if (cli.get(option)) {
        return usage(std::string("--key verifies a key-based bundle, which has no identity: drop ") + option, command);
      }
    }
  }

  int status = 0;
  const auto subject = identity_option(cli, "identity", status);
  if (!subject) return status;
  const auto issuer = identity_option(cli, "issuer", status);
  if (!issuer) return status;

  std::optional<policy::sigstore::Artifact> artifact;
  if (digest) {
    auto parsed = policy::sigstore::Artifact::of_digest(*digest);
    if (auto* error = std::get_if<std::string>(&parsed)) return usage("--digest: " + *error, command);
    artifact = std::get<policy::sigstore::Artifact>(std::move(parsed));
  }
  const auto bundle_text = read_document(*bundle_file);
  if (!bundle_text) return usage("cannot read --bundle " + *bundle_file, command);
  const auto root_text = read_document(*root_file);
  if (!root_text) return usage("cannot read --trusted-root " + *root_file, command);
  if (artifact_file) {
    auto bytes = read_document(*artifact_file);
    if (!bytes) return usage("cannot read --artifact " + *artifact_file, command);
    artifact = policy::sigstore::Artifact::of_bytes(std::move(*bytes));
  }
  std::optional<std::string> key_text;
  if (key_file) {
    key_text = read_document(*key_file);
    if (!key_text) return usage("cannot read --key " + *key_file, command);
  }

  // What the files hold is a verdict, not a usage mistake: exit 1, one line.
  auto root = policy::sigstore::TrustedRoot::parse(*root_text);
  if (auto* error = std::get_if<std::string>(&root)) {
    std::cerr << "pullgate: not verified: " << *root_file << ": trusted root: " << *error << "\n";
    return 1;
  }
  auto bundle = policy::sigstore::Bundle::parse(*bundle_text);
  if (auto* error = std::get_if<std::string>(&bundle)) {
    std::cerr << "pullgate: not verified: " << *bundle_file << ": " << *error << "\n";
    return 1;
  }
  const auto& trusted = std::get<policy::sigstore::TrustedRoot>(root);
  if (key_text) {
    auto key = registry::PublicKey::from_pem(*key_file, *key_text);
    if (auto* error = std::get_if<std::string>(&key)) {
      std::cerr << "pullgate: not verified: " << *error << "\n";
      return 1;
    }
    const auto& public_key = std::get<registry::PublicKey>(key);
    const auto verdict = policy::sigstore::verify_with_key(std::get<policy::sigstore::Bundle>(bundle), *artifact,
                                                           trusted, public_key);
    if (!verdict) {
      std::cerr << "pullgate: not verified: " << verdict.reason << "\n";
      return 1;
    }
    std::cout << "verified: " << *bundle_file << "\n";
    std::cout << "key: " << public_key.algorithm() << " sha256:" << public_key.fingerprint() << " (" << *key_file
              << ")\n";
    print_times_and_log(verdict);
    for (const auto& warning : trusted.warnings()) std::cerr << "pullgate: note: trusted root: " << warning << "\n";
    return 0;
  }
  const auto verdict = policy::sigstore::verify_keyless(std::get<policy::sigstore::Bundle>(bundle), *artifact, trusted,
                                                        policy::sigstore::ExpectedIdentity{*issuer, *subject});
  if (!verdict) {
    std::cerr << "pullgate: not verified: " << verdict.reason << "\n";
    return 1;
  }
  print_verified(*bundle_file, verdict);
  // Logs of the root pullgate cannot check were left out; it verified without them.
  for (const auto& warning : trusted.warnings()) std::cerr << "pullgate: note: trusted root: " << warning << "\n";
  return 0;
}

}  // namespace pullgate::proxy::cli
