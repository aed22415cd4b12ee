#pragma once
// Signing keys in PEM, with OpenSSL 3: public keys that verify (cosign signatures in
// policy/signature.hpp, air-gap bundles in cache/bundle_signature.hpp) and private
// keys that sign (bundle export). Pure: PEM text in, never a file path.
#include <memory>
#include <string>
#include <string_view>
#include <variant>

struct evp_pkey_st;

namespace pullgate::registry {

class PublicKey {
 public:
  // PEM "PUBLIC KEY" (SubjectPublicKeyInfo). Accepted: ECDSA P-256 and P-384, RSA of
  // 2048 bits or more, Ed25519. Anything else (other curves, short RSA, private keys,
  // certificates, garbage) is an error: one line saying what is wrong.
  static std::variant<PublicKey, std::string> from_pem(std::string name, std::string_view pem);
  // The same from DER SubjectPublicKeyInfo bytes (how trusted_root.json carries keys:
  // publicKey.rawBytes, once base64 is undone). Bytes after the key are an error.
  static std::variant<PublicKey, std::string> from_der(std::string name, std::string_view der);

  const std::string& name() const { return name_; }
  // "ecdsa-p256" | "ecdsa-p384" | "rsa" | "ed25519"
  const std::string& algorithm() const { return algorithm_; }
  // sha256 of the DER SubjectPublicKeyInfo, lowercase hex: how bundles hint at keys.
  const std::string& fingerprint() const { return fingerprint_; }
  // The DER SubjectPublicKeyInfo: what a log entry that names this key must hold.
  const std::string& der() const { return der_; }

  // True when `signature` (raw bytes, not base64) is this key's signature over
  // `message`: ECDSA as DER with SHA-256 (P-256) or SHA-384 (P-384); RSA PKCS#1 v1.5
  // or PSS with SHA-256; Ed25519 pure (over the message itself). Never throws.
  bool verify(std::string_view message, std::string_view signature) const;

 private:
  // The checks both forms share: an accepted kind, then its algorithm and fingerprint.
  static std::variant<PublicKey, std::string> from_key(std::string name, std::shared_ptr<evp_pkey_st> key);

  std::string name_, algorithm_, fingerprint_, der_;
  std::shared_ptr<evp_pkey_st> key_;
};

class PrivateKey {
 public:
  // PEM "PRIVATE KEY" (PKCS#8: `openssl genpkey`) or "EC PRIVATE KEY" (SEC1: `openssl
  // ecparam -genkey`), of a kind PublicKey accepts. Encrypted keys (including cosign's
  // own format) are an error line saying how to get an unencrypted PEM.
  static std::variant<PrivateKey, std::string> from_pem(std::string name, std::string_view pem);

  // The matching public key (its fingerprint names the signer).
  const PublicKey& public_key() const { return public_; }
  // The signature over `message` in the form PublicKey::verify takes (RSA: PKCS#1
  // v1.5). Throws std::runtime_error when OpenSSL fails.
  std::string sign(std::string_view message) const;

 private:
  PublicKey public_;
  std::shared_ptr<evp_pkey_st> key_;
};

}  // namespace pullgate::registry
