#pragma once
// Garbage and corruption in the blob cache (docs/cache.md, "Garbage and verify"):
// blob files whose bytes do not hash to their name, blob files without a record,
// records without a file, and temp files no download holds. One routine serves the
// server's periodic collection (no hashing, called by each eviction run) and
// `pullgate cache verify` (every file hashed, streamed through a fixed buffer), which
// runs in its own process beside a running server. Neither may remove what a
// download or a publish in progress needs:
// - a download holds its temp file flock-ed while it is open (BlobStore::create_temp):
//   a locked temp file is never removed, nor one written within the grace;
// - a blob is renamed into place before its record is written (under BlobStore::lock,
//   held here too): a file without a record goes only when it has not changed (its
//   ctime moves with the rename) within the grace, and its record is looked up again
//   under the lock just before;
// - a file goes only if the file at its path is still the one that was read: it is
//   first renamed aside and compared by inode, and put back when it is another (a blob
//   published meanwhile by another process);
// - a record goes only if it is still the one that was read (MetaStore::remove_blob_if).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "cache/blob_store.hpp"
#include "cache/meta_store.hpp"

namespace pullgate::cache {

struct GarbageOptions {
  bool hash = false;   // re-hash every blob file (verify); without it only names and records are compared
  bool remove = true;  // false: report what would go, change nothing
  std::int64_t now_ms = 0;
  // Files changed more recently than this are left: a publish (rename, then record) or
  // a bundle import (files first, records at the end) may be in progress.
  std::int64_t grace_ms = 3600 * 1000;
  // After each blob file: how many were looked at, and how many bytes hashed, so far.
  std::function<void(std::uint64_t files, std::uint64_t bytes)> on_progress;
};

struct GarbageFinding {
  enum class Kind {
    mismatch,      // a blob file whose bytes hash to another digest
    orphan_file,   // a blob file without a record
    missing_file,  // a blob record without a file
    stale_temp,    // a temp file no download holds (or a file a crashed run left aside)
  };
  Kind kind;
  std::filesystem::path path;
  std::string digest;  // the blob's (empty for temp files)
  std::uint64_t bytes = 0;
  bool removed = false;
  std::string detail;  // e.g. the digest the bytes have
};
std::string_view to_string(GarbageFinding::Kind kind);

struct GarbageReport {
  std::uint64_t files_checked = 0;  // blob files looked at
  std::uint64_t bytes_checked = 0;  // bytes hashed
  std::uint64_t mismatched = 0;
  std::uint64_t orphan_files = 0;
  std::uint64_t missing_files = 0;
  std::uint64_t stale_temps = 0;
  std::uint64_t removed = 0;          // files and records removed
  std::uint64_t bytes_removed = 0;    // of the files removed
  std::uint64_t recent_orphans = 0;   // files without a record changed within the grace: left
  std::uint64_t temps_in_use = 0;     // temp files held by a download or changed within the grace
  std::uint64_t other_files = 0;      // not named as a blob: left alone
  std::uint64_t errors = 0;           // files that could not be read or removed
  std::string first_error;
  std::uint64_t found() const { return mismatched + orphan_files + missing_files + stale_temps; }
};

// Walks <root>/blobs and <root>/tmp once, calling on_finding for each finding (after
// its removal, when options.remove). A file that cannot be read is counted in
// errors and left. Throws std::runtime_error only when the directories cannot be read
// at all.
GarbageReport collect_blob_garbage(const BlobStore& blobs, MetaStore& meta, const GarbageOptions& options,
                                   const std::function<void(const GarbageFinding&)>& on_finding = {});

}  // namespace pullgate::cache
