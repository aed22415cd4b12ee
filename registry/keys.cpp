// PEM keys with OpenSSL 3 EVP: read, checked for an accepted kind, used to verify or sign.
#include "registry/keys.hpp"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <limits>
#include <stdexcept>

namespace pullgate::registry {
namespace {

// OpenSSL keeps a per-thread error queue; a failed call must not leave entries behind
// for whoever calls OpenSSL next on this thread.
struct ErrorQueueGuard {
  ~ErrorQueueGuard() { ERR_clear_error(); }
};

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 0xf];
  }
  return out;
}

// A name from OpenSSL quoted in an error line: short, no control characters.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, 80));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

// The digest a key kind signs with (nullptr: Ed25519 signs the message itself).
const EVP_MD* digest_for(const std::string& algorithm) {
  if (algorithm == "ecdsa-p384") return EVP_sha384();
  if (algorithm == "ed25519") return nullptr;
  return EVP_sha256();
}

}  // namespace

std::variant<PublicKey, std::string> PublicKey::from_pem(std::string name, std::string_view pem) {
  const ErrorQueueGuard clear_errors;
  if (pem.find("PRIVATE KEY-----") != std::string_view::npos) {
    return "key " + name + " is a private key; a public key is needed (e.g. `openssl pkey -pubout`)";
  }
  if (pem.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    return "key " + name + " is a certificate; give the public key, e.g. `openssl x509 -pubkey -noout`";
  }
  if (pem.find("-----BEGIN RSA PUBLIC KEY-----") != std::string_view::npos) {
    return "key " + name +
           " is a PKCS#1 RSA PUBLIC KEY; give the PUBLIC KEY form (`openssl rsa -RSAPublicKey_in -pubout`)";
  }
  if (pem.find("-----BEGIN PUBLIC KEY-----") == std::string_view::npos) {
    return "key " + name + " is not a PEM public key (no -----BEGIN PUBLIC KEY----- line)";
  }
  if (pem.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return "key " + name + " is too large";
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return "key " + name + ": out of memory";
  std::shared_ptr<EVP_PKEY> key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) return "key " + name + " is not a readable PEM public key";
  return from_key(std::move(name), std::move(key));
}

std::variant<PublicKey, std::string> PublicKey::from_der(std::string name, std::string_view der) {
  const ErrorQueueGuard clear_errors;
  if (der.size() > static_cast<std::size_t>(std::numeric_limits<long>::max())) return "key " + name + " is too large";
  const auto* start = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = start;
  std::shared_ptr<EVP_PKEY> key(d2i_PUBKEY(nullptr, &end, static_cast<long>(der.size())), EVP_PKEY_free);
  if (!key) return "key " + name + " is not a DER SubjectPublicKeyInfo";
  if (end != start + der.size()) return "key " + name + " has bytes after its DER SubjectPublicKeyInfo";
  return from_key(std::move(name), std::move(key));
}

std::variant<PublicKey, std::string> PublicKey::from_key(std::string name, std::shared_ptr<EVP_PKEY> key) {
  std::string algorithm;
  if (EVP_PKEY_is_a(key.get(), "EC")) {
    std::array<char, 80> group{};
    std::size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(), &length) !=
        1) {
      return "key " + name + " is an EC key with an unnamed curve; only P-256 and P-384 are accepted";
    }
    const int curve = OBJ_txt2nid(group.data());
    if (curve == NID_X9_62_prime256v1) {
      algorithm = "ecdsa-p256";
    } else if (curve == NID_secp384r1) {
      algorithm = "ecdsa-p384";
    } else {
      return "key " + name + " is on curve " + printable(group.data()) + "; only P-256 and P-384 are accepted";
    }
  } else if (EVP_PKEY_is_a(key.get(), "RSA")) {
    const int bits = EVP_PKEY_get_bits(key.get());
    if (bits < 2048) {
      return "key " + name + " is RSA of " + std::to_string(bits) + " bits; at least 2048 bits are needed";
    }
    algorithm = "rsa";
  } else if (EVP_PKEY_is_a(key.get(), "ED25519")) {
    algorithm = "ed25519";
  } else {
    const char* type = EVP_PKEY_get0_type_name(key.get());
    return "key " + name + " is a " + printable(type ? type : "unknown") +
           " key; accepted are ECDSA P-256/P-384, RSA (2048 bits or more) and Ed25519";
  }

  unsigned char* der = nullptr;
  const int der_length = i2d_PUBKEY(key.get(), &der);
  if (der_length <= 0) return "key " + name + " cannot be encoded as DER";
  std::array<unsigned char, EVP_MAX_MD_SIZE> sum{};
  unsigned int sum_length = 0;
  const int digested = EVP_Digest(der, static_cast<std::size_t>(der_length), sum.data(), &sum_length, EVP_sha256(),
                                  nullptr);
  std::string der_bytes(reinterpret_cast<const char*>(der), static_cast<std::size_t>(der_length));
  OPENSSL_free(der);
  if (digested != 1) return "key " + name + ": sha256 of the key failed";

  PublicKey out;
  out.der_ = std::move(der_bytes);
  out.name_ = std::move(name);
  out.algorithm_ = std::move(algorithm);
  out.fingerprint_ = hex(sum.data(), sum_length);
  out.key_ = std::move(key);
  return out;
}

bool PublicKey::verify(std::string_view message, std::string_view signature) const {
  if (!key_) return false;
  const ErrorQueueGuard clear_errors;
  const auto* message_bytes = reinterpret_cast<const unsigned char*>(message.data());
  const auto* signature_bytes = reinterpret_cast<const unsigned char*>(signature.data());

  // One attempt with a fresh context: a digest context cannot be reused after a
  // one-shot verify, and RSA tries two paddings.
  auto attempt = [&](const EVP_MD* md, int rsa_padding) {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx) return false;
    EVP_PKEY_CTX* key_ctx = nullptr;  // owned by ctx
    if (EVP_DigestVerifyInit(ctx.get(), &key_ctx, md, nullptr, key_.get()) != 1) return false;
    if (rsa_padding == RSA_PKCS1_PSS_PADDING) {
      if (EVP_PKEY_CTX_set_rsa_padding(key_ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
          EVP_PKEY_CTX_set_rsa_mgf1_md(key_ctx, EVP_sha256()) != 1 ||
          EVP_PKEY_CTX_set_rsa_pss_saltlen(key_ctx, RSA_PSS_SALTLEN_AUTO) != 1) {
        return false;
      }
    }
    return EVP_DigestVerify(ctx.get(), signature_bytes, signature.size(), message_bytes, message.size()) == 1;
  };

  if (algorithm_ == "ed25519") return attempt(nullptr, 0);
  if (algorithm_ == "ecdsa-p384") return attempt(EVP_sha384(), 0);
  if (algorithm_ == "ecdsa-p256") return attempt(EVP_sha256(), 0);
  if (algorithm_ == "rsa") {
    return attempt(EVP_sha256(), RSA_PKCS1_PADDING) || attempt(EVP_sha256(), RSA_PKCS1_PSS_PADDING);
  }
  return false;
}

std::variant<PrivateKey, std::string> PrivateKey::from_pem(std::string name, std::string_view pem) {
  const ErrorQueueGuard clear_errors;
  if (pem.find("ENCRYPTED SIGSTORE PRIVATE KEY") != std::string_view::npos ||
      pem.find("ENCRYPTED COSIGN PRIVATE KEY") != std::string_view::npos)
    return "key " + name + " is cosign's encrypted key format; give a PEM private key (e.g. `openssl genpkey -algorithm ed25519`)";
  if (pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string_view::npos ||
      pem.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos)
    return "key " + name + " is encrypted; give it unencrypted (`openssl pkey -in KEY -out PLAIN.pem`) and keep that file safe";
  if (pem.find("PRIVATE KEY-----") == std::string_view::npos)
    return "key " + name + " is not a PEM private key (no -----BEGIN PRIVATE KEY----- line)";
  if (pem.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return "key " + name + " is too large";
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return "key " + name + ": out of memory";
  // An empty passphrase: an encrypted key the checks above missed fails here instead of prompting.
  static char none[] = "";
  std::shared_ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, none), EVP_PKEY_free);
  if (!key) return "key " + name + " is not a readable PEM private key";

  // Its public half, through PEM, so that the same checks decide what is accepted.
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_PUBKEY(out.get(), key.get()) != 1) return "key " + name + ": cannot derive its public key";
  char* data = nullptr;
  const long length = BIO_get_mem_data(out.get(), &data);
  auto public_key = PublicKey::from_pem(name, std::string_view(data, std::size_t(length)));
  if (auto* error = std::get_if<std::string>(&public_key)) return *error;
  PrivateKey result;
  result.public_ = std::get<PublicKey>(std::move(public_key));
  result.key_ = std::move(key);
  return result;
}

std::string PrivateKey::sign(std::string_view message) const {
  const ErrorQueueGuard clear_errors;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, digest_for(public_.algorithm()), nullptr, key_.get()) != 1)
    throw std::runtime_error("cannot sign with key " + public_.name());
  const auto* bytes = reinterpret_cast<const unsigned char*>(message.data());
  std::size_t length = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &length, bytes, message.size()) != 1)
    throw std::runtime_error("cannot sign with key " + public_.name());
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length, bytes, message.size()) != 1)
    throw std::runtime_error("cannot sign with key " + public_.name());
  signature.resize(length);
  return signature;
}

}  // namespace pullgate::registry
