#include "proxy/telemetry/log.hpp"

#include "policy/rfc3339.hpp"
#include "proxy/telemetry/json_line.hpp"

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace pullgate::proxy {

void append_utc_timestamp(std::string& out) { append_utc_timestamp(out, std::chrono::system_clock::now()); }

void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point now) {
  // The date and time change once a second: a second is formatted once per thread,
  // and each call (every access and audit line) writes only its milliseconds, the
  // three digits before the 'Z' of "...:SS.mmmZ".
  using namespace std::chrono;
  const auto second = floor<seconds>(now);
  thread_local sys_seconds cached_second = sys_seconds::min();
  thread_local char cached[policy::max_rfc3339_length];
  thread_local std::size_t cached_length = 0;
  if (second != cached_second) {
    cached_length = policy::write_rfc3339(cached, second, policy::Fraction::milliseconds);
    cached_second = second;
  }
  const auto ms = static_cast<unsigned>(duration_cast<milliseconds>(now - second).count());
  const std::size_t at = out.size() + cached_length - 4;
  out.append(cached, cached_length);
  out[at] = static_cast<char>('0' + ms / 100);
  out[at + 1] = static_cast<char>('0' + ms / 10 % 10);
  out[at + 2] = static_cast<char>('0' + ms % 10);
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
      .field("cache", to_string(r.cache))
      .field("request_id", r.request_id);
  if (!r.error.empty()) line.field("error", r.error);
  auto text = line.finish();
  std::lock_guard lock(mutex_);
  std::fwrite(text.data(), 1, text.size(), file_);
  std::fflush(file_);
}

}  // namespace pullgate::proxy
