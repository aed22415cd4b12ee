// The audit log on its own: lines in order with and without the writer thread,
// rotation between lines, a failed line builder leaving nothing behind, paths that
// are not regular files written but never rotated, and a queue that stays within its
// bound when the disk stops.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "proxy/telemetry/audit_log.hpp"
#include "tests/unit/stalled_fifo.hpp"
#include "tests/unit/temp_dir.hpp"

namespace pullgate::proxy {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (auto nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  EXPECT_EQ(start, text.size()) << "text ends inside a line";
  return out;
}

std::string numbered(int i) { return "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(40, 'x') + "\"}\n"; }

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing_support::make_temp_dir("pullgate-audit-test"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(AuditLogTest, WithoutWriterEveryLineIsInTheFileAtOnce) {
  AuditLog log(dir_ / "audit.log", 0, 2);
  log.write_line(numbered(1));
  EXPECT_EQ(read_all(dir_ / "audit.log"), numbered(1));
  log.write_with([](std::string& out) { out += numbered(2); });
  EXPECT_EQ(read_all(dir_ / "audit.log"), numbered(1) + numbered(2));
}

TEST_F(AuditLogTest, EveryLineIsInTheFileAtOnceAcrossRestarts) {
  // Lines of every length, across page boundaries: after each line the file reads
  // back exactly, also after the log is reopened on a file it wrote before.
  std::string expected;
  for (int round = 0; round < 3; ++round) {
    AuditLog log(dir_ / "audit.log", 0, 2);
    for (int i = 0; i < 300; ++i) {
      std::string line = numbered(round * 1000 + i);
      if (i % 7 == 0) line.insert(line.size() - 2, std::string(static_cast<std::size_t>(i) * 13 % 5000, 'y'));
      log.write_line(line);
      expected += line;
      ASSERT_EQ(read_all(dir_ / "audit.log"), expected) << "round " << round << " line " << i;
    }
  }
  EXPECT_GT(expected.size(), 3u * 4096);
}

TEST_F(AuditLogTest, WriterKeepsOrderAndFlushWritesWhatIsQueued) {
  AuditLog log(dir_ / "audit.log", 0, 2);
  log.start_writer();
  std::string expected;
  for (int i = 0; i < 5000; ++i) {
    expected += numbered(i);
    if (i % 2) log.write_line(numbered(i));
    else log.write_with([i](std::string& out) { out += numbered(i); });
  }
  log.flush();
  EXPECT_EQ(read_all(dir_ / "audit.log"), expected);
  EXPECT_EQ(log.failed_writes(), 0u);
}

TEST_F(AuditLogTest, ABuilderThatThrowsLeavesNoPartialLine) {
  AuditLog log(dir_ / "audit.log", 0, 2);
  log.start_writer();
  log.write_line(numbered(1));
  EXPECT_THROW(log.write_with([](std::string& out) {
    out += "{\"half\":";
    throw std::runtime_error("builder failed");
  }),
               std::runtime_error);
  log.write_line(numbered(2));
  log.flush();
  EXPECT_EQ(read_all(dir_ / "audit.log"), numbered(1) + numbered(2));
}

TEST_F(AuditLogTest, RotatesBetweenLinesAndKeepsTheNewestFiles) {
  const auto line_size = numbered(0).size();
  {
    AuditLog log(dir_ / "audit.log", line_size * 10 + line_size / 2, 2);
    log.start_writer();
    for (int i = 0; i < 35; ++i) log.write_line(numbered(i));
  }  // the destructor writes what is queued
  // 35 lines, 10 whole lines per file: 0-9 (dropped: only two rotated files are
  // kept), 10-19 in .2, 20-29 in .1, 30-34 in the current file.
  auto current = lines_of(read_all(dir_ / "audit.log"));
  auto first = lines_of(read_all(dir_ / "audit.log.1"));
  auto second = lines_of(read_all(dir_ / "audit.log.2"));
  EXPECT_FALSE(fs::exists(dir_ / "audit.log.3"));
  ASSERT_EQ(current.size(), 5u);
  ASSERT_EQ(first.size(), 10u);
  ASSERT_EQ(second.size(), 10u);
  EXPECT_EQ(second.front() + "\n", numbered(10));
  EXPECT_EQ(first.front() + "\n", numbered(20));
  EXPECT_EQ(current.back() + "\n", numbered(34));
}

TEST_F(AuditLogTest, APipeIsWrittenButNeverRotated) {
  // A FIFO stands for /dev/null or a collector's pipe: renaming it would break the
  // collector (and renaming /dev/null, as root, the machine).
  auto fifo = dir_ / "audit.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  const auto line_size = numbered(0).size();
  std::string received;
  {
    AuditLog log(fifo, line_size * 2, 2);
    for (int i = 0; i < 20; ++i) {
      log.write_line(numbered(i));
      char buffer[4096];
      for (ssize_t n; (n = ::read(reader, buffer, sizeof buffer)) > 0;) received.append(buffer, n);
    }
  }
  ::close(reader);
  std::string expected;
  for (int i = 0; i < 20; ++i) expected += numbered(i);
  EXPECT_EQ(received, expected);
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_FALSE(fs::exists(dir_ / "audit.fifo.1"));
}

TEST_F(AuditLogTest, AStalledDiskFillsTheQueueToItsBoundThenLinesAreRefused) {
  testing_support::StalledFifo fifo(dir_ / "audit.fifo");
  const std::size_t bound = 64 * 1024;
  std::string accepted;
  int refused = 0;
  {
    AuditLog log(fifo.path(), 0, 2, bound);
    log.start_writer();
    // The writer takes the first line and blocks on the full pipe: what follows waits
    // in the queue.
    ASSERT_TRUE(log.write_line(numbered(0)));
    accepted += numbered(0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (log.queued_bytes() > 0) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer never took a line";
      std::this_thread::yield();
    }
    int i = 1;
    for (; i < 100'000; ++i) {
      if (!log.write_line(numbered(i))) break;
      accepted += numbered(i);
    }
    ASSERT_LT(i, 100'000) << "the queue took " << accepted.size() << " bytes and no line was refused";
    EXPECT_GE(log.queued_bytes(), bound);
    EXPECT_LT(log.queued_bytes(), bound + numbered(i).size());
    // Refused while the disk is stalled, however often asked, and the builder is not
    // even called.
    for (int j = 0; j < 100; ++j) refused += log.write_with([](std::string& out) { out += "built\n"; }) ? 0 : 1;
    EXPECT_EQ(refused, 100);
    // The disk comes back: the writer catches up and lines are taken again.
    fifo.drain();
    while (!log.write_line(numbered(i))) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer never caught up";
      std::this_thread::yield();
    }
    accepted += numbered(i);
  }
  // Every line taken is written, in order; none refused is.
  EXPECT_EQ(fifo.received(), accepted);
}

}  // namespace
}  // namespace pullgate::proxy
