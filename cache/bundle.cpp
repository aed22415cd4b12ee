// Bundle export and import. Paths on disk come only from validated digests (the blob
// store's path_for, and temp names the blob store makes): no entry name of an archive
// ever becomes a path.
#include "cache/bundle.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <system_error>

#include <nlohmann/json.hpp>

#include "cache/blob_store.hpp"
#include "cache/docker_archive.hpp"
#include "cache/tar.hpp"
#include "registry/base64.hpp"
#include "registry/names.hpp"
#include "registry/text.hpp"

namespace pullgate::cache {
namespace {

using json = nlohmann::json;

constexpr std::size_t chunk_bytes = 1024 * 1024;
constexpr std::size_t max_index_bytes = registry::max_manifest_bytes;
constexpr std::size_t max_evidence_bytes = 64 * 1024 * 1024;
constexpr const char* evidence_path = "pullgate/evidence.json";
constexpr const char* signature_path = "pullgate/signature.json";
constexpr const char* statement_type = "pullgate bundle signature";
constexpr std::size_t max_signature_bytes = 64 * 1024;
constexpr const char* ref_name = "org.opencontainers.image.ref.name";
// cosign's tags for a digest's signature, attestation and SBOM, and the referrers
// API's fallback tag (an index of the referrers).
constexpr const char* artifact_tag_suffixes[] = {".sig", ".att", ".sbom", ""};

// ---- evidence records as JSON (the bundle's own format, version 1)

json to_json(const VerdictRecord& r) {
  json j{{"decision", r.decision}, {"source", r.source}, {"reasons", r.reasons}, {"policy_version", r.policy_version},
         {"set_by", r.set_by}, {"evaluated_at_ms", r.evaluated_at_ms}, {"scope", r.scope}};
  if (r.expires_at_ms) j["expires_at_ms"] = *r.expires_at_ms;
  return j;
}

VerdictRecord verdict_from(const json& j) {
  VerdictRecord r;
  r.decision = j.at("decision").get<std::string>();
  r.source = j.at("source").get<std::string>();
  r.reasons = j.at("reasons").get<std::vector<std::string>>();
  r.policy_version = j.value("policy_version", "");
  r.set_by = j.value("set_by", "");
  r.evaluated_at_ms = j.at("evaluated_at_ms").get<std::int64_t>();
  r.scope = j.value("scope", "");
  if (j.contains("expires_at_ms")) r.expires_at_ms = j.at("expires_at_ms").get<std::int64_t>();
  return r;
}

json to_json(const ReportRecord& r) {
  return json{{"summary_json", r.summary_json}, {"scanner", r.scanner}, {"scanned_at_ms", r.scanned_at_ms},
              {"imported_at_ms", r.imported_at_ms}};
}

ReportRecord report_from(const json& j) {
  return ReportRecord{j.at("summary_json").get<std::string>(), j.at("scanner").get<std::string>(),
                      j.at("scanned_at_ms").get<std::int64_t>(), j.at("imported_at_ms").get<std::int64_t>()};
}

json to_json(const ExceptionRecord& r) {
  json j{{"id", r.id},         {"digest", r.digest}, {"repository", r.repository}, {"upstream", r.upstream},
         {"reason", r.reason}, {"who", r.who},       {"created_at_ms", r.created_at_ms}};
  if (r.expires_at_ms) j["expires_at_ms"] = *r.expires_at_ms;
  return j;
}

ExceptionRecord exception_from(const json& j) {
  ExceptionRecord r;
  r.id = j.at("id").get<std::string>();
  r.digest = j.at("digest").get<std::string>();
  r.repository = j.at("repository").get<std::string>();
  r.upstream = j.at("upstream").get<std::string>();
  r.reason = j.at("reason").get<std::string>();
  r.who = j.at("who").get<std::string>();
  r.created_at_ms = j.at("created_at_ms").get<std::int64_t>();
  if (j.contains("expires_at_ms")) r.expires_at_ms = j.at("expires_at_ms").get<std::int64_t>();
  return r;
}

std::string blob_entry_name(const Digest& digest) {
  return "blobs/" + std::string(digest.algorithm_name()) + "/" + std::string(digest.hex());
}

registry::ParsedManifest parse_or_throw(const Digest& digest, std::string_view bytes, std::string_view media_type) {
  auto parsed = registry::parse_manifest(bytes, media_type);
  if (auto* error = std::get_if<std::string>(&parsed))
    throw BundleError("manifest " + digest.str() + " does not parse: " + *error);
  return std::get<registry::ParsedManifest>(std::move(parsed));
}

// ---- export

// What the bundle will hold, gathered (and checked) before a byte is written.
struct Layout {
  json index = json::array();
  std::map<Digest, std::string> manifests;  // bytes, from LMDB
  std::map<Digest, std::uint64_t> blobs;    // sizes, from the blob store
  json evidence{{"version", 1},
                {"verdicts", json::object()},
                {"reports", json::object()},
                {"exceptions", json::array()},
                {"referrers", json::array()}};
  std::set<std::string> exported_exceptions;
};

class Exporter {
 public:
  Exporter(MetaStore& meta, const BlobStore& store, BundleSummary& summary)
      : meta_(meta), store_(store), summary_(summary), exceptions_(meta.list_exceptions()) {}

  void image(const BundleImage& image) {
    std::optional<Digest> digest = image.digest;
    std::string media_type;
    if (image.tag) {
      auto tag = meta_.get_tag(image.upstream, image.repository, *image.tag);
      if (!tag) throw BundleError(image.reference + " is not cached (pull it through the mirror first)");
      digest = tag->digest;
    }
    auto record = meta_.get_manifest(*digest);
    if (!record || !meta_.seen_in(*digest, image.upstream, image.repository))
      throw BundleError(image.reference + " is not cached (pull it through the mirror first)");
    manifest(image, *digest, *record);
    json annotations{{ref_name, image.reference},
                     {"io.pullgate.upstream", image.upstream},
                     {"io.pullgate.repository", image.repository}};
    if (image.tag) annotations["io.pullgate.tag"] = *image.tag;
    layout.index.push_back(json{{"mediaType", record->media_type},
                                {"digest", digest->str()},
                                {"size", record->bytes.size()},
                                {"annotations", annotations}});
    ++summary_.images;
  }

  Layout layout;

 private:
  // The manifest, what it references (an index child not cached is left out with a
  // note) and the evidence about it.
  void manifest(const BundleImage& image, const Digest& digest, const ManifestRecord& record) {
    if (layout.manifests.contains(digest)) return;
    auto parsed = parse_or_throw(digest, record.bytes, record.media_type);
    for (const auto& blob : parsed.blobs) {
      auto opened = store_.open(blob.digest);
      if (!opened)
        throw BundleError(image.reference + ": blob " + blob.digest.str() +
                          " is not cached (pull the image through the mirror first)");
      layout.blobs.emplace(blob.digest, opened->size);
    }
    layout.manifests.emplace(digest, record.bytes);
    ++summary_.manifests;
    for (const auto& child : parsed.children) {
      auto child_record = meta_.get_manifest(child.digest);
      if (!child_record) {
        std::string platform = child.platform ? " (" + child.platform->os + "/" + child.platform->architecture + ")" : "";
        summary_.notes.push_back(image.reference + ": index child " + child.digest.str() + platform +
                                 " is not cached, left out");
        continue;
      }
      manifest(image, child.digest, *child_record);
    }
    evidence(image, digest);
  }

  void evidence(const BundleImage& image, const Digest& digest) {
    auto standing = meta_.get_verdicts_in(digest, "").manual;
    if (standing && (standing->source == "manual" || standing->source == "upstream"))
      layout.evidence["verdicts"][digest.str()] = to_json(*standing);
    if (auto report = meta_.get_report(digest)) layout.evidence["reports"][digest.str()] = to_json(*report);
    for (const auto& e : exceptions_)
      if (e.digest == digest.str() && layout.exported_exceptions.insert(e.id).second)
        layout.evidence["exceptions"].push_back(to_json(e));

    // Signatures, attestations, SBOMs: through the cached referrers answer and cosign's tags.
    std::vector<std::pair<Digest, std::optional<std::string>>> artifacts;
    auto key = referrers_response_key(image.upstream, image.repository, digest);
    if (auto answer = meta_.get_response(key)) {
      layout.evidence["referrers"].push_back(json{{"upstream", image.upstream},
                                                  {"repository", image.repository},
                                                  {"digest", digest.str()},
                                                  {"content_type", answer->content_type},
                                                  {"body", answer->body},
                                                  {"fetched_at_ms", answer->fetched_at_ms}});
      auto listed = json::parse(answer->body, nullptr, false);
      if (listed.is_object() && listed.contains("manifests") && listed["manifests"].is_array())
        for (const auto& entry : listed["manifests"])
          if (entry.is_object() && entry.contains("digest") && entry["digest"].is_string())
            if (auto d = Digest::parse(entry["digest"].get<std::string>())) artifacts.emplace_back(*d, std::nullopt);
    }
    for (const char* suffix : artifact_tag_suffixes) {
      std::string tag = std::string(digest.algorithm_name()) + "-" + std::string(digest.hex()) + suffix;
      if (auto record = meta_.get_tag(image.upstream, image.repository, tag)) artifacts.emplace_back(record->digest, tag);
    }
    for (const auto& [artifact, tag] : artifacts) this->artifact(image, digest, artifact, tag);
  }

  void artifact(const BundleImage& image, const Digest& subject, const Digest& digest,
                const std::optional<std::string>& tag) {
    auto record = meta_.get_manifest(digest);
    if (!record) {
      summary_.notes.push_back(image.reference + ": artifact " + digest.str() + " of " + subject.str() +
                               " is not cached, left out");
      return;
    }
    auto parsed = registry::parse_manifest(record->bytes, record->media_type);
    auto* manifest = std::get_if<registry::ParsedManifest>(&parsed);
    if (!manifest) return;  // the mirror could not have used it either
    // What the signal look-up read (payloads, bundles) is cached; a config it never
    // needed may not be: the artifact goes without it, as the mirror holds it.
    for (const auto& blob : manifest->blobs)
      if (auto opened = store_.open(blob.digest)) layout.blobs.emplace(blob.digest, opened->size);
    if (!layout.manifests.emplace(digest, record->bytes).second && !tag) return;
    json annotations{{"io.pullgate.upstream", image.upstream},
                     {"io.pullgate.repository", image.repository},
                     {"io.pullgate.artifact-of", subject.str()}};
    if (tag) annotations["io.pullgate.tag"] = *tag;
    layout.index.push_back(json{{"mediaType", record->media_type},
                                {"digest", digest.str()},
                                {"size", record->bytes.size()},
                                {"annotations", annotations}});
    ++summary_.artifacts;
  }

  MetaStore& meta_;
  const BlobStore& store_;
  BundleSummary& summary_;
  std::vector<ExceptionRecord> exceptions_;
};

void copy_blob(tar::Writer& writer, const BlobStore& store, const Digest& digest, std::uint64_t size) {
  auto opened = store.open(digest);
  if (!opened || opened->size != size) throw BundleError("blob " + digest.str() + " changed while it was exported");
  writer.begin_file(blob_entry_name(digest), size);
  std::vector<char> buffer(chunk_bytes);
  for (std::uint64_t left = size; left > 0;) {
    ssize_t n = ::read(opened->file.get(), buffer.data(), std::size_t(std::min<std::uint64_t>(left, buffer.size())));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw BundleError("cannot read blob " + digest.str() + " (" + (n < 0 ? std::strerror(errno) : "short") + ")");
    writer.write(buffer.data(), std::size_t(n));
    left -= std::uint64_t(n);
  }
  writer.end_file();
}

// ---- signature

std::string sha256_of(std::string_view bytes) { return registry::digest_of(registry::DigestAlgorithm::sha256, bytes).str(); }

// The signed entries: what identifies the bundle's contents.
using SignedEntries = std::map<std::string, std::string>;  // entry name -> its sha256

std::string signature_entry(const registry::PrivateKey& key, const SignedEntries& entries) {
  const std::string statement = json{{"type", statement_type}, {"version", 1}, {"entries", entries}}.dump();
  return json{{"version", 1},
              {"key_id", "sha256:" + key.public_key().fingerprint()},
              {"algorithm", key.public_key().algorithm()},
              {"statement", statement},
              {"signature", registry::base64_encode(key.sign(statement))}}
      .dump();
}

// Throws BundleError with one line naming the problem; returns who signed (empty: unsigned).
std::string check_signature(const std::optional<std::string>& signature_text, const SignedEntries& present,
                            const ImportOptions& options) {
  if (!signature_text) {
    if (options.require_signature)
      throw BundleError("the bundle is not signed, and signatures are required (bundle.require_signature)");
    return {};
  }
  auto j = json::parse(*signature_text, nullptr, false);
  auto text = [&](const char* key) -> std::string {
    if (!j.is_object() || !j.contains(key) || !j[key].is_string())
      throw BundleError(std::string(signature_path) + " is malformed: no \"" + key + "\" string");
    return j[key].get<std::string>();
  };
  const std::string key_id = text("key_id"), statement = text("statement"), signature_b64 = text("signature");
  std::string signature;
  if (!registry::base64_decode(signature_b64, signature) || signature.empty())
    throw BundleError(std::string(signature_path) + " is malformed: the signature is not base64");
  const registry::PublicKey* key = nullptr;
  for (const auto& candidate : options.trusted_keys)
    if ("sha256:" + candidate.fingerprint() == key_id) key = &candidate;
  if (!key)
    throw BundleError("signed by key " + key_id.substr(0, 80) + ", which is not among the trusted bundle keys (" +
                      (options.trusted_keys.empty() ? std::string("none configured") : "bundle.trusted_keys") + ")");
  if (!key->verify(statement, signature))
    throw BundleError(std::string(signature_path) + ": the signature does not verify with key " + key->name() +
                      " (the statement or the signature was altered)");
  auto signed_json = json::parse(statement, nullptr, false);
  if (!signed_json.is_object() || !signed_json.contains("type") || signed_json["type"] != statement_type || !signed_json.contains("entries") ||
      !signed_json["entries"].is_object())
    throw BundleError(std::string(signature_path) + ": the signed statement is not a pullgate bundle statement");
  SignedEntries signed_entries;
  for (const auto& [name, digest] : signed_json["entries"].items())
    if (digest.is_string()) signed_entries[name] = digest.get<std::string>();
  for (const auto& [name, digest] : present) {
    auto it = signed_entries.find(name);
    if (it == signed_entries.end()) throw BundleError(name + " is not covered by the bundle's signature");
    if (it->second != digest) throw BundleError(name + " was altered after signing (its sha256 is not the signed one)");
  }
  for (const auto& [name, digest] : signed_entries)
    if (!present.contains(name)) throw BundleError(name + " is signed but missing from the bundle");
  return key->name() + " (" + key_id + ")";
}

// ---- import

// A blob read from the archive into a temp file, its digest verified.
struct Staged {
  std::filesystem::path path;
  std::uint64_t size = 0;
};

// The temp files of one import: removed unless published.
class Staging {
 public:
  explicit Staging(const BlobStore& store) : store_(store) {}
  ~Staging() {
    std::error_code ec;
    for (auto& [digest, staged] : files) std::filesystem::remove(staged.path, ec);
    for (auto& [name, kept] : named) std::filesystem::remove(kept.staged.path, ec);  // adopted ones: already gone
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  void add(tar::Reader& reader, const tar::Entry& entry, const Digest& digest) {
    TempBlob temp = store_.create_temp();
    files.emplace(digest, Staged{temp.path, entry.size});  // removed by the destructor, whatever happens next
    if (copy(reader, temp, digest.algorithm()) != digest)
      throw BundleError(reader.where() + ": content does not match its digest");
  }

  // An entry known by its name only (a docker-archive's layers and config, which
  // manifest.json, read later perhaps, names): kept with its sha256.
  void add_named(tar::Reader& reader, const tar::Entry& entry) {
    TempBlob temp = store_.create_temp();
    auto& kept = named[entry.name] = Named{Staged{temp.path, entry.size}, std::nullopt};
    kept.digest = copy(reader, temp, registry::DigestAlgorithm::sha256);
  }

  // A named entry becomes the blob of its digest (publish, read_small then find it).
  void adopt(const std::string& name) {
    const auto& kept = named.at(name);
    files.emplace(*kept.digest, kept.staged);
  }

  std::string read_small(const Digest& digest, std::size_t limit) const {
    const auto& staged = files.at(digest);
    if (staged.size > limit) throw BundleError("manifest " + digest.str() + " is larger than a manifest may be");
    FileHandle file(::open(staged.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file) throw std::system_error(errno, std::generic_category(), "open " + staged.path.string());
    std::string bytes(staged.size, '\0');
    for (std::size_t done = 0; done < bytes.size();) {
      ssize_t n = ::pread(file.get(), bytes.data() + done, bytes.size() - done, off_t(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::system_error(n < 0 ? errno : EIO, std::generic_category(), "read " + staged.path.string());
      done += std::size_t(n);
    }
    return bytes;
  }

  // Renames the temp file into the blob store (or drops it when the store has the blob).
  void publish(const Digest& digest) {
    auto it = files.find(digest);
    if (!store_.open(digest)) {
      TempBlob temp{it->second.path, FileHandle(::open(it->second.path.c_str(), O_RDONLY | O_CLOEXEC))};
      if (!temp.file) throw std::system_error(errno, std::generic_category(), "open " + temp.path.string());
      store_.publish(temp, digest);
    }
    std::error_code ec;
    std::filesystem::remove(it->second.path, ec);
    files.erase(it);
  }

  struct Named {
    Staged staged;
    std::optional<Digest> digest;
  };
  std::map<Digest, Staged> files;
  std::map<std::string, Named> named;

 private:
  Digest copy(tar::Reader& reader, const TempBlob& temp, registry::DigestAlgorithm algorithm) {
    registry::DigestHasher hasher(algorithm);
    std::vector<char> buffer(chunk_bytes);
    while (auto n = reader.read(buffer.data(), buffer.size())) {
      hasher.update(buffer.data(), n);
      for (std::size_t done = 0; done < n;) {
        ssize_t w = ::write(temp.file.get(), buffer.data() + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) throw std::system_error(errno, std::generic_category(), "write " + temp.path.string());
        done += std::size_t(w);
      }
    }
    return hasher.finish();
  }

  const BlobStore& store_;
};

std::string read_whole(tar::Reader& reader, const tar::Entry& entry, std::size_t limit) {
  if (entry.size > limit) throw BundleError(reader.where() + ": larger than " + std::to_string(limit) + " bytes");
  std::string bytes(entry.size, '\0');
  std::size_t done = 0;
  while (auto n = reader.read(bytes.data() + done, bytes.size() - done)) done += n;
  return bytes;
}

json parse_json(const std::string& text, const std::string& what) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw BundleError(what + " is not a JSON object");
  return j;
}

std::optional<std::string> annotation(const json& descriptor, const char* key) {
  if (!descriptor.contains("annotations") || !descriptor["annotations"].is_object()) return std::nullopt;
  const auto& a = descriptor["annotations"];
  if (!a.contains(key) || !a[key].is_string()) return std::nullopt;
  return a[key].get<std::string>();
}

// Where an index entry goes: its upstream, repository and tag.
struct Placement {
  std::string upstream, repository;
  std::optional<std::string> tag;
  bool artifact = false;  // a signature, attestation or SBOM: its blobs may be partial
};

Placement place(const json& descriptor, const Digest& digest, const ImportOptions& options) {
  const std::string what = "index.json entry " + digest.str();
  Placement p;
  p.artifact = annotation(descriptor, "io.pullgate.artifact-of").has_value();
  auto upstream = options.upstream ? options.upstream : annotation(descriptor, "io.pullgate.upstream");
  if (!upstream) throw BundleError(what + " names no upstream (not a pullgate bundle): give --upstream NAME");
  p.upstream = *upstream;
  if (auto repository = annotation(descriptor, "io.pullgate.repository")) {
    p.repository = *repository;
    p.tag = annotation(descriptor, "io.pullgate.tag");
  } else {
    // A plain OCI archive: ref.name is [HOST/]REPOSITORY:TAG.
    auto name = annotation(descriptor, ref_name);
    if (!name) throw BundleError(what + " has no " + std::string(ref_name) + " annotation to name its repository");
    auto split = docker_archive::split_name(*name);
    if (!split) throw BundleError(what + ": " + std::string(ref_name) + " \"" + registry::printable(*name, 200) + "\" is not REPOSITORY:TAG");
    p.repository = split->repository;
    p.tag = split->tag;
  }
  if (!registry::Repository::parse(p.repository)) throw BundleError(what + ": not a repository name: " + p.repository);
  if (p.tag && !registry::Tag::parse(*p.tag)) throw BundleError(what + ": not a tag: " + *p.tag);
  return p;
}

// Everything checked out: the blobs into place, then the records in one transaction
// (with dry_run, neither: the staged temp files go with `staging`).
BundleSummary publish(MetaStore& meta, Staging& staging, const ImportBatch& batch, const std::set<Digest>& blob_digests,
                      const ImportOptions& options, BundleSummary summary) {
  summary.blobs = blob_digests.size();
  if (options.dry_run) return summary;
  for (const auto& digest : blob_digests) staging.publish(digest);
  try {
    summary.records = meta.import_records(batch);
  } catch (const std::invalid_argument& e) {
    throw BundleError(std::string("a record of the bundle is refused: ") + e.what());
  }
  return summary;
}

// A docker-archive, read whole into `staging` (its files by name) and `manifest_text`:
// each image's config and layers checked (paths inside the archive, each layer's
// sha256 its diff_id), an OCI manifest made for it and tagged under every RepoTags
// name. No evidence: the gate decides these images on their first pull.
BundleSummary import_docker_archive(MetaStore& meta, Staging& staging, const std::string& manifest_text,
                                    const std::map<std::string, std::string>& links, const ImportOptions& options) {
  if (!options.upstream)
    throw BundleError("a docker-archive does not say which upstream its images come from: give --upstream NAME");
  BundleSummary summary;
  ImportBatch batch;
  std::set<Digest> blob_digests;
  // The staged entry an archive path names, through links (a few hops at most).
  auto find = [&](const std::string& path, const std::string& what) -> const std::string& {
    const std::string* name = &path;
    for (int hop = 0; hop < 8 && !staging.named.contains(*name); ++hop) {
      auto link = links.find(*name);
      if (link == links.end()) break;
      name = &link->second;
    }
    if (!staging.named.contains(*name))
      throw BundleError(std::string(docker_archive::manifest_path) + " names " + what + " " + path.substr(0, 200) +
                        ", which the archive does not hold");
    staging.adopt(*name);
    return *name;
  };
  std::set<std::pair<std::string, std::string>> tagged;  // (repository, tag)
  auto images = docker_archive::parse_manifest(manifest_text);
  for (std::size_t i = 0; i < images.size(); ++i) {
    const auto& image = images[i];
    const std::string what = "image " + std::to_string(i + 1) + " of " + docker_archive::manifest_path;
    const auto& config_kept = staging.named.at(find(image.config, "config"));
    if (config_kept.staged.size > registry::max_manifest_bytes)
      throw BundleError(what + ": config " + image.config + " is larger than 4 MiB");
    const docker_archive::Blob config{*config_kept.digest, config_kept.staged.size};
    auto diff_ids = docker_archive::diff_ids(staging.read_small(config.digest, registry::max_manifest_bytes),
                                             what + ": config " + image.config);
    if (diff_ids.size() != image.layers.size())
      throw BundleError(what + ": " + std::to_string(image.layers.size()) + " layers, but its config lists " +
                        std::to_string(diff_ids.size()) + " diff_ids");
    std::vector<docker_archive::Blob> layers;
    for (std::size_t l = 0; l < image.layers.size(); ++l) {
      const auto& kept = staging.named.at(find(image.layers[l], "layer"));
      if (*kept.digest != diff_ids[l])
        throw BundleError(what + ": layer " + image.layers[l] + " has sha256 " + kept.digest->str() +
                          ", not its diff_id " + diff_ids[l].str());
      layers.push_back({*kept.digest, kept.staged.size});
    }
    if (image.repo_tags.empty()) {
      summary.notes.push_back(what + " has no RepoTags (saved by ID): nothing to file it under, left out");
      continue;
    }
    const std::string bytes = docker_archive::oci_manifest(config, layers);
    const Digest digest = registry::digest_of(registry::DigestAlgorithm::sha256, bytes);
    auto parsed = parse_or_throw(digest, bytes, registry::media_type::oci_manifest);
    blob_digests.insert(config.digest);
    for (const auto& layer : layers) blob_digests.insert(layer.digest);
    for (const auto& repo_tag : image.repo_tags) {
      auto name = docker_archive::parse_repo_tag(repo_tag, options.docker_hub);
      if (!tagged.emplace(name.repository, name.tag).second)
        throw BundleError(std::string(docker_archive::manifest_path) + " names " + repo_tag + " twice");
      ManifestBatch m;
      m.upstream = *options.upstream;
      m.repository = name.repository;
      m.manifest = ManifestBatch::Manifest{digest, ManifestRecord{parsed.media_type, bytes, options.now_ms},
                                           references_of(parsed)};
      m.seen.push_back(digest);
      m.tag = ManifestBatch::Tag{name.tag, TagRecord{digest, parsed.media_type, options.now_ms}};
      batch.manifests.push_back(std::move(m));
      ++summary.images;
    }
    ++summary.manifests;
  }
  for (const auto& digest : blob_digests)
    batch.blobs.emplace_back(digest, BlobRecord{staging.files.at(digest).size, options.now_ms, options.now_ms});
  return publish(meta, staging, batch, blob_digests, options, std::move(summary));
}

}  // namespace

BundleSummary export_bundle(MetaStore& meta, const std::filesystem::path& data_dir,
                            std::span<const BundleImage> images, std::ostream& out,
                            const registry::PrivateKey* sign_key) {
  BundleSummary summary;
  BlobStore store(data_dir, BlobStore::Leftovers::keep);
  Exporter exporter(meta, store, summary);
  for (const auto& image : images) exporter.image(image);
  Layout& layout = exporter.layout;

  tar::Writer writer(out);
  const std::string oci_layout = R"({"imageLayoutVersion":"1.0.0"})";
  json index{{"schemaVersion", 2}, {"mediaType", registry::media_type::oci_index}, {"manifests", layout.index}};
  const std::string index_text = index.dump(), evidence_text = layout.evidence.dump();
  writer.file("oci-layout", oci_layout);
  writer.file("index.json", index_text);
  writer.directory("pullgate");
  writer.file(evidence_path, evidence_text);
  // Before the blobs, so that a check of the signer fails before gigabytes are read.
  if (sign_key) {
    writer.file(signature_path, signature_entry(*sign_key, {{"oci-layout", sha256_of(oci_layout)},
                                                            {"index.json", sha256_of(index_text)},
                                                            {evidence_path, sha256_of(evidence_text)}}));
    summary.signed_by = sign_key->public_key().name() + " (sha256:" + sign_key->public_key().fingerprint() + ")";
  }
  writer.directory("blobs");
  std::set<std::string> algorithms;
  for (const auto& [digest, bytes] : layout.manifests) algorithms.insert(std::string(digest.algorithm_name()));
  for (const auto& [digest, size] : layout.blobs) algorithms.insert(std::string(digest.algorithm_name()));
  for (const auto& algorithm : algorithms) writer.directory("blobs/" + algorithm);
  for (const auto& [digest, bytes] : layout.manifests) writer.file(blob_entry_name(digest), bytes);
  for (const auto& [digest, size] : layout.blobs)
    if (!layout.manifests.contains(digest)) copy_blob(writer, store, digest, size);
  writer.finish();
  summary.blobs = layout.blobs.size();
  return summary;
}

BundleSummary import_bundle(MetaStore& meta, const std::filesystem::path& data_dir, std::istream& in,
                            const ImportOptions& options) {
  BundleSummary summary;
  BlobStore store(data_dir, BlobStore::Leftovers::keep);
  Staging staging(store);
  std::optional<std::string> layout_text, index_text, evidence_text, signature_text, docker_text;
  std::map<std::string, std::string> links;  // a link's name -> the archive name it points at

  // 1. Every entry read and every blob verified, into temp files.
  tar::Reader reader(in);
  auto once = [&](std::optional<std::string>& slot, const tar::Entry& entry, std::size_t limit) {
    // A second copy could differ from what was signed or checked: refused.
    if (slot) throw BundleError(reader.where() + ": the archive holds " + registry::printable(entry.name, 200) + " twice");
    slot = read_whole(reader, entry, limit);
  };
  while (auto entry = reader.next()) {
    if (entry->type == tar::Entry::Type::directory) continue;
    if (entry->type != tar::Entry::Type::file) {
      // Never followed on disk; a docker-archive's manifest.json may name one.
      if (auto target = tar::resolve_link(*entry)) links[entry->name] = *target;
      continue;
    }
    if (entry->name == "oci-layout") {
      once(layout_text, *entry, 4096);
    } else if (entry->name == "index.json") {
      once(index_text, *entry, max_index_bytes);
    } else if (entry->name == evidence_path) {
      once(evidence_text, *entry, max_evidence_bytes);
    } else if (entry->name == signature_path) {
      once(signature_text, *entry, max_signature_bytes);
    } else if (entry->name.starts_with("blobs/")) {
      std::string_view rest = std::string_view(entry->name).substr(6);
      auto slash = rest.find('/');
      auto digest = slash == std::string_view::npos
                        ? std::nullopt
                        : Digest::parse(std::string(rest.substr(0, slash)) + ":" + std::string(rest.substr(slash + 1)));
      if (!digest) throw BundleError(reader.where() + ": not a blob name (blobs/<algorithm>/<hex>)");
      if (!staging.files.contains(*digest)) staging.add(reader, *entry, *digest);
    } else if (entry->name == docker_archive::manifest_path) {
      once(docker_text, *entry, max_index_bytes);
    } else {
      // A docker-archive's layer or config, or nothing: which, manifest.json says.
      if (staging.named.contains(entry->name))
        throw BundleError(reader.where() + ": the archive holds " + registry::printable(entry->name, 200) + " twice");
      staging.add_named(reader, *entry);
    }
  }
  if (!(layout_text && index_text) && docker_text) {
    summary.signed_by = check_signature(signature_text, {}, options);  // a docker-archive is never signed
    return import_docker_archive(meta, staging, *docker_text, links, options);
  }
  for (const auto& [name, kept] : staging.named) summary.notes.push_back(registry::printable(name, 200) + ": not part of a bundle, ignored");
  // The signer, before any content is trusted: the entries that name everything else.
  SignedEntries present;
  if (layout_text) present["oci-layout"] = sha256_of(*layout_text);
  if (index_text) present["index.json"] = sha256_of(*index_text);
  if (evidence_text) present[evidence_path] = sha256_of(*evidence_text);
  summary.signed_by = check_signature(signature_text, present, options);
  if (!layout_text)
    throw BundleError("neither an OCI image layout (no oci-layout entry) nor a docker-archive (no manifest.json)");
  const auto layout = parse_json(*layout_text, "oci-layout");
  if (!layout.contains("imageLayoutVersion") || layout["imageLayoutVersion"] != "1.0.0")
    throw BundleError("oci-layout: not imageLayoutVersion 1.0.0");
  if (!index_text)
    throw BundleError("neither an OCI image layout (no index.json entry) nor a docker-archive (no manifest.json)");
  json index = parse_json(*index_text, "index.json");
  if (!index.contains("manifests") || !index["manifests"].is_array())
    throw BundleError("index.json has no manifests list");

  // 2. The records, checked against what was read.
  ImportBatch batch;
  std::set<Digest> blob_digests;
  std::set<std::pair<Digest, std::string>> done;  // (manifest, "upstream\nrepository")
  std::function<void(const Digest&, const std::string&, const Placement&)> add_manifest =
      [&](const Digest& digest, const std::string& media_type, const Placement& where) {
    if (!done.emplace(digest, where.upstream + "\n" + where.repository).second) return;
    if (!staging.files.contains(digest))
      throw BundleError("manifest " + digest.str() + " is named but the archive does not hold it");
    std::string bytes = staging.read_small(digest, registry::max_manifest_bytes);
    auto parsed = parse_or_throw(digest, bytes, media_type);
    ManifestBatch m;
    m.upstream = where.upstream;
    m.repository = where.repository;
    m.manifest = ManifestBatch::Manifest{digest, ManifestRecord{parsed.media_type, bytes, options.now_ms},
                                         references_of(parsed)};
    m.seen.push_back(digest);
    batch.manifests.push_back(std::move(m));
    ++summary.manifests;
    for (const auto& blob : parsed.blobs) {
      if (!staging.files.contains(blob.digest) && where.artifact) continue;
      if (!staging.files.contains(blob.digest))
        throw BundleError("manifest " + digest.str() + " references blob " + blob.digest.str() +
                          ", which the archive does not hold");
      blob_digests.insert(blob.digest);
    }
    for (const auto& child : parsed.children) {
      if (staging.files.contains(child.digest))
        add_manifest(child.digest, child.media_type, where);
      else
        summary.notes.push_back("index " + digest.str() + ": child " + child.digest.str() + " not in the bundle");
    }
  };
  for (const auto& descriptor : index["manifests"]) {
    if (!descriptor.is_object() || !descriptor.contains("digest") || !descriptor["digest"].is_string())
      throw BundleError("index.json has an entry without a digest");
    auto digest = Digest::parse(descriptor["digest"].get<std::string>());
    if (!digest) throw BundleError("index.json names a bad digest");
    auto where = place(descriptor, *digest, options);
    const std::string media_type = descriptor.contains("mediaType") && descriptor["mediaType"].is_string()
                                       ? descriptor["mediaType"].get<std::string>()
                                       : "";
    add_manifest(*digest, media_type, where);
    if (where.tag) {
      // Its own batch: a manifest listed twice (through the referrers and under a
      // cosign tag) is read once, and each of its tags is kept.
      ManifestBatch tag;
      tag.upstream = where.upstream;
      tag.repository = where.repository;
      auto stored = std::find_if(batch.manifests.begin(), batch.manifests.end(),
                                 [&](const ManifestBatch& m) { return m.manifest && m.manifest->digest == *digest; });
      tag.tag = ManifestBatch::Tag{*where.tag, TagRecord{*digest, stored->manifest->record.media_type, options.now_ms}};
      batch.manifests.push_back(std::move(tag));
    }
    if (where.artifact)
      ++summary.artifacts;
    else
      ++summary.images;
  }
  for (const auto& digest : blob_digests)
    batch.blobs.emplace_back(digest, BlobRecord{staging.files.at(digest).size, options.now_ms, options.now_ms});

  if (evidence_text) {
    json evidence = parse_json(*evidence_text, evidence_path);
    try {
      for (const auto& [digest, record] : evidence.at("verdicts").items()) {
        auto d = Digest::parse(digest);
        if (!d) throw BundleError(std::string(evidence_path) + ": bad verdict digest");
        batch.verdicts.emplace_back(*d, verdict_from(record));
      }
      for (const auto& [digest, record] : evidence.at("reports").items()) {
        auto d = Digest::parse(digest);
        if (!d) throw BundleError(std::string(evidence_path) + ": bad report digest");
        batch.reports.emplace_back(*d, report_from(record));
      }
      for (const auto& record : evidence.at("exceptions")) batch.exceptions.push_back(exception_from(record));
      for (const auto& r : evidence.at("referrers")) {
        auto d = Digest::parse(r.at("digest").get<std::string>());
        if (!d) throw BundleError(std::string(evidence_path) + ": bad referrers digest");
        auto upstream = options.upstream ? *options.upstream : r.at("upstream").get<std::string>();
        batch.responses.emplace_back(
            referrers_response_key(upstream, r.at("repository").get<std::string>(), *d),
            CachedResponse{r.at("content_type").get<std::string>(), r.at("body").get<std::string>(),
                           r.at("fetched_at_ms").get<std::int64_t>()});
      }
    } catch (const json::exception& e) {
      throw BundleError(std::string(evidence_path) + ": " + e.what());
    }
  }

  // 3. Everything checked out: the blobs into place, then the records in one transaction.
  return publish(meta, staging, batch, blob_digests, options, std::move(summary));
}

}  // namespace pullgate::cache
