#include "cache/garbage.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace pullgate::cache {
namespace {

namespace fs = std::filesystem;

// A file moved aside before its removal is named "<name><aside_marker><random>": a
// crash between the move and the unlink leaves one, which the next run removes.
constexpr std::string_view aside_marker = ".gc-";

std::int64_t changed_ms(const struct stat& st) {
  auto ms = [](const struct timespec& t) { return std::int64_t(t.tv_sec) * 1000 + t.tv_nsec / 1000000; };
  return std::max(ms(st.st_mtim), ms(st.st_ctim));
}

std::string aside_suffix() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(aside_marker);
  for (int i = 0; i < 12; ++i) out.push_back(digits[engine() & 15]);
  return out;
}

enum class Removal { removed, gone, replaced, failed };

// Removes `path` if it is still the file `read` describes. It is renamed aside first,
// atomically, so what is removed is exactly what was at the path; a different file
// there (published by another process meanwhile) is put back.
Removal remove_if_same(const fs::path& path, const struct stat& read, std::string& error) {
  fs::path aside = path;
  aside += aside_suffix();
  if (::rename(path.c_str(), aside.c_str()) != 0) {
    if (errno == ENOENT) return Removal::gone;
    error = "rename " + path.string() + ": " + std::strerror(errno);
    return Removal::failed;
  }
  struct stat now {};
  if (::lstat(aside.c_str(), &now) == 0 && (now.st_dev != read.st_dev || now.st_ino != read.st_ino)) {
    // Another file took the path since it was read: it goes back, unless yet another
    // one is there already (then both hold the same verified blob and this one goes).
    if (::renameat2(AT_FDCWD, aside.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) ::unlink(aside.c_str());
    return Removal::replaced;
  }
  if (::unlink(aside.c_str()) != 0) {
    error = "unlink " + aside.string() + ": " + std::strerror(errno);
    return Removal::failed;
  }
  return Removal::removed;
}

// The digest a blob file's bytes have, read through a fixed buffer; nullopt with
// `error` set when it cannot be read.
std::optional<Digest> hash_file(int fd, registry::DigestAlgorithm algorithm, std::string& error) {
  constexpr std::size_t chunk = 1 << 20;
  auto buffer = std::make_unique<char[]>(chunk);
  registry::DigestHasher hasher(algorithm);
  for (off_t offset = 0;;) {
    ssize_t n = ::pread(fd, buffer.get(), chunk, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = std::strerror(errno);
      return std::nullopt;
    }
    if (n == 0) break;
    hasher.update(buffer.get(), static_cast<std::size_t>(n));
    offset += n;
  }
  return hasher.finish();
}

class Collector {
 public:
  Collector(const BlobStore& blobs, MetaStore& meta, const GarbageOptions& options,
            const std::function<void(const GarbageFinding&)>& on_finding)
      : blobs_(blobs), meta_(meta), options_(options), on_finding_(on_finding) {}

  GarbageReport run() {
    // Records first: a blob published after this list has its file renamed in before
    // its record, and is looked up again before anything of it is removed.
    for (auto& [digest, record] : meta_.list_blobs()) records_.emplace(digest.str(), record);
    walk_blobs();
    for (const auto& [name, record] : records_)
      if (!on_disk_.contains(name)) missing_file(*Digest::parse(name), record);
    walk_temps();
    return std::move(report_);
  }

 private:
  void error(const std::string& what) {
    ++report_.errors;
    if (report_.first_error.empty()) report_.first_error = what;
  }

  void found(GarbageFinding finding) {
    if (finding.removed) {
      ++report_.removed;
      report_.bytes_removed += finding.bytes;
    }
    if (on_finding_) on_finding_(finding);
  }

  // Each entry of `dir` (not following links), or an error counted once.
  template <class Visit>
  void each_entry(const fs::path& dir, Visit visit) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
      if (ec != std::errc::no_such_file_or_directory) error("read " + dir.string() + ": " + ec.message());
      return;
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      visit(*it);
      if (ec) break;
    }
    if (ec) error("read " + dir.string() + ": " + ec.message());
  }

  // blobs/<algorithm>/<first two hex>/<hex>
  void walk_blobs() {
    each_entry(blobs_.root() / "blobs", [&](const fs::directory_entry& algorithm) {
      each_entry(algorithm.path(), [&](const fs::directory_entry& fan_out) {
        each_entry(fan_out.path(), [&](const fs::directory_entry& file) { blob_file(file.path()); });
      });
    });
  }

  void blob_file(const fs::path& path) {
    const auto name = path.filename().string();
    const auto fan_out = path.parent_path().filename().string();
    const auto algorithm = path.parent_path().parent_path().filename().string();
    if (auto at = name.find(aside_marker); at != std::string::npos) return left_aside(path);
    auto digest = Digest::parse(algorithm + ":" + name);
    struct stat st {};
    if (!digest || fan_out != name.substr(0, 2) || ::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      ++report_.other_files;
      return;
    }
    on_disk_.insert(digest->str());
    ++report_.files_checked;
    checked(*digest, path, st);
    if (options_.on_progress) options_.on_progress(report_.files_checked, report_.bytes_checked);
  }

  void checked(const Digest& digest, const fs::path& path, const struct stat& st) {
    if (options_.hash && !matches(digest, path)) return;
    if (records_.contains(digest.str())) return;
    orphan_file(digest, path, st);
  }

  // Whether the file hashes to its name; a mismatch is reported (and removed).
  bool matches(const Digest& digest, const fs::path& path) {
    FileHandle file(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (!file || ::fstat(file.get(), &st) != 0) {
      if (errno != ENOENT) error("open " + path.string() + ": " + std::strerror(errno));
      return false;  // evicted meanwhile: nothing to say
    }
    std::string why;
    auto actual = hash_file(file.get(), digest.algorithm(), why);
    if (!actual) {
      error("read " + path.string() + ": " + why);
      return false;
    }
    report_.bytes_checked += std::uint64_t(st.st_size);
    if (*actual == digest) return true;
    ++report_.mismatched;
    GarbageFinding finding{GarbageFinding::Kind::mismatch, path, digest.str(), std::uint64_t(st.st_size), false,
                           "content is " + actual->str()};
    if (options_.remove) {
      auto held = blobs_.lock(digest);
      auto record = meta_.get_blob(digest);
      auto removal = remove_if_same(path, st, why);
      if (removal == Removal::failed) error(why);
      if (removal == Removal::removed) {
        finding.removed = true;
        // Its record too, so the next pull fetches it again (unless a blob was published since).
        if (record && meta_.remove_blob_if(digest, record->stored_at_ms)) ++report_.removed;
      }
    }
    found(std::move(finding));
    return false;
  }

  // A finding whose file goes (when removing), if still the one `st` describes.
  void remove_file(GarbageFinding finding, const struct stat& st) {
    if (options_.remove) {
      std::string why;
      auto removal = remove_if_same(finding.path, st, why);
      if (removal == Removal::failed) error(why);
      finding.removed = removal == Removal::removed;
    }
    found(std::move(finding));
  }

  void orphan_file(const Digest& digest, const fs::path& path, const struct stat& st) {
    auto held = blobs_.lock(digest);
    if (meta_.get_blob(digest)) return;  // published since the records were read
    if (options_.now_ms - changed_ms(st) < options_.grace_ms) {
      ++report_.recent_orphans;  // maybe a publish between its rename and its record
      return;
    }
    ++report_.orphan_files;
    GarbageFinding finding{GarbageFinding::Kind::orphan_file, path, digest.str(), std::uint64_t(st.st_size), false, {}};
    remove_file(std::move(finding), st);
  }

  void missing_file(const Digest& digest, const BlobRecord& read) {
    auto held = blobs_.lock(digest);
    auto path = blobs_.path_for(digest);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) return;  // published since the walk
    auto record = meta_.get_blob(digest);
    if (!record || record->stored_at_ms != read.stored_at_ms) return;  // evicted or published again meanwhile
    GarbageFinding finding{GarbageFinding::Kind::missing_file, path, digest.str(), 0, false, {}};
    if (options_.remove) {
      finding.removed = meta_.remove_blob_if(digest, read.stored_at_ms);
      if (!finding.removed) return;  // taken care of by someone else meanwhile
    }
    ++report_.missing_files;
    found(std::move(finding));
  }

  // A temp file goes when no download holds it (its lock) and it was not written
  // within the grace (a file just created, not yet locked, is that young).
  void walk_temps() {
    each_entry(blobs_.root() / "tmp", [&](const fs::directory_entry& entry) { temp_file(entry.path(), true); });
  }

  void left_aside(const fs::path& path) { temp_file(path, false); }

  void temp_file(const fs::path& path, bool by_grace) {
    FileHandle file(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!file || ::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      if (file) ++report_.other_files;
      return;
    }
    if (::flock(file.get(), LOCK_EX | LOCK_NB) != 0 ||
        (by_grace && options_.now_ms - std::int64_t(st.st_mtim.tv_sec) * 1000 < options_.grace_ms)) {
      ++report_.temps_in_use;
      return;
    }
    ++report_.stale_temps;
    GarbageFinding finding{GarbageFinding::Kind::stale_temp, path, {}, std::uint64_t(st.st_size), false, {}};
    remove_file(std::move(finding), st);
  }

  const BlobStore& blobs_;
  MetaStore& meta_;
  const GarbageOptions& options_;
  const std::function<void(const GarbageFinding&)>& on_finding_;
  std::unordered_map<std::string, BlobRecord> records_;
  std::unordered_set<std::string> on_disk_;
  GarbageReport report_;
};

}  // namespace

std::string_view to_string(GarbageFinding::Kind kind) {
  switch (kind) {
    case GarbageFinding::Kind::mismatch: return "mismatch";
    case GarbageFinding::Kind::orphan_file: return "orphan_file";
    case GarbageFinding::Kind::missing_file: return "missing_file";
    case GarbageFinding::Kind::stale_temp: return "stale_temp";
  }
  return "unknown";
}

GarbageReport collect_blob_garbage(const BlobStore& blobs, MetaStore& meta, const GarbageOptions& options,
                                   const std::function<void(const GarbageFinding&)>& on_finding) {
  return Collector(blobs, meta, options, on_finding).run();
}

}  // namespace pullgate::cache
