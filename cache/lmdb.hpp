#pragma once
// Small RAII wrappers over the LMDB C API: the environment, a transaction that
// aborts unless committed, get/put/del on string views and a cursor. Errors become
// std::runtime_error with the LMDB reason; MDB_MAP_FULL gets its own message
// because the caller can act on it (later: eviction).
#include <lmdb.h>

#include <memory>
#include <optional>
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

// A transaction that is aborted on destruction unless commit() succeeded.
// Views returned by get() point into the map and die with the transaction.
class Txn {
 public:
  static Txn begin(MDB_env* env, bool read_only) {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env, nullptr, read_only ? MDB_RDONLY : 0, &txn),
          read_only ? "begin read transaction" : "begin write transaction");
    return Txn(txn);
  }
  static Txn read(MDB_env* env) { return begin(env, true); }
  static Txn write(MDB_env* env) { return begin(env, false); }

  ~Txn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  Txn(Txn&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)) {}
  Txn& operator=(Txn&&) = delete;
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  MDB_txn* get() const { return txn_; }

  void commit() {
    // mdb_txn_commit frees the transaction even when it fails.
    int rc = mdb_txn_commit(std::exchange(txn_, nullptr));
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
  explicit Txn(MDB_txn* txn) : txn_(txn) {}
  MDB_txn* txn_ = nullptr;
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
