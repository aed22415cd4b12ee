#include "proxy/mirror/signals.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "policy/keyless.hpp"
#include "policy/notation_policy.hpp"
#include "policy/provenance.hpp"
#include "policy/signature.hpp"
#include "registry/base64.hpp"
#include "registry/manifest.hpp"

namespace pullgate::proxy {

using registry::Digest;
using nlohmann::json;
namespace http = boost::beast::http;

namespace {

constexpr std::size_t max_artifact_blob = 1024 * 1024;  // payloads, bundles: a few KiB in practice
constexpr std::size_t max_referrers = 64;               // entries of a referrers list looked at
constexpr std::size_t max_layers = 16;                  // signature layers looked at per manifest

// A layer a container runtime unpacks as a filesystem: what makes an image runnable.
bool is_filesystem_layer(std::string_view media_type) {
  return media_type.starts_with("application/vnd.oci.image.layer.") ||
         media_type.starts_with("application/vnd.docker.image.rootfs.");
}

// A manifest that is itself evidence (a signature, attestation or SBOM artifact)
// is not asked to be signed in turn. What marks one (a subject, an artifact type, a
// signature layer) is written by whoever pushed it, so a manifest with a layer a
// runtime would unpack is an image, whatever else it says: adding a subject to an
// unsigned image must not exempt it.
bool is_artifact(const policy::ArtifactManifest& m) {
  for (const auto& layer : m.layers)
    if (is_filesystem_layer(layer.media_type)) return false;
  const auto& t = m.artifact_type;
  if (m.subject) return true;
  if (t.rfind("application/vnd.dev.cosign", 0) == 0 || t.rfind(policy::bundle_media_type_prefix, 0) == 0 ||
      t == policy::dsse_envelope_media_type || t == policy::notation::signature_artifact_type ||
      policy::is_sbom_media_type(t))
    return true;
  for (const auto& layer : m.layers)
    if (layer.media_type == policy::simple_signing_media_type || layer.media_type == policy::dsse_envelope_media_type ||
        layer.media_type.rfind(policy::bundle_media_type_prefix, 0) == 0)
      return true;
  return false;
}

std::string joined(const std::vector<std::string>& parts, std::size_t at_most = 3) {
  std::string out;
  for (std::size_t i = 0; i < parts.size() && i < at_most; ++i) out += (i ? "; " : "") + parts[i];
  if (parts.size() > at_most) out += "; and " + std::to_string(parts.size() - at_most) + " more";
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------
// Finding and verifying

struct Signals::Lookup {
  registry::Upstream& upstream;
  const std::string& repository;
  const Digest& digest;
  const policy::Policy& policy;
  const policy::Scope& scope;
  Signals& self;
  std::vector<policy::PublicKey> keys;
  std::vector<policy::PublicKey> provenance_keys;
  std::string unreachable;  // set when the upstream failed and the cache had nothing

  // "sha256-<hex>": cosign's tags for the digest's artifacts start with it, and it is
  // the referrers API's fallback tag.
  std::string tag_base() const { return std::string(digest.algorithm_name()) + "-" + std::string(digest.hex()); }

  enum class Found { yes, absent, unavailable };

  void count(unsigned status, std::string_view error = {}) {
    self.metrics_.count_upstream(upstream.settings().name, status, error);
  }

  registry::UpstreamRequest get(std::string target, std::string accept) {
    registry::UpstreamRequest request;
    request.target = std::move(target);
    request.scope = "repository:" + repository + ":pull";
    request.headers = {{"Accept", std::move(accept)}};
    return request;
  }

  // Manifest bytes by digest: the cache (from any repository: the digest is the
  // content), else the manifest source.
  asio::awaitable<std::optional<std::string>> manifest(const Digest& d) {
    if (auto cached = self.manifests_.cached(d)) co_return cached->bytes;
    ManifestSource::Request request{upstream, repository, registry::Reference(d), {}, std::nullopt};
    auto fetched = co_await self.manifests_.fetch(request);
    if (auto* m = fetched.fetched()) co_return m->record->bytes;
    if (fetched.failure()->kind == ManifestFailure::Kind::unreachable) unreachable = fetched.failure()->detail;
    co_return std::nullopt;
  }

  // Manifest bytes by tag: the manifest source when the upstream answers (the tag
  // stored with the manifest), else the cached tag; absent when the upstream says
  // there is no such tag, unavailable when what it sent is not the manifest.
  asio::awaitable<std::pair<Found, std::string>> manifest_by_tag(const std::string& tag) {
    const auto& name = upstream.settings().name;
    if (!self.offline_) {
      auto parsed = registry::Tag::parse(tag);
      if (!parsed) co_return std::pair{Found::absent, std::string()};
      ManifestSource::Request request{upstream, repository, registry::Reference(std::move(*parsed)), {}, std::nullopt};
      auto fetched = co_await self.manifests_.fetch(request);
      if (auto* m = fetched.fetched()) co_return std::pair{Found::yes, m->record->bytes};
      using Kind = ManifestFailure::Kind;
      const auto& failure = *fetched.failure();
      if (failure.kind == Kind::answered && failure.upstream_status == 404)
        co_return std::pair{Found::absent, std::string()};
      if (failure.kind == Kind::mismatch || failure.kind == Kind::invalid || failure.kind == Kind::too_large)
        co_return std::pair{Found::unavailable, std::string()};
      if (failure.kind == Kind::unreachable) unreachable = failure.detail;
    }
    if (auto cached = self.meta_.get_tag(name, repository, tag))
      if (auto m = self.manifests_.cached(cached->digest)) co_return std::pair{Found::yes, m->bytes};
    co_return std::pair{self.offline_ ? Found::absent : Found::unavailable, std::string()};
  }

  // A small blob (payload, bundle): the blob store, else the upstream (verified,
  // stored like any blob). Nothing larger than max_artifact_blob is read, whatever
  // size the manifest names (a cached layer of gigabytes may have the digest it
  // names); `problem` says why there are no bytes.
  asio::awaitable<std::optional<std::string>> blob(const Digest& d, std::int64_t size, std::string& problem) {
    const auto too_large = [&] {
      problem = "is larger than the " + std::to_string(max_artifact_blob) + " bytes a signature's blob may have";
      return std::nullopt;
    };
    problem = "could not be fetched";
    if (size < 0 || static_cast<std::uint64_t>(size) > max_artifact_blob) co_return too_large();
    if (auto opened = self.blobs_.open(d)) {
      if (opened->size > max_artifact_blob) co_return too_large();
      std::string bytes(opened->size, '\0');
      std::size_t done = 0;
      while (done < bytes.size()) {
        auto n = ::pread(opened->file.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
        if (n <= 0) co_return std::nullopt;
        done += static_cast<std::size_t>(n);
      }
      co_return bytes;
    }
    if (self.offline_) co_return std::nullopt;
    try {
      auto request = get("/v2/" + repository + "/blobs/" + d.str(), "*/*");
      auto response = co_await upstream.send(std::move(request));
      if (!response->held()) count(response->status());
      if (response->status() != 200) co_return std::nullopt;
      if (auto length = response->content_length(); length && *length > max_artifact_blob) co_return too_large();
      auto bytes = co_await registry::read_body(*response, max_artifact_blob);
      if (registry::digest_of(d.algorithm(), bytes) != d) co_return std::nullopt;
      try {
        auto temp = self.blobs_.create_temp();
        std::size_t done = 0;
        while (done < bytes.size()) {
          auto n = ::write(temp.file.get(), bytes.data() + done, bytes.size() - done);
          if (n <= 0) {
            self.blobs_.discard(temp);
            co_return bytes;  // verified; only not cached (disk full)
          }
          done += static_cast<std::size_t>(n);
        }
        self.blobs_.publish(temp, d);
        auto now = self.now_ms();
        self.meta_.put_blob(d, cache::BlobRecord{bytes.size(), now, now});
      } catch (const std::system_error&) {
        // Not cached (disk full, too many files): the check still goes on.
      }
      co_return bytes;
    } catch (const registry::UpstreamError& e) {
      count(0, e.what());
      unreachable = e.what();
    }
    co_return std::nullopt;
  }

  // The referrers list: the API, else (404: not supported) its fallback tag. Cached
  // under the mirror's own key for referrers answers, for offline use.
  asio::awaitable<std::pair<Found, std::string>> referrers(std::string& where) {
    std::string key = referrers_cache_key(upstream.settings().name, repository, digest);
    if (!self.offline_) {
      try {
        auto request = get("/v2/" + repository + "/referrers/" + digest.str(), "application/vnd.oci.image.index.v1+json");
        auto response = co_await upstream.send(std::move(request));
        if (!response->held()) count(response->status());
        if (response->status() == 200) {
          auto body = co_await registry::read_body(*response, 4 * 1024 * 1024);
          self.meta_.put_response(
              key, cache::CachedResponse{std::string(response->headers()[http::field::content_type]), body, self.now_ms()});
          where = "the referrers API";
          co_return std::pair{Found::yes, std::move(body)};
        }
        if (response->status() != 404) {
          if (auto cached = self.meta_.get_response(key)) {
            where = "the referrers API (cached)";
            co_return std::pair{Found::yes, cached->body};
          }
        }
      } catch (const registry::UpstreamError& e) {
        count(0, e.what());
        unreachable = e.what();
        if (auto cached = self.meta_.get_response(key)) {
          where = "the referrers API (cached)";
          co_return std::pair{Found::yes, cached->body};
        }
      }
    } else if (auto cached = self.meta_.get_response(key)) {
      where = "the referrers API (cached)";
      co_return std::pair{Found::yes, cached->body};
    }
    const std::string tag = tag_base();
    where = "tag " + tag;
    auto found = co_await manifest_by_tag(tag);
    co_return found;
  }
};

namespace {

// Referrer entries of an OCI index: (digest, artifactType).
std::vector<std::pair<Digest, std::string>> referrer_entries(const std::string& index_json) {
  std::vector<std::pair<Digest, std::string>> out;
  json index = json::parse(index_json, nullptr, false);
  if (!index.is_object()) return out;
  auto manifests = index.find("manifests");
  if (manifests == index.end() || !manifests->is_array()) return out;
  for (const auto& entry : *manifests) {
    if (out.size() >= max_referrers) break;
    if (!entry.is_object()) continue;
    auto d = entry.find("digest");
    if (d == entry.end() || !d->is_string()) continue;
    auto digest = Digest::parse(d->get<std::string>());
    if (!digest) continue;
    std::string type;
    if (auto t = entry.find("artifactType"); t != entry.end() && t->is_string()) type = t->get<std::string>();
    out.emplace_back(*digest, std::move(type));
  }
  return out;
}

}  // namespace

asio::awaitable<cache::SignalRecord> Signals::examine(Lookup& lookup, const cache::ManifestRecord& manifest) {
  cache::SignalRecord record;
  record.policy_version = lookup.policy.version;
  record.checked_at_ms = now_ms();
  auto parsed = policy::parse_artifact_manifest(manifest.bytes);
  if (auto* m = std::get_if<policy::ArtifactManifest>(&parsed); m && is_artifact(*m)) {
    record.artifact = true;
    co_return record;
  }
  const bool want_signature = lookup.scope.signatures.has_value();
  const bool want_sbom = lookup.scope.sbom.has_value();
  const bool want_provenance = lookup.scope.provenance.has_value();
  bool provenance_found = false;
  std::vector<std::string> provenance_failures;  // one line per attestation that did not pass
  const auto& digest = lookup.digest.str();
  std::vector<std::string> failures;  // one line per signature that did not pass
  std::vector<std::string> looked;    // where signatures were looked for
  bool signed_ok = false, sbom_found = false;
  std::string sbom_where;

  auto take = [&](const policy::SignatureCheck& check, const std::string& where) {
    if (check.result == policy::SignatureCheck::Result::valid) {
      if (!signed_ok) {
        signed_ok = true;
        record.key = check.key;
        record.signature_detail = check.key.starts_with("keyless ") || check.key.starts_with("notation ")
                                      ? check.detail + "; found in " + where
                                      : "cosign signature found in " + where;
      }
    } else {
      failures.push_back(where + ": " + check.detail);
    }
  };
  // A provenance statement whose signature `signer` verified: held to the scope's
  // conditions.
  auto judge_provenance = [&](const std::string& statement, const std::string& signer, const std::string& where) {
    auto read = policy::read_provenance(statement);
    if (auto* error = std::get_if<std::string>(&read)) {
      provenance_failures.push_back(where + ": signed by " + signer + ", but " + *error);
      return;
    }
    const auto& provenance = std::get<policy::Provenance>(read);
    const std::string what = policy::describe_provenance(provenance);
    if (auto unmet = policy::provenance_unmet(*lookup.scope.provenance, provenance); !unmet.empty()) {
      provenance_failures.push_back(where + ": " + what + ", signed by " + signer + ", but " + unmet);
      return;
    }
    provenance_found = true;
    record.provenance_detail = "provenance: " + what + ", signed by " + signer + "; found in " + where;
  };
  // A Sigstore bundle or a bare DSSE envelope (`bytes`) holding SLSA provenance about
  // the digest, verified with the provenance's keys, or keyless for its identities.
  auto check_provenance = [&](const std::string& bytes, bool is_bundle, const std::string& where) {
    const auto& signers = lookup.scope.provenance->signers;
    if (is_bundle) {
      auto parsed = policy::sigstore::Bundle::parse(bytes);
      if (auto* b = std::get_if<policy::sigstore::Bundle>(&parsed); b && !b->certificates.empty()) {
        auto check = policy::verify_keyless_signature(lookup.policy, signers, *b, digest, std::nullopt,
                                                      policy::Statement::provenance);
        if (check.result == policy::SignatureCheck::Result::valid && b->dsse_envelope)
          judge_provenance(b->dsse_envelope->payload, check.key, where);
        else
          provenance_failures.push_back(where + ": " + check.detail);
        return;
      }
    }
    auto check = is_bundle ? policy::verify_bundle(bytes, digest, lookup.provenance_keys)
                           : policy::verify_dsse_envelope(bytes, digest, lookup.provenance_keys);
    if (check.result != policy::SignatureCheck::Result::valid) {
      provenance_failures.push_back(where + ": " + check.detail);
      return;
    }
    // Verified: the statement is the envelope's payload.
    auto document = json::parse(bytes, nullptr, false);
    const json* envelope = &document;
    if (is_bundle && document.is_object() && document.contains("dsseEnvelope")) envelope = &document["dsseEnvelope"];
    std::string statement;
    if (!envelope->is_object() || !envelope->contains("payload") || !(*envelope)["payload"].is_string() ||
        !registry::base64_decode((*envelope)["payload"].get<std::string>(), statement)) {
      provenance_failures.push_back(where + ": the envelope's payload cannot be read");
      return;
    }
    judge_provenance(statement, "key " + check.key, where);
  };
  // cosign's legacy keyless signature: the layer's annotations read as the bundle
  // they stand for, verified for the scope's identities, then what the payload names.
  auto keyless_simple_signing = [&](const std::string& payload, const policy::ArtifactLayer& layer) {
    auto bundle = policy::bundle_of_cosign_annotations(
        {layer.signature_base64, layer.certificate_pem, layer.chain_pem, layer.rekor_bundle}, payload);
    if (auto* error = std::get_if<std::string>(&bundle))
      return policy::SignatureCheck{policy::SignatureCheck::Result::malformed, {}, *error, {}};
    auto check = policy::verify_keyless_signature(lookup.policy, *lookup.scope.signatures,
                                                  std::get<policy::sigstore::Bundle>(bundle), digest, payload);
    if (check.result != policy::SignatureCheck::Result::valid) return check;
    return policy::check_simple_signing_claims(payload, digest, check);
  };
  // The envelope layers of a Notation signature manifest, verified with the scope's
  // Notation statements.
  auto check_notation_manifest = [&](const std::string& bytes, const std::string& where) -> asio::awaitable<void> {
    auto artifact = policy::parse_artifact_manifest(bytes);
    if (auto* error = std::get_if<std::string>(&artifact)) {
      failures.push_back(where + ": " + *error);
      co_return;
    }
    if (lookup.scope.signatures->notation.empty()) {
      failures.push_back(where + ": a Notation signature, but the scope trusts no Notation signer "
                                 "(signatures.notation)");
      co_return;
    }
    std::size_t n = 0;
    for (const auto& layer : std::get<policy::ArtifactManifest>(artifact).layers) {
      if (signed_ok || ++n > max_layers) break;
      if (layer.media_type != policy::notation::jws_media_type && layer.media_type != policy::notation::cose_media_type)
        continue;
      std::string problem;
      auto envelope = co_await lookup.blob(layer.digest, layer.size, problem);
      if (!envelope) {
        failures.push_back(where + ": its envelope " + layer.digest.str() + " " + problem);
        continue;
      }
      auto checked = policy::verify_notation_for(lookup.policy, *lookup.scope.signatures, layer.media_type, *envelope,
                                                 lookup.digest, clock_());
      if (checked.check.result == policy::SignatureCheck::Result::valid && !signed_ok && checked.valid_until)
        record.signature_valid_until_ms = policy::ms_of(*checked.valid_until) + 1;
      take(checked.check, where);
    }
  };
  // The simple-signing layers of a cosign signature manifest.
  auto check_signature_manifest = [&](const std::string& bytes, const std::string& where) -> asio::awaitable<void> {
    auto artifact = policy::parse_artifact_manifest(bytes);
    if (auto* error = std::get_if<std::string>(&artifact)) {
      failures.push_back(where + ": " + *error);
      co_return;
    }
    std::size_t n = 0;
    for (const auto& layer : std::get<policy::ArtifactManifest>(artifact).layers) {
      if (signed_ok || ++n > max_layers) break;
      if (layer.media_type != policy::simple_signing_media_type) continue;
      if (layer.signature_base64.empty()) {
        failures.push_back(where + ": a signature layer without its " +
                           std::string(policy::cosign_signature_annotation) + " annotation");
        continue;
      }
      const Digest& payload_digest = layer.digest;
      std::string problem;
      auto payload = co_await lookup.blob(payload_digest, layer.size, problem);
      if (!payload) {
        failures.push_back(where + ": its payload " + layer.digest.str() + " " + problem);
        continue;
      }
      if (!layer.certificate_pem.empty()) {
        take(keyless_simple_signing(*payload, layer), where + " (keyless)");
        continue;
      }
      take(policy::verify_simple_signing(*payload, layer.signature_base64, digest, lookup.keys), where);
    }
  };

  if (want_signature) {
    std::string tag = lookup.tag_base() + ".sig";
    looked.push_back("tag " + tag);
    auto [found, bytes] = co_await lookup.manifest_by_tag(tag);
    const std::string where = "tag " + tag;
    if (found == Lookup::Found::yes) co_await check_signature_manifest(bytes, where);
  }
  if ((want_signature && !signed_ok) || (want_sbom && !sbom_found) || (want_provenance && !provenance_found)) {
    std::string where;
    auto [found, index] = co_await lookup.referrers(where);
    looked.push_back(where);
    if (found == Lookup::Found::yes) {
      for (const auto& [referrer, type] : referrer_entries(index)) {
        const bool sig = type == policy::cosign_sig_artifact_type;
        const bool notary = type == policy::notation::signature_artifact_type;
        const bool bundle = type.rfind(policy::bundle_media_type_prefix, 0) == 0;
        if (want_sbom && !sbom_found && policy::is_sbom_media_type(type)) {
          sbom_found = true;
          sbom_where = "referrer " + referrer.str() + " (" + type + ") via " + where;
          continue;
        }
        if (!sig && !bundle && !notary) continue;
        if ((sig || notary) && (signed_ok || !want_signature)) continue;
        auto bytes = co_await lookup.manifest(referrer);
        std::string at = "referrer " + referrer.str() + " via " + where;
        if (!bytes) {
          if (want_signature && !signed_ok) failures.push_back(at + ": could not be fetched");
          continue;
        }
        if (sig) {
          co_await check_signature_manifest(*bytes, at);
          continue;
        }
        if (notary) {
          co_await check_notation_manifest(*bytes, at);
          continue;
        }
        auto artifact = policy::parse_artifact_manifest(*bytes);
        auto* m = std::get_if<policy::ArtifactManifest>(&artifact);
        if (!m) {
          failures.push_back(at + ": " + std::get<std::string>(artifact));
          continue;
        }
        for (const auto& layer : m->layers) {
          if (layer.media_type.rfind(policy::bundle_media_type_prefix, 0) != 0) continue;
          const Digest& bundle_digest = layer.digest;
          std::string problem;
          auto bundle_bytes = co_await lookup.blob(bundle_digest, layer.size, problem);
          if (!bundle_bytes) {
            failures.push_back(at + ": its bundle " + layer.digest.str() + " " + problem);
            break;
          }
          auto check = policy::verify_bundle(*bundle_bytes, digest, lookup.keys);
          if (policy::is_provenance_predicate(check.predicate_type)) {
            if (want_provenance && !provenance_found) check_provenance(*bundle_bytes, true, at + " (bundle)");
            break;
          }
          // A bundle with a Fulcio certificate is keyless: verified with the trusted
          // roots and identities, not the keys.
          auto keyless = policy::sigstore::Bundle::parse(*bundle_bytes);
          auto* keyless_bundle = std::get_if<policy::sigstore::Bundle>(&keyless);
          if (keyless_bundle && !keyless_bundle->certificates.empty() && want_signature && !signed_ok &&
              !policy::is_sbom_predicate(check.predicate_type)) {
            take(policy::verify_keyless_signature(lookup.policy, *lookup.scope.signatures, *keyless_bundle, digest,
                                                  std::nullopt),
                 at + " (keyless bundle)");
            break;
          }
          if (policy::is_sbom_predicate(check.predicate_type)) {
            if (!sbom_found) {
              sbom_found = true;
              sbom_where = "SBOM attestation " + referrer.str() + " (" + check.predicate_type + ") via " + where;
            }
          } else if (want_signature && !signed_ok) {
            if (check.result == policy::SignatureCheck::Result::valid &&
                check.predicate_type != policy::cosign_sign_predicate) {
              check.result = policy::SignatureCheck::Result::wrong_type;
              check.detail = "signed by " + check.key + ", but the statement's predicate is " + check.predicate_type +
                             ", not an image signature";
            }
            take(check, at + " (bundle)");
          }
          break;
        }
      }
    }
  }
  if (want_sbom && !sbom_found) {
    for (const char* suffix : {".sbom", ".att"}) {
      std::string tag = lookup.tag_base() + suffix;
      auto [found, bytes] = co_await lookup.manifest_by_tag(tag);
      if (found != Lookup::Found::yes) continue;
      auto artifact = policy::parse_artifact_manifest(bytes);
      auto* m = std::get_if<policy::ArtifactManifest>(&artifact);
      if (!m) continue;
      for (const auto& layer : m->layers) {
        if (policy::is_sbom_media_type(layer.media_type) || policy::is_sbom_predicate(layer.predicate_type)) {
          sbom_found = true;
          sbom_where = "tag " + tag + " (" + (layer.predicate_type.empty() ? layer.media_type : layer.predicate_type) +
                       ")";
          break;
        }
      }
      if (sbom_found) break;
    }
  }

  if (want_provenance && !provenance_found) {
    // cosign's legacy attestation tag: DSSE envelopes, the predicate in an annotation.
    std::string tag = lookup.tag_base() + ".att";
    auto [found, bytes] = co_await lookup.manifest_by_tag(tag);
    if (found == Lookup::Found::yes) {
      auto artifact = policy::parse_artifact_manifest(bytes);
      if (auto* m = std::get_if<policy::ArtifactManifest>(&artifact)) {
        std::size_t n = 0;
        for (const auto& layer : m->layers) {
          if (provenance_found || ++n > max_layers) break;
          if (layer.media_type != policy::dsse_envelope_media_type) continue;
          if (!layer.predicate_type.empty() && !policy::is_provenance_predicate(layer.predicate_type)) continue;
          std::string problem;
          auto envelope = co_await lookup.blob(layer.digest, layer.size, problem);
          if (!envelope) {
            provenance_failures.push_back("tag " + tag + ": its envelope " + layer.digest.str() + " " + problem);
            continue;
          }
          check_provenance(*envelope, false, "tag " + tag);
        }
      } else {
        provenance_failures.push_back("tag " + tag + ": " + std::get<std::string>(artifact));
      }
    }
  }

  if (want_provenance) {
    if (provenance_found) {
      record.provenance = "valid";
    } else if (!provenance_failures.empty()) {
      record.provenance = "invalid";
      record.provenance_detail = "no acceptable provenance for " + digest + ": " + joined(provenance_failures);
    } else {
      record.provenance = "missing";
      record.provenance_detail = "no SLSA provenance attached to " + digest + " (looked at the referrers and tag " +
                                 lookup.tag_base() + ".att)";
      if (!lookup.unreachable.empty())
        record.provenance_detail += "; the upstream could not be asked: " + lookup.unreachable;
    }
  }
  if (want_signature) {
    if (signed_ok) {
      record.signature = "valid";
    } else if (!failures.empty()) {
      record.signature = "invalid";
      record.signature_detail = "no valid signature for " + digest + ": " + joined(failures);
    } else {
      record.signature = "missing";
      std::string places;
      for (std::size_t i = 0; i < looked.size(); ++i) places += (i ? ", " : "") + looked[i];
      record.signature_detail = "no signature found for " + digest + " (looked at " + places + ")";
      if (!lookup.unreachable.empty())
        record.signature_detail += "; the upstream could not be asked: " + lookup.unreachable;
    }
  }
  if (want_sbom) {
    if (sbom_found) {
      record.sbom = "found";
      record.sbom_detail = "SBOM attached: " + sbom_where;
    } else {
      record.sbom = "missing";
      record.sbom_detail = "no SBOM attached to " + digest + " (looked at the referrers and tags " +
                           lookup.tag_base() + ".sbom and .att)";
      if (!lookup.unreachable.empty()) record.sbom_detail += "; the upstream could not be asked: " + lookup.unreachable;
    }
  }
  co_return record;
}

void Signals::count(const cache::SignalRecord& record) {
  if (record.artifact) {
    metrics_.signal_checks.with({"signature", "artifact"}).inc();
    return;
  }
  if (!record.signature.empty()) metrics_.signal_checks.with({"signature", record.signature}).inc();
  if (!record.sbom.empty()) metrics_.signal_checks.with({"sbom", record.sbom}).inc();
  if (!record.provenance.empty()) metrics_.signal_checks.with({"provenance", record.provenance}).inc();
}

asio::awaitable<void> Signals::prepare(registry::Upstream& upstream, const std::string& repository,
                                       const Digest& digest, const cache::ManifestRecord& manifest,
                                       const policy::Policy& policy, const policy::Scope& scope) {
  if (!scope.signatures && !scope.sbom && !scope.provenance) co_return;
  auto now = now_ms();
  auto parents = meta_.referenced_by(digest, max_signal_parents);
  auto answered = [&] {
    if (auto own = meta_.get_signals(digest, scope.name); own && signals_current(*own, policy, scope, now))
      return true;
    // An index that lists this digest and answers every requirement covers it.
    for (auto& parent : parents) {
      auto record = meta_.get_signals(parent, scope.name);
      if (record && !record->artifact && signals_current(*record, policy, scope, now) &&
          (!scope.signatures || record->signature == "valid") && (!scope.sbom || record->sbom == "found") &&
          (!scope.provenance || record->provenance == "valid"))
        return true;
    }
    return false;
  };
  if (answered()) co_return;
  // One look per digest at a time: a rollout's concurrent first pulls wait for the
  // first one's findings instead of each asking the upstream for the same artifacts.
  const std::string flight_key = upstream.settings().name + "\n" + digest.str() + "\n" + policy.version + "\n" +
                                 scope.name;
  auto joined = flights_.join(flight_key);
  if (!joined.leader) {
    co_await joined.flight->wait();
    if (answered()) co_return;
    joined = flights_.join(flight_key);  // the first look failed to record: look again
  }
  std::optional<cache::FlightLeader<>> leading;
  if (joined.leader) leading.emplace(flights_, flight_key, joined.flight);
  Lookup lookup{upstream, repository, digest, policy, scope, *this, {}, {}, {}};
  if (scope.signatures)
    for (const auto& name : scope.signatures->keys)
      if (auto* key = policy.key_named(name); key && key->key) lookup.keys.push_back(*key->key);
  if (scope.provenance)
    for (const auto& name : scope.provenance->signers.keys)
      if (auto* key = policy.key_named(name); key && key->key) lookup.provenance_keys.push_back(*key->key);
  auto record = co_await examine(lookup, manifest);
  meta_.put_signals(digest, scope.name, record);
  count(record);
  if (record.artifact ||
      ((!scope.signatures || signature_ok(record)) && (!scope.sbom || sbom_ok(record)) &&
       (!scope.provenance || provenance_ok(record))))
    co_return;
  // Not answered by its own artifacts: the indexes that list it may be signed.
  for (auto& parent : parents) {
    auto existing = meta_.get_signals(parent, scope.name);
    if (existing && signals_current(*existing, policy, scope, now)) continue;
    auto parent_manifest = meta_.get_manifest(parent);
    if (!parent_manifest) continue;
    Lookup parent_lookup{upstream, repository, parent, policy, scope, *this, lookup.keys, lookup.provenance_keys, {}};
    auto parent_record = co_await examine(parent_lookup, *parent_manifest);
    meta_.put_signals(parent, scope.name, parent_record);
    count(parent_record);
  }
}

}  // namespace pullgate::proxy
