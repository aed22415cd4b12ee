#pragma once
// The audit trail: one JSON line per gate decision, rotated by size (the full file
// is fsynced and renamed to <path>.1, older ones shift up to <path>.<keep>).
//
// A path that is not a regular file (/dev/null, a FIFO) is written, never rotated.
//
// In the server, lines are written by a writer thread of their own: a decision
// appends its line to a queue (waking the writer if it is idle), and the writer
// hands what gathered in the last 16 ms to the kernel in one write(2). Serving
// threads never wait for the disk (under heavy load the kernel throttles writers
// of dirty pages for milliseconds), and many decisions cost one system call. The
// queue is bounded: when the disk falls behind (or stalls) by max_queue_bytes, a
// line is refused, not queued, and the caller decides what that means (the gate
// refuses the request, or serves it and counts the line as dropped); serving
// threads still never wait for the disk. A process crash can lose the lines of the
// last 16 ms; an OS crash what was not fsynced (each rotated file is, and the file
// at exit). Before the writer is started, every line is written at once.
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace pullgate::proxy {

class AuditLog {
 public:
  static constexpr std::size_t default_max_queue_bytes = 32 * 1024 * 1024;

  // Throws std::runtime_error when the file cannot be opened.
  AuditLog(std::filesystem::path path, std::uint64_t max_bytes, unsigned keep,
           std::size_t max_queue_bytes = default_max_queue_bytes);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Starts the writer thread; lines are queued from now on.
  void start_writer();

  // Writing never throws for the file's sake: a failed write is reported once on
  // stderr and counted.
  // Queues one complete line ("{...}\n", "time" included) built by the caller.
  // False when the queue is full (the line is not written).
  bool write_line(std::string_view line) {
    return write_with([line](std::string& out) { out.append(line); });
  }
  // Queues one complete line that `build(std::string&)` appends to the string it is
  // given: with the writer running, that is the queue itself (under its lock, so
  // `build` must be quick; if it throws, what it appended is taken back), and the
  // line is never copied. False, with `build` not called, when the writer is
  // running and max_queue_bytes are already waiting for it.
  template <class Build>
  bool write_with(Build&& build) {
    {
      std::lock_guard lock(mutex_);
      if (queueing_locked()) {
        if (pending_.size() >= max_queue_bytes_) return false;
        const auto mark = pending_.size();
        try {
          build(pending_);
        } catch (...) {
          pending_.resize(mark);
          throw;
        }
        if (writer_waiting_) {
          writer_waiting_ = false;
          wake_.notify_one();
        }
        return true;
      }
    }
    // No writer (or it is stopping): write this line here (in order after what is
    // queued).
    thread_local std::string line;
    line.clear();
    build(line);
    write_now(line);
    return true;
  }
  // Writes what is queued (also called by the destructor).
  void flush();

  std::uint64_t failed_writes() const;
  // Bytes queued for the writer (pullgate_audit_queue_bytes).
  std::size_t queued_bytes() const {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }
  // Counts failed writes there too (metrics); set before use.
  void count_failures_in(std::function<void()> on_failure) { on_failure_ = std::move(on_failure); }
  const std::filesystem::path& path() const { return path_; }

 private:
  bool queueing_locked() const { return writer_.joinable() && !stop_; }  // with mutex_ held
  void write_now(std::string_view line);  // after what is queued
  void write_out(std::string_view lines);  // with file_mutex_ held
  void rotate_locked();
  void writer_loop();

  static constexpr std::chrono::milliseconds batch_interval{16};

  std::filesystem::path path_;
  std::uint64_t max_bytes_;
  unsigned keep_;
  const std::size_t max_queue_bytes_;
  // pending_ and the writer's state; file_, size_ and failed_ under file_mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::string pending_;
  // Set under mutex_ (the writer waits on it); atomic because the writer also reads
  // it between batches, without the lock, to skip its pause when stopping.
  std::atomic<bool> stop_{false};
  bool writer_waiting_ = false;  // asleep on wake_: the next line must wake it
  std::thread writer_;
  mutable std::mutex file_mutex_;
  std::FILE* file_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t failed_ = 0;
  std::function<void()> on_failure_;
};

}  // namespace pullgate::proxy
