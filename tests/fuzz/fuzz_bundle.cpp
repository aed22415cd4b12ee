// Air-gap bundles as `pullgate bundle verify` reads them (cache/bundle.hpp): the tar
// reader, the OCI layout (oci-layout, index.json, manifests, blobs), pullgate's
// evidence and signature entries, and docker-archives, all with dry_run, so each
// input costs its temp files only. Whatever the archive holds, the import either
// checks out or is refused with a BundleError or tar::Error of one line.
//
// Input: one byte of options, then the archive. Bit 0: file the images under an
// upstream (a docker-archive needs one); bit 1: leave the header checksums as they
// are (otherwise they are set right first, so the mutator's changes to a header reach
// the code behind the checksum check instead of failing it).
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "cache/bundle.hpp"
#include "cache/tar.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::cache;
using pullgate::fuzz::one_line;
using pullgate::fuzz::require;

namespace {

// One data directory per process (libFuzzer's -fork/-jobs run several), removed at exit.
struct DataDir {
  std::filesystem::path path;
  std::unique_ptr<MetaStore> meta;
  DataDir() {
    std::string name = (std::filesystem::temp_directory_path() / "pullgate-fuzz-bundle-XXXXXX").string();
    require(::mkdtemp(name.data()) != nullptr, "a temp data directory");
    path = name;
    meta = MetaStore::open(path / "lmdb", 64u << 20);
  }
  ~DataDir() {
    meta.reset();
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

DataDir& data_dir() {
  static DataDir dir;
  return dir;
}

std::optional<std::uint64_t> octal(const char* field, std::size_t width) {
  std::uint64_t value = 0;
  std::size_t i = 0;
  while (i < width && field[i] == ' ') ++i;
  if (i == width || field[i] < '0' || field[i] > '7') return std::nullopt;
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) value = value * 8 + std::uint64_t(field[i] - '0');
  return value;
}

// Sets each header's checksum right, walking headers by their size fields.
void fix_checksums(std::string& archive) {
  std::size_t at = 0;
  while (at + tar::block_size <= archive.size()) {
    char* block = archive.data() + at;
    bool zero = true;
    for (std::size_t i = 0; i < tar::block_size && zero; ++i) zero = block[i] == 0;
    if (zero) break;
    unsigned sum = 0;
    for (std::size_t i = 0; i < tar::block_size; ++i)
      sum += (i >= 148 && i < 156) ? unsigned(' ') : unsigned(static_cast<unsigned char>(block[i]));
    std::snprintf(block + 148, 8, "%06o", sum);
    block[155] = ' ';
    auto size = octal(block + 124, 12);
    if (!size || *size > archive.size()) break;
    at += tar::block_size + (*size + tar::block_size - 1) / tar::block_size * tar::block_size;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  DataDir& dir = data_dir();
  std::string archive(pullgate::fuzz::as_text(data + 1, size - 1));
  if (!(data[0] & 2)) fix_checksums(archive);
  ImportOptions options;
  options.dry_run = true;
  options.now_ms = 1'700'000'000'000;
  if (data[0] & 1) {
    options.upstream = "docker.io";
    options.docker_hub = true;
  }
  std::istringstream in(archive);
  try {
    const auto summary = import_bundle(*dir.meta, dir.path, in, options);
    require(summary.records == 0, "a dry run writes no record");
    for (const auto& note : summary.notes) require(one_line(note), "one-line notes", note);
  } catch (const BundleError& e) {
    require(one_line(e.what()), "a one-line refusal", e.what());
  } catch (const tar::Error& e) {
    require(one_line(e.what()), "a one-line refusal", e.what());
  }
  return 0;
}
