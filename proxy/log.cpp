#include "proxy/log.hpp"

#include "proxy/json_line.hpp"

#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace pullgate::proxy {

void append_utc_timestamp(std::string& out) { append_utc_timestamp(out, std::chrono::system_clock::now()); }

void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point now) {
  auto ms_total = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  auto seconds = static_cast<std::time_t>(ms_total / 1000);
  // The date and time change once a second; only the milliseconds are formatted
  // per call (this runs for every access and audit line).
  thread_local std::time_t cached_second = -1;
  thread_local char cached[80];
  thread_local std::size_t cached_length = 0;
  if (seconds != cached_second) {
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    int n = std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                          tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_length = n > 0 ? static_cast<std::size_t>(n) : 0;
    cached_second = seconds;
  }
  auto ms = static_cast<int>(ms_total % 1000);
  const char tail[] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                       static_cast<char>('0' + ms % 10), 'Z'};
  out.append(cached, cached_length);
  out.append(tail, sizeof tail);
}

std::string utc_timestamp() {
  std::string text;
  append_utc_timestamp(text);
  return text;
}

void log_event(std::string_view level, std::string_view message, nlohmann::json fields) {
  nlohmann::json line = {{"time", utc_timestamp()}, {"level", level}, {"msg", message}};
  for (auto& [k, v] : fields.items()) line[k] = v;
  auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

AccessLog::AccessLog(const std::string& destination) {
  if (destination.empty()) return;
  if (destination == "-") {
    file_ = stdout;
    return;
  }
  file_ = std::fopen(destination.c_str(), "a");
  if (!file_) throw std::runtime_error("cannot open access log " + destination + ": " + std::strerror(errno));
  owned_ = true;
}

AccessLog::~AccessLog() {
  if (owned_ && file_) std::fclose(file_);
}

void AccessLog::write(const AccessRecord& r) {
  if (!file_) return;
  JsonLine line;
  line.field("time", utc_timestamp())
      .field("client", r.client)
      .field("method", r.method)
      .field("path", r.path)
      .field("upstream", r.upstream)
      .field("status", r.status)
      .field("bytes", r.bytes)
      .field("duration_ms", r.duration_ms)
      .field("cache", r.cache)
      .field("request_id", r.request_id);
  if (!r.error.empty()) line.field("error", r.error);
  auto text = line.finish();
  std::lock_guard lock(mutex_);
  std::fwrite(text.data(), 1, text.size(), file_);
  std::fflush(file_);
}

}  // namespace pullgate::proxy
