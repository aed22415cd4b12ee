#pragma once
// Notary Project signature envelopes made with OpenSSL for tests
// (tests/unit/policy_notation_test.cpp; an integration forge may build on it): JWS
// and COSE_Sign1 envelopes, RSASSA-PSS or raw r||s ECDSA signatures, and RFC 3161
// TimeStampTokens from a test TSA. A failure of OpenSSL throws std::runtime_error
// (tests/tools/x509_make.hpp's need).
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/ts.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "policy/cbor.hpp"
#include "registry/base64.hpp"
#include "tests/tools/x509_make.hpp"

namespace pullgate::testing_support::notation {

using x509::need;

// RFC 7515 section 2: URL-safe base64 without padding.
inline std::string base64url(const std::string& bytes) {
  std::string out = registry::base64_encode(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

// The JWS signature of `input` by `key` as `alg` (PS256/384/512, ES256/384/512)
// names it: RSASSA-PSS with a salt the hash's length, or ECDSA as R || S.
inline std::string jws_sign(EVP_PKEY* key, const std::string& alg, const std::string& input) {
  const std::string bits = alg.substr(2);
  const EVP_MD* md = bits == "256" ? EVP_sha256() : bits == "384" ? EVP_sha384() : EVP_sha512();
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* key_ctx = nullptr;
  need(ctx && EVP_DigestSignInit(ctx.get(), &key_ctx, md, nullptr, key) == 1, "start signing");
  if (alg[0] == 'P') {
    need(EVP_PKEY_CTX_set_rsa_padding(key_ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(key_ctx, RSA_PSS_SALTLEN_DIGEST) == 1,
         "set PSS");
  }
  std::size_t length = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  need(EVP_DigestSign(ctx.get(), nullptr, &length, data, input.size()) == 1, "sign");
  std::string signature(length, '\0');
  need(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length, data, input.size()) == 1,
       "sign");
  signature.resize(length);
  if (alg[0] == 'P') return signature;
  // The key's size, not the alg's: a test may sign with a hash that does not match the key.
  const std::size_t field = (static_cast<std::size_t>(EVP_PKEY_get_bits(key)) + 7) / 8;
  const auto* der = reinterpret_cast<const unsigned char*>(signature.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> parsed(d2i_ECDSA_SIG(nullptr, &der, long(signature.size())),
                                                               ECDSA_SIG_free);
  need(parsed != nullptr, "read an ECDSA signature");
  std::string raw(2 * field, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  need(BN_bn2binpad(ECDSA_SIG_get0_r(parsed.get()), out, int(field)) == int(field) &&
           BN_bn2binpad(ECDSA_SIG_get0_s(parsed.get()), out + field, int(field)) == int(field),
       "write R || S");
  return raw;
}

// The parts of an envelope, as they go into it.
struct Jws {
  std::string protected_header;  // JSON text
  std::string payload;           // JSON text
  std::string signature;         // raw bytes
  std::vector<std::string> x5c;  // DER, leaf first
  std::string timestamp;         // a DER TimeStampToken, or empty
};

inline std::string signing_input(const Jws& jws) {
  return base64url(jws.protected_header) + "." + base64url(jws.payload);
}

// The flattened JWS JSON serialization (signature-envelope-jws.md "Signature Envelope").
inline std::string envelope_of(const Jws& jws) {
  auto quoted = [](const std::string& text) { return "\"" + text + "\""; };
  std::string x5c;
  for (const std::string& der : jws.x5c) x5c += (x5c.empty() ? "" : ",") + quoted(registry::base64_encode(der));
  std::string header = "{\"x5c\":[" + x5c + "],\"io.cncf.notary.signingAgent\":\"notation-forge/1.0\"";
  if (!jws.timestamp.empty()) {
    header += ",\"io.cncf.notary.timestampSignature\":" + quoted(registry::base64_encode(jws.timestamp));
  }
  header += "}";
  return "{\"payload\":" + quoted(base64url(jws.payload)) +
         ",\"protected\":" + quoted(base64url(jws.protected_header)) + ",\"header\":" + header +
         ",\"signature\":" + quoted(base64url(jws.signature)) + "}";
}

// CBOR data items, encoded (policy/cbor.hpp writes the heads): COSE envelopes are
// put together from these.
namespace cbor {
inline std::string integer(std::int64_t value) {
  std::string out;
  if (value >= 0) {
    policy::cbor::append_head(out, 0, static_cast<std::uint64_t>(value));
  } else {
    policy::cbor::append_head(out, 1, static_cast<std::uint64_t>(-1 - value));
  }
  return out;
}
inline std::string text(const std::string& value) {
  std::string out;
  policy::cbor::append_string(out, 3, value);
  return out;
}
inline std::string bytes(const std::string& value) {
  std::string out;
  policy::cbor::append_string(out, 2, value);
  return out;
}
inline std::string array(const std::vector<std::string>& items) {
  std::string out;
  policy::cbor::append_head(out, 4, items.size());
  for (const std::string& item : items) out += item;
  return out;
}
// Keys and values, each encoded.
inline std::string map(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out;
  policy::cbor::append_head(out, 5, entries.size());
  for (const auto& [key, value] : entries) out += key + value;
  return out;
}
inline std::string tag(std::uint64_t number, const std::string& item) {
  std::string out;
  policy::cbor::append_head(out, 6, number);
  return out + item;
}
}  // namespace cbor

// The parts of a COSE_Sign1 envelope (signature-envelope-cose.md).
struct Cose {
  std::string protected_header;  // an encoded CBOR map
  std::string payload;           // JSON text
  std::string signature;         // raw bytes
  std::vector<std::string> x5chain;
  std::string timestamp;  // a DER TimeStampToken, or empty
};

// What a COSE_Sign1 signature covers (RFC 9052 section 4.4).
inline std::string to_be_signed(const Cose& cose) {
  return cbor::array(
      {cbor::text("Signature1"), cbor::bytes(cose.protected_header), cbor::bytes(""), cbor::bytes(cose.payload)});
}

// COSE_Sign1_Tagged: tag 18 of [protected, unprotected, payload, signature].
inline std::string envelope_of(const Cose& cose) {
  std::vector<std::string> chain;
  for (const std::string& der : cose.x5chain) chain.push_back(cbor::bytes(der));
  std::vector<std::pair<std::string, std::string>> unprotected = {
      {cbor::integer(33), cbor::array(chain)},
      {cbor::text("io.cncf.notary.signingAgent"), cbor::text("notation-forge/1.0")}};
  if (!cose.timestamp.empty()) {
    unprotected.emplace_back(cbor::text("io.cncf.notary.timestampSignature"), cbor::bytes(cose.timestamp));
  }
  return cbor::tag(18, cbor::array({cbor::bytes(cose.protected_header), cbor::map(unprotected),
                                    cbor::bytes(cose.payload), cbor::bytes(cose.signature)}));
}

// A TimeStampToken over SHA-256 of `signature` by `tsa` (its key `tsa_key`), at `time`,
// embedding the TSA's certificate, with the baseline policy and no accuracy.
inline std::string timestamp_token(const std::string& signature, X509* tsa, EVP_PKEY* tsa_key, std::time_t time) {
  std::unique_ptr<TS_REQ, decltype(&TS_REQ_free)> request(TS_REQ_new(), TS_REQ_free);
  std::unique_ptr<TS_MSG_IMPRINT, decltype(&TS_MSG_IMPRINT_free)> imprint(TS_MSG_IMPRINT_new(), TS_MSG_IMPRINT_free);
  std::unique_ptr<X509_ALGOR, decltype(&X509_ALGOR_free)> algorithm(X509_ALGOR_new(), X509_ALGOR_free);
  need(request && imprint && algorithm, "make a timestamp request");
  X509_ALGOR_set_md(algorithm.get(), EVP_sha256());
  const std::string hash = x509::sha256_of(signature);
  need(TS_MSG_IMPRINT_set_algo(imprint.get(), algorithm.get()) == 1 &&
           TS_MSG_IMPRINT_set_msg(imprint.get(), reinterpret_cast<unsigned char*>(const_cast<char*>(hash.data())),
                                  int(hash.size())) == 1 &&
           TS_REQ_set_version(request.get(), 1) == 1 && TS_REQ_set_msg_imprint(request.get(), imprint.get()) == 1 &&
           TS_REQ_set_cert_req(request.get(), 1) == 1,
       "fill a timestamp request");
  const std::string request_der = x509::encoded(i2d_TS_REQ, request.get());
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(request_der.data(), int(request_der.size())), BIO_free);

  std::unique_ptr<TS_RESP_CTX, decltype(&TS_RESP_CTX_free)> ctx(TS_RESP_CTX_new(), TS_RESP_CTX_free);
  std::unique_ptr<ASN1_OBJECT, decltype(&ASN1_OBJECT_free)> policy(OBJ_txt2obj("0.4.0.2023.1.1", 1), ASN1_OBJECT_free);
  static thread_local std::time_t stamp_time;
  stamp_time = time;
  need(ctx && policy && bio && TS_RESP_CTX_set_signer_cert(ctx.get(), tsa) == 1 &&
           TS_RESP_CTX_set_signer_key(ctx.get(), tsa_key) == 1 &&
           TS_RESP_CTX_set_signer_digest(ctx.get(), EVP_sha256()) == 1 &&
           TS_RESP_CTX_set_def_policy(ctx.get(), policy.get()) == 1 && TS_RESP_CTX_add_md(ctx.get(), EVP_sha256()) == 1,
       "set up a TSA");
  TS_RESP_CTX_set_time_cb(
      ctx.get(),
      [](TS_RESP_CTX*, void*, long* seconds, long* microseconds) {
        *seconds = long(stamp_time);
        *microseconds = 0;
        return 1;
      },
      nullptr);
  std::unique_ptr<TS_RESP, decltype(&TS_RESP_free)> response(TS_RESP_create_response(ctx.get(), bio.get()),
                                                             TS_RESP_free);
  need(response != nullptr && TS_RESP_get_token(response.get()) != nullptr, "make a timestamp");
  return x509::encoded(i2d_PKCS7, TS_RESP_get_token(response.get()));
}

}  // namespace pullgate::testing_support::notation
