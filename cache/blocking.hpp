#pragma once
// Blocking disk work (an fsync, a synced LMDB commit) off the I/O threads: the
// function runs on `executor` (the server's small pool for such work) while the
// thread that asked goes on serving other connections; the calling coroutine resumes
// on its own executor with the result, or the function's exception. An LMDB
// transaction must begin and end inside the function: it never spans the co_await.
#include <type_traits>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace pullgate::cache {

template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> run_blocking(boost::asio::any_io_executor executor, F f) {
  using Result = std::invoke_result_t<F&>;
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work = [&f]() -> boost::asio::awaitable<Result> { co_return f(); };
  co_return co_await boost::asio::co_spawn(executor, std::move(work), boost::asio::use_awaitable);
}

}  // namespace pullgate::cache
