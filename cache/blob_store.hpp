#pragma once
// Content-addressed blob files under <data>/blobs/<algorithm>/<first two hex>/<hex>.
// A blob is written to <data>/tmp/<random> and renamed into place only after its
// digest was verified, so a crash never leaves a half blob that looks complete.
// Paths are derived only from a validated Digest: nothing a client sends reaches
// the file system in any other way.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "cache/key_locks.hpp"
#include "registry/digest.hpp"

namespace pullgate::cache {

using registry::Digest;

// An open file descriptor, closed on destruction.
class FileHandle {
 public:
  FileHandle() = default;
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle();
  FileHandle(FileHandle&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileHandle& operator=(FileHandle&& other) noexcept;
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct TempBlob {
  std::filesystem::path path;
  FileHandle file;  // opened read-write
};

class BlobStore {
 public:
  // Creates <root>/blobs and <root>/tmp; removes leftovers in tmp from a previous
  // run, unless told to keep them (a second process such as `pullgate bundle`, working
  // beside a running server, must not remove the server's downloads in progress).
  // Throws std::runtime_error (one line) when the directory is unusable.
  enum class Leftovers { remove, keep };
  explicit BlobStore(std::filesystem::path root, Leftovers leftovers = Leftovers::remove);

  std::filesystem::path path_for(const Digest& digest) const;

  // The published blob, opened read-only, with its size; nullopt when absent.
  struct Opened {
    FileHandle file;
    std::uint64_t size;
  };
  std::optional<Opened> open(const Digest& digest) const;

  // Throws std::system_error (e.g. ENOSPC, EMFILE). The file is flock-ed (shared)
  // while it is open: a download in progress is never taken for garbage (cache/garbage.hpp).
  TempBlob create_temp() const;
  // fsyncs the file, renames it to path_for(digest) (creating the fan-out
  // directory) and fsyncs the directory. Throws std::system_error.
  void publish(const TempBlob& temp, const Digest& digest) const;
  // Unlinks a temp file that will not be published; never throws.
  void discard(const TempBlob& temp) const noexcept;
  // Removes a published blob (eviction, corruption found); never throws.
  void remove(const Digest& digest) const noexcept;

  const std::filesystem::path& root() const { return root_; }

  // Held while a blob is published (renamed into place and recorded) and while it is
  // evicted (its record and file removed): the two never interleave for one digest.
  KeyLocks::Held lock(const Digest& digest) const { return locks_.lock(digest.str()); }

 private:
  std::filesystem::path root_;
  mutable KeyLocks locks_;
};

}  // namespace pullgate::cache
