#pragma once
// Progress of long commands (prefetch, bundle export and import, cache verify) for a
// person at a terminal: one line on stderr, rewritten in place at most ten times a
// second, cleared before a result line is printed. Where stderr is a file or a pipe
// (CI logs, journald) nothing is drawn: those get the result lines only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

namespace pullgate::proxy {

// "12.0 MiB", "512 B": bytes for people.
std::string human_bytes(std::uint64_t bytes);

// Whether stderr is a terminal that can redraw a line (not TERM=dumb).
bool stderr_is_terminal();

// "export  1.5 GiB / 3.0 GiB  50%  120.0 MiB/s" (total 0: unknown, left out).
std::string progress_text(std::string_view what, std::uint64_t done, std::uint64_t total, double seconds);

class TerminalProgress {
 public:
  using Clock = std::chrono::steady_clock;
  // on: draw at all (stderr_is_terminal() for a command). out and now: the tests'.
  explicit TerminalProgress(bool on, std::ostream* out = nullptr, std::function<Clock::time_point()> now = {});
  ~TerminalProgress();
  TerminalProgress(const TerminalProgress&) = delete;
  TerminalProgress& operator=(const TerminalProgress&) = delete;

  // Draws `line` over the previous one, unless one was drawn within the last 100 ms
  // (now: whatever the time).
  void show(const std::string& line, bool now = false);
  // Removes the line, so that what is printed next starts on a clean line.
  void clear();
  bool on() const { return on_; }
  // Seconds since this progress began (for rates).
  double seconds() const;

 private:
  Clock::time_point now() const { return now_ ? now_() : Clock::now(); }

  bool on_;
  std::ostream* out_;
  std::function<Clock::time_point()> now_;
  Clock::time_point began_;
  Clock::time_point shown_at_{};
  bool shown_ = false;
};

}  // namespace pullgate::proxy
