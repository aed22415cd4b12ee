// Sigstore bundles and trusted roots (policy/sigstore_bundle.hpp, policy/trusted_root.hpp)
// as verification reads them. Input: one byte choosing the reader, then
//   0 (and any even byte): a bundle, parsed and verified against Sigstore's production
//      trusted root (tests/fixtures/sigstore) for the conformance artifact a.txt,
//      keyless and with the managed-key cases' key;
//   1 (and any odd byte): a trusted root.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <variant>

#include "policy/sigstore_bundle.hpp"
#include "policy/trusted_root.hpp"
#include "registry/keys.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::policy::sigstore;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;

namespace {

std::string fixture(const char* name) {
  std::ifstream in(std::string(PULLGATE_SOURCE_DIR) + "/tests/fixtures/sigstore/" + name, std::ios::binary);
  require(static_cast<bool>(in), "a fixture", name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const TrustedRoot& production() {
  static const TrustedRoot root = [] {
    auto parsed = TrustedRoot::parse(fixture("production_trusted_root.json"));
    require(std::holds_alternative<TrustedRoot>(parsed), "the production trusted root reads");
    return std::get<TrustedRoot>(std::move(parsed));
  }();
  return root;
}

// The conformance suite's signer (its README): what the seeds were signed as.
const ExpectedIdentity& beacon() {
  static const ExpectedIdentity expected{
      IdentityMatch::exact("https://token.actions.githubusercontent.com"),
      IdentityMatch::exact("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/"
                           "workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")};
  return expected;
}

// The key of the conformance suite's managed-key cases.
const pullgate::registry::PublicKey& managed_key() {
  static const pullgate::registry::PublicKey key = [] {
    auto parsed = pullgate::registry::PublicKey::from_pem("key.pub", fixture("managed-key-and-trusted-root/key.pub"));
    require(std::holds_alternative<pullgate::registry::PublicKey>(parsed), "the managed key reads");
    return std::get<pullgate::registry::PublicKey>(std::move(parsed));
  }();
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto text = pullgate::fuzz::as_text(data + 1, size - 1);
  if (data[0] & 1) {
    auto parsed = TrustedRoot::parse(text);
    if (auto* error = std::get_if<std::string>(&parsed)) {
      require(one_line(*error), "a one-line refusal", *error);
      return 0;
    }
    for (const auto& warning : std::get<TrustedRoot>(parsed).warnings()) require(one_line(warning), "a one-line warning", warning);
    return 0;
  }
  static const Artifact artifact = Artifact::of_bytes(fixture("a.txt"));
  static const Artifact other = Artifact::of_bytes(fixture("a.txt") + "\n");
  auto parsed = Bundle::parse(text);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    require(one_line(*error), "a one-line refusal", *error);
    return 0;
  }
  const auto& bundle = std::get<Bundle>(parsed);
  if (auto keyed = verify_with_key(bundle, artifact, production(), managed_key()); !keyed) {
    require(one_line(keyed.reason), "a one-line reason", keyed.reason);
  } else {
    require(bundle.certificates.empty(), "a key-based bundle");
    require(!keyed.log_base_url.empty(), "the log that holds the entry");
    require(!verify_with_key(bundle, other, production(), managed_key()),
            "a verified bundle does not verify another artifact");
  }
  auto verdict = verify_keyless(bundle, artifact, production(), beacon());
  if (!verdict) {
    require(one_line(verdict.reason), "a one-line reason", verdict.reason);
    return 0;
  }
  // Verified: it names the signer and its log, and it is bound to this artifact.
  require(verdict.identity.subject == beacon().subject.text && verdict.identity.issuer == beacon().issuer.text,
          "the identity asked for");
  require(!verdict.log_base_url.empty(), "the log that holds the entry");
  require(!verify_keyless(bundle, other, production(), beacon()), "a verified bundle does not verify another artifact");
  return 0;
}
