// Signatures a registry serves (policy/signature.hpp): cosign simple-signing
// payloads, DSSE envelopes, Sigstore bundles and the artifact manifests that carry
// them. A forged signature cannot be fuzzed into existence, so the target signs what
// the fuzzer writes with a key of its own: then the payload and statement readers
// behind the signature check are reached too. Input: one byte choosing the form,
// then the bytes.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

#include "policy/signature.hpp"
#include "registry/base64.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::policy;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;
using pullgate::registry::base64_encode;
using pullgate::registry::PrivateKey;

namespace {

// The digest every signature here is checked against (in the dictionary and seeds).
const std::string digest = "sha256:" + std::string(64, 'a');

const PrivateKey& signer() {
  static const PrivateKey key = [] {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"),
                                                             &EVP_PKEY_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    require(pkey && bio && PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr),
            "an Ed25519 key for the run");
    char* pem = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &pem);
    auto parsed = PrivateKey::from_pem("fuzz", std::string_view(pem, static_cast<std::size_t>(length)));
    require(std::holds_alternative<PrivateKey>(parsed), "the key loads", std::get_if<std::string>(&parsed)
                                                                              ? *std::get_if<std::string>(&parsed)
                                                                              : "");
    return std::get<PrivateKey>(std::move(parsed));
  }();
  return key;
}

void check(const SignatureCheck& result, bool signed_by_us, std::string_view input) {
  require(one_line(result.detail) || result.detail.empty(), "a one-line detail", result.detail);
  if (signed_by_us) {
    // Signed over the exact bytes by a listed key: never "another key signed it".
    require(result.result != SignatureCheck::Result::wrong_key, "a good signature is not wrong_key", input);
  } else {
    require(result.result != SignatureCheck::Result::valid, "nothing unsigned is valid", input);
  }
  if (result.result == SignatureCheck::Result::valid) require(result.key == "fuzz", "valid names the key");
}

std::string pae(std::string_view type, std::string_view body) {
  return "DSSEv1 " + std::to_string(type.size()) + " " + std::string(type) + " " + std::to_string(body.size()) + " " +
         std::string(body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto bytes = pullgate::fuzz::as_text(data + 1, size - 1);
  const PrivateKey& key = signer();
  const std::vector<PublicKey> keys{key.public_key()};
  switch (data[0] % 6) {
    case 0: {  // a simple-signing payload, signed
      check(verify_simple_signing(bytes, base64_encode(key.sign(bytes)), digest, keys), true, bytes);
      break;
    }
    case 1: {  // an in-toto statement in a signed DSSE envelope, bare and in a bundle
      const std::string envelope =
          R"({"payloadType":")" + std::string(in_toto_payload_type) + R"(","payload":")" + base64_encode(bytes) +
          R"(","signatures":[{"keyid":"","sig":")" + base64_encode(key.sign(pae(in_toto_payload_type, bytes))) +
          R"("}]})";
      check(verify_dsse_envelope(envelope, digest, keys), true, bytes);
      check(verify_bundle(R"({"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":)" +
                              envelope + "}",
                          digest, keys, cosign_sign_predicate),
            true, bytes);
      break;
    }
    case 2:  // an envelope as the registry served it
      check(verify_dsse_envelope(bytes, digest, keys), false, bytes);
      break;
    case 3:  // a bundle as the registry served it
      check(verify_bundle(bytes, digest, keys), false, bytes);
      break;
    case 4: {  // a payload and an annotation as the registry served them
      const auto parts = pullgate::fuzz::fields(bytes, 2);
      check(verify_simple_signing(parts[1], parts[0], digest, keys), false, bytes);
      break;
    }
    default: {  // the artifact manifest that lists them
      auto parsed = parse_artifact_manifest(bytes);
      if (auto* manifest = std::get_if<ArtifactManifest>(&parsed)) {
        for (const auto& layer : manifest->layers) require(layer.size >= 0, "a size that is not negative");
      } else {
        require(one_line(std::get<std::string>(parsed)), "a one-line refusal", std::get<std::string>(parsed));
      }
    }
  }
  (void)is_sbom_media_type(bytes);
  (void)is_sbom_predicate(bytes);
  return 0;
}
