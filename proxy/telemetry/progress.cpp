#include "proxy/telemetry/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>

namespace pullgate::proxy {

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) value /= 1024, ++unit;
  char out[32];
  std::snprintf(out, sizeof out, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
  return out;
}

bool stderr_is_terminal() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDERR_FILENO) == 1 && !(term && std::strcmp(term, "dumb") == 0);
}

std::string progress_text(std::string_view what, std::uint64_t done, std::uint64_t total, double seconds) {
  std::string line(what);
  line += "  " + human_bytes(done);
  if (total) {
    char percent[16];
    std::snprintf(percent, sizeof percent, "  %3d%%", static_cast<int>(done >= total ? 100 : done * 100 / total));
    line += " / " + human_bytes(total) + percent;
  }
  if (seconds >= 0.5) line += "  " + human_bytes(static_cast<std::uint64_t>(static_cast<double>(done) / seconds)) + "/s";
  return line;
}

TerminalProgress::TerminalProgress(bool on, std::ostream* out, std::function<Clock::time_point()> now)
    : on_(on), out_(out ? out : &std::cerr), now_(std::move(now)), began_(this->now()) {}

TerminalProgress::~TerminalProgress() { clear(); }

double TerminalProgress::seconds() const { return std::chrono::duration<double>(now() - began_).count(); }

void TerminalProgress::show(const std::string& line, bool now_anyway) {
  if (!on_) return;
  auto t = now();
  if (shown_ && !now_anyway && t - shown_at_ < std::chrono::milliseconds(100)) return;
  shown_at_ = t;
  // Carriage return, then erase to the end of the line: a shorter line leaves no tail.
  *out_ << "\r\033[K" << line << std::flush;
  shown_ = true;
}

void TerminalProgress::clear() {
  if (shown_) *out_ << "\r\033[K" << std::flush;
  shown_ = false;
}

}  // namespace pullgate::proxy
