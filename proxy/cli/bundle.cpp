// `pullgate bundle export|import`: air-gap bundles (docs/bundles.md).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <streambuf>
#include <variant>

#include <nlohmann/json.hpp>

#include "cache/bundle.hpp"
#include "proxy/cli/args.hpp"
#include "proxy/cli/commands.hpp"
#include "proxy/gate/explain.hpp"
#include "proxy/telemetry/progress.hpp"

namespace pullgate::proxy::cli {

const char bundle_help[] = R"(Usage:
  pullgate bundle export IMAGE... -o FILE.tar    images as the mirror cached them, with their evidence
  pullgate bundle export --file LIST -o FILE.tar   the images named in LIST, one a line (# comments)
  pullgate bundle export ... --sign-key KEY.pem   signed with a PEM private key (ECDSA P-256/P-384, Ed25519, RSA)
  pullgate bundle import FILE.tar [--upstream NAME]
  pullgate bundle verify FILE.tar     checks as import does (signature, every digest), imports nothing
Each takes --data DIR or --config FILE to find the cache (default ./pullgate-data).

IMAGE is UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@DIGEST, UPSTREAM a configured
upstream name or alias (without --config, a first component that looks like a host).
Every image must have been pulled through the mirror. The bundle is an OCI image
layout in a tar archive (skopeo copy oci-archive:FILE.tar:IMAGE reads it) plus
pullgate/evidence.json: manual and upstream verdicts, reports, exceptions, and the
signatures, attestations and SBOMs the mirror cached.

Import verifies every blob's digest while it reads the archive and changes nothing
unless the whole bundle checks out; then the images are served (also --offline) under
the upstream, repository and tag they were exported from, or under --upstream NAME.
A plain OCI archive (skopeo copy docker://... oci-archive:FILE.tar:REPO:TAG) needs
--upstream. So does a docker-archive (docker save, skopeo copy ... docker-archive:):
each RepoTags name is tagged under --upstream with an OCI manifest pullgate writes
(uncompressed layers, so its digest is not the registry's); it carries no verdicts.
An import never weakens a verdict: a local deny stays.
A signed bundle imports only when its key is among the config's bundle.trusted_keys
and nothing was altered after signing; with bundle.trusted_keys listed (or
bundle.require_signature true) an unsigned bundle is refused.
Works while the server runs.
)";

std::vector<std::string> load_bundle_keys(const Config& config, std::vector<registry::PublicKey>& keys) {
  std::vector<std::string> errors;
  for (const auto& file : config.bundle_trusted_keys) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in) {
      errors.push_back("bundle.trusted_keys: cannot read " + file);
      continue;
    }
    auto key = registry::PublicKey::from_pem(file, pem.str());
    if (auto* error = std::get_if<std::string>(&key))
      errors.push_back("bundle.trusted_keys: " + *error);
    else
      keys.push_back(std::get<registry::PublicKey>(std::move(key)));
  }
  return errors;
}

namespace {

// Counts the bytes that pass through to `inner` and shows them on the terminal's
// progress line: the bundle code reads and writes plain streams and knows nothing of it.
class CountingBuffer : public std::streambuf {
 public:
  CountingBuffer(std::streambuf* inner, TerminalProgress& progress, std::string what, std::uint64_t total)
      : inner_(inner), progress_(progress), what_(std::move(what)), total_(total) {}

 protected:
  int_type underflow() override {
    auto n = inner_->sgetn(buffer_, sizeof buffer_);
    if (n <= 0) return traits_type::eof();
    setg(buffer_, buffer_, buffer_ + n);
    passed(std::uint64_t(n));
    return traits_type::to_int_type(buffer_[0]);
  }
  std::streamsize xsputn(const char* data, std::streamsize n) override {
    auto written = inner_->sputn(data, n);
    if (written > 0) passed(std::uint64_t(written));
    return written;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    char one = traits_type::to_char_type(c);
    return xsputn(&one, 1) == 1 ? c : traits_type::eof();
  }
  int sync() override { return inner_->pubsync(); }

 private:
  void passed(std::uint64_t n) {
    count_ += n;
    progress_.show(progress_text(what_, count_, total_, progress_.seconds()));
  }

  std::streambuf* inner_;
  TerminalProgress& progress_;
  std::string what_;
  std::uint64_t total_;
  std::uint64_t count_ = 0;
  char buffer_[64 * 1024];
};

// What a bundle command prints: the counts as JSON on stdout, its notes on stderr.
void report(const std::string& file, const cache::BundleSummary& summary, bool imported) {
  for (const auto& note : summary.notes) std::cerr << "pullgate: note: " << note << "\n";
  nlohmann::json out{{"file", file},
                     {"images", summary.images},
                     {"manifests", summary.manifests},
                     {"blobs", summary.blobs},
                     {"artifacts", summary.artifacts}};
  if (imported) out["records_written"] = summary.records;
  out["signed_by"] = summary.signed_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(summary.signed_by);
  std::cout << out.dump() << "\n";
}

int run_export(const CliArgs& cli, const Config& config) {
  std::vector<std::string> references(cli.positional.begin() + 1, cli.positional.end());
  if (auto* list = cli.get("--file")) {
    auto listed = read_image_list(*list);
    if (!listed) {
      std::cerr << "pullgate: cannot read " << *list << "\n";
      return 1;
    }
    references.insert(references.end(), listed->begin(), listed->end());
  }
  if (references.empty()) return usage("bundle export needs IMAGE... or --file LIST", "bundle");
  auto* output = cli.get("--output");
  if (!output) return usage("bundle export needs -o FILE.tar", "bundle");

  std::vector<cache::BundleImage> images;
  for (const auto& reference : references) {
    auto parsed = parse_explain_query(reference, upstream_names(config, !cli.get("--config"), reference));
    if (parsed.query && parsed.query->upstream.empty())
      parsed.error = reference + ": name the image (UPSTREAM/REPOSITORY@DIGEST), not only a digest";
    if (!parsed.error.empty()) {
      std::cerr << "pullgate: " << parsed.error << "\n";
      return 1;
    }
    auto& q = *parsed.query;
    images.push_back(cache::BundleImage{reference, q.upstream, q.repository, q.tag, q.digest});
  }

  std::optional<registry::PrivateKey> sign_key;
  if (auto* key_file = cli.get("--sign-key")) {
    std::ifstream in(*key_file, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in) {
      std::cerr << "pullgate: cannot read " << *key_file << "\n";
      return 1;
    }
    auto key = registry::PrivateKey::from_pem(*key_file, pem.str());
    if (auto* error = std::get_if<std::string>(&key)) {
      std::cerr << "pullgate: " << *error << "\n";
      return 1;
    }
    sign_key = std::get<registry::PrivateKey>(std::move(key));
  }

  auto meta = open_existing_store(config);
  if (!meta) return 1;
  // Written beside the target and renamed at the end: a failed export leaves no
  // half bundle under the name.
  const std::string partial = *output + ".partial";
  try {
    std::ofstream file(partial, std::ios::binary | std::ios::trunc);
    if (!file) throw std::runtime_error("cannot create " + partial);
    TerminalProgress progress(stderr_is_terminal());
    CountingBuffer counted(file.rdbuf(), progress, "export " + *output, 0);
    std::ostream out(&counted);
    auto summary = cache::export_bundle(*meta, config.data_dir, images, out, sign_key ? &*sign_key : nullptr);
    out.flush();
    progress.clear();
    file.close();
    if (!out || !file) throw std::runtime_error("cannot write " + partial);
    std::filesystem::rename(partial, *output);
    report(*output, summary, false);
    return 0;
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(partial, ec);
    std::cerr << "pullgate: " << e.what() << "\n";
    return 1;
  }
}

int run_import(const CliArgs& cli, const Config& config, bool dry_run) {
  if (cli.positional.size() != 2) return usage("bundle " + cli.positional[0] + " takes exactly one FILE.tar", "bundle");
  const std::string& file = cli.positional[1];
  std::ifstream input(file, std::ios::binary);
  if (!input) {
    std::cerr << "pullgate: cannot read " << file << "\n";
    return 1;
  }
  cache::ImportOptions options;
  if (auto* upstream = cli.get("--upstream")) {
    options.upstream = *upstream;
    for (const auto& u : config.upstreams)
      if (u.docker_hub && (u.settings.name == *upstream ||
                           std::find(u.aliases.begin(), u.aliases.end(), *upstream) != u.aliases.end()))
        options.docker_hub = true;
  }
  options.now_ms = now_ms();
  options.dry_run = dry_run;
  auto key_errors = load_bundle_keys(config, options.trusted_keys);
  if (!key_errors.empty()) {
    for (const auto& e : key_errors) std::cerr << "pullgate: " << e << "\n";
    return 1;
  }
  // Keys listed mean the operator expects signed bundles, unless the config says otherwise.
  options.require_signature = config.bundle_require_signature.value_or(!config.bundle_trusted_keys.empty());
  try {
    // An offline site's first import may find no cache yet: it makes one.
    auto meta = open_meta_store(config);
    std::error_code ec;
    auto size = std::filesystem::is_regular_file(file, ec) ? std::filesystem::file_size(file, ec) : 0;
    TerminalProgress progress(stderr_is_terminal());
    CountingBuffer counted(input.rdbuf(), progress, (dry_run ? "verify " : "import ") + file, ec ? 0 : size);
    std::istream in(&counted);
    auto summary = cache::import_bundle(*meta, config.data_dir, in, options);
    progress.clear();
    report(file, summary, !dry_run);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "pullgate: " << file << ": " << e.what() << (dry_run ? "\n" : " (nothing was imported)\n");
    return 1;
  }
}

}  // namespace

int run_bundle(const std::vector<std::string>& all) {
  const std::string command = all[0];
  if (command != "export" && command != "import" && command != "verify") return usage("unknown bundle command " + command, "bundle");
  std::vector<std::string> args = all;
  for (auto& a : args)
    if (a == "-o") a = "--output";
  auto cli = parse_cli(args, 0, {"--data", "--config", "--file", "--output", "--upstream", "--sign-key"});
  if (cli.help) {
    std::cout << bundle_help;
    return 0;
  }
  if (!cli.error.empty()) return usage(cli.error, "bundle");
  if (command == "export" && cli.get("--upstream")) return usage("--upstream is for bundle import", "bundle");
  if (command != "export" && (cli.get("--file") || cli.get("--output") || cli.get("--sign-key")))
    return usage("--file, -o and --sign-key are for bundle export", "bundle");
  auto config = cli_config(cli);
  if (!config) return 1;
  return command == "export" ? run_export(cli, *config) : run_import(cli, *config, command == "verify");
}

}  // namespace pullgate::proxy::cli
