#pragma once
// Logs: server events as JSON lines on stderr; the access log as JSON lines on its
// own stream, one per request, flushed per line.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "proxy/telemetry/kinds.hpp"

namespace pullgate::proxy {

// "2026-11-25T18:33:20.123Z"
std::string utc_timestamp();
// The same, appended to `out` (no allocation once `out` has room).
void append_utc_timestamp(std::string& out);
void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point at);

// {"time":..,"level":..,"msg":.., ...fields}
void log_event(std::string_view level, std::string_view message, nlohmann::json fields = nlohmann::json::object());

struct AccessRecord {
  std::string client;
  std::string method;
  std::string path;
  std::string upstream;
  unsigned status = 0;
  std::uint64_t bytes = 0;
  double duration_ms = 0;
  CacheResult cache = CacheResult::none;
  std::string request_id;
  std::string error;  // why the request failed, when it did
};

class AccessLog {
 public:
  // "-": stdout; "": off; else a file opened for append. Throws std::runtime_error.
  explicit AccessLog(const std::string& destination);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;
  void write(const AccessRecord& record);

 private:
  std::mutex mutex_;
  std::FILE* file_ = nullptr;
  bool owned_ = false;
};

}  // namespace pullgate::proxy
