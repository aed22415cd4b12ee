#pragma once
// A FIFO that stands for a disk that stopped: its pipe is filled before anyone writes
// to it and nothing reads it until drain(), so a writer blocks on its first write.
// drain() reads everything (in a thread of its own) until the last writer closes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

namespace pullgate::testing_support {

class StalledFifo {
 public:
  explicit StalledFifo(std::filesystem::path path) : path_(std::move(path)) {
    if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
    reader_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK);  // lets writers open without waiting
    if (reader_ < 0) throw std::runtime_error("cannot open the FIFO for reading");
    int filler = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK);
    if (filler < 0) throw std::runtime_error("cannot open the FIFO for writing");
    const std::string block(4096, '#');
    for (;;) {
      auto n = ::write(filler, block.data(), block.size());
      if (n > 0) {
        prefilled_ += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;  // EAGAIN: the pipe is full
    }
    ::close(filler);
  }
  ~StalledFifo() {
    drain();
    if (drainer_.joinable()) drainer_.join();
    ::close(reader_);
  }
  StalledFifo(const StalledFifo&) = delete;
  StalledFifo& operator=(const StalledFifo&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Bytes written by the constructor to fill the pipe (they are read first).
  std::size_t prefilled() const { return prefilled_; }

  // Starts reading; what is read after the prefill is kept for received().
  void drain() {
    if (drainer_.joinable()) return;
    ::fcntl(reader_, F_SETFL, 0);  // blocking: read() returns 0 only when no writer is left
    drainer_ = std::thread([this] {
      std::string all;
      char buffer[65536];
      for (ssize_t n; (n = ::read(reader_, buffer, sizeof buffer)) != 0;) {
        if (n < 0) {
          if (errno == EINTR) continue;
          break;
        }
        all.append(buffer, static_cast<std::size_t>(n));
      }
      received_ = all.substr(std::min(prefilled_, all.size()));
    });
  }
  // What writers wrote, once they have all closed the FIFO.
  const std::string& received() {
    if (drainer_.joinable()) drainer_.join();
    return received_;
  }

 private:
  std::filesystem::path path_;
  int reader_ = -1;
  std::size_t prefilled_ = 0;
  std::thread drainer_;
  std::string received_;
};

}  // namespace pullgate::testing_support
