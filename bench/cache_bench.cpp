// The cache lifecycle's costs (issue 11's bench rows), on real LMDB environments and
// blob files on the disk of CACHE_BENCH_DIR (default /var/tmp):
//   - PullTimes::note of a known manifest: all that last-pull tracking adds to a warm
//     manifest request (the note; the batched flush runs on the blocking pool), on 1
//     and 2 threads;
//   - an eviction run over 10,000 blobs (1,000 images of a config and 9 layers), and
//     the warm path's store reads (a tag, then its manifest) on another thread, their
//     p99 while the run goes and without it;
//   - bundle export and import of one image (4 layers, CACHE_BENCH_MIB in all, default
//     256) against `cp` of the same blob files on the same disk, with and without a
//     `sync` after it (import syncs what it publishes).
//   cmake --build build --target cache_bench && build/cache_bench
// Results and how they were read: bench/README.md ("Cache lifecycle").
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cache/blob_store.hpp"
#include "cache/bundle.hpp"
#include "cache/evictor.hpp"
#include "cache/meta_store.hpp"
#include "cache/pull_times.hpp"
#include "registry/digest.hpp"
#include "registry/manifest.hpp"

namespace {

namespace fs = std::filesystem;
using namespace pullgate;
using cache::BlobRecord;
using cache::ManifestBatch;
using cache::ManifestRecord;
using cache::TagRecord;
using registry::Digest;

constexpr std::int64_t t0 = 1'700'000'000'000;

fs::path bench_root(const std::string& what) {
  const char* base = std::getenv("CACHE_BENCH_DIR");
  auto dir = fs::path(base ? base : "/var/tmp") / ("pullgate-cache-bench-" + what + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string out(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    auto word = random();
    std::memcpy(out.data() + i, &word, 8);
  }
  return out;
}

std::string descriptor(std::string_view media_type, const Digest& digest, std::size_t size) {
  return R"({"mediaType":")" + std::string(media_type) + R"(","digest":")" + digest.str() + R"(","size":)" +
         std::to_string(size) + "}";
}

// A cache on disk: blob files with their records, images tagged under "bench".
struct Cache {
  fs::path dir;
  std::unique_ptr<cache::MetaStore> meta = cache::MetaStore::open(dir / "lmdb", 256 << 20);
  cache::BlobStore blobs{dir};

  std::pair<Digest, std::size_t> put_blob(std::string_view bytes) {
    auto digest = registry::digest_of(registry::DigestAlgorithm::sha256, bytes);
    auto temp = blobs.create_temp();
    for (std::size_t done = 0; done < bytes.size();) {
      auto n = ::write(temp.file.get(), bytes.data() + done, bytes.size() - done);
      if (n <= 0) throw std::runtime_error("write failed");
      done += static_cast<std::size_t>(n);
    }
    blobs.publish(temp, digest);
    meta->put_blob(digest, BlobRecord{bytes.size(), t0, t0});
    return {digest, bytes.size()};
  }

  // An image of a config and `layers`, tagged repo:v1; pulled at `pulled_ms`.
  Digest put_image(const std::string& repo, const std::vector<std::pair<Digest, std::size_t>>& layers,
                   std::int64_t pulled_ms) {
    auto config = put_blob(R"({"architecture":"amd64","os":"linux","repo":")" + repo + "\"}");
    std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                           descriptor("application/vnd.oci.image.config.v1+json", config.first, config.second) +
                           R"(,"layers":[)";
    std::vector<Digest> references{config.first};
    for (std::size_t i = 0; i < layers.size(); ++i) {
      manifest += (i ? "," : "") + descriptor("application/vnd.oci.image.layer.v1.tar", layers[i].first, layers[i].second);
      references.push_back(layers[i].first);
    }
    manifest += "]}";
    auto digest = registry::digest_of(registry::DigestAlgorithm::sha256, manifest);
    ManifestBatch batch;
    batch.upstream = "bench";
    batch.repository = repo;
    batch.tag = ManifestBatch::Tag{"v1", TagRecord{digest, std::string(registry::media_type::oci_manifest), t0}};
    batch.manifest = ManifestBatch::Manifest{
        digest, ManifestRecord{std::string(registry::media_type::oci_manifest), manifest, t0}, references};
    batch.seen = {digest};
    meta->write(batch);
    const cache::PullTime pulled{digest.str(), pulled_ms};
    meta->put_pull_times({&pulled, 1});
    return digest;
  }
};

// --- last-pull tracking -------------------------------------------------------------

cache::PullTimes shared_pulls;

void BM_PullNoteOfAKnownManifest(benchmark::State& state) {
  // One key per image a node pulls; a warm request notes one that is already known.
  static const std::string key = "sha256:" + std::string(64, 'a');
  std::int64_t at = t0;
  shared_pulls.note(key, at);
  for (auto _ : state) shared_pulls.note(key, ++at);
}
BENCHMARK(BM_PullNoteOfAKnownManifest)->Threads(1)->Threads(2)->UseRealTime();

// --- an eviction run over 10,000 blobs ---------------------------------------------

constexpr int kImages = 1000;
constexpr int kLayers = 9;  // and a config: 10 blobs an image

// The warm path's store reads on another thread while `busy` holds, their latencies.
std::vector<double> warm_reads(cache::MetaStore& meta, const std::vector<std::string>& repos,
                               const std::atomic<bool>& busy) {
  std::vector<double> micros;
  std::size_t i = 0;
  while (busy.load(std::memory_order_relaxed)) {
    const auto started = std::chrono::steady_clock::now();
    auto tag = meta.get_tag("bench", repos[i++ % repos.size()], "v1");
    if (tag) benchmark::DoNotOptimize(meta.get_manifest(tag->digest));
    micros.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count());
  }
  return micros;
}

double p99(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() * 99 / 100];
}

void BM_EvictionOf10000Blobs(benchmark::State& state) {
  const bool with_eviction = state.range(0) == 1;
  std::vector<double> during;
  std::size_t evicted = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto root = bench_root("evict");
    {
      Cache c{root};
      std::vector<std::string> kept;
      for (int image = 0; image < kImages; ++image) {
        std::vector<std::pair<Digest, std::size_t>> layers;
        for (int layer = 0; layer < kLayers; ++layer)
          layers.push_back(c.put_blob(random_bytes(4096, std::uint64_t(image) * 100 + layer)));
        // The first 900 images were pulled long ago and go; the last 100 stay.
        auto repo = "team/app" + std::to_string(image);
        c.put_image(repo, layers, image < 900 ? t0 : t0 + 6'000'000);
        if (image >= 900) kept.push_back(repo);
      }
      cache::PullTimes pulls;
      // No size limit; unpulled for an hour goes: the 900 images pulled two hours
      // before the clock's now, not the 100 pulled 20 minutes before.
      cache::Evictor evictor(*c.meta, c.blobs, pulls,
                             cache::EvictionLimits{std::nullopt, 90, 80, std::int64_t(3600'000)},
                             [] { return std::chrono::system_clock::time_point(std::chrono::milliseconds(t0 + 7'200'000)); });
      std::atomic<bool> busy{true};
      std::vector<double> micros;
      std::thread reader([&] { micros = warm_reads(*c.meta, kept, busy); });
      state.ResumeTiming();
      if (with_eviction) {
        evicted = evictor.run().plan.blobs.size();
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the reads alone, as long
      }
      state.PauseTiming();
      busy = false;
      reader.join();
      during.insert(during.end(), micros.begin(), micros.end());
    }
    fs::remove_all(root);
    state.ResumeTiming();
  }
  if (with_eviction && evicted != 9000) state.SkipWithError("the run did not evict 9,000 blobs");
  state.counters["blobs_evicted"] = static_cast<double>(evicted);
  state.counters["warm_read_p99_us"] = p99(during);
  state.counters["warm_reads"] = static_cast<double>(during.size());
}
BENCHMARK(BM_EvictionOf10000Blobs)->Arg(0)->Arg(1)->ArgNames({"evicting"})->Iterations(1)->Repetitions(3)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// --- bundle export and import against cp ---------------------------------------------

struct BundleSource {
  fs::path root = bench_root("bundle");
  Cache cache{root / "source"};
  std::uint64_t blob_bytes = 0;
  BundleSource() {
    const char* mib = std::getenv("CACHE_BENCH_MIB");
    const std::size_t layer = std::size_t(mib ? std::atoi(mib) : 256) << 20 >> 2;
    std::vector<std::pair<Digest, std::size_t>> layers;
    for (int i = 0; i < 4; ++i) {
      layers.push_back(cache.put_blob(random_bytes(layer, 7 + i)));
      blob_bytes += layer;
    }
    cache.put_image("team/big", layers, t0);
  }
  ~BundleSource() { fs::remove_all(root); }
  fs::path bundle() const { return root / "bundle.tar"; }
};

BundleSource& source() {
  static BundleSource s;
  return s;
}

void BM_BundleExport(benchmark::State& state) {
  auto& s = source();
  const std::vector<cache::BundleImage> images{{"bench/team/big:v1", "bench", "team/big", "v1", std::nullopt}};
  for (auto _ : state) {
    std::ofstream out(s.bundle(), std::ios::binary | std::ios::trunc);
    cache::export_bundle(*s.cache.meta, s.cache.dir, images, out);
    out.close();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(s.blob_bytes));
}
BENCHMARK(BM_BundleExport)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_BundleImport(benchmark::State& state) {
  auto& s = source();
  if (!fs::exists(s.bundle())) {
    std::ofstream out(s.bundle(), std::ios::binary | std::ios::trunc);
    const std::vector<cache::BundleImage> images{{"bench/team/big:v1", "bench", "team/big", "v1", std::nullopt}};
    cache::export_bundle(*s.cache.meta, s.cache.dir, images, out);
  }
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(s.root / "target");
    {
      auto meta = cache::MetaStore::open(s.root / "target" / "lmdb", 256 << 20);
      std::ifstream in(s.bundle(), std::ios::binary);
      cache::ImportOptions options;
      options.now_ms = t0;
      state.ResumeTiming();
      cache::import_bundle(*meta, s.root / "target", in, options);
      state.PauseTiming();
    }
    state.ResumeTiming();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(s.blob_bytes));
}
BENCHMARK(BM_BundleImport)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

void copy_blobs(benchmark::State& state, bool sync) {
  auto& s = source();
  const auto from = (s.cache.dir / "blobs").string(), to = (s.root / "copy").string();
  const std::string command = "cp -r '" + from + "' '" + to + "'" + (sync ? " && sync" : "");
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(to);
    state.ResumeTiming();
    if (std::system(command.c_str()) != 0) state.SkipWithError("cp failed");
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(s.blob_bytes));
}
void BM_CpOfTheSameBlobs(benchmark::State& state) { copy_blobs(state, false); }
void BM_CpOfTheSameBlobsThenSync(benchmark::State& state) { copy_blobs(state, true); }
BENCHMARK(BM_CpOfTheSameBlobs)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CpOfTheSameBlobsThenSync)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
