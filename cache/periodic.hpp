#pragma once
// Work repeated on a period (flushing pull times, eviction runs), run on the blocking
// pool so that it never stalls an I/O thread. The timer lives on a strand of the
// io_context: stop() may be called from any thread, and ends the loop after the run
// in progress (if any), so that io_context::run() can return.
#include <chrono>
#include <functional>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

namespace pullgate::cache {

class Periodic {
 public:
  // `work` must not throw (it reports its own failures).
  Periodic(boost::asio::io_context& ioc, boost::asio::any_io_executor blocking, std::chrono::milliseconds period,
           std::function<void()> work);
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  // The first run is one period from now.
  void start();
  void stop();

 private:
  boost::asio::awaitable<void> loop();

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::any_io_executor blocking_;
  std::chrono::milliseconds period_;
  std::function<void()> work_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;  // on the strand
};

}  // namespace pullgate::cache
