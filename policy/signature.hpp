#pragma once
// Cosign signatures and attestations, verified with OpenSSL. Pure: bytes in, a
// verdict out. The caller finds the artifacts in the registry (legacy tags, the
// referrers API or its fallback tag) and hands over the exact bytes it fetched;
// nothing here re-serializes what it verifies.
//
// Formats:
//  - Simple signing (cosign's legacy `sha256-<hex>.sig` tag, and OCI 1.1 referrers with
//    artifactType application/vnd.dev.cosign.artifact.sig.v1+json): a layer of media
//    type application/vnd.dev.cosign.simplesigning.v1+json whose blob is the payload
//    {"critical":{"identity":{...},"image":{"docker-manifest-digest":"sha256:..."},
//    "type":"cosign container image signature"},"optional":...}, and the base64
//    signature over the payload bytes in the layer annotation
//    dev.cosignproject.cosign/signature.
//  - Sigstore bundle (application/vnd.dev.sigstore.bundle.v0.3+json, also v0.1/v0.2):
//    JSON with a "dsseEnvelope" {payload (base64), payloadType, signatures[{sig, keyid}]};
//    the signature is over the DSSE pre-authentication encoding
//    "DSSEv1 <len(type)> <type> <len(body)> <body>"; the body is an in-toto statement
//    whose subject[].digest names the image ({"sha256": "<hex>"}).
//  - A bare DSSE envelope (cosign's legacy `sha256-<hex>.att` layers, media type
//    application/vnd.dsse.envelope.v1+json): the same envelope without the bundle.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "registry/digest.hpp"
#include "registry/keys.hpp"

namespace pullgate::policy {

inline constexpr std::string_view cosign_signature_type = "cosign container image signature";
inline constexpr std::string_view cosign_sign_predicate = "https://sigstore.dev/cosign/sign/v1";
inline constexpr std::string_view simple_signing_media_type = "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr std::string_view cosign_signature_annotation = "dev.cosignproject.cosign/signature";
inline constexpr std::string_view cosign_sig_artifact_type = "application/vnd.dev.cosign.artifact.sig.v1+json";
inline constexpr std::string_view bundle_media_type_prefix = "application/vnd.dev.sigstore.bundle";
inline constexpr std::string_view dsse_envelope_media_type = "application/vnd.dsse.envelope.v1+json";
inline constexpr std::string_view in_toto_payload_type = "application/vnd.in-toto+json";

// A verification key named in the policy (registry/keys.hpp: bundles use the same keys).
using registry::PublicKey;

// What a check found, in one line for users.
struct SignatureCheck {
  enum class Result {
    valid,          // verified by `key`, over a payload that names the digest
    wrong_key,      // well-formed, names the digest, but no listed key verifies it
                    // (signed by another key, or the payload was altered)
    wrong_digest,   // verified, but the payload names another image
    wrong_type,     // verified, but is not an image signature (critical.type, predicate)
    malformed,      // cannot be read (bad JSON, bad base64, missing fields)
  };
  Result result = Result::malformed;
  std::string key;          // the verifying key's name when valid (or verified)
  std::string detail;       // one line: what was found ("payload names sha256:... , not sha256:...")
  std::string predicate_type;  // DSSE statements: the statement's predicateType
};

std::string_view to_string(SignatureCheck::Result);

// Simple signing: `payload` is the layer blob's exact bytes, `signature_base64` the
// annotation's value. The payload's critical.image.docker-manifest-digest (the key is
// matched case-insensitively, older cosign wrote "Docker-manifest-digest") must equal
// `digest` ("sha256:<hex>", compared case-insensitively) and critical.type must be
// cosign_signature_type.
SignatureCheck verify_simple_signing(std::string_view payload, std::string_view signature_base64,
                                     std::string_view digest, std::span<const PublicKey> keys);

// A simple-signing payload whose signature `verified` (valid) vouches for, held to
// `digest` as verify_simple_signing holds it: valid with `verified`'s key and detail,
// or wrong_digest, wrong_type or malformed. For signatures verified elsewhere
// (keyless, policy/keyless.hpp).
SignatureCheck check_simple_signing_claims(std::string_view payload, std::string_view digest,
                                           const SignatureCheck& verified);

// DSSE envelope JSON (bare, or taken from a bundle): payloadType must be
// in_toto_payload_type; any of signatures[] verified by any key over the PAE counts;
// the statement's subject[] must hold digest (algorithm and hex, case-insensitive).
// predicate_type is filled whenever the statement could be read. When
// `required_predicate` is not empty, another predicateType is wrong_type.
SignatureCheck verify_dsse_envelope(std::string_view envelope_json, std::string_view digest,
                                    std::span<const PublicKey> keys, std::string_view required_predicate = {});

// A Sigstore bundle: its dsseEnvelope checked as above. A bundle holding a
// messageSignature instead of a DSSE envelope is malformed for this purpose (keyed
// cosign signs image signatures as DSSE in the bundle format).
SignatureCheck verify_bundle(std::string_view bundle_json, std::string_view digest, std::span<const PublicKey> keys,
                             std::string_view required_predicate = {});

// The layers of an artifact manifest (OCI image manifest JSON: cosign's signature,
// attestation and SBOM manifests, and bundle referrers), with what a verifier needs
// from each. Errors: one line.
struct ArtifactLayer {
  std::string media_type;
  registry::Digest digest;
  std::int64_t size = 0;
  std::string signature_base64;  // the dev.cosignproject.cosign/signature annotation, if any
  std::string predicate_type;    // the "predicateType" annotation, if any
  // cosign's legacy keyless signature: the signing certificate, its chain and the
  // Rekor entry's SET (policy/keyless.hpp reads them).
  std::string certificate_pem;   // dev.sigstore.cosign/certificate
  std::string chain_pem;         // dev.sigstore.cosign/chain
  std::string rekor_bundle;      // dev.sigstore.cosign/bundle
};
struct ArtifactManifest {
  std::string artifact_type;     // artifactType, else config.mediaType
  std::optional<registry::Digest> subject;  // subject.digest, if any
  std::vector<ArtifactLayer> layers;
};
std::variant<ArtifactManifest, std::string> parse_artifact_manifest(std::string_view manifest_json);

// An SBOM by media type (SPDX, CycloneDX, Syft: the layer or artifact type of
// cosign's `.sbom` tag and of referrers) or by attestation predicate type.
bool is_sbom_media_type(std::string_view media_type);
bool is_sbom_predicate(std::string_view predicate_type);

}  // namespace pullgate::policy
