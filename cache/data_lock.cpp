#include "cache/data_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pullgate::cache {
namespace {

FileHandle open_lock(const std::filesystem::path& data_dir) {
  const auto path = data_dir / "server.lock";
  FileHandle file(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!file) throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  return file;
}

int lock(const FileHandle& file, int how) {
  int rc;
  do rc = ::flock(file.get(), how);
  while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

FileHandle hold_data_dir_shared(const std::filesystem::path& data_dir) {
  auto file = open_lock(data_dir);
  if (lock(file, LOCK_SH) != 0)
    throw std::runtime_error("cannot lock " + (data_dir / "server.lock").string() + ": " + std::strerror(errno));
  return file;
}

std::optional<FileHandle> try_hold_data_dir_exclusive(const std::filesystem::path& data_dir) {
  auto file = open_lock(data_dir);
  if (lock(file, LOCK_EX | LOCK_NB) == 0) return file;
  if (errno == EWOULDBLOCK) return std::nullopt;
  throw std::runtime_error("cannot lock " + (data_dir / "server.lock").string() + ": " + std::strerror(errno));
}

}  // namespace pullgate::cache
