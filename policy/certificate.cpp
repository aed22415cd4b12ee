// X.509 certificates from DER or PEM with OpenSSL 3: parsed once, their times as TimePoints.
#include "policy/certificate.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <chrono>
#include <ctime>
#include <limits>
#include <new>

#include "policy/text.hpp"

namespace pullgate::policy {
namespace {

using namespace std::chrono;

constexpr std::size_t max_subject_length = 200;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};

// An ASN1_TIME (UTCTime or GeneralizedTime, always UTC in a certificate) as a
// TimePoint, clamped to the years parse_rfc3339 documents.
TimePoint time_of(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return TimePoint::min();
  const int y = tm.tm_year + 1900;
  if (y < 1678) return TimePoint::min();
  if (y > 2261) return TimePoint::max();
  const sys_days day = year{y} / month{static_cast<unsigned>(tm.tm_mon + 1)} / static_cast<unsigned>(tm.tm_mday);
  return TimePoint(day) + hours(tm.tm_hour) + minutes(tm.tm_min) + seconds(tm.tm_sec);
}

std::string subject_of(X509* certificate) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253) < 0) return {};
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return printable(std::string_view(data, static_cast<std::size_t>(length)), max_subject_length);
}

}  // namespace

std::string Certificate::public_key_sha256() const {
  unsigned char* der = nullptr;
  const int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x509_.get()), &der);
  if (length <= 0) throw std::bad_alloc();
  std::array<unsigned char, EVP_MAX_MD_SIZE> sum{};
  std::size_t sum_length = 0;
  const int digested =
      EVP_Q_digest(nullptr, "SHA256", nullptr, der, static_cast<std::size_t>(length), sum.data(), &sum_length);
  OPENSSL_free(der);
  if (digested != 1) throw std::bad_alloc();  // SHA-256 fails only when memory does
  return std::string(reinterpret_cast<const char*>(sum.data()), sum_length);
}

std::variant<Certificate, std::string> Certificate::from_der(std::string_view der) {
  if (der.size() > static_cast<std::size_t>(std::numeric_limits<long>::max())) return "certificate is too large";
  const auto* start = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = start;
  const std::unique_ptr<X509, X509Free> parsed(d2i_X509(nullptr, &end, static_cast<long>(der.size())));
  // A failed parse leaves its reasons on this thread's queue; no one else should read them.
  ERR_clear_error();
  if (!parsed) return "not a DER X.509 certificate";
  Certificate certificate = from_openssl(parsed.get());  // a reference of its own
  if (end != start + der.size()) return "a DER X.509 certificate with bytes after it";
  certificate.der_ = der;  // as given: the bytes a bundle or a log entry compares against
  return certificate;
}

Certificate Certificate::from_openssl(X509* certificate) {
  if (X509_up_ref(certificate) != 1) throw std::bad_alloc();
  Certificate out;
  out.x509_.reset(certificate, X509_free);
  unsigned char* der = nullptr;
  const int length = i2d_X509(certificate, &der);
  if (length <= 0) throw std::bad_alloc();
  out.der_.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  out.subject_ = subject_of(certificate);
  out.not_before_ = time_of(X509_get0_notBefore(certificate));
  out.not_after_ = time_of(X509_get0_notAfter(certificate));
  return out;
}

std::variant<std::vector<Certificate>, std::string> certificates_of_pem(std::string_view pem, const std::string& what,
                                                                        std::size_t max_count) {
  if (pem.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return what + " is too large";
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) throw std::bad_alloc();
  std::vector<Certificate> out;
  while (true) {
    std::unique_ptr<X509, X509Free> x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!x) break;
    if (out.size() == max_count) {
      ERR_clear_error();
      return what + " holds more than " + std::to_string(max_count) + " certificates";
    }
    out.push_back(Certificate::from_openssl(x.get()));
  }
  // What stopped the loop: the end of the text, or a block that is not a certificate.
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  if (out.empty()) return what + " holds no PEM certificate";
  if (error != 0 && ERR_GET_REASON(error) != PEM_R_NO_START_LINE) return what + " holds a PEM block that is not a certificate";
  return out;
}

}  // namespace pullgate::policy
