// The COSE envelope (signature-envelope-cose.md): a COSE_Sign1_Tagged message (RFC
// 9052 section 4.2), read with policy/cbor.hpp. Its protected header's labels become
// the names check_headers judges, its times are epoch date/times (tag 1 with whole
// seconds), and what the signature covers is the Sig_structure
// ["Signature1", protected, h'', payload], encoded here.
#include <chrono>

#include "policy/cbor.hpp"
#include "policy/notation_envelope.hpp"
#include "policy/text.hpp"

namespace pullgate::policy::notation {
namespace {

using cbor::Item;
using Kind = cbor::Item::Kind;

constexpr std::int64_t cose_sign1_tag = 18;
constexpr std::int64_t alg_label = 1, crit_label = 2, content_type_label = 3, x5chain_label = 33;
// What TimePoint holds, in whole seconds either side of 1970 (years 1678 to 2261).
constexpr std::int64_t max_epoch_seconds = 9'000'000'000;

// signature-envelope-cose.md "Supported alg header values", as JWS names them.
std::string alg_name(const Item& alg) {
  if (alg.is(Kind::integer)) {
    switch (alg.value) {
      case -37: return "PS256";
      case -38: return "PS384";
      case -39: return "PS512";
      case -7: return "ES256";
      case -35: return "ES384";
      case -36: return "ES512";
      default: return "COSE alg " + std::to_string(alg.value);
    }
  }
  return "COSE alg " + printable(alg.bytes, max_quoted);
}

std::string label_name(const Item& label) {
  return label.is(Kind::text) ? label.bytes : "label " + std::to_string(label.value);
}

std::optional<std::string> cose_time(const Item& header, std::string_view name, std::optional<TimePoint>& out) {
  const Item* found = header.find(name);
  if (found == nullptr) return std::nullopt;
  if (!found->is(Kind::tag) || found->value != 1 || !found->items[0].is(Kind::integer) ||
      found->items[0].value > max_epoch_seconds || found->items[0].value < -max_epoch_seconds) {
    return "protected header " + std::string(name) + " is not an epoch date/time (tag 1, whole seconds)";
  }
  out = TimePoint(std::chrono::seconds(found->items[0].value));
  return std::nullopt;
}

// The protected header's values (signature-envelope-cose.md "Protected Header").
std::optional<std::string> cose_protected(const Item& header, ProtectedHeaders& out) {
  if (!header.is(Kind::map)) return std::string("protected header is not a CBOR map");
  const Item* alg = header.find(alg_label);
  if (alg == nullptr || (!alg->is(Kind::integer) && !alg->is(Kind::text))) {
    return std::string("protected header has no alg");
  }
  out.alg = alg_name(*alg);
  if (const Item* content_type = header.find(content_type_label); content_type != nullptr) {
    out.content_type =
        content_type->is(Kind::text) ? content_type->bytes : "content format " + std::to_string(content_type->value);
  }
  if (const Item* crit = header.find(crit_label); crit != nullptr) {
    if (!crit->is(Kind::array)) return std::string("crit is not an array");
    out.critical.emplace();
    for (const Item& label : crit->items) {
      if (!label.is(Kind::integer) && !label.is(Kind::text)) {
        return std::string("crit lists something that is not a label");
      }
      if (label.is(Kind::integer) && label.value >= 0 && label.value <= 8) {
        return "crit lists label " + std::to_string(label.value) + ", which COSE reserves (0 to 8)";
      }
      out.critical->push_back(label_name(label));
    }
  }
  for (std::size_t i = 0; i < header.items.size(); i += 2) out.present.insert(label_name(header.items[i]));
  if (const Item* scheme = header.find(signing_scheme_header); scheme != nullptr) {
    if (!scheme->is(Kind::text)) return std::string(signing_scheme_header) + " is not text";
    out.signing_scheme = scheme->bytes;
  }
  if (auto error = cose_time(header, signing_time_header, out.signing_time)) return error;
  if (auto error = cose_time(header, authentic_signing_time_header, out.authentic_signing_time)) return error;
  if (auto error = cose_time(header, expiry_header, out.expiry)) return error;
  for (const std::string_view name : {plugin_header, plugin_version_header}) {
    if (const Item* plugin = header.find(name); plugin != nullptr) {
      out.plugin = std::string(name) + " " + (plugin->is(Kind::text) ? plugin->bytes : std::string("(not text)"));
    }
  }
  return std::nullopt;
}

// The unprotected header: x5chain (label 33; one certificate may stand alone, as
// draft-ietf-cose-x509 allows), the countersignature and the agent.
std::optional<std::string> cose_unprotected(const Item& header, Envelope& envelope) {
  if (!header.is(Kind::map)) return std::string("unprotected header is not a CBOR map");
  const Item* chain = header.find(x5chain_label);
  if (chain == nullptr) return std::string("unprotected header has no x5chain (label 33)");
  std::vector<std::string> ders;
  if (chain->is(Kind::bytes)) {
    ders.push_back(chain->bytes);
  } else if (chain->is(Kind::array)) {
    for (const Item& certificate : chain->items) {
      if (!certificate.is(Kind::bytes)) return std::string("x5chain holds something that is not a byte string");
      ders.push_back(certificate.bytes);
    }
  } else {
    return std::string("x5chain is neither a byte string nor an array of them");
  }
  if (auto error = read_chain(ders, "x5chain", envelope)) return error;
  if (const Item* token = header.find(timestamp_header); token != nullptr) {
    if (!token->is(Kind::bytes)) return std::string(timestamp_header) + " is not a byte string";
    envelope.timestamp_token = token->bytes;
  }
  if (const Item* agent = header.find(signing_agent_header); agent != nullptr) {
    if (!agent->is(Kind::text)) return std::string(signing_agent_header) + " is not text";
    envelope.signing_agent = printable(agent->bytes, max_quoted);
  }
  return std::nullopt;
}

// RFC 9052 section 4.4: Sig_structure for COSE_Sign1, no external data.
std::string sig_structure(std::string_view protected_bytes, std::string_view payload) {
  std::string out;
  cbor::append_head(out, 4, 4);
  cbor::append_string(out, 3, "Signature1");
  cbor::append_string(out, 2, protected_bytes);
  cbor::append_string(out, 2, "");
  cbor::append_string(out, 2, payload);
  return out;
}

}  // namespace

std::variant<Envelope, std::string> read_cose(std::string_view bytes) {
  auto decoded = cbor::decode(bytes);
  if (auto* error = std::get_if<std::string>(&decoded)) return "envelope is " + *error;
  const Item& tagged = std::get<Item>(decoded);
  if (!tagged.is(Kind::tag) || tagged.value != cose_sign1_tag) {
    return std::string("envelope is not a COSE_Sign1_Tagged message (tag 18)");
  }
  const Item& message = tagged.items[0];
  if (!message.is(Kind::array) || message.items.size() != 4) {
    return std::string("COSE_Sign1 is not an array of four items");
  }
  const Item& protected_bytes = message.items[0];
  const Item& payload = message.items[2];
  const Item& signature = message.items[3];
  if (!protected_bytes.is(Kind::bytes)) return std::string("COSE_Sign1's protected header is not a byte string");
  if (!payload.is(Kind::bytes)) return std::string("COSE_Sign1's payload is detached or not a byte string");
  if (!signature.is(Kind::bytes)) return std::string("COSE_Sign1's signature is not a byte string");

  auto header = cbor::decode(protected_bytes.bytes);
  if (auto* error = std::get_if<std::string>(&header)) return "protected header is " + *error;
  Envelope envelope;
  envelope.signature = signature.bytes;
  envelope.signed_bytes = sig_structure(protected_bytes.bytes, payload.bytes);
  ProtectedHeaders headers;
  if (auto refusal = cose_protected(std::get<Item>(header), headers)) return *refusal;
  if (auto refusal = check_headers(headers, envelope)) return *refusal;
  if (auto refusal = read_payload(payload.bytes, envelope)) return *refusal;
  if (auto refusal = cose_unprotected(message.items[1], envelope)) return *refusal;
  return envelope;
}

}  // namespace pullgate::policy::notation
