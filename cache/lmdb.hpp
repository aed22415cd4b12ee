#pragma once
// Small RAII wrappers over the LMDB C API: the environment, a transaction that
// aborts unless committed, get/put/del on string views and a cursor. Errors become
// std::runtime_error with the LMDB reason; MDB_MAP_FULL gets its own message
// because the caller can act on it. The map grows by itself (MapGrowth).
#include <lmdb.h>

#include "cache/map_usage.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace pullgate::cache::lmdb {

[[noreturn]] inline void throw_error(int rc, std::string_view what) {
  if (rc == MDB_MAP_FULL) {
    throw std::runtime_error("metadata store is full (" + std::string(what) +
                             "): the LMDB map size is reached (MDB_MAP_FULL)");
  }
  throw std::runtime_error("metadata store: " + std::string(what) + ": " + mdb_strerror(rc));
}

inline void check(int rc, std::string_view what) {
  if (rc != MDB_SUCCESS) throw_error(rc, what);
}

struct EnvClose {
  void operator()(MDB_env* env) const noexcept { mdb_env_close(env); }
};
using Env = std::unique_ptr<MDB_env, EnvClose>;

inline MDB_val to_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

using cache::MapEvent;
using cache::MapUsage;

// Grows an environment's map before it fills, so the map size is not a second limit
// an operator must tune. LMDB allows mdb_env_set_mapsize only while this process
// has no transaction open on the environment: every Txn holds `mutex` shared, and
// growth takes it exclusively, before a write transaction begins, when the pages in
// use pass 3/4 of the map (the map doubles, up to max_bytes; it is address space,
// the file grows only as pages are written). Growth never waits long: a thread that
// holds a transaction itself does not try, and one that cannot get the lock within
// a moment leaves it to the next write. While it waits, transactions that would
// begin on threads holding none wait for it (`gate`), so a steady stream of reads
// cannot starve it; threads that hold one go on (waiting would deadlock). Another
// process that grew the map is
// followed on MDB_MAP_RESIZED (the new size is adopted under the same lock).
// Attached to the environment with mdb_env_set_userctx by whoever opens it.
class MapGrowth {
 public:
  explicit MapGrowth(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // Before a write transaction: grow when the map is past the threshold.
  void before_write(MDB_env* env);
  // On MDB_MAP_RESIZED: take the size another process set.
  void adopt(MDB_env* env);
  MapUsage usage(MDB_env* env) const;

  std::function<void(const MapEvent&)> on_event;  // set before use; called outside the lock

  // Held shared by every transaction; exclusively to set the map size.
  std::shared_timed_mutex mutex;
  // Held while growth waits for `mutex`; `growing` says so without taking it.
  std::mutex gate;
  std::atomic<bool> growing{false};
  static inline thread_local int held = 0;  // transactions this thread holds

  // Before a transaction takes `mutex`: wait while growth is waiting for it.
  void wait_for_growth() {
    if (held == 0 && growing.load(std::memory_order_acquire)) std::lock_guard<std::mutex> wait(gate);
  }

 private:
  // Takes `mutex` exclusively while `gate` holds back new transactions (see
  // wait_for_growth); without a timeout it waits for every transaction to end. The
  // lock returned does not own the mutex when the timeout passed first.
  std::unique_lock<std::shared_timed_mutex> lock_exclusive(std::optional<std::chrono::milliseconds> timeout);

  std::size_t max_bytes_;
  std::atomic<bool> warned_{false};  // at_max/failed said once until the map grows again
};

inline MapGrowth* growth_of(MDB_env* env) { return static_cast<MapGrowth*>(mdb_env_get_userctx(env)); }

// A transaction that is aborted on destruction unless commit() succeeded.
// Views returned by get() point into the map and die with the transaction.
class Txn {
 public:
  static Txn begin(MDB_env* env, bool read_only) {
    MapGrowth* growth = growth_of(env);
    if (growth && !read_only && MapGrowth::held == 0) growth->before_write(env);
    std::shared_lock<std::shared_timed_mutex> lock;
    if (growth) {
      growth->wait_for_growth();
      lock = std::shared_lock(growth->mutex);
    }
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env, nullptr, read_only ? MDB_RDONLY : 0, &txn);
    if (rc == MDB_MAP_RESIZED && growth && MapGrowth::held == 0) {
      lock.unlock();
      growth->adopt(env);
      lock.lock();
      rc = mdb_txn_begin(env, nullptr, read_only ? MDB_RDONLY : 0, &txn);
    }
    check(rc, read_only ? "begin read transaction" : "begin write transaction");
    return Txn(txn, std::move(lock));
  }
  static Txn read(MDB_env* env) { return begin(env, true); }
  static Txn write(MDB_env* env) { return begin(env, false); }

  ~Txn() {
    if (txn_) mdb_txn_abort(txn_);
    if (lock_) --MapGrowth::held;
  }
  Txn(Txn&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)), lock_(std::move(other.lock_)) {}
  Txn& operator=(Txn&&) = delete;
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  MDB_txn* get() const { return txn_; }

  void commit() {
    // mdb_txn_commit frees the transaction even when it fails.
    int rc = mdb_txn_commit(std::exchange(txn_, nullptr));
    if (lock_) {
      lock_.unlock();
      --MapGrowth::held;
    }
    check(rc, "commit");
  }

  std::optional<std::string_view> get(MDB_dbi dbi, std::string_view key) const {
    MDB_val k = to_val(key);
    MDB_val v{};
    int rc = mdb_get(txn_, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return std::nullopt;
    check(rc, "read");
    return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
  }

  void put(MDB_dbi dbi, std::string_view key, std::string_view value, std::string_view what) {
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    check(mdb_put(txn_, dbi, &k, &v, 0), what);
  }

  // True when the key existed.
  bool del(MDB_dbi dbi, std::string_view key, std::string_view what) {
    MDB_val k = to_val(key);
    int rc = mdb_del(txn_, dbi, &k, nullptr);
    if (rc == MDB_NOTFOUND) return false;
    check(rc, what);
    return true;
  }

  std::size_t entries(MDB_dbi dbi) const {
    MDB_stat stat{};
    check(mdb_stat(txn_, dbi, &stat), "stat");
    return stat.ms_entries;
  }

  MDB_dbi open_dbi(const char* name, unsigned flags) {
    MDB_dbi dbi = 0;
    check(mdb_dbi_open(txn_, name, flags, &dbi), std::string("open database ") + name);
    return dbi;
  }

 private:
  Txn(MDB_txn* txn, std::shared_lock<std::shared_timed_mutex> lock) : txn_(txn), lock_(std::move(lock)) {
    if (lock_) ++MapGrowth::held;
  }
  MDB_txn* txn_ = nullptr;
  std::shared_lock<std::shared_timed_mutex> lock_;  // held while the transaction lives
};

// A cursor over one database of a transaction. Declare it after its Txn so it
// closes first: LMDB frees a write transaction's cursors at commit, and closing
// one after that would be a double free. Entries are views into the map, valid
// until the transaction ends (or the next write through it).
class Cursor {
 public:
  using Entry = std::pair<std::string_view, std::string_view>;  // key, value

  Cursor(const Txn& txn, MDB_dbi dbi) { check(mdb_cursor_open(txn.get(), dbi, &cursor_), "open cursor"); }
  ~Cursor() { mdb_cursor_close(cursor_); }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  std::optional<Entry> first() { return step(MDB_FIRST, {}); }
  // The first entry whose key is >= key (key must not be empty).
  std::optional<Entry> seek(std::string_view key) { return step(MDB_SET_RANGE, key); }
  std::optional<Entry> next() { return step(MDB_NEXT, {}); }

 private:
  std::optional<Entry> step(MDB_cursor_op op, std::string_view key) {
    MDB_val k = to_val(key);
    MDB_val v{};
    int rc = mdb_cursor_get(cursor_, &k, &v, op);
    if (rc == MDB_NOTFOUND) return std::nullopt;
    check(rc, "cursor read");
    return Entry{std::string_view(static_cast<const char*>(k.mv_data), k.mv_size),
                 std::string_view(static_cast<const char*>(v.mv_data), v.mv_size)};
  }

  MDB_cursor* cursor_ = nullptr;
};

}  // namespace pullgate::cache::lmdb
