// Blob files: written under tmp/, made durable, then renamed into the
// content-addressed tree. rename(2) is atomic, so a reader sees either no blob
// or the whole verified one.
#include "cache/blob_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <stdexcept>
#include <system_error>

namespace pullgate::cache {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void fsync_directory(const std::filesystem::path& dir) {
  FileHandle handle(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!handle) throw_errno("open directory " + dir.string());
  if (::fsync(handle.get()) != 0) throw_errno("fsync directory " + dir.string());
}

// mkdir that tolerates an existing directory; a new entry is made durable in
// its parent so a published blob cannot lose its directory in a crash.
void ensure_directory(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) {
    fsync_directory(dir.parent_path());
    return;
  }
  if (errno != EEXIST) throw_errno("create directory " + dir.string());
}

std::string random_hex(std::size_t length) {
  static constexpr char digits[] = "0123456789abcdef";
  thread_local std::mt19937_64 engine{std::random_device{}()};
  std::string out(length, '0');
  for (auto& c : out) c = digits[engine() & 15];
  return out;
}

}  // namespace

FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

FileHandle& FileHandle::operator=(FileHandle&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

BlobStore::BlobStore(std::filesystem::path root, Leftovers leftovers) : root_(std::move(root)) {
  auto unusable = [&](const std::string& reason) {
    return std::runtime_error("data directory " + root_.string() + " is not writable: " + reason);
  };
  std::error_code ec;
  std::filesystem::create_directories(root_ / "blobs", ec);
  if (!ec) std::filesystem::create_directories(root_ / "tmp", ec);
  if (ec) throw unusable(ec.message());

  // Leftovers are temp files of a run that crashed mid-download: never published, never valid.
  for (auto it = std::filesystem::directory_iterator(root_ / "tmp", ec);
       leftovers == Leftovers::remove && !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code remove_ec;
    std::filesystem::remove_all(it->path(), remove_ec);
    if (remove_ec) throw unusable("cannot remove " + it->path().string() + ": " + remove_ec.message());
  }
  if (ec) throw unusable(ec.message());

  // Existing directories can still be unwritable (permissions, read-only mount): probe.
  try {
    TempBlob probe = create_temp();
    discard(probe);
  } catch (const std::system_error& e) {
    throw unusable(e.code().message());
  }
}

std::filesystem::path BlobStore::path_for(const Digest& digest) const {
  auto hex = digest.hex();
  return root_ / "blobs" / std::string(digest.algorithm_name()) / std::string(hex.substr(0, 2)) / std::string(hex);
}

std::optional<BlobStore::Opened> BlobStore::open(const Digest& digest) const {
  auto path = path_for(digest);
  FileHandle file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("open blob " + path.string());
  }
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) throw_errno("stat blob " + path.string());
  if (!S_ISREG(st.st_mode)) return std::nullopt;  // not something we published
  return Opened{std::move(file), std::uint64_t(st.st_size)};
}

TempBlob BlobStore::create_temp() const {
  // 64 random bits make a collision unlikely; O_EXCL makes one harmless.
  for (int attempt = 0;; ++attempt) {
    auto path = root_ / "tmp" / random_hex(16);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      // Held as long as the file is open (its duplicates share the lock): garbage
      // collection, in this process or another, never removes a locked temp file.
      ::flock(fd, LOCK_SH);
      return TempBlob{std::move(path), FileHandle(fd)};
    }
    if (errno != EEXIST || attempt >= 8) throw_errno("create temp blob " + path.string());
  }
}

void BlobStore::publish(const TempBlob& temp, const Digest& digest) const {
  if (::fsync(temp.file.get()) != 0) throw_errno("fsync temp blob " + temp.path.string());
  auto target = path_for(digest);
  auto fan_out = target.parent_path();
  ensure_directory(fan_out.parent_path());  // blobs/<algorithm>
  ensure_directory(fan_out);                // blobs/<algorithm>/<hex[0:2]>
  if (::rename(temp.path.c_str(), target.c_str()) != 0) {
    throw_errno("rename " + temp.path.string() + " to " + target.string());
  }
  fsync_directory(fan_out);
}

void BlobStore::discard(const TempBlob& temp) const noexcept { ::unlink(temp.path.c_str()); }

void BlobStore::remove(const Digest& digest) const noexcept {
  try {
    ::unlink(path_for(digest).c_str());
  } catch (...) {
    // path_for can only fail to allocate; removal is best effort by contract.
  }
}

}  // namespace pullgate::cache
