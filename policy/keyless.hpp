#pragma once
// Keyless signatures as the gate reads them: what a scope's identities accept (policy
// "signatures.identities" against a verified Fulcio identity), and cosign's legacy
// keyless signature (the `.sig` tag's layer annotations) read as the Sigstore bundle
// it stands for, so that one verification (policy/sigstore_bundle.hpp) serves both.
// Pure: bytes and the policy in, a verdict out.
#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "policy/fulcio.hpp"
#include "policy/policy.hpp"
#include "policy/signature.hpp"
#include "policy/sigstore_bundle.hpp"

namespace pullgate::policy {

// The Fulcio certificate extensions an identity may pin (exact values): the names of
// FulcioIdentity's fields, as cosign's --certificate-* options and Fulcio's OID list
// name them.
inline constexpr std::array<std::string_view, 20> keyless_extension_names{
    "build_signer_uri",         "build_signer_digest",
    "runner_environment",       "source_repository_uri",
    "source_repository_digest", "source_repository_ref",
    "source_repository_identifier", "source_repository_owner_uri",
    "source_repository_owner_identifier", "build_config_uri",
    "build_config_digest",      "build_trigger",
    "run_invocation_uri",       "source_repository_visibility",
    "deployment_environment",   "github_workflow_trigger",
    "github_workflow_sha",      "github_workflow_name",
    "github_workflow_repository", "github_workflow_ref"};

// The value of one of those extensions in a certificate's identity ("" when absent).
const std::string& extension_value(const sigstore::FulcioIdentity& identity, std::string_view name);

// "SUBJECT (issuer ISSUER)": who signed, for reasons.
std::string describe_signer(const sigstore::FulcioIdentity& identity);

// Whether `identity`, found in a certificate that chains to trusted root `root_name`,
// is one the policy's identities accept; when none does, `why` says what differed
// from the closest one (its issuer, its subject, or which extension).
bool identity_allowed(std::span<const KeylessIdentity> identities, std::string_view root_name,
                      const sigstore::FulcioIdentity& identity, std::string& why);

// cosign's legacy keyless signature: the annotations of a simple-signing layer
// (dev.sigstore.cosign/certificate, /chain and /bundle beside the signature) and the
// payload's bytes, read as a v0.1 bundle with a message signature over the payload
// and the one Rekor entry the annotation's SET vouches for. One line naming the
// annotation when it cannot be read.
struct CosignKeylessAnnotations {
  std::string signature_base64;
  std::string certificate_pem;
  std::string chain_pem;    // may be empty
  std::string bundle_json;  // {"SignedEntryTimestamp", "Payload": {body, integratedTime, logIndex, logID}}
};
std::variant<sigstore::Bundle, std::string> bundle_of_cosign_annotations(const CosignKeylessAnnotations& annotations,
                                                                         std::string_view payload);

// A keyless signature checked for a scope: the bundle verified against each trusted
// root the scope's identities name (any identity), then the identity found held up
// to them. `digest` is the image's; for a DSSE envelope its in-toto subject must be
// the digest and its predicate an image signature's; for a message signature the
// caller has checked what the payload names (simple signing), and passes its bytes.
// valid carries "keyless SIGNER" in key.
// `statement`: what a DSSE envelope's predicate must be (an image signature's, or SLSA
// provenance for a scope's provenance requirement).
enum class Statement { image_signature, provenance };
SignatureCheck verify_keyless_signature(const Policy& policy, const SignaturePolicy& signatures,
                                        const sigstore::Bundle& bundle, std::string_view digest,
                                        std::optional<std::string_view> payload,
                                        Statement statement = Statement::image_signature);

}  // namespace pullgate::policy
