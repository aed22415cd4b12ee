#pragma once
// Fetch coalescing for blobs: one upstream download per digest however many clients
// ask meanwhile. The download is written to a temp file and hashed as it arrives;
// every client reads the temp file behind the writer instead of waiting for the end
// or fetching again. The last byte of every response is held back until the digest
// is verified, so a client never completes a body that turned out wrong: on a
// mismatch its response ends short. Making the verified file durable and publishing
// it (fsync, rename, the directory's fsync, then the LMDB record) runs on the
// blocking-work executor afterwards: no client waits for the disk.
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "cache/wake_list.hpp"

#include "cache/blob_store.hpp"
#include "cache/meta_store.hpp"
#include "registry/digest.hpp"
#include "registry/task_set.hpp"
#include "registry/upstream.hpp"
#include "registry/clock.hpp"

namespace pullgate::cache {

namespace asio = boost::asio;

class BlobFill {
 public:
  enum class State {
    connecting,  // upstream asked, no answer yet
    streaming,   // upstream said 200; bytes arriving in the temp file
    complete,    // verified: every byte may be served (published once it is durable)
    failed,      // upstream refused, reset, or sent bytes that do not match
  };

  struct Status {
    State state = State::connecting;
    std::optional<std::uint64_t> size;  // Content-Length from the upstream, once known
    std::uint64_t written = 0;          // bytes in the temp file so far
    unsigned upstream_status = 0;       // the upstream's HTTP status, 0 before / on network error
    std::string error;                  // why it failed, one line
    std::string retry_after;            // the upstream's Retry-After on a 429
    std::string decision;               // its Pullgate-Decision header (registry/errors.hpp)
    std::string error_body;             // the start of its error body, when that may be a gate's denial
    bool local = false;                 // the mirror's own failure (no room on its disk), not the upstream's
  };

  explicit BlobFill(Digest digest) : digest_(std::move(digest)) {}

  const Digest& digest() const { return digest_; }
  Status status() const;
  // The temp file, readable with pread while the fill lives (even after publication).
  int fd() const { return file_.get(); }

  // Bytes [0, n) of a response that ends at `end` (exclusive) that may be sent now:
  // everything written, except the response's last byte until the blob is verified.
  std::uint64_t sendable(std::uint64_t end) const;

  // Resumes when the status moves on from `seen` (more bytes, or a new state), or
  // after a second at the latest. Runs on the caller's executor.
  asio::awaitable<void> wait_for_change(const Status& seen);

  // Producer side, used by BlobFetches.
  void set_streaming(std::optional<std::uint64_t> size, FileHandle file);
  void add_written(std::uint64_t bytes);
  void set_complete();
  void set_failed_locally(std::string error);  // Status::local
  void set_failed(unsigned upstream_status, std::string error, std::string retry_after = {},
                  std::string decision = {}, std::string error_body = {});

 private:
  void notify_locked(std::unique_lock<std::mutex>& lock);

  const Digest digest_;
  mutable std::mutex mutex_;
  Status status_;
  FileHandle file_;  // set once, before the state leaves `connecting`
  WakeList waiters_;
};

// What a download may take of the disk (the server's come from its config).
struct BlobLimits {
  // The largest blob stored; an upstream announcing more, or streaming more without
  // announcing a size, fails the fill.
  std::uint64_t max_blob_bytes = std::numeric_limits<std::uint64_t>::max();
  // Free space a fill leaves untouched, for LMDB and the audit log.
  std::uint64_t reserve_bytes = 0;
};

class BlobFetches {
 public:
  // `blocking`: where publishing runs (fsyncs and the LMDB commit), off the I/O threads.
  // `clock`: when a published blob is recorded as stored.
  BlobFetches(BlobStore& blobs, MetaStore& meta, asio::any_io_executor blocking, BlobLimits limits = {},
              WallClock clock = system_wall_clock())
      : blobs_(blobs), meta_(meta), blocking_(std::move(blocking)), limits_(limits), clock_(std::move(clock)) {}

  // The fill in progress for `digest` from this upstream path, or a new one whose
  // download starts on `executor` (detached: a client that goes away does not abort
  // it). `target` is the upstream path of the blob (it names the repository: what
  // the upstream answers, a 401 or a 404, depends on it, so fills are keyed by the
  // upstream and the path, not the digest alone), `scope` its token scope.
  std::shared_ptr<BlobFill> join_or_start(const Digest& digest, registry::Upstream& upstream,
                                          std::string target, std::string scope,
                                          asio::any_io_executor executor);

  // Called once per download as it ends: the upstream's status (0: no answer) and
  // the bytes received. Set before serving; used for metrics.
  std::function<void(const std::string& upstream, unsigned status, std::uint64_t bytes)> on_download_end;
  // Called when a verified blob could not be stored (its clients were served all the
  // same; the next request fetches it again). Set before serving; used for logs.
  std::function<void(const Digest&, const std::string& error)> on_store_failure;

  std::size_t in_flight() const;
  // Downloads still running (a fill's download may outlive the fill's last client).
  std::size_t downloads() const { return downloads_.size(); }
  // Shutdown: cancels every download (each fails its fill and removes its temp file).
  void cancel_all() { downloads_.cancel_all(); }
  // Upstream blob downloads started since start-up (for logs and metrics).
  std::uint64_t started() const;

 private:
  asio::awaitable<void> download(std::shared_ptr<BlobFill> fill, registry::Upstream& upstream,
                                 std::string target, std::string scope);
  void finish(const std::string& key);

  BlobStore& blobs_;
  MetaStore& meta_;
  asio::any_io_executor blocking_;
  const BlobLimits limits_;
  const WallClock clock_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<BlobFill>> fills_;  // by upstream and target
  std::uint64_t started_ = 0;
  registry::TaskSet downloads_;
};

}  // namespace pullgate::cache
