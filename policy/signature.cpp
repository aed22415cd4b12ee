// Cosign signatures, DSSE envelopes and Sigstore bundles, verified with the keys of
// registry/keys.hpp (OpenSSL 3 EVP).
#include "policy/signature.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "policy/patterns.hpp"
#include "policy/text.hpp"
#include "registry/base64.hpp"

namespace pullgate::policy {
namespace {

using json = nlohmann::json;

constexpr std::size_t max_json_depth = 64;     // artifacts are shallow; deeper is hostile
constexpr std::size_t max_quoted_length = 160;  // of untrusted text quoted in a detail
constexpr std::size_t listed_subjects = 3;

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Details are printed on one line (policy/text.hpp).
std::string printable(std::string_view text) { return policy::printable(text, max_quoted_length); }

std::string in_quotes(std::string_view text) { return "\"" + printable(text) + "\""; }

// The deepest nesting of arrays and objects, counted without building anything, so
// that "[[[[..." never turns into millions of nodes.
std::size_t nesting_depth(std::string_view text) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::optional<json> parse_json(std::string_view text) {
  if (nesting_depth(text) > max_json_depth) return std::nullopt;
  try {
    json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return std::nullopt;
    return parsed;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Members of untrusted objects, looked up without operator[] (which is undefined on a
// missing key of a const object).
const json* member(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto found = object.find(std::string(key));
  return found == object.end() ? nullptr : &*found;
}

const std::string* string_member(const json& object, std::string_view key) {
  const json* value = member(object, key);
  return value && value->is_string() ? value->get_ptr<const std::string*>() : nullptr;
}

SignatureCheck checked(SignatureCheck::Result result, std::string detail, std::string key = {}) {
  SignatureCheck check;
  check.result = result;
  check.detail = std::move(detail);
  check.key = std::move(key);
  return check;
}

SignatureCheck malformed(std::string detail) { return checked(SignatureCheck::Result::malformed, std::move(detail)); }

// "release (ecdsa-p256) or ci (ed25519)"
std::string key_list(std::span<const PublicKey> keys) {
  std::string out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out += i + 1 == keys.size() ? " or " : ", ";
    out += keys[i].name() + " (" + keys[i].algorithm() + ")";
  }
  return out;
}

SignatureCheck no_keys() {
  return checked(SignatureCheck::Result::wrong_key, "signed with a key, and the scope trusts no key (only keyless identities)");
}

SignatureCheck not_verified(std::span<const PublicKey> keys) {
  return checked(SignatureCheck::Result::wrong_key,
                 "signature does not verify with key " + key_list(keys) +
                     ": signed by another key, or the payload was altered");
}

// The first key that verifies any of the signatures.
const PublicKey* verifier(std::string_view message, const std::vector<std::string>& signatures,
                          std::span<const PublicKey> keys) {
  for (const PublicKey& key : keys) {
    for (const std::string& signature : signatures) {
      if (key.verify(message, signature)) return &key;
    }
  }
  return nullptr;
}

// "sha256:<hex>" -> {"sha256", "<hex>"}; the caller's digest, split for statements.
std::pair<std::string_view, std::string_view> split_digest(std::string_view digest) {
  const auto colon = digest.find(':');
  if (colon == std::string_view::npos) return {{}, digest};
  return {digest.substr(0, colon), digest.substr(colon + 1)};
}

// A DSSE envelope already parsed (bare, or a bundle's dsseEnvelope).
SignatureCheck verify_envelope(const json& envelope, std::string_view digest, std::span<const PublicKey> keys,
                               std::string_view required_predicate) {
  if (!envelope.is_object()) return malformed("DSSE envelope is not a JSON object");
  const std::string* payload_type = string_member(envelope, "payloadType");
  if (!payload_type) return malformed("DSSE envelope has no payloadType");
  if (*payload_type != in_toto_payload_type) {
    return malformed("DSSE payloadType is " + in_quotes(*payload_type) + ", not " + std::string(in_toto_payload_type));
  }
  const std::string* payload = string_member(envelope, "payload");
  if (!payload) return malformed("DSSE envelope has no payload");
  std::string body;
  if (!registry::base64_decode(*payload, body)) return malformed("DSSE payload is not base64");

  const json* entries = member(envelope, "signatures");
  if (!entries || !entries->is_array() || entries->empty()) return malformed("DSSE envelope has no signatures");
  // Each entry costs a verification per key: an envelope from the registry must not
  // make the gate spend seconds (cosign writes one).
  constexpr std::size_t max_signatures = 64;
  if (entries->size() > max_signatures)
    return malformed("DSSE envelope has " + std::to_string(entries->size()) + " signatures, more than " +
                     std::to_string(max_signatures));
  // Entries are not covered by any signature: one unreadable entry must not hide a good one.
  std::vector<std::string> signatures;
  for (const json& entry : *entries) {
    const std::string* sig = string_member(entry, "sig");
    std::string raw;
    if (sig && registry::base64_decode(*sig, raw) && !raw.empty()) signatures.push_back(std::move(raw));
  }
  if (signatures.empty()) return malformed("DSSE envelope has no readable signature (signatures[].sig, base64)");

  const std::optional<json> statement = parse_json(body);
  if (!statement || !statement->is_object()) return malformed("DSSE payload is not a JSON in-toto statement");
  const std::string* statement_type = string_member(*statement, "_type");
  if (!statement_type || !statement_type->starts_with("https://in-toto.io/Statement/")) {
    return malformed("DSSE payload is not an in-toto statement (_type)");
  }
  const std::string* predicate_type = string_member(*statement, "predicateType");
  if (!predicate_type) return malformed("in-toto statement has no predicateType");
  const json* subjects = member(*statement, "subject");
  if (!subjects || !subjects->is_array() || subjects->empty()) return malformed("in-toto statement has no subject");
  // Every subject's digests, as "algorithm:hex", for matching and for the detail.
  std::vector<std::pair<std::string, std::string>> named;
  for (const json& subject : *subjects) {
    const json* digests = member(subject, "digest");
    if (!digests || !digests->is_object()) return malformed("in-toto statement subject has no digest");
    for (const auto& [algorithm, value] : digests->items()) {
      if (!value.is_string()) return malformed("in-toto statement subject digest is not a string");
      named.emplace_back(algorithm, value.get<std::string>());
    }
  }

  const std::string predicate = *predicate_type;
  auto with_predicate = [&predicate](SignatureCheck check) {
    check.predicate_type = predicate;
    return check;
  };

  if (keys.empty()) return with_predicate(no_keys());
  const std::string pae = "DSSEv1 " + std::to_string(payload_type->size()) + " " + *payload_type + " " +
                          std::to_string(body.size()) + " " + body;
  const PublicKey* key = verifier(pae, signatures, keys);
  if (!key) return with_predicate(not_verified(keys));

  const std::pair<std::string_view, std::string_view> wanted = split_digest(digest);
  const bool names_digest = std::any_of(named.begin(), named.end(), [&wanted](const auto& pair) {
    return equal_ignoring_case(pair.first, wanted.first) && equal_ignoring_case(pair.second, wanted.second);
  });
  if (!names_digest) {
    std::string names;
    for (std::size_t i = 0; i < named.size() && i < listed_subjects; ++i) {
      names += (i == 0 ? "" : ", ") + printable(named[i].first + ":" + named[i].second);
    }
    if (named.empty()) names = "no digest";
    if (named.size() > listed_subjects) names += " and " + std::to_string(named.size() - listed_subjects) + " more";
    return with_predicate(checked(SignatureCheck::Result::wrong_digest,
                                  "signed by " + key->name() + ", but the payload names " + names + ", not " +
                                      printable(digest),
                                  key->name()));
  }
  if (!required_predicate.empty() && predicate != required_predicate) {
    return with_predicate(checked(SignatureCheck::Result::wrong_type,
                                  "signed by " + key->name() + ", but the statement's predicateType is " +
                                      in_quotes(predicate) + ", not " + std::string(required_predicate),
                                  key->name()));
  }
  return with_predicate(checked(SignatureCheck::Result::valid,
                                "signed by " + key->name() + " (" + key->algorithm() + "), predicateType " +
                                    printable(predicate),
                                key->name()));
}

// A descriptor's digest and size, checked; `where` names it in errors ("layers[1]").
std::optional<std::string> read_descriptor(const json& descriptor, const std::string& where, std::string& media_type,
                                           std::optional<registry::Digest>& digest, std::int64_t& size) {
  if (!descriptor.is_object()) return where + " is not an object";
  const std::string* type = string_member(descriptor, "mediaType");
  if (!type) return where + ".mediaType is missing or not a string";
  const std::string* text = string_member(descriptor, "digest");
  if (!text) return where + ".digest is missing or not a string";
  auto parsed = registry::Digest::parse(*text);
  if (!parsed) return where + ".digest " + in_quotes(*text) + " is not sha256:<64 hex> or sha512:<128 hex>";
  const json* length = member(descriptor, "size");
  if (!length || !(length->is_number_integer())) return where + ".size is missing or not an integer";
  if (length->is_number_unsigned()) {
    if (length->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return where + ".size is too large";
    }
  } else if (length->get<std::int64_t>() < 0) {
    return where + ".size is negative";
  }
  media_type = *type;
  digest = std::move(parsed);
  size = length->get<std::int64_t>();
  return std::nullopt;
}

}  // namespace

std::string_view to_string(SignatureCheck::Result result) {
  switch (result) {
    case SignatureCheck::Result::valid:
      return "valid";
    case SignatureCheck::Result::wrong_key:
      return "wrong_key";
    case SignatureCheck::Result::wrong_digest:
      return "wrong_digest";
    case SignatureCheck::Result::wrong_type:
      return "wrong_type";
    case SignatureCheck::Result::malformed:
      return "malformed";
  }
  return "malformed";
}

namespace {

// What a simple-signing payload claims: the image it names and its type.
struct SimpleSigningClaims {
  std::string digest;
  std::string type;
};

std::variant<SimpleSigningClaims, SignatureCheck> read_simple_signing(std::string_view payload) {
  const std::optional<json> parsed = parse_json(payload);
  if (!parsed || !parsed->is_object()) return malformed("the simple-signing payload is not a JSON object");
  const json* critical = member(*parsed, "critical");
  if (!critical || !critical->is_object()) return malformed("the simple-signing payload has no critical object");
  const json* image = member(*critical, "image");
  if (!image || !image->is_object()) return malformed("the simple-signing payload has no critical.image object");
  // Older cosign wrote "Docker-manifest-digest": the key is matched ignoring case.
  const std::string* named = nullptr;
  for (const auto& [name, value] : image->items()) {
    if (!equal_ignoring_case(name, "docker-manifest-digest")) continue;
    if (named || !value.is_string()) {
      return malformed("the simple-signing payload has more than one or a non-string docker-manifest-digest");
    }
    named = value.get_ptr<const std::string*>();
  }
  if (!named) return malformed("the simple-signing payload has no critical.image.docker-manifest-digest");
  const std::string* type = string_member(*critical, "type");
  if (!type) return malformed("the simple-signing payload has no critical.type");
  return SimpleSigningClaims{*named, *type};
}

// The claims held to `digest` once `signer` is known to have signed them.
SignatureCheck judge_claims(const SimpleSigningClaims& claims, std::string_view digest, const std::string& signer,
                            const std::string& valid_detail) {
  if (!equal_ignoring_case(claims.digest, digest)) {
    return checked(SignatureCheck::Result::wrong_digest,
                   "signed by " + signer + ", but the payload names " + printable(claims.digest) + ", not " +
                       printable(digest),
                   signer);
  }
  if (claims.type != cosign_signature_type) {
    return checked(SignatureCheck::Result::wrong_type,
                   "signed by " + signer + ", but critical.type is " + in_quotes(claims.type) + ", not a " +
                       std::string(cosign_signature_type),
                   signer);
  }
  return checked(SignatureCheck::Result::valid, valid_detail, signer);
}

}  // namespace

SignatureCheck verify_simple_signing(std::string_view payload, std::string_view signature_base64,
                                     std::string_view digest, std::span<const PublicKey> keys) {
  std::string signature;
  if (!registry::base64_decode(signature_base64, signature) || signature.empty()) {
    return malformed("the signature annotation is empty or not base64");
  }
  auto claims = read_simple_signing(payload);
  if (auto* bad = std::get_if<SignatureCheck>(&claims)) return *bad;
  if (keys.empty()) return no_keys();
  const PublicKey* key = verifier(payload, {signature}, keys);
  if (!key) return not_verified(keys);
  return judge_claims(std::get<SimpleSigningClaims>(claims), digest, key->name(),
                      "signed by " + key->name() + " (" + key->algorithm() + ") for " + printable(digest));
}

SignatureCheck check_simple_signing_claims(std::string_view payload, std::string_view digest,
                                           const SignatureCheck& verified) {
  auto claims = read_simple_signing(payload);
  if (auto* bad = std::get_if<SignatureCheck>(&claims)) return *bad;
  return judge_claims(std::get<SimpleSigningClaims>(claims), digest, verified.key, verified.detail);
}

SignatureCheck verify_dsse_envelope(std::string_view envelope_json, std::string_view digest,
                                    std::span<const PublicKey> keys, std::string_view required_predicate) {
  const std::optional<json> envelope = parse_json(envelope_json);
  if (!envelope) return malformed("the DSSE envelope is not JSON");
  return verify_envelope(*envelope, digest, keys, required_predicate);
}

SignatureCheck verify_bundle(std::string_view bundle_json, std::string_view digest, std::span<const PublicKey> keys,
                             std::string_view required_predicate) {
  const std::optional<json> bundle = parse_json(bundle_json);
  if (!bundle || !bundle->is_object()) return malformed("the Sigstore bundle is not a JSON object");
  const json* media_type = member(*bundle, "mediaType");
  if (media_type && (!media_type->is_string() || !media_type->get<std::string>().starts_with(bundle_media_type_prefix))) {
    return malformed("the bundle's mediaType is not " + std::string(bundle_media_type_prefix) + "...");
  }
  const json* envelope = member(*bundle, "dsseEnvelope");
  if (!envelope) {
    if (member(*bundle, "messageSignature")) {
      return malformed("the bundle holds a messageSignature, not a DSSE envelope (an image signature is DSSE)");
    }
    return malformed("the bundle has no dsseEnvelope");
  }
  SignatureCheck check = verify_envelope(*envelope, digest, keys, required_predicate);
  if (check.result != SignatureCheck::Result::wrong_key || keys.empty()) return check;

  // The hint says which key signed: naming it tells the user which key is missing.
  const json* material = member(*bundle, "verificationMaterial");
  const json* public_key = material ? member(*material, "publicKey") : nullptr;
  const std::string* hint = public_key ? string_member(*public_key, "hint") : nullptr;
  if (hint && !hint->empty()) {
    const bool known = std::any_of(keys.begin(), keys.end(),
                                   [&](const PublicKey& key) { return equal_ignoring_case(key.fingerprint(), *hint); });
    if (!known) check.detail += "; the bundle names key " + printable(*hint);
  }
  return check;
}

std::variant<ArtifactManifest, std::string> parse_artifact_manifest(std::string_view manifest_json) {
  const std::optional<json> manifest = parse_json(manifest_json);
  if (!manifest || !manifest->is_object()) return std::string("artifact manifest is not a JSON object");
  const json* schema = member(*manifest, "schemaVersion");
  if (!schema || !schema->is_number_integer() || schema->get<std::int64_t>() != 2) {
    return std::string("artifact manifest: schemaVersion is not 2");
  }
  if (const json* media_type = member(*manifest, "mediaType")) {
    if (!media_type->is_string()) return std::string("artifact manifest: mediaType is not a string");
    const std::string& type = media_type->get_ref<const std::string&>();
    if (type != "application/vnd.oci.image.manifest.v1+json" &&
        type != "application/vnd.docker.distribution.manifest.v2+json") {
      return "artifact manifest: mediaType " + in_quotes(type) + " is not an image manifest";
    }
  }

  ArtifactManifest out;
  const json* config = member(*manifest, "config");
  if (!config) return std::string("artifact manifest: config is missing");
  std::string config_type;
  std::optional<registry::Digest> config_digest;
  std::int64_t config_size = 0;
  if (auto error = read_descriptor(*config, "config", config_type, config_digest, config_size)) {
    return "artifact manifest: " + *error;
  }
  if (const json* artifact_type = member(*manifest, "artifactType")) {
    if (!artifact_type->is_string()) return std::string("artifact manifest: artifactType is not a string");
    out.artifact_type = artifact_type->get<std::string>();
  }
  if (out.artifact_type.empty()) out.artifact_type = config_type;

  if (const json* subject = member(*manifest, "subject")) {
    std::string subject_type;
    std::int64_t subject_size = 0;
    if (auto error = read_descriptor(*subject, "subject", subject_type, out.subject, subject_size)) {
      return "artifact manifest: " + *error;
    }
  }

  const json* layers = member(*manifest, "layers");
  if (!layers || !layers->is_array()) return std::string("artifact manifest: layers is missing or not an array");
  for (std::size_t i = 0; i < layers->size(); ++i) {
    const json& descriptor = (*layers)[i];
    const std::string where = "layers[" + std::to_string(i) + "]";
    std::string media_type;
    std::optional<registry::Digest> digest;
    std::int64_t size = 0;
    if (auto error = read_descriptor(descriptor, where, media_type, digest, size)) {
      return "artifact manifest: " + *error;
    }
    ArtifactLayer layer{std::move(media_type), std::move(*digest), size, {}, {}, {}, {}, {}};
    if (const json* annotations = member(descriptor, "annotations")) {
      if (!annotations->is_object()) return "artifact manifest: " + where + ".annotations is not an object";
      for (const auto& [name, value] : annotations->items()) {
        if (!value.is_string()) {
          return "artifact manifest: " + where + ".annotations[" + in_quotes(name) + "] is not a string";
        }
        if (name == cosign_signature_annotation) layer.signature_base64 = value.get<std::string>();
        if (name == "predicateType") layer.predicate_type = value.get<std::string>();
        if (name == "dev.sigstore.cosign/certificate") layer.certificate_pem = value.get<std::string>();
        if (name == "dev.sigstore.cosign/chain") layer.chain_pem = value.get<std::string>();
        if (name == "dev.sigstore.cosign/bundle") layer.rekor_bundle = value.get<std::string>();
      }
    }
    out.layers.push_back(std::move(layer));
  }
  return out;
}

bool is_sbom_media_type(std::string_view media_type) {
  static constexpr std::array<std::string_view, 6> sbom_types{
      "application/spdx+json",          "text/spdx+json",
      "text/spdx",                      "application/vnd.cyclonedx+json",
      "application/vnd.cyclonedx+xml",  "application/vnd.syft+json",
  };
  std::string_view essence = media_type.substr(0, media_type.find(';'));
  while (!essence.empty() && (essence.back() == ' ' || essence.back() == '\t')) essence.remove_suffix(1);
  while (!essence.empty() && (essence.front() == ' ' || essence.front() == '\t')) essence.remove_prefix(1);
  const std::string lowered = lowercase(essence);
  return std::find(sbom_types.begin(), sbom_types.end(), lowered) != sbom_types.end();
}

bool is_sbom_predicate(std::string_view predicate_type) {
  static constexpr std::array<std::string_view, 3> prefixes{
      "https://spdx.dev/Document",
      "https://cyclonedx.org/bom",
      "https://syft.dev/bom",
  };
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](std::string_view prefix) { return predicate_type.starts_with(prefix); });
}

}  // namespace pullgate::policy
