#pragma once
// An X.509 certificate read from DER or PEM, with OpenSSL 3: the certificate
// authorities and timestamp authorities of a Sigstore trusted root
// (policy/trusted_root.hpp), the Fulcio certificates they issue (policy/fulcio.hpp),
// Notation trust stores (policy/notation.hpp). Immutable once read; copies share the
// one parsed certificate.
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/rfc3339.hpp"

struct x509_st;

namespace pullgate::policy {

class Certificate {
 public:
  // One DER certificate and nothing after it; anything else is an error line ("not a
  // DER X.509 certificate", "a DER X.509 certificate with bytes after it").
  static std::variant<Certificate, std::string> from_der(std::string_view der);
  // Takes a reference of its own to `certificate` (one OpenSSL handed out).
  static Certificate from_openssl(x509_st* certificate);

  const std::string& der() const { return der_; }
  // The validity period, closed at both ends (RFC 5280 section 4.1.2.5). Times past
  // what a TimePoint holds (GeneralizedTime runs to 9999) are clamped to its ends.
  TimePoint not_before() const { return not_before_; }
  TimePoint not_after() const { return not_after_; }
  // SHA-256 of its DER SubjectPublicKeyInfo, 32 bytes: RFC 6962's issuer key hash,
  // which an SCT of a certificate this one issued covers.
  std::string public_key_sha256() const;
  // RFC 2253 text for reasons, e.g. "CN=sigstore-intermediate,O=sigstore.dev";
  // Fulcio's leaves have an empty subject.
  const std::string& subject() const { return subject_; }

  // For OpenSSL calls that read it; never null.
  x509_st* x509() const { return x509_.get(); }

 private:
  std::shared_ptr<x509_st> x509_;
  std::string der_, subject_;
  TimePoint not_before_, not_after_;
};

// Every certificate of a PEM text (a bundle, or one certificate), in order: a trust
// store file, cosign's certificate annotations. An error line starting with `what`
// when the text holds none, a PEM block that is not a certificate, or more than
// `max_count`.
std::variant<std::vector<Certificate>, std::string> certificates_of_pem(std::string_view pem, const std::string& what,
                                                                        std::size_t max_count);

}  // namespace pullgate::policy
