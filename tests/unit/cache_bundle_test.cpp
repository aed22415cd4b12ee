// Bundles through real LMDB environments and blob stores: export from one cache,
// import into another; refusals leave the target as it was.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <variant>

#include "cache/blob_store.hpp"
#include "cache/bundle.hpp"
#include "cache/docker_archive.hpp"
#include "cache/tar.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;
using registry::DigestAlgorithm;
using registry::digest_of;

constexpr std::size_t map_size = 64 * 1024 * 1024;
constexpr std::int64_t t0 = 1'700'000'000'000;

std::string descriptor(std::string_view media_type, const Digest& digest, std::size_t size) {
  return R"({"mediaType":")" + std::string(media_type) + R"(","digest":")" + digest.str() +
         R"(","size":)" + std::to_string(size) + "}";
}

std::string image_manifest(const Digest& config, std::size_t config_size, const Digest& layer, std::size_t layer_size) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
         descriptor("application/vnd.oci.image.config.v1+json", config, config_size) + R"(,"layers":[)" +
         descriptor("application/vnd.oci.image.layer.v1.tar", layer, layer_size) + "]}";
}

struct Cache {
  fs::path dir;
  std::unique_ptr<MetaStore> meta = MetaStore::open(dir / "lmdb", map_size);
  BlobStore blobs{dir};

  Digest put_blob(std::string_view bytes) {
    auto digest = digest_of(DigestAlgorithm::sha256, bytes);
    auto temp = blobs.create_temp();
    EXPECT_EQ(::write(temp.file.get(), bytes.data(), bytes.size()), ssize_t(bytes.size()));
    blobs.publish(temp, digest);
    meta->put_blob(digest, BlobRecord{bytes.size(), t0, t0});
    return digest;
  }

  // An image with a config and a layer, tagged in (u, repo).
  Digest put_image(const std::string& repo, const std::string& tag, std::string_view layer) {
    auto config = put_blob(R"({"architecture":"amd64","os":"linux"})" + std::string(layer.substr(0, 1)));
    auto config_size = std::string(R"({"architecture":"amd64","os":"linux"})").size() + 1;
    auto layer_digest = put_blob(layer);
    std::string manifest = image_manifest(config, config_size, layer_digest, layer.size());
    auto digest = digest_of(DigestAlgorithm::sha256, manifest);
    ManifestBatch batch;
    batch.upstream = "u";
    batch.repository = repo;
    batch.tag = ManifestBatch::Tag{tag, TagRecord{digest, std::string(registry::media_type::oci_manifest), t0}};
    batch.manifest = ManifestBatch::Manifest{
        digest, ManifestRecord{std::string(registry::media_type::oci_manifest), manifest, t0}, {config, layer_digest}};
    batch.seen = {digest};
    meta->write(batch);
    return digest;
  }

  std::size_t files_in(const char* sub) const {
    std::size_t n = 0;
    for (auto& e : fs::recursive_directory_iterator(dir / sub))
      if (e.is_regular_file()) ++n;
    return n;
  }
};

VerdictRecord manual(std::string decision, std::string reason) {
  VerdictRecord v;
  v.decision = std::move(decision);
  v.source = "manual";
  v.reasons = {std::move(reason)};
  v.set_by = "test";
  v.evaluated_at_ms = t0;
  return v;
}

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing_support::make_temp_dir("pullgate-bundle"); }
  void TearDown() override { fs::remove_all(root_); }

  std::string export_of(Cache& from, std::vector<BundleImage> images) {
    std::ostringstream out;
    export_bundle(*from.meta, from.dir, images, out);
    return out.str();
  }

  BundleSummary import_into(Cache& to, const std::string& bundle, ImportOptions options = {}) {
    std::istringstream in(bundle);
    options.now_ms = t0 + 1000;
    return import_bundle(*to.meta, to.dir, in, options);
  }

  fs::path root_;
};

TEST_F(BundleTest, AnImageAndItsEvidenceGoFromOneCacheToAnother) {
  Cache source{root_ / "source"};
  auto digest = source.put_image("team/app", "1.0", "layer bytes");
  source.meta->put_verdict(digest, manual("deny", "CVE-1 unpatched"));
  source.meta->put_report(digest, ReportRecord{R"({"critical":1})", "trivy", t0, t0});
  source.meta->put_exception(ExceptionRecord{"ex1", digest.str(), "", "", "accepted risk", "ops", t0, std::nullopt});
  // A cosign signature tag of the image, with its layer.
  auto sig_layer = source.put_blob("signature payload");
  auto sig_config = source.put_blob("{}");
  std::string sig = image_manifest(sig_config, 2, sig_layer, 17);
  auto sig_digest = digest_of(DigestAlgorithm::sha256, sig);
  ManifestBatch sig_batch;
  sig_batch.upstream = "u";
  sig_batch.repository = "team/app";
  sig_batch.tag = ManifestBatch::Tag{"sha256-" + std::string(digest.hex()) + ".sig",
                                     TagRecord{sig_digest, std::string(registry::media_type::oci_manifest), t0}};
  sig_batch.manifest = ManifestBatch::Manifest{
      sig_digest, ManifestRecord{std::string(registry::media_type::oci_manifest), sig, t0}, {sig_config, sig_layer}};
  sig_batch.seen = {sig_digest};
  source.meta->write(sig_batch);

  auto bundle = export_of(source, {BundleImage{"u/team/app:1.0", "u", "team/app", "1.0", std::nullopt}});

  Cache target{root_ / "target"};
  auto summary = import_into(target, bundle);
  EXPECT_EQ(summary.images, 1u);
  EXPECT_EQ(summary.artifacts, 1u);
  EXPECT_EQ(summary.blobs, 4u);
  auto tag = target.meta->get_tag("u", "team/app", "1.0");
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->digest, digest);
  EXPECT_EQ(target.meta->get_manifest(digest)->bytes, source.meta->get_manifest(digest)->bytes);
  EXPECT_TRUE(target.meta->seen_in(digest, "u", "team/app"));
  auto layer = digest_of(DigestAlgorithm::sha256, "layer bytes");
  EXPECT_TRUE(target.blobs.open(layer));
  EXPECT_EQ(target.meta->get_blob(layer)->size, 11u);
  EXPECT_EQ(target.meta->referenced_by(layer, 10), std::vector<Digest>{digest});
  auto verdict = target.meta->get_verdict(digest);
  ASSERT_TRUE(verdict);
  EXPECT_EQ(verdict->decision, "deny");
  EXPECT_EQ(verdict->reasons, std::vector<std::string>{"CVE-1 unpatched"});
  EXPECT_EQ(target.meta->get_report(digest)->scanner, "trivy");
  EXPECT_EQ(target.meta->get_exception("ex1")->reason, "accepted risk");
  auto sig_tag = target.meta->get_tag("u", "team/app", "sha256-" + std::string(digest.hex()) + ".sig");
  ASSERT_TRUE(sig_tag);
  EXPECT_EQ(sig_tag->digest, sig_digest);
  EXPECT_TRUE(target.blobs.open(sig_layer));
  EXPECT_EQ(target.files_in("tmp"), 0u);

  // The same bundle again: nothing new to write.
  auto generation = target.meta->generation();
  EXPECT_EQ(import_into(target, bundle).records, 0u);
  EXPECT_EQ(target.meta->generation(), generation);
}

TEST_F(BundleTest, AnImportedAllowDoesNotReplaceALocalDeny) {
  Cache source{root_ / "source"};
  auto digest = source.put_image("team/app", "1.0", "layer");
  source.meta->put_verdict(digest, manual("allow", "reviewed"));
  auto bundle = export_of(source, {BundleImage{"u/team/app:1.0", "u", "team/app", "1.0", std::nullopt}});

  Cache target{root_ / "target"};
  target.meta->put_verdict(digest, manual("deny", "not here"));
  import_into(target, bundle);
  EXPECT_EQ(target.meta->get_verdict(digest)->decision, "deny");
  EXPECT_EQ(target.meta->get_verdict(digest)->reasons, std::vector<std::string>{"not here"});

  // The other way round, a deny from the bundle wins over a local allow.
  Cache other{root_ / "other"};
  source.meta->put_verdict(digest, manual("deny", "revoked"));
  other.meta->put_verdict(digest, manual("allow", "ok"));
  import_into(other, export_of(source, {BundleImage{"u/team/app:1.0", "u", "team/app", "1.0", std::nullopt}}));
  EXPECT_EQ(other.meta->get_verdict(digest)->reasons, std::vector<std::string>{"revoked"});
}

TEST_F(BundleTest, AFlippedByteOrATruncationIsRefusedAndChangesNothing) {
  Cache source{root_ / "source"};
  const std::string layer(3000, 'L');
  source.put_image("team/app", "1.0", layer);
  auto bundle = export_of(source, {BundleImage{"u/team/app:1.0", "u", "team/app", "1.0", std::nullopt}});

  Cache target{root_ / "target"};
  auto generation = target.meta->generation();
  auto refusal = [&](const std::string& bytes) {
    try {
      import_into(target, bytes);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  std::string flipped = bundle;
  flipped[bundle.find(std::string(100, 'L')) + 50] = 'M';
  auto layer_entry = "blobs/sha256/" + std::string(digest_of(DigestAlgorithm::sha256, layer).hex());
  EXPECT_NE(refusal(flipped).find("(" + layer_entry + "): content does not match its digest"), std::string::npos)
      << refusal(flipped);
  EXPECT_NE(refusal(bundle.substr(0, bundle.size() - 2048)).find("truncated"), std::string::npos);

  EXPECT_EQ(target.meta->generation(), generation);
  EXPECT_EQ(target.meta->manifest_count(), 0u);
  EXPECT_FALSE(target.meta->get_tag("u", "team/app", "1.0"));
  EXPECT_EQ(target.files_in("blobs"), 0u);
  EXPECT_EQ(target.files_in("tmp"), 0u);
}

TEST_F(BundleTest, AnImageNotCachedIsNamed) {
  Cache source{root_ / "source"};
  std::ostringstream out;
  std::vector<BundleImage> images{BundleImage{"u/team/none:1", "u", "team/none", "1", std::nullopt}};
  try {
    export_bundle(*source.meta, source.dir, images, out);
    FAIL() << "exported an image that is not cached";
  } catch (const BundleError& e) {
    EXPECT_EQ(std::string(e.what()), "u/team/none:1 is not cached (pull it through the mirror first)");
  }
  EXPECT_TRUE(out.str().empty());
}

TEST_F(BundleTest, APlainOciArchiveIsFiledUnderTheUpstreamGiven) {
  // What skopeo writes: a layout whose index names the image by ref.name only.
  Cache source{root_ / "source"};
  auto digest = source.put_image("library/alpine", "3", "alpine layer");
  auto manifest = source.meta->get_manifest(digest)->bytes;
  std::ostringstream out;
  tar::Writer writer(out);
  writer.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  writer.file("index.json", R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                                digest.str() + R"(","size":)" + std::to_string(manifest.size()) +
                                R"(,"annotations":{"org.opencontainers.image.ref.name":"127.0.0.1:5000/library/alpine:3"}}]})");
  writer.file("blobs/sha256/" + std::string(digest.hex()), manifest);
  auto parsed = std::get<registry::ParsedManifest>(registry::parse_manifest(manifest, ""));
  for (const auto& blob : parsed.blobs) {
    auto opened = source.blobs.open(blob.digest);
    std::string bytes(opened->size, '\0');
    ASSERT_EQ(::pread(opened->file.get(), bytes.data(), bytes.size(), 0), ssize_t(bytes.size()));
    writer.file("blobs/sha256/" + std::string(blob.digest.hex()), bytes);
  }
  writer.finish();

  Cache target{root_ / "target"};
  try {
    import_into(target, out.str());
    FAIL() << "imported an archive without an upstream";
  } catch (const BundleError& e) {
    EXPECT_NE(std::string(e.what()).find("give --upstream NAME"), std::string::npos) << e.what();
  }
  ImportOptions options;
  options.upstream = "mirror.local";
  import_into(target, out.str(), options);
  auto tag = target.meta->get_tag("mirror.local", "library/alpine", "3");
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->digest, digest);
  EXPECT_TRUE(target.meta->seen_in(digest, "mirror.local", "library/alpine"));
}


// A docker-archive as `docker save` writes it: layers and config by name, manifest.json last.
struct DockerArchive {
  std::string config_text, layer1 = std::string(1024, 'a'), layer2 = "second layer";
  std::string manifest_json;

  DockerArchive() {
    config_text = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" +
                  digest_of(DigestAlgorithm::sha256, layer1).str() + R"(",")" +
                  digest_of(DigestAlgorithm::sha256, layer2).str() + R"("]}})";
    manifest_json = R"([{"Config":"c.json","RepoTags":["docker.io/it/app:v1","alpine:3"],"Layers":["l1.tar","id2/layer.tar"]}])";
  }

  std::string tar() const {
    std::ostringstream out;
    tar::Writer writer(out);
    writer.file("l1.tar", layer1);
    writer.file("id2/layer.tar", layer2);
    writer.file("c.json", config_text);
    writer.file("repositories", "{}");
    writer.file("manifest.json", manifest_json);
    writer.finish();
    return out.str();
  }
};

TEST_F(BundleTest, ADockerArchiveBecomesAnOciManifestWithItsOwnBlobs) {
  DockerArchive archive;
  Cache target{root_ / "target"};
  ImportOptions options;
  options.upstream = "docker.io";
  options.docker_hub = true;
  auto summary = import_into(target, archive.tar(), options);
  EXPECT_EQ(summary.images, 2u);
  EXPECT_EQ(summary.manifests, 1u);
  EXPECT_EQ(summary.blobs, 3u);
  auto tag = target.meta->get_tag("docker.io", "it/app", "v1");
  ASSERT_TRUE(tag);
  auto hub = target.meta->get_tag("docker.io", "library/alpine", "3");  // one component: library/, as the mirror asks
  ASSERT_TRUE(hub);
  EXPECT_EQ(hub->digest, tag->digest);
  EXPECT_TRUE(target.meta->seen_in(tag->digest, "docker.io", "library/alpine"));
  auto manifest = target.meta->get_manifest(tag->digest);
  ASSERT_TRUE(manifest);
  EXPECT_EQ(manifest->media_type, registry::media_type::oci_manifest);
  EXPECT_EQ(digest_of(DigestAlgorithm::sha256, manifest->bytes), tag->digest);
  auto parsed = std::get<registry::ParsedManifest>(registry::parse_manifest(manifest->bytes, manifest->media_type));
  ASSERT_EQ(parsed.blobs.size(), 3u);
  for (const auto& [bytes, media_type] : {std::pair{archive.config_text, "application/vnd.oci.image.config.v1+json"},
                                          {archive.layer1, "application/vnd.oci.image.layer.v1.tar"},
                                          {archive.layer2, "application/vnd.oci.image.layer.v1.tar"}}) {
    auto digest = digest_of(DigestAlgorithm::sha256, bytes);  // uncompressed: the layer's digest is its diff_id
    EXPECT_NE(manifest->bytes.find(R"("mediaType":")" + std::string(media_type) + R"(")"), std::string::npos);
    EXPECT_NE(manifest->bytes.find(digest.str()), std::string::npos);
    auto opened = target.blobs.open(digest);
    ASSERT_TRUE(opened);
    EXPECT_EQ(opened->size, bytes.size());
  }
  EXPECT_FALSE(target.meta->get_verdicts_in(tag->digest, "").manual);  // no evidence: the gate decides on first pull
  // The same archive again: the same manifest digest, nothing new.
  EXPECT_EQ(import_into(target, archive.tar(), options).records, 0u);
}

TEST_F(BundleTest, AMalformedDockerArchiveIsRefusedInOneLineAndPublishesNothing) {
  auto refusal = [&](const DockerArchive& archive, std::optional<std::string> upstream = "u") {
    Cache target{root_ / "target"};
    ImportOptions options;
    options.upstream = upstream;
    try {
      import_into(target, archive.tar(), options);
    } catch (const BundleError& e) {
      EXPECT_EQ(target.files_in("blobs"), 0u);
      EXPECT_FALSE(target.meta->get_tag("u", "it/app", "v1"));
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
      return std::string(e.what());
    }
    return std::string("imported");
  };
  DockerArchive flipped;
  flipped.layer2[0] ^= 1;
  EXPECT_NE(refusal(flipped).find("layer id2/layer.tar has sha256"), std::string::npos);
  DockerArchive outside;
  outside.manifest_json = R"([{"Config":"c.json","RepoTags":["it/app:v1"],"Layers":["../l1.tar","id2/layer.tar"]}])";
  EXPECT_EQ(refusal(outside), R"(manifest.json: image 1's layer "../l1.tar" leaves the archive)");
  DockerArchive missing;
  missing.manifest_json = R"([{"Config":"c.json","RepoTags":["it/app:v1"],"Layers":["l1.tar","l2.tar"]}])";
  EXPECT_EQ(refusal(missing), "manifest.json names layer l2.tar, which the archive does not hold");
  DockerArchive shapeless;
  shapeless.manifest_json = R"([{"RepoTags":["it/app:v1"]}])";
  EXPECT_EQ(refusal(shapeless), "manifest.json: image 1 lacks Config or a Layers list");
  DockerArchive not_json;
  not_json.manifest_json = "{";
  EXPECT_EQ(refusal(not_json), "manifest.json is not a non-empty JSON list of images");
  DockerArchive fewer;
  fewer.manifest_json = R"([{"Config":"c.json","RepoTags":["it/app:v1"],"Layers":["l1.tar"]}])";
  EXPECT_EQ(refusal(fewer), "image 1 of manifest.json: 1 layers, but its config lists 2 diff_ids");
  DockerArchive bad_name;
  bad_name.manifest_json = R"([{"Config":"c.json","RepoTags":["it/app"],"Layers":["l1.tar","id2/layer.tar"]}])";
  EXPECT_EQ(refusal(bad_name), R"(manifest.json: RepoTags "it/app" is not REPOSITORY:TAG)");
  EXPECT_EQ(refusal(DockerArchive{}, std::nullopt),
            "a docker-archive does not say which upstream its images come from: give --upstream NAME");
  EXPECT_EQ(refusal(DockerArchive{}), "imported");
}


// Test keys made with `openssl genpkey` (P-256 and Ed25519), never used elsewhere.
constexpr const char* p256_private = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQSxTg8toElWHVFO7
DWA/+mVgnNx8MXpGTFZJ2nF8C1ChRANCAAQIaemGRsA+CwJECPekF/T9LklWAmqw
9wBXNpWPy98WQJ4cyWYBsD/Nd1VcXOeOGB2v4FJsJLvh7wLl+uxh1okH
-----END PRIVATE KEY-----
)";
constexpr const char* ed25519_private = R"(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJXY8559Ks1rjXDhtoxQMxVDKi2DNVJHAFcwxk4AJZtr
-----END PRIVATE KEY-----
)";

registry::PrivateKey private_key(const char* name, const char* pem) {
  auto parsed = registry::PrivateKey::from_pem(name, pem);
  if (auto* error = std::get_if<std::string>(&parsed)) throw std::runtime_error(*error);
  return std::get<registry::PrivateKey>(std::move(parsed));
}

TEST_F(BundleTest, ASignedBundleImportsOnlyWithATrustedKey) {
  Cache source{root_ / "source"};
  const std::string layer(3000, 'L');
  source.put_image("team/app", "1.0", layer);
  const auto signer = private_key("site", p256_private);
  const auto other = private_key("other", ed25519_private);
  std::ostringstream out;
  std::vector<BundleImage> images{BundleImage{"u/team/app:1.0", "u", "team/app", "1.0", std::nullopt}};
  auto exported = export_bundle(*source.meta, source.dir, images, out, &signer);
  const std::string bundle = out.str();
  EXPECT_EQ(exported.signed_by, "site (sha256:" + signer.public_key().fingerprint() + ")");

  Cache target{root_ / "target"};
  const auto generation = target.meta->generation();
  auto refusal = [&](const std::string& bytes, ImportOptions options) {
    try {
      import_into(target, bytes, options);
    } catch (const BundleError& e) {
      return std::string(e.what());
    }
    return std::string("imported");
  };
  ImportOptions trusting_other;
  trusting_other.trusted_keys = {other.public_key()};
  EXPECT_EQ(refusal(bundle, trusting_other),
            "signed by key sha256:" + signer.public_key().fingerprint() +
                ", which is not among the trusted bundle keys (bundle.trusted_keys)");
  EXPECT_EQ(refusal(bundle, {}), "signed by key sha256:" + signer.public_key().fingerprint() +
                                     ", which is not among the trusted bundle keys (none configured)");

  ImportOptions trusting;
  trusting.trusted_keys = {other.public_key(), signer.public_key()};
  trusting.require_signature = true;
  // index.json and the evidence altered after signing (same lengths: the archive stays valid).
  std::string index_changed = bundle;
  index_changed.replace(index_changed.find("\"io.pullgate.repository\":\"team/app\""), 35,
                        "\"io.pullgate.repository\":\"team/apq\"");
  EXPECT_EQ(refusal(index_changed, trusting), "index.json was altered after signing (its sha256 is not the signed one)");
  std::string evidence_changed = bundle;
  evidence_changed.replace(evidence_changed.find("\"referrers\":[]"), 14, "\"referrers\":{}");
  EXPECT_EQ(refusal(evidence_changed, trusting),
            "pullgate/evidence.json was altered after signing (its sha256 is not the signed one)");
  // A blob altered: its digest no longer matches (the signed index names it).
  std::string blob_changed = bundle;
  blob_changed[bundle.find(std::string(100, 'L')) + 50] = 'M';
  EXPECT_NE(refusal(blob_changed, trusting).find("content does not match its digest"), std::string::npos);
  // The signature entry replaced: its statement changed (the signature no longer verifies).
  std::string statement_changed = bundle;
  const auto signed_index = statement_changed.find("index.json\\\":\\\"sha256:") + 22;
  statement_changed[signed_index] = statement_changed[signed_index] == '0' ? '1' : '0';
  EXPECT_EQ(refusal(statement_changed, trusting),
            "pullgate/signature.json: the signature does not verify with key site (the statement or the signature "
            "was altered)");
  // Unsigned, where signatures are required.
  auto unsigned_bundle = export_of(source, images);
  EXPECT_EQ(refusal(unsigned_bundle, trusting),
            "the bundle is not signed, and signatures are required (bundle.require_signature)");
  EXPECT_EQ(target.meta->generation(), generation);
  EXPECT_EQ(target.meta->manifest_count(), 0u);
  EXPECT_EQ(target.files_in("blobs"), 0u);
  EXPECT_EQ(target.files_in("tmp"), 0u);

  // A dry run (bundle verify) checks and writes nothing; then the import goes through.
  trusting.dry_run = true;
  EXPECT_EQ(import_into(target, bundle, trusting).signed_by, exported.signed_by);
  EXPECT_EQ(target.meta->generation(), generation);
  EXPECT_EQ(target.files_in("tmp"), 0u);
  trusting.dry_run = false;
  auto imported = import_into(target, bundle, trusting);
  EXPECT_EQ(imported.signed_by, exported.signed_by);
  EXPECT_TRUE(target.meta->get_tag("u", "team/app", "1.0"));
  // Without keys or a requirement, an unsigned bundle still imports (nothing new now).
  EXPECT_EQ(import_into(target, unsigned_bundle).records, 0u);
}

TEST(BundleKeyTest, EncryptedAndPublicKeysAreRefusedForSigning) {
  auto refused = [](std::string_view pem) {
    auto parsed = registry::PrivateKey::from_pem("k", pem);
    return std::holds_alternative<std::string>(parsed) ? std::get<std::string>(parsed) : std::string();
  };
  EXPECT_NE(refused("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n").find("encrypted"),
            std::string::npos);
  EXPECT_NE(refused("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n").find("cosign"), std::string::npos);
  EXPECT_NE(refused("-----BEGIN PUBLIC KEY-----\nAAAA\n").find("not a PEM private key"), std::string::npos);
  EXPECT_EQ(refused(p256_private), "");
}

// A docker-archive's names go into one-line refusals with control characters
// replaced (tests/fuzz/regressions/fuzz_docker_archive).
TEST(DockerArchiveTest, ANameIsQuotedOnOneLine) {
  try {
    docker_archive::parse_repo_tag("localhost:\x1b""000//\nam/app:v1", false);
    FAIL() << "accepted";
  } catch (const BundleError& e) {
    EXPECT_EQ(std::string(e.what()), "manifest.json: RepoTags \"localhost:?000//?am/app:v1\" does not name a repository");
  }
  try {
    docker_archive::parse_manifest(R"([{"Config":"../c\n.json","RepoTags":[],"Layers":[]}])");
    FAIL() << "accepted";
  } catch (const BundleError& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

// A field of the wrong type is a refusal that names the file, not nlohmann's type_error
// escaping the import (tests/fuzz/regressions/fuzz_docker_archive/rootfs-type-not-a-string).
TEST(DockerArchiveTest, AFieldOfTheWrongTypeIsARefusal) {
  for (const char* config : {R"({"rootfs":{"type":["layers"],"diff_ids":[]}})", R"({"rootfs":{"type":7,"diff_ids":[]}})",
                             R"({"rootfs":{"diff_ids":[]}})"}) {
    try {
      docker_archive::diff_ids(config, "blobs/c.json");
      FAIL() << "accepted " << config;
    } catch (const BundleError& e) {
      EXPECT_EQ(std::string(e.what()), "blobs/c.json has no rootfs of type layers with diff_ids");
    }
  }
  EXPECT_TRUE(docker_archive::diff_ids(R"({"rootfs":{"type":"layers","diff_ids":[]}})", "c").empty());
}

}  // namespace
}  // namespace pullgate::cache
