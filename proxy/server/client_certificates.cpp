#include "proxy/server/client_certificates.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <stdexcept>

namespace pullgate::proxy {

void ask_client_certificates(boost::asio::ssl::context& tls, const std::string& ca_file, bool required) {
  boost::system::error_code ec;
  tls.load_verify_file(ca_file, ec);
  if (ec) throw std::runtime_error("clients.ca_file: cannot load " + ca_file + ": " + ec.message());
  // The CAs are named in the CertificateRequest, so a client holding several
  // certificates (curl, Go's crypto/tls) picks one these accept.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file.c_str());
  if (!names) throw std::runtime_error("clients.ca_file: no certificate in " + ca_file);
  SSL_CTX_set_client_CA_list(tls.native_handle(), names);
  // Session resumption with verified clients needs a context id, else OpenSSL
  // refuses resumed handshakes.
  static constexpr unsigned char session_context[] = "pullgate-registry";
  SSL_CTX_set_session_id_context(tls.native_handle(), session_context, sizeof session_context - 1);
  tls.set_verify_mode(boost::asio::ssl::verify_peer |
                      (required ? boost::asio::ssl::verify_fail_if_no_peer_cert : 0));
}

std::string verified_peer_name(const SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  const X509_NAME* subject = X509_get_subject_name(cert);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0) return {};
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, value);
  if (length < 0) return {};
  std::string name(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  return name;
}

}  // namespace pullgate::proxy
