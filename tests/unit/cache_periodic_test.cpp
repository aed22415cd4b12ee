// Periodic: work runs on the blocking pool, again and again, until stopped; stop()
// from another thread ends the loop, so io_context::run() returns.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "cache/periodic.hpp"

namespace pullgate::cache {
namespace {

TEST(Periodic, RunsOnTheBlockingPoolUntilStopped) {
  boost::asio::io_context ioc;
  boost::asio::thread_pool blocking(1);
  std::atomic<int> runs{0};
  std::atomic<bool> off_io_thread{true};
  const std::thread::id io_thread = std::this_thread::get_id();  // ioc.run() runs here
  Periodic periodic(ioc, blocking.get_executor(), std::chrono::milliseconds(1), [&] {
    if (std::this_thread::get_id() == io_thread) off_io_thread = false;
    ++runs;
  });
  periodic.start();
  std::thread stopper([&] {
    while (runs < 3) std::this_thread::yield();
    periodic.stop();
  });
  ioc.run();  // returns only once the loop has ended
  stopper.join();
  const int after_stop = runs;
  EXPECT_GE(after_stop, 3);
  EXPECT_TRUE(off_io_thread);
  blocking.join();
  EXPECT_EQ(runs, after_stop);
}

TEST(Periodic, StoppedBeforeItsFirstRunNeverRuns) {
  boost::asio::io_context ioc;
  boost::asio::thread_pool blocking(1);
  std::atomic<int> runs{0};
  Periodic periodic(ioc, blocking.get_executor(), std::chrono::hours(1), [&] { ++runs; });
  periodic.start();
  periodic.stop();
  ioc.run();  // the hour-long wait is cancelled
  blocking.join();
  EXPECT_EQ(runs, 0);
}

}  // namespace
}  // namespace pullgate::cache
