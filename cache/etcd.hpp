#pragma once
// A client of etcd v3 over its JSON gateway (/v3/kv/range, /v3/kv/put, /v3/kv/txn,
// /v3/watch, /v3/lease/*, /v3/auth/authenticate), on the project's own HTTP/1.1
// connection (registry::Connection): no gRPC, no new library. Keys and values are
// plain strings here; the gateway's base64 stays inside etcd.cpp.
//
// Several endpoints (the members of one cluster): a call goes to the endpoint that
// answered last and moves on to the next one when an endpoint cannot be reached or
// answers that it has no leader, so losing one member (the leader included) is not an
// error for the caller. Every call has a deadline (Settings::request_timeout).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "cache/etcd_settings.hpp"

namespace pullgate::cache::etcd {

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;
};

struct Range {
  std::vector<KeyValue> kvs;
  std::int64_t revision = 0;  // the store's revision the range was read at
};

struct Event {
  enum class Type { put, erase };
  Type type = Type::put;
  KeyValue kv;  // for erase: key and mod_revision (the deletion's revision)
};

// The events of one watch response, in revision order.
struct WatchBatch {
  std::vector<Event> events;
  std::int64_t revision = 0;  // the header revision of the response
};

// A transaction's guard: `key` is as it was read at `mod_revision`.
struct Unchanged {
  std::string key;
  std::int64_t mod_revision = 0;
};

// One write of a transaction.
struct Write {
  enum class Type { put, erase };
  Type type = Type::put;
  std::string key;
  std::string value;       // put only
  std::int64_t lease = 0;  // put only; 0: none
};

class Error : public std::runtime_error {
 public:
  // unavailable: no endpoint answered, or none had a leader, within the deadline;
  // auth: the credentials were refused; compacted: a watch asked for a revision etcd
  // has compacted away (compact_revision() says the oldest one left); failed: etcd
  // answered with an error for this request (a bad lease, a request too large);
  // protocol: an answer that does not parse as the gateway's JSON.
  enum class Kind { unavailable, auth, compacted, failed, protocol };
  Error(Kind kind, const std::string& what, std::int64_t compact_revision = 0)
      : std::runtime_error(what), kind_(kind), compact_revision_(compact_revision) {}
  Kind kind() const { return kind_; }
  std::int64_t compact_revision() const { return compact_revision_; }

 private:
  Kind kind_;
  std::int64_t compact_revision_;
};

// The first key after every key that starts with `prefix` (etcd's range_end for a
// prefix): "/a/" -> "/a0".
std::string prefix_end(const std::string& prefix);

class Client {
 public:
  virtual ~Client() = default;
  // Throws std::invalid_argument for settings that cannot work (no endpoints, an
  // endpoint that is not an http(s) URL, a CA or certificate file that does not load).
  static std::unique_ptr<Client> make(boost::asio::any_io_executor executor, Settings settings);

  // Every key under `prefix` (paged inside, so any number of keys), all read at one
  // revision.
  virtual boost::asio::awaitable<Range> range_prefix(std::string prefix) = 0;
  virtual boost::asio::awaitable<std::optional<KeyValue>> get(std::string key) = 0;
  // Returns the revision of the write.
  virtual boost::asio::awaitable<std::int64_t> put(std::string key, std::string value,
                                                   std::int64_t lease = 0) = 0;
  // Returns the revision (the store's current one when there was nothing to delete).
  virtual boost::asio::awaitable<std::int64_t> erase(std::string key) = 0;
  // All `writes` at one revision, only if every key in `absent` does not exist (create
  // revision 0) and every key in `unchanged` was last written at its mod_revision
  // (0: it does not exist); nullopt when one of them does not hold and nothing was
  // written.
  virtual boost::asio::awaitable<std::optional<std::int64_t>> commit(std::vector<Write> writes,
                                                                     std::vector<std::string> absent = {},
                                                                     std::vector<Unchanged> unchanged = {}) = 0;

  // Leases: grant returns the lease id; keep_alive renews it once (returns the TTL etcd
  // gave, 0 when the lease is gone); revoke deletes it and its keys.
  virtual boost::asio::awaitable<std::int64_t> grant(std::chrono::seconds ttl) = 0;
  virtual boost::asio::awaitable<std::int64_t> keep_alive(std::int64_t lease) = 0;
  virtual boost::asio::awaitable<void> revoke(std::int64_t lease) = 0;

  // Watches every key under `prefix` from `start_revision` on and calls `on_batch` for
  // each response with events, in order, until cancelled (cancel through the awaiting
  // coroutine's cancellation slot: it then throws boost::system::system_error with
  // operation_aborted) or until the stream ends or fails (throws Error: unavailable when
  // the member went away, compacted when start_revision is gone). `on_batch` runs on
  // the client's executor and may throw to end the watch.
  virtual boost::asio::awaitable<void> watch(std::string prefix, std::int64_t start_revision,
                                             std::function<void(const WatchBatch&)> on_batch) = 0;

  // The endpoint that answered last ("" before the first answer).
  virtual std::string endpoint() const = 0;
};

}  // namespace pullgate::cache::etcd
