// The rules both envelopes share (the protected header's meaning, the payload, the
// chain) and the JWS envelope (signature-envelope-jws.md): flattened JWS JSON,
// base64url without padding, headers as JSON strings with RFC 3339 times.
#include "policy/notation_envelope.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "policy/text.hpp"
#include "registry/base64.hpp"

namespace pullgate::policy::notation {
namespace {

using json = nlohmann::json;

// RFC 7515 section 2: the URL-safe alphabet, no padding, nothing else.
bool base64url_decode(std::string_view text, std::string& out) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '+' || c == '/' || c == '=') return false;
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  return registry::base64_decode(standard, out);
}

json parse_json(std::string_view text, std::string_view what, std::string& error) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    error = std::string(what) + " is not JSON: " + printable(e.what(), max_quoted);
    return json();
  }
}

std::optional<std::string> jws_time(const json& header, std::string_view name, std::optional<TimePoint>& out) {
  const auto found = header.find(name);
  if (found == header.end()) return std::nullopt;
  if (!found->is_string()) return "protected header " + std::string(name) + " is not a string";
  out = parse_rfc3339(found->get_ref<const std::string&>());
  if (!out) return "protected header " + std::string(name) + " is not an RFC 3339 time";
  return std::nullopt;
}

// The JWS protected header's values (signature-envelope-jws.md "Protected Headers").
std::optional<std::string> jws_protected(const json& header, ProtectedHeaders& out) {
  if (!header.is_object()) return std::string("protected header is not a JSON object");
  const auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) return std::string("protected header has no alg");
  out.alg = alg->get<std::string>();
  if (const auto cty = header.find("cty"); cty != header.end() && cty->is_string()) {
    out.content_type = cty->get<std::string>();
  }
  if (const auto crit = header.find("crit"); crit != header.end() && crit->is_array()) {
    out.critical.emplace();
    for (const json& name : *crit) {
      if (!name.is_string()) return std::string("crit lists something that is not a header name");
      out.critical->push_back(name.get<std::string>());
    }
  }
  for (const auto& [key, value] : header.items()) out.present.insert(key);
  if (const auto scheme = header.find(signing_scheme_header); scheme != header.end()) {
    if (!scheme->is_string()) return std::string(signing_scheme_header) + " is not a string";
    out.signing_scheme = scheme->get<std::string>();
  }
  if (auto error = jws_time(header, signing_time_header, out.signing_time)) return error;
  if (auto error = jws_time(header, authentic_signing_time_header, out.authentic_signing_time)) return error;
  if (auto error = jws_time(header, expiry_header, out.expiry)) return error;
  for (const std::string_view name : {plugin_header, plugin_version_header}) {
    if (const auto plugin = header.find(name); plugin != header.end()) {
      out.plugin = std::string(name) + " " + (plugin->is_string() ? plugin->get<std::string>() : plugin->dump());
    }
  }
  return std::nullopt;
}

// The unprotected header: x5c, and the optional countersignature and agent.
std::optional<std::string> jws_unprotected(const json& header, Envelope& envelope) {
  if (!header.is_object()) return std::string("envelope's header is not a JSON object");
  const auto x5c = header.find("x5c");
  if (x5c == header.end() || !x5c->is_array() || x5c->empty()) return std::string("header has no x5c certificates");
  std::vector<std::string> ders;
  for (std::size_t i = 0; i < x5c->size(); ++i) {
    const json& entry = (*x5c)[i];
    std::string der;
    if (!entry.is_string() || !registry::base64_decode(entry.get_ref<const std::string&>(), der)) {
      return "x5c[" + std::to_string(i) + "] is not base64";
    }
    ders.push_back(std::move(der));
  }
  if (auto error = read_chain(ders, "x5c", envelope)) return error;
  if (const auto token = header.find(timestamp_header); token != header.end()) {
    if (!token->is_string() ||
        !registry::base64_decode(token->get_ref<const std::string&>(), envelope.timestamp_token)) {
      return std::string(timestamp_header) + " is not base64";
    }
  }
  if (const auto agent = header.find(signing_agent_header); agent != header.end()) {
    if (!agent->is_string()) return std::string(signing_agent_header) + " is not a string";
    envelope.signing_agent = printable(agent->get_ref<const std::string&>(), max_quoted);
  }
  return std::nullopt;
}

bool listed(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::string in_quotes(std::string_view text) { return "\"" + printable(text, max_quoted) + "\""; }

std::optional<std::string> check_headers(const ProtectedHeaders& headers, Envelope& envelope) {
  static constexpr std::string_view algorithms[] = {"PS256", "PS384", "PS512", "ES256", "ES384", "ES512"};
  if (std::find(std::begin(algorithms), std::end(algorithms), headers.alg) == std::end(algorithms)) {
    return "alg " + in_quotes(headers.alg) + " is not one the Notary Project allows (PS256/384/512, ES256/384/512)";
  }
  envelope.alg = headers.alg;
  if (headers.content_type != payload_content_type) {
    return "protected header's content type is not " + std::string(payload_content_type);
  }
  if (!headers.critical) return std::string("protected header has no crit list");
  const std::vector<std::string>& critical = *headers.critical;
  static constexpr std::string_view known[] = {signing_scheme_header, authentic_signing_time_header, expiry_header,
                                               plugin_header, plugin_version_header};
  for (std::size_t i = 0; i < critical.size(); ++i) {
    const std::string& name = critical[i];
    if (std::find(std::begin(known), std::end(known), name) == std::end(known)) {
      return "unknown critical header " + in_quotes(name);
    }
    if (std::find(critical.begin(), critical.begin() + static_cast<std::ptrdiff_t>(i), name) !=
        critical.begin() + static_cast<std::ptrdiff_t>(i)) {
      return "crit lists " + name + " twice";
    }
    if (!headers.present.contains(name)) return "crit lists " + name + ", which the protected header lacks";
  }
  if (headers.plugin) {
    return "signature requires a verification plugin (" + printable(*headers.plugin, max_quoted) +
           "), which pullgate does not run";
  }

  if (!headers.signing_scheme) return "protected header has no " + std::string(signing_scheme_header);
  if (!listed(critical, signing_scheme_header)) return std::string(signing_scheme_header) + " is not listed in crit";
  if (*headers.signing_scheme == "notary.x509") {
    envelope.scheme = SigningScheme::x509;
  } else if (*headers.signing_scheme == "notary.x509.signingAuthority") {
    envelope.scheme = SigningScheme::x509_signing_authority;
  } else {
    return "signing scheme " + in_quotes(*headers.signing_scheme) +
           " is not notary.x509 or notary.x509.signingAuthority";
  }
  envelope.signing_time = headers.signing_time;
  envelope.authentic_signing_time = headers.authentic_signing_time;
  envelope.expiry = headers.expiry;
  if (envelope.expiry && !listed(critical, expiry_header)) {
    return std::string(expiry_header) + " is not listed in crit";
  }
  if (envelope.scheme == SigningScheme::x509) {
    if (!envelope.signing_time) return "notary.x509 signature has no " + std::string(signing_time_header);
    if (envelope.authentic_signing_time) {
      return "notary.x509 signature carries " + std::string(authentic_signing_time_header) +
             ", which only notary.x509.signingAuthority may";
    }
  } else {
    if (!envelope.authentic_signing_time) {
      return "notary.x509.signingAuthority signature has no " + std::string(authentic_signing_time_header);
    }
    if (!listed(critical, authentic_signing_time_header)) {
      return std::string(authentic_signing_time_header) + " is not listed in crit";
    }
  }
  return std::nullopt;
}

std::optional<std::string> read_payload(std::string_view text, Envelope& envelope) {
  std::string error;
  const json payload = parse_json(text, "payload", error);
  if (!error.empty()) return error;
  if (!payload.is_object()) return std::string("payload is not a JSON object");
  const auto target = payload.find("targetArtifact");
  if (target == payload.end() || !target->is_object()) return std::string("payload has no targetArtifact object");
  const auto media_type = target->find("mediaType");
  const auto digest = target->find("digest");
  const auto size = target->find("size");
  if (media_type == target->end() || !media_type->is_string() || media_type->get_ref<const std::string&>().empty()) {
    return std::string("targetArtifact has no mediaType");
  }
  if (digest == target->end() || !digest->is_string()) return std::string("targetArtifact has no digest");
  if (size == target->end() || !size->is_number_integer() || size->get<std::int64_t>() < 0) {
    return std::string("targetArtifact's size is not a non-negative integer");
  }
  if (const auto annotations = target->find("annotations"); annotations != target->end()) {
    if (!annotations->is_object()) return std::string("targetArtifact's annotations are not an object");
    for (const auto& [key, value] : annotations->items()) {
      if (!value.is_string()) return "targetArtifact's annotation " + in_quotes(key) + " is not a string";
    }
  }
  envelope.target =
      TargetArtifact{media_type->get<std::string>(), digest->get<std::string>(), size->get<std::int64_t>()};
  return std::nullopt;
}

std::optional<std::string> read_chain(const std::vector<std::string>& ders, std::string_view field,
                                      Envelope& envelope) {
  if (ders.empty()) return "no certificate in " + std::string(field);
  if (ders.size() > max_certificates) {
    return std::string(field) + " holds " + std::to_string(ders.size()) + " certificates, more than " +
           std::to_string(max_certificates);
  }
  for (std::size_t i = 0; i < ders.size(); ++i) {
    auto certificate = Certificate::from_der(ders[i]);
    if (auto* error = std::get_if<std::string>(&certificate)) {
      return std::string(field) + "[" + std::to_string(i) + "]: " + *error;
    }
    envelope.chain.push_back(std::get<Certificate>(std::move(certificate)));
  }
  return std::nullopt;
}

// signature-envelope-jws.md "Signature Envelope": flattened JWS JSON, four members.
std::variant<Envelope, std::string> read_jws(std::string_view bytes) {
  std::string error;
  const json document = parse_json(bytes, "envelope", error);
  if (!error.empty()) return error;
  if (!document.is_object()) return std::string("envelope is not a JSON object");
  for (const auto& [key, value] : document.items()) {
    if (key != "payload" && key != "protected" && key != "header" && key != "signature") {
      return "envelope has a member " + in_quotes(key) + " beyond payload, protected, header and signature";
    }
  }
  for (const char* member : {"payload", "protected", "signature"}) {
    const auto found = document.find(member);
    if (found == document.end() || !found->is_string()) return "envelope has no " + std::string(member) + " string";
  }
  if (!document.contains("header")) return std::string("envelope has no header");
  const std::string& payload_text = document["payload"].get_ref<const std::string&>();
  const std::string& protected_text = document["protected"].get_ref<const std::string&>();
  Envelope envelope;
  std::string payload, protected_bytes;
  if (!base64url_decode(payload_text, payload)) return std::string("payload is not base64url");
  if (!base64url_decode(protected_text, protected_bytes)) return std::string("protected header is not base64url");
  if (!base64url_decode(document["signature"].get_ref<const std::string&>(), envelope.signature)) {
    return std::string("signature is not base64url");
  }
  envelope.signed_bytes = protected_text + "." + payload_text;
  const json header = parse_json(protected_bytes, "protected header", error);
  if (!error.empty()) return error;
  ProtectedHeaders headers;
  if (auto refusal = jws_protected(header, headers)) return *refusal;
  if (auto refusal = check_headers(headers, envelope)) return *refusal;
  if (auto refusal = read_payload(payload, envelope)) return *refusal;
  if (auto refusal = jws_unprotected(document["header"], envelope)) return *refusal;
  return envelope;
}

}  // namespace pullgate::policy::notation
