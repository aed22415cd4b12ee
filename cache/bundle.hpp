#pragma once
// Air-gap bundles (docs/bundles.md): an OCI image layout in a tar archive, as
// `skopeo copy oci-archive:` reads and writes it, plus pullgate's evidence
// (pullgate/evidence.json: standing verdicts, reports, exceptions, cached referrers
// answers). Export reads the cache; import verifies every blob while it reads it,
// keeps everything in temp files until the whole bundle checked out, then publishes
// the blobs and writes the records in one LMDB transaction (MetaStore::import_records).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/meta_store.hpp"
#include "registry/keys.hpp"

namespace pullgate::cache {

// One line naming what failed (the image, the digest, the archive entry).
class BundleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An image to export, resolved against the configured upstreams by the caller.
struct BundleImage {
  std::string reference;   // as the operator named it: the layout's ref.name
  std::string upstream;    // the upstream's configured name
  std::string repository;
  std::optional<std::string> tag;  // exactly one of tag and digest
  std::optional<Digest> digest;
};

struct BundleSummary {
  std::size_t images = 0;
  std::size_t manifests = 0;
  std::size_t blobs = 0;         // configs and layers
  std::size_t artifacts = 0;     // signature, attestation and SBOM manifests
  std::size_t records = 0;       // import: LMDB records written (0: nothing was new)
  std::vector<std::string> notes;  // one line each: what was left out and why
  std::string signed_by;           // the signing key ("NAME (sha256:<fingerprint>)"); empty: unsigned
};

// Writes the bundle of `images` from the cache under data_dir (its blobs) and `meta`.
// Throws BundleError before writing anything when an image, one of its manifests or
// blobs is not cached; tar::Error when the output fails.
// With `sign_key`, the bundle carries pullgate/signature.json: the key's signature
// over a statement naming the sha256 of oci-layout, index.json and
// pullgate/evidence.json (every manifest and blob import publishes is reached from
// index.json by digest, so these three bind the whole bundle).
BundleSummary export_bundle(MetaStore& meta, const std::filesystem::path& data_dir,
                            std::span<const BundleImage> images, std::ostream& out,
                            const registry::PrivateKey* sign_key = nullptr);

struct ImportOptions {
  // The upstream the images are filed under: replaces the bundle's own, and names it
  // for an archive without pullgate's annotations (then ref.name gives REPO:TAG).
  std::optional<std::string> upstream;
  std::int64_t now_ms = 0;
  // Keys a bundle's signature may be made with (config bundle.trusted_keys). A signed
  // bundle is checked whatever require_signature says: an unknown key, a signature
  // that does not verify, or an entry altered after signing refuse it.
  std::vector<registry::PublicKey> trusted_keys;
  bool require_signature = false;  // an unsigned archive is refused
  bool dry_run = false;            // check everything, publish and write nothing (bundle verify)
  // The upstream is Docker Hub: a docker-archive's one-component names (nginx:1.25)
  // are filed under library/, as the mirror asks Docker Hub for them.
  bool docker_hub = false;
};

// Reads a bundle (or a plain OCI archive, or a docker-archive with options.upstream)
// into the cache under data_dir. Throws
// BundleError (or tar::Error) naming the entry that failed; then nothing changed.
BundleSummary import_bundle(MetaStore& meta, const std::filesystem::path& data_dir, std::istream& in,
                            const ImportOptions& options);

}  // namespace pullgate::cache
