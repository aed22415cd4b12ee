// sigstore_forge: keyless Sigstore test vectors made with OpenSSL, for the integration
// tests (tests/tools/README.md). `init DIR` makes a test Fulcio root and intermediate,
// a Rekor v1 log key and a CT log key, and writes them as a trusted_root.json with the
// private keys beside it; `sign DIR ...` makes a Fulcio-like leaf with an embedded SCT,
// signs a payload or an in-toto statement with it, logs it in a small Rekor v1 tree
// (signed entry timestamp, inclusion proof, checkpoint) and writes a Sigstore bundle
// v0.3 or cosign's legacy annotations. Each --fault breaks exactly one of the checks of
// policy/sigstore_bundle.cpp's verify_keyless and leaves the others valid.
//
// The certificate, extension and SCT helpers follow tests/unit/policy_trusted_root_test.cpp.
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "policy/text.hpp"
#include "policy/transparency.hpp"
#include "registry/base64.hpp"
#include "tests/tools/x509_make.hpp"

namespace {

using json = nlohmann::json;
using pullgate::policy::hex;
using pullgate::registry::base64_encode;
namespace transparency = pullgate::policy::transparency;
namespace fs = std::filesystem;
using namespace pullgate::testing_support::x509;

// A mistake of the caller or a file that cannot be used: one line on stderr, exit 2.
struct Refusal : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const std::string rekor_host = "rekor.forge.test";
const std::string rekor_url = "https://" + rekor_host;
const std::string fulcio_url = "https://fulcio.forge.test";
const std::string ct_url = "https://ct.forge.test";
const std::string trusted_from = "2020-01-01T00:00:00Z";
const std::time_t ca_from = 1577836800;  // 2020-01-01T00:00:00Z
const std::time_t ca_to = 2208988800;    // 2040-01-01T00:00:00Z
const std::uint64_t rekor_tree_id = 2605736670972794746ULL;
const std::time_t leaf_lifetime = 600;  // Fulcio's ten minutes
const std::string fulcio_issuer_oid = "1.3.6.1.4.1.57264.1.8";
const std::string sct_list_oid = "1.3.6.1.4.1.11129.2.4.2";

// Fulcio's CI extensions the --ext option names (docs/oid-info.md), each a DER UTF8String.
const std::map<std::string, std::string> fulcio_extensions = {
    {"build_signer_uri", "1.3.6.1.4.1.57264.1.9"},      {"runner_environment", "1.3.6.1.4.1.57264.1.11"},
    {"source_repository_uri", "1.3.6.1.4.1.57264.1.12"}, {"source_repository_ref", "1.3.6.1.4.1.57264.1.14"},
    {"build_config_uri", "1.3.6.1.4.1.57264.1.18"},      {"build_trigger", "1.3.6.1.4.1.57264.1.20"},
};

enum class Fault {
  none,
  untrusted_chain,
  expired_at_signing,
  set_other_body,
  bad_inclusion_proof,
  bad_checkpoint,
  no_sct,
  body_mismatch,
  bad_signature,
};
const std::map<std::string, Fault> faults = {
    {"untrusted-chain", Fault::untrusted_chain},         {"expired-at-signing", Fault::expired_at_signing},
    {"set-other-body", Fault::set_other_body},           {"bad-inclusion-proof", Fault::bad_inclusion_proof},
    {"bad-checkpoint", Fault::bad_checkpoint},           {"no-sct", Fault::no_sct},
    {"body-mismatch", Fault::body_mismatch},             {"bad-signature", Fault::bad_signature},
};

// --- OpenSSL ----------------------------------------------------------------------

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// The one subject alternative name, critical as Fulcio writes it: an email address or a URI.
void add_subject_alternative_name(X509* certificate, const std::string& san) {
  const bool email = san.find('@') != std::string::npos && san.find(':') == std::string::npos;
  GENERAL_NAMES* names = GENERAL_NAMES_new();
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  need(names && name && text && ASN1_STRING_set(text, san.data(), static_cast<int>(san.size())) == 1,
       "make a subject alternative name");
  GENERAL_NAME_set0_value(name, email ? GEN_EMAIL : GEN_URI, text);
  sk_GENERAL_NAME_push(names, name);
  need(X509_add1_ext_i2d(certificate, NID_subject_alt_name, names, 1, X509V3_ADD_DEFAULT) == 1,
       "add the subject alternative name");
  GENERAL_NAMES_free(names);
}

// A certificate with `subject` (a CN; empty for none, as Fulcio's leaves) and the
// extensions given in OpenSSL's configuration syntax, signed by `issuer` (itself when
// null).
X509Ptr make_certificate(EVP_PKEY* key, const std::string& subject, std::time_t from, std::time_t to,
                         const std::vector<std::pair<int, std::string>>& extensions, X509* issuer, EVP_PKEY* issuer_key,
                         long serial) {
  const Rdns name = subject.empty() ? Rdns{} : Rdns{{"O", "sigstore.forge.test"}, {"CN", subject}};
  return make_named_certificate(key, name, from, to, extensions, issuer, issuer_key, serial);
}

const std::vector<std::pair<int, std::string>> ca_extensions = {
    {NID_basic_constraints, "critical,CA:TRUE"},
    {NID_key_usage, "critical,keyCertSign,cRLSign"},
    {NID_subject_key_identifier, "hash"},
};

// A root and an intermediate that issues code-signing certificates, as Fulcio's.
struct Authority {
  Pkey root_key;
  X509Ptr root;
  Pkey intermediate_key;
  X509Ptr intermediate;

  static Authority make(const std::string& name) {
    Authority authority{p256(), nullptr, p256(), nullptr};
    authority.root = make_certificate(authority.root_key.get(), name + " root", ca_from, ca_to, ca_extensions, nullptr,
                                      nullptr, 1);
    std::vector<std::pair<int, std::string>> extensions = ca_extensions;
    extensions.emplace_back(NID_authority_key_identifier, "keyid:always");
    extensions.emplace_back(NID_ext_key_usage, "codeSigning");
    authority.intermediate = make_certificate(authority.intermediate_key.get(), name + " intermediate", ca_from, ca_to,
                                              extensions, authority.root.get(), authority.root_key.get(), 2);
    return authority;
  }
};

// One SCT in TLS encoding (RFC 6962 section 3.2) by the CT log `log_key`, for the
// precertificate `tbs` that `issuer_key` signs, at `timestamp` (milliseconds).
std::string sct_of(EVP_PKEY* log_key, const std::string& tbs, EVP_PKEY* issuer_key, std::uint64_t timestamp) {
  const std::string signature = ecdsa_sha256(log_key, precert_signed_data(timestamp, issuer_key, tbs));
  return std::string(1, '\0') + sha256_of(spki_of(log_key)) + big_endian(timestamp, 8) + big_endian(0, 2) +
         "\x04\x03" + big_endian(signature.size(), 2) + signature;
}

// --- files ------------------------------------------------------------------------

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Refusal("cannot read " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) throw Refusal("cannot write " + path.string());
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(length));
}

std::string pem_of(X509* certificate) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  need(bio && PEM_write_bio_X509(bio.get(), certificate) == 1, "write a PEM certificate");
  return bio_text(bio.get());
}

std::string pem_of(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  need(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
       "write a PEM key");
  return bio_text(bio.get());
}

// The one PEM object of `read` (PEM_read_bio_X509, PEM_read_bio_PrivateKey) in a file.
template <typename Object, typename Read>
Object read_pem(const fs::path& path, Read read, const std::string& what) {
  const std::string text = read_file(path);
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  Object object(bio ? read(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!object) throw Refusal(path.string() + " is not a PEM " + what);
  return object;
}

X509Ptr read_certificate(const fs::path& path) { return read_pem<X509Ptr>(path, PEM_read_bio_X509, "certificate"); }
Pkey read_key(const fs::path& path) { return read_pem<Pkey>(path, PEM_read_bio_PrivateKey, "private key"); }

// --- init -------------------------------------------------------------------------

json log_entry_of_root(const std::string& base_url, EVP_PKEY* key) {
  const std::string spki = spki_of(key);
  return {{"baseUrl", base_url},
          {"hashAlgorithm", "SHA2_256"},
          {"publicKey",
           {{"rawBytes", base64_encode(spki)},
            {"keyDetails", "PKIX_ECDSA_P256_SHA_256"},
            {"validFor", {{"start", trusted_from}}}}},
          {"logId", {{"keyId", base64_encode(sha256_of(spki))}}}};
}

int init(const std::vector<std::string>& args) {
  if (args.size() != 1) throw Refusal("usage: sigstore_forge init DIR");
  const fs::path dir = args[0];
  std::error_code ec;
  if (fs::exists(dir, ec) && !(fs::is_directory(dir, ec) && fs::is_empty(dir, ec))) {
    throw Refusal(dir.string() + " exists and is not an empty directory");
  }
  fs::create_directories(dir, ec);
  if (ec) throw Refusal("cannot make " + dir.string() + ": " + ec.message());

  const Authority fulcio = Authority::make("forge fulcio");
  const Pkey rekor = p256();
  const Pkey ctlog = p256();
  const json authority = {
      {"subject", {{"organization", "sigstore.forge.test"}, {"commonName", "forge fulcio root"}}},
      {"uri", fulcio_url},
      {"certChain",
       {{"certificates", json::array({{{"rawBytes", base64_encode(der_of(fulcio.intermediate.get()))}},
                                      {{"rawBytes", base64_encode(der_of(fulcio.root.get()))}}})}}},
      {"validFor", {{"start", trusted_from}}}};
  const json root = {{"mediaType", "application/vnd.dev.sigstore.trustedroot+json;version=0.1"},
                     {"tlogs", json::array({log_entry_of_root(rekor_url, rekor.get())})},
                     {"certificateAuthorities", json::array({authority})},
                     {"ctlogs", json::array({log_entry_of_root(ct_url, ctlog.get())})},
                     {"timestampAuthorities", json::array()}};
  write_file(dir / "trusted_root.json", root.dump(2) + "\n");
  write_file(dir / "root.pem", pem_of(fulcio.root.get()));
  write_file(dir / "root.key.pem", pem_of(fulcio.root_key.get()));
  write_file(dir / "intermediate.pem", pem_of(fulcio.intermediate.get()));
  write_file(dir / "intermediate.key.pem", pem_of(fulcio.intermediate_key.get()));
  write_file(dir / "rekor.key.pem", pem_of(rekor.get()));
  write_file(dir / "ctlog.key.pem", pem_of(ctlog.get()));
  std::cout << (dir / "trusted_root.json").string() << "\n";
  return 0;
}

// --- sign -------------------------------------------------------------------------

struct SignOptions {
  fs::path dir;
  std::optional<fs::path> payload;
  std::string identity;
  std::string issuer;
  std::string format;
  fs::path out;
  std::string subject_digest;  // 64 hex digits
  std::vector<std::pair<std::string, std::string>> extensions;  // OID, value
  Fault fault = Fault::none;
  std::optional<std::time_t> time;
  // bundle-dsse: the statement's predicate (default cosign's image signature).
  std::string predicate_type = "https://sigstore.dev/cosign/sign/v1";
  json predicate = json::object();
};

std::time_t unix_seconds(const std::string& text) {
  if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos) {
    throw Refusal("--time " + text + " is not Unix seconds");
  }
  return static_cast<std::time_t>(std::stoll(text));
}

SignOptions sign_options(const std::vector<std::string>& args) {
  if (args.empty() || args[0].starts_with("--")) throw Refusal("usage: sigstore_forge sign DIR --payload FILE ...");
  SignOptions options;
  options.dir = args[0];
  for (std::size_t i = 1; i < args.size(); i += 2) {
    const std::string& name = args[i];
    if (i + 1 >= args.size()) throw Refusal(name + " needs a value");
    const std::string& value = args[i + 1];
    if (name == "--payload") {
      options.payload = value;
    } else if (name == "--identity") {
      options.identity = value;
    } else if (name == "--issuer") {
      options.issuer = value;
    } else if (name == "--format") {
      options.format = value;
    } else if (name == "--out") {
      options.out = value;
    } else if (name == "--subject-digest") {
      const std::string hex_part = value.starts_with("sha256:") ? value.substr(7) : "";
      if (hex_part.size() != 64 || hex_part.find_first_not_of("0123456789abcdef") != std::string::npos) {
        throw Refusal("--subject-digest " + value + " is not sha256:<64 lowercase hex digits>");
      }
      options.subject_digest = hex_part;
    } else if (name == "--ext") {
      const std::size_t equals = value.find('=');
      const auto known = fulcio_extensions.find(value.substr(0, equals));
      if (equals == std::string::npos || known == fulcio_extensions.end()) {
        throw Refusal("--ext " + value + " is not NAME=VALUE with NAME one of build_signer_uri, build_config_uri, " +
                      "build_trigger, runner_environment, source_repository_uri, source_repository_ref");
      }
      options.extensions.emplace_back(known->second, value.substr(equals + 1));
    } else if (name == "--fault") {
      const auto known = faults.find(value);
      if (known == faults.end()) throw Refusal("--fault " + value + " is not a fault sigstore_forge makes");
      options.fault = known->second;
    } else if (name == "--time") {
      options.time = unix_seconds(value);
    } else if (name == "--predicate") {
      const json document = json::parse(read_file(value), nullptr, false);
      if (!document.is_object() || !document.contains("predicateType") || !document["predicateType"].is_string() ||
          !document.contains("predicate")) {
        throw Refusal("--predicate " + value + " is not a JSON object with predicateType and predicate");
      }
      options.predicate_type = document["predicateType"].get<std::string>();
      options.predicate = document["predicate"];
    } else {
      throw Refusal("unknown option " + name);
    }
  }
  if (options.identity.empty()) throw Refusal("sign needs --identity SAN");
  if (options.issuer.empty()) throw Refusal("sign needs --issuer URL");
  if (options.out.empty()) throw Refusal("sign needs --out FILE");
  if (options.format != "bundle-message" && options.format != "bundle-dsse" && options.format != "cosign-legacy") {
    throw Refusal("--format must be bundle-message, bundle-dsse or cosign-legacy");
  }
  if (options.format == "bundle-dsse" && options.subject_digest.empty()) {
    throw Refusal("--format bundle-dsse needs --subject-digest sha256:HEX");
  }
  if (options.format != "bundle-dsse" && !options.payload) {
    throw Refusal("--format " + options.format + " needs --payload FILE");
  }
  if (options.format == "cosign-legacy" &&
      (options.fault == Fault::bad_inclusion_proof || options.fault == Fault::bad_checkpoint)) {
    throw Refusal("cosign-legacy carries no inclusion proof or checkpoint, so that fault does not apply to it");
  }
  return options;
}

// The signing certificate and its key.
struct Leaf {
  Pkey key;
  X509Ptr certificate;
  std::string pem;
};

// A Fulcio-like leaf: signed once as the precertificate the log sees, then again with
// the SCT list added (an OCTET STRING of the TLS SignedCertificateTimestampList, RFC
// 6962 section 3.3), as Fulcio issues them.
Leaf make_leaf(const SignOptions& options, std::time_t from, X509* issuer, EVP_PKEY* issuer_key, EVP_PKEY* ct_key) {
  Leaf leaf{p256(), nullptr, {}};
  const std::vector<std::pair<int, std::string>> extensions = {
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "codeSigning"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  leaf.certificate =
      make_certificate(leaf.key.get(), "", from, from + leaf_lifetime, extensions, issuer, issuer_key,
                       static_cast<long>(from % 1000000007));
  X509* x509 = leaf.certificate.get();
  add_subject_alternative_name(x509, options.identity);
  add_raw_extension(x509, fulcio_issuer_oid, utf8_string(options.issuer));
  for (const auto& [oid, value] : options.extensions) add_raw_extension(x509, oid, utf8_string(value));
  need(X509_sign(x509, issuer_key, EVP_sha256()) > 0, "sign the leaf");
  if (options.fault != Fault::no_sct) {
    const std::string sct = sct_of(ct_key, tbs_of(x509), issuer_key, static_cast<std::uint64_t>(from) * 1000);
    const std::string list = big_endian(sct.size(), 2) + sct;
    add_raw_extension(x509, sct_list_oid, der(0x04, big_endian(list.size(), 2) + list));
    need(X509_sign(x509, issuer_key, EVP_sha256()) > 0, "sign the leaf");
  }
  leaf.pem = pem_of(x509);
  return leaf;
}

json sha256_hash(const std::string& digest) { return {{"algorithm", "sha256"}, {"value", hex(digest)}}; }

// What was signed and how Rekor logs it.
struct Signed {
  std::string signature;
  std::string body;        // the canonicalized Rekor body
  std::string other_body;  // a body the log signs instead, for set-other-body
  json content;            // the bundle's messageSignature or dsseEnvelope
};

// Rekor's body: RFC 8785 canonical JSON, which nlohmann's sorted keys and compact dump
// give for these ASCII values.
std::string hashedrekord_body(const std::string& data_digest, const std::string& signature, const std::string& pem) {
  return json{{"apiVersion", "0.0.1"},
              {"kind", "hashedrekord"},
              {"spec",
               {{"data", {{"hash", sha256_hash(data_digest)}}},
                {"signature",
                 {{"content", base64_encode(signature)}, {"publicKey", {{"content", base64_encode(pem)}}}}}}}}
      .dump();
}

Signed sign_message(const SignOptions& options, const Leaf& leaf) {
  const std::string payload = read_file(*options.payload);
  const std::string other = payload + "\nanother artifact";
  Signed out;
  out.signature = ecdsa_sha256(leaf.key.get(), options.fault == Fault::bad_signature ? other : payload);
  const std::string logged_digest = sha256_of(options.fault == Fault::body_mismatch ? other : payload);
  out.body = hashedrekord_body(logged_digest, out.signature, leaf.pem);
  out.other_body = hashedrekord_body(sha256_of(other), out.signature, leaf.pem);
  out.content = {{"messageDigest", {{"algorithm", "SHA2_256"}, {"digest", base64_encode(sha256_of(payload))}}},
                 {"signature", base64_encode(out.signature)}};
  return out;
}

std::string pae(const std::string& type, const std::string& payload) {
  return "DSSEv1 " + std::to_string(type.size()) + " " + type + " " + std::to_string(payload.size()) + " " + payload;
}

std::string dsse_body(const std::string& envelope, const std::string& payload, const std::string& signature,
                      const std::string& pem) {
  return json{{"apiVersion", "0.0.1"},
              {"kind", "dsse"},
              {"spec",
               {{"envelopeHash", sha256_hash(sha256_of(envelope))},
                {"payloadHash", sha256_hash(sha256_of(payload))},
                {"signatures", json::array({{{"signature", base64_encode(signature)},
                                             {"verifier", base64_encode(pem)}}})}}}}
      .dump();
}

Signed sign_dsse(const SignOptions& options, const Leaf& leaf) {
  const std::string type = "application/vnd.in-toto+json";
  auto statement_of = [&options](const std::string& digest) {
    return json{{"_type", "https://in-toto.io/Statement/v1"},
                {"subject", json::array({{{"name", "image"}, {"digest", {{"sha256", digest}}}}})},
                {"predicateType", options.predicate_type},
                {"predicate", options.predicate}}
        .dump();
  };
  const std::string payload = statement_of(options.subject_digest);
  // Another image's statement: what a mismatched body or a misplaced signature covers.
  const std::string other = statement_of(hex(sha256_of(options.subject_digest)));
  Signed out;
  out.signature = ecdsa_sha256(leaf.key.get(), pae(type, options.fault == Fault::bad_signature ? other : payload));
  out.content = {{"payload", base64_encode(payload)},
                 {"payloadType", type},
                 {"signatures", json::array({{{"keyid", ""}, {"sig", base64_encode(out.signature)}}})}};
  const std::string envelope = out.content.dump();
  out.body = dsse_body(envelope, options.fault == Fault::body_mismatch ? other : payload, out.signature, leaf.pem);
  out.other_body = dsse_body(envelope, other, out.signature, leaf.pem);
  return out;
}

// A Rekor v1 entry of `body` in a tree of three, ours the middle one.
struct Logged {
  std::uint64_t log_index = 0;
  std::uint64_t integrated_time = 0;
  std::string log_id;
  std::string set;  // signed entry timestamp
  std::vector<std::string> proof;
  std::string root_hash;
  std::string checkpoint;
};

// Rekor v1's checkpoint: origin "<host> - <tree id>", size, root, a timestamp line, and
// one signature line naming the log's key hint, by `signer` (the log's key but for
// bad-checkpoint).
std::string checkpoint_of(const std::string& root_hash, std::uint64_t size, std::uint64_t time,
                          const std::string& log_id, EVP_PKEY* signer) {
  const std::string text = rekor_host + " - " + std::to_string(rekor_tree_id) + "\n" + std::to_string(size) + "\n" +
                           base64_encode(root_hash) + "\nTimestamp: " + std::to_string(time * 1000000000ULL) + "\n";
  const std::string line = "\xE2\x80\x94 " + rekor_host + " " + base64_encode(log_id.substr(0, 4) +
                                                                               ecdsa_sha256(signer, text));
  return text + "\n" + line + "\n";
}

Logged log_entry(const Signed& signed_, std::uint64_t integrated_time, EVP_PKEY* rekor, Fault fault) {
  Logged out;
  out.integrated_time = integrated_time;
  out.log_index = 100000000 + integrated_time % 100000000;
  out.log_id = sha256_of(spki_of(rekor));
  const std::string set_body = fault == Fault::set_other_body ? signed_.other_body : signed_.body;
  out.set = ecdsa_sha256(
      rekor, transparency::signed_entry_timestamp_payload({set_body, integrated_time, out.log_id, out.log_index}));
  const std::string before = transparency::leaf_hash("sigstore_forge entry " + std::to_string(out.log_index - 1));
  const std::string after = transparency::leaf_hash("sigstore_forge entry " + std::to_string(out.log_index + 1));
  const std::string ours = transparency::leaf_hash(signed_.body);
  out.root_hash = transparency::node_hash(transparency::node_hash(before, ours), after);
  out.proof = {before, after};
  if (fault == Fault::bad_inclusion_proof) out.proof[1][0] = static_cast<char>(out.proof[1][0] ^ 0x01);
  Pkey other;
  EVP_PKEY* signer = rekor;
  if (fault == Fault::bad_checkpoint) {
    other = p256();
    signer = other.get();
  }
  out.checkpoint = checkpoint_of(out.root_hash, 3, integrated_time, out.log_id, signer);
  return out;
}

std::string bundle_of(const SignOptions& options, const Leaf& leaf, const Signed& signed_, const Logged& logged) {
  json proof_hashes = json::array();
  for (const std::string& hash : logged.proof) proof_hashes.push_back(base64_encode(hash));
  const bool dsse = options.format == "bundle-dsse";
  const json entry = {
      {"logIndex", std::to_string(logged.log_index)},
      {"logId", {{"keyId", base64_encode(logged.log_id)}}},
      {"kindVersion", {{"kind", dsse ? "dsse" : "hashedrekord"}, {"version", "0.0.1"}}},
      {"integratedTime", std::to_string(logged.integrated_time)},
      {"inclusionPromise", {{"signedEntryTimestamp", base64_encode(logged.set)}}},
      {"inclusionProof",
       {{"logIndex", "1"},
        {"rootHash", base64_encode(logged.root_hash)},
        {"treeSize", "3"},
        {"hashes", proof_hashes},
        {"checkpoint", {{"envelope", logged.checkpoint}}}}},
      {"canonicalizedBody", base64_encode(signed_.body)},
  };
  json bundle = {{"mediaType", "application/vnd.dev.sigstore.bundle.v0.3+json"},
                 {"verificationMaterial",
                  {{"certificate", {{"rawBytes", base64_encode(der_of(leaf.certificate.get()))}}},
                   {"tlogEntries", json::array({entry})}}}};
  bundle[dsse ? "dsseEnvelope" : "messageSignature"] = signed_.content;
  return bundle.dump(2) + "\n";
}

// cosign's legacy .sig layer annotations; the bundle annotation is cosign's rekor
// bundle, a JSON string whose keys are in cosign's order.
std::string cosign_legacy_of(const Leaf& leaf, X509* intermediate, X509* root, const Signed& signed_,
                             const Logged& logged) {
  const std::string rekor_bundle =
      R"({"SignedEntryTimestamp":")" + base64_encode(logged.set) + R"(","Payload":{"body":")" +
      base64_encode(signed_.body) + R"(","integratedTime":)" + std::to_string(logged.integrated_time) +
      R"(,"logIndex":)" + std::to_string(logged.log_index) + R"(,"logID":")" + hex(logged.log_id) + R"("}})";
  const json annotations = {{"dev.cosignproject.cosign/signature", base64_encode(signed_.signature)},
                            {"dev.sigstore.cosign/certificate", leaf.pem},
                            {"dev.sigstore.cosign/chain", pem_of(intermediate) + pem_of(root)},
                            {"dev.sigstore.cosign/bundle", rekor_bundle}};
  return annotations.dump(2) + "\n";
}

int sign(const std::vector<std::string>& args) {
  const SignOptions options = sign_options(args);
  X509Ptr intermediate = read_certificate(options.dir / "intermediate.pem");
  X509Ptr root = read_certificate(options.dir / "root.pem");
  Pkey intermediate_key = read_key(options.dir / "intermediate.key.pem");
  Pkey rekor = read_key(options.dir / "rekor.key.pem");
  Pkey ct = read_key(options.dir / "ctlog.key.pem");

  const std::time_t from =
      options.time ? *options.time
                   : static_cast<std::time_t>(
                         std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()) -
                         60;
  // untrusted-chain: an authority made here and now, in no trusted root.
  std::optional<Authority> stranger;
  if (options.fault == Fault::untrusted_chain) stranger = Authority::make("forge stranger");
  X509* issuer = stranger ? stranger->intermediate.get() : intermediate.get();
  EVP_PKEY* issuer_key = stranger ? stranger->intermediate_key.get() : intermediate_key.get();
  const Leaf leaf = make_leaf(options, from, issuer, issuer_key, ct.get());

  const Signed signed_ = options.format == "bundle-dsse" ? sign_dsse(options, leaf) : sign_message(options, leaf);
  // Logged a minute into the leaf's ten, or a minute after it expired.
  const std::time_t integrated =
      options.fault == Fault::expired_at_signing ? from + leaf_lifetime + 60 : from + 60;
  const Logged logged = log_entry(signed_, static_cast<std::uint64_t>(integrated), rekor.get(), options.fault);

  const std::string output = options.format == "cosign-legacy"
                                 ? cosign_legacy_of(leaf, issuer, stranger ? stranger->root.get() : root.get(),
                                                    signed_, logged)
                                 : bundle_of(options, leaf, signed_, logged);
  write_file(options.out, output);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + std::min(argc, 2), argv + argc);
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "init") return init(args);
    if (command == "sign") return sign(args);
    throw Refusal("usage: sigstore_forge init DIR | sigstore_forge sign DIR --payload FILE --identity SAN "
                  "--issuer URL --format bundle-message|bundle-dsse|cosign-legacy --out FILE [--subject-digest "
                  "sha256:HEX] [--ext NAME=VALUE ...] [--fault FAULT] [--time UNIX_SECONDS] [--predicate FILE]");
  } catch (const std::exception& error) {
    std::cerr << "sigstore_forge: " << error.what() << "\n";
    return 2;
  }
}
