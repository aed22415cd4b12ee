#pragma once
// Coroutines that run on by themselves (client sessions, blob downloads), spawned so
// that shutdown can count them and cancel them all at once while everything they use
// is still alive. Cancelling one fails the operation it awaits and every later
// co_await of it with operation_aborted, so it unwinds through its own error paths.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

namespace pullgate::registry {

class TaskSet {
 public:
  TaskSet() = default;
  TaskSet(const TaskSet&) = delete;
  TaskSet& operator=(const TaskSet&) = delete;

  // Runs `task` on `executor` (a strand or a single thread: cancelling posts there);
  // `done` is called with its exception, if any, when it ends.
  template <class Awaitable>
  void spawn(boost::asio::any_io_executor executor, Awaitable task, std::function<void(std::exception_ptr)> done) {
    auto signal = std::make_shared<boost::asio::cancellation_signal>();
    std::uint64_t id;
    {
      std::lock_guard lock(mutex_);
      id = next_id_++;
      tasks_.emplace(id, Entry{executor, signal});
    }
    // The signal lives as long as the handler (what co_spawn installed in its slot
    // belongs to it), and is dropped from the set when the task has ended.
    boost::asio::co_spawn(executor, std::move(task),
                          boost::asio::bind_cancellation_slot(
                              signal->slot(), [this, id, signal, done = std::move(done)](std::exception_ptr e) {
                                if (done) done(e);
                                std::lock_guard lock(mutex_);
                                tasks_.erase(id);
                              }));
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return tasks_.size();
  }

  // Cancels every task running now (terminal cancellation, on each one's executor).
  void cancel_all() {
    std::lock_guard lock(mutex_);
    for (auto& [id, entry] : tasks_)
      boost::asio::post(entry.executor, [signal = entry.signal] { signal->emit(boost::asio::cancellation_type::terminal); });
  }

 private:
  struct Entry {
    boost::asio::any_io_executor executor;
    std::shared_ptr<boost::asio::cancellation_signal> signal;
  };
  mutable std::mutex mutex_;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, Entry> tasks_;
};

}  // namespace pullgate::registry
