#pragma once
// The audit trail: one JSON line per gate decision, appended and flushed per line,
// rotated by size (the full file is fsynced and renamed to <path>.1, older ones
// shift up to <path>.<keep>), so a crash loses nothing already written.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "proxy/json_line.hpp"

namespace pullgate::proxy {

class AuditLog {
 public:
  // Throws std::runtime_error when the file cannot be opened.
  AuditLog(std::filesystem::path path, std::uint64_t max_bytes, unsigned keep);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Adds "time" and writes one line. Never throws: a failed write is reported once
  // on stderr and counted.
  void write(JsonLine record);
  std::uint64_t failed_writes() const;
  // Counts failed writes there too (metrics); set before use.
  void count_failures_in(std::function<void()> on_failure) { on_failure_ = std::move(on_failure); }
  const std::filesystem::path& path() const { return path_; }

 private:
  void rotate_locked();

  std::filesystem::path path_;
  std::uint64_t max_bytes_;
  unsigned keep_;
  mutable std::mutex mutex_;
  std::FILE* file_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t failed_ = 0;
  std::function<void()> on_failure_;
};

}  // namespace pullgate::proxy
