#include "proxy/audit_log.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "proxy/log.hpp"

namespace pullgate::proxy {

namespace fs = std::filesystem;

AuditLog::AuditLog(fs::path path, std::uint64_t max_bytes, unsigned keep)
    : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep) {
  std::error_code ec;
  if (path_.has_parent_path()) fs::create_directories(path_.parent_path(), ec);
  file_ = std::fopen(path_.c_str(), "a");
  if (!file_) throw std::runtime_error("cannot open audit log " + path_.string() + ": " + std::strerror(errno));
  size_ = fs::file_size(path_, ec);
  if (ec) size_ = 0;
}

AuditLog::~AuditLog() {
  if (file_) {
    std::fflush(file_);
    ::fsync(fileno(file_));
    std::fclose(file_);
  }
}

void AuditLog::write(JsonLine record) {
  auto line = record.field("time", utc_timestamp()).finish();
  std::lock_guard lock(mutex_);
  if (!file_) {
    ++failed_;
    if (on_failure_) on_failure_();
    return;
  }
  if (max_bytes_ > 0 && size_ > 0 && size_ + line.size() > max_bytes_) rotate_locked();
  if (!file_ || std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    if (on_failure_) on_failure_();
    if (failed_++ == 0) log_event("error", "audit log write failed", {{"path", path_.string()}, {"error", std::strerror(errno)}});
    return;
  }
  size_ += line.size();
}

std::uint64_t AuditLog::failed_writes() const {
  std::lock_guard lock(mutex_);
  return failed_;
}

void AuditLog::rotate_locked() {
  std::fflush(file_);
  ::fsync(fileno(file_));
  std::fclose(file_);
  file_ = nullptr;
  std::error_code ec;
  for (unsigned i = keep_; i >= 1; --i) {
    fs::path from = i == 1 ? path_ : fs::path(path_.string() + "." + std::to_string(i - 1));
    fs::path to = path_.string() + "." + std::to_string(i);
    if (fs::exists(from, ec)) fs::rename(from, to, ec);
  }
  if (keep_ == 0) fs::remove(path_, ec);
  file_ = std::fopen(path_.c_str(), "a");
  size_ = 0;
  if (!file_) log_event("error", "cannot reopen audit log", {{"path", path_.string()}, {"error", std::strerror(errno)}});
}

}  // namespace pullgate::proxy
