#include "cache/periodic.hpp"

#include <exception>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cache/blocking.hpp"

namespace pullgate::cache {

namespace asio = boost::asio;

Periodic::Periodic(asio::io_context& ioc, asio::any_io_executor blocking, std::chrono::milliseconds period,
                   std::function<void()> work)
    : strand_(asio::make_strand(ioc)),
      blocking_(std::move(blocking)),
      period_(period),
      work_(std::move(work)),
      timer_(strand_) {}

void Periodic::start() {
  asio::co_spawn(strand_, loop(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
}

void Periodic::stop() {
  asio::post(strand_, [this] {
    stopped_ = true;
    timer_.cancel();
  });
}

asio::awaitable<void> Periodic::loop() {
  while (!stopped_) {
    timer_.expires_after(period_);
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopped_) break;
    co_await run_blocking(blocking_, [this] { work_(); });
  }
}

}  // namespace pullgate::cache
