#pragma once
// Mutual TLS on a listener: the client certificates it asks for, and who a verified
// one names. The listener only verifies and hands the name over (RequestContext);
// what a name may do is decided above it (proxy/access, the policy's access section).
#include <string>

#include <boost/asio/ssl/context.hpp>

namespace pullgate::proxy {

// Asks clients for a certificate issued by a CA in ca_file (PEM). required: a
// handshake without one fails (SSL_VERIFY_FAIL_IF_NO_PEER_CERT); else it goes on
// without, and one presented is still verified (a bad one fails the handshake).
// Throws std::runtime_error with one line when the file does not load.
void ask_client_certificates(boost::asio::ssl::context& tls, const std::string& ca_file, bool required);

// The subject CN of the client certificate verified on this connection; empty when
// the client presented none (or it did not verify, or it has no CN). A certificate
// with several CNs names no one: which one a client meant is not for the mirror to pick.
std::string verified_peer_name(const SSL* ssl);

}  // namespace pullgate::proxy
