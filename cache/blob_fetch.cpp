#include "cache/blob_fetch.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <limits>
#include <memory>
#include <cerrno>
#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cache/blocking.hpp"
#include "registry/errors.hpp"

namespace pullgate::cache {

namespace {

void write_all(int fd, const char* data, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    auto n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "writing blob temp file");
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
}

}  // namespace

BlobFill::Status BlobFill::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

std::uint64_t BlobFill::sendable(std::uint64_t end) const {
  std::lock_guard lock(mutex_);
  if (status_.state == State::complete) return end;
  if (status_.state != State::streaming || end == 0) return 0;
  return std::min(status_.written, end - 1);
}

asio::awaitable<void> BlobFill::wait_for_change(const Status& seen) {
  auto executor = co_await asio::this_coro::executor;
  std::shared_ptr<asio::steady_timer> timer;
  {
    std::lock_guard lock(mutex_);
    if (status_.state != seen.state || status_.written != seen.written) co_return;
    timer = waiters_.add(executor);
  }
  co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
}

void BlobFill::notify_locked(std::unique_lock<std::mutex>& lock) {
  auto waiters = waiters_.take();
  lock.unlock();
  WakeList::wake(waiters);
}

void BlobFill::set_streaming(std::optional<std::uint64_t> size, FileHandle file) {
  std::unique_lock lock(mutex_);
  file_ = std::move(file);
  status_.size = size;
  status_.state = State::streaming;
  notify_locked(lock);
}

void BlobFill::add_written(std::uint64_t bytes) {
  std::unique_lock lock(mutex_);
  status_.written += bytes;
  if (!waiters_.empty()) notify_locked(lock);
}

void BlobFill::set_complete() {
  std::unique_lock lock(mutex_);
  status_.state = State::complete;
  status_.size = status_.written;
  notify_locked(lock);
}

void BlobFill::set_failed_locally(std::string error) {
  std::unique_lock lock(mutex_);
  status_.state = State::failed;
  status_.error = std::move(error);
  status_.local = true;
  notify_locked(lock);
}

void BlobFill::set_failed(unsigned upstream_status, std::string error, std::string retry_after,
                          std::string decision, std::string error_body) {
  std::unique_lock lock(mutex_);
  status_.state = State::failed;
  status_.upstream_status = upstream_status;
  status_.error = std::move(error);
  status_.retry_after = std::move(retry_after);
  status_.decision = std::move(decision);
  status_.error_body = std::move(error_body);
  notify_locked(lock);
}

std::shared_ptr<BlobFill> BlobFetches::join_or_start(const Digest& digest, registry::Upstream& upstream,
                                                     std::string target, std::string scope,
                                                     asio::any_io_executor executor) {
  std::shared_ptr<BlobFill> fill;
  std::string key = upstream.settings().name + "\n" + target;
  {
    std::lock_guard lock(mutex_);
    if (auto it = fills_.find(key); it != fills_.end()) return it->second;
    fill = std::make_shared<BlobFill>(digest);
    fills_.emplace(key, fill);
    ++started_;
  }
  downloads_.spawn(executor, download(fill, upstream, std::move(target), std::move(scope)),
                   [this, key = std::move(key)](std::exception_ptr) { finish(key); });
  return fill;
}

void BlobFetches::finish(const std::string& key) {
  std::lock_guard lock(mutex_);
  fills_.erase(key);
}

std::size_t BlobFetches::in_flight() const {
  std::lock_guard lock(mutex_);
  return fills_.size();
}

std::uint64_t BlobFetches::started() const {
  std::lock_guard lock(mutex_);
  return started_;
}

asio::awaitable<void> BlobFetches::download(std::shared_ptr<BlobFill> fill, registry::Upstream& upstream,
                                            std::string target, std::string scope) {
  // Reported once, when the upstream exchange is over (before the file is published:
  // a publish's fsync is disk work, not the upstream's), or however the download
  // ends, the early returns included. The upstream's name is kept, not the upstream:
  // a download still under way when the server stops ends with the io_context, after
  // the upstreams are gone.
  struct Reported {
    const BlobFetches& fetches;
    const std::string upstream;
    const BlobFill& fill;
    bool done = false;
    ~Reported() { report(); }
    void report() {
      if (done || !fetches.on_download_end) return;
      done = true;
      auto status = fill.status();
      fetches.on_download_end(upstream,
                              status.upstream_status                       ? status.upstream_status
                              : status.state == BlobFill::State::complete ? 200
                                                                           : 0,
                              status.written);
    }
  } reported{*this, upstream.settings().name, *fill};
  std::optional<TempBlob> temp;
  try {
    registry::UpstreamRequest request;
    request.method = registry::http::verb::get;
    request.target = std::move(target);
    request.scope = std::move(scope);
    auto response = co_await upstream.send(std::move(request));
    if (response->status() != 200) {
      auto retry = std::string(response->headers()[registry::http::field::retry_after]);
      auto decision = std::string(response->headers()[registry::decision_header]);
      std::string body;
      if (response->status() == 403 && decision == "deny") {
        // A pullgate upstream's denial: its reasons are in the body, for the client.
        try {
          body = co_await registry::read_body(*response, registry::max_error_body);
        } catch (const registry::UpstreamError&) {
        }
      }
      fill->set_failed(response->status(),
                       "upstream " + upstream.settings().name + " answered " + std::to_string(response->status()),
                       std::move(retry), std::move(decision), std::move(body));
      co_return;
    }
    auto size = response->content_length();
    const std::string largest = std::to_string(limits_.max_blob_bytes) + " bytes a blob may have on this mirror";
    if (size && *size > limits_.max_blob_bytes) {
      fill->set_failed(0, "upstream " + upstream.settings().name + " says " + fill->digest().str() + " is " +
                              std::to_string(*size) + " bytes, more than the " + largest);
      co_return;
    }
    temp = blobs_.create_temp();
    // Whether `bytes` more fit on the disk and leave the reserve free (LMDB and the
    // audit log must never meet a full disk because of a blob).
    auto room_for = [&](std::uint64_t bytes) {
      struct statvfs fs {};
      if (::fstatvfs(temp->file.get(), &fs) != 0) return true;  // unknown: the write says
      const std::uint64_t available = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
      return available >= limits_.reserve_bytes && bytes <= available - limits_.reserve_bytes;
    };
    auto no_room = [&](std::uint64_t bytes) {
      blobs_.discard(*temp);
      temp.reset();
      fill->set_failed_locally("no room on the mirror's disk for " + fill->digest().str() + " (" +
                               std::to_string(bytes) + " bytes, " + std::to_string(limits_.reserve_bytes) +
                               " kept free)");
    };
    if (size && *size > 0) {
      // Reserve the blob's room at once: the file gets contiguous extents (a cached
      // blob is read back sequentially), and a disk without room for it says so now,
      // before any client has been sent a byte, instead of cutting them off halfway.
      // The free space is asked first: a fallocate that fails for want of room may
      // have taken all there was before failing, and other writers (LMDB, the audit
      // log, other fills) would meet a full disk until the file is gone.
      if (*size > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) || !room_for(*size) ||
          (::fallocate(temp->file.get(), FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(*size)) != 0 &&
           (errno == ENOSPC || errno == EFBIG))) {
        no_room(*size);
        co_return;
      }
    }
    int reader_fd = ::dup(temp->file.get());
    if (reader_fd < 0) throw std::system_error(errno, std::generic_category(), "dup");
    fill->set_streaming(size, FileHandle(reader_fd));

    registry::DigestHasher hasher(fill->digest().algorithm());
    // Bytes go to the file a megabyte at a time: large writes leave the file in
    // large page-cache folios, and every later sendfile of the cached blob moves
    // fewer, larger pieces (about a tenth more throughput than a file written 64 KiB
    // at a time, the size of one upstream read). Clients streaming behind the fill
    // see the bytes when they are written: at the latest 20 ms after the previous
    // write while the upstream keeps sending; when it stalls, the last megabyte at
    // most waits with it.
    constexpr std::size_t write_chunk = 1024 * 1024;
    constexpr auto write_pause = std::chrono::milliseconds(20);
    auto buffer = std::make_unique<char[]>(write_chunk);
    std::size_t buffered = 0;
    std::uint64_t written = 0;  // received
    std::uint64_t stored = 0;   // in the file
    auto last_store = std::chrono::steady_clock::now();
    // False when a blob of unknown size (nothing reserved for it) has no more room.
    auto store = [&] {
      if (!size && !room_for(buffered)) return false;
      write_all(temp->file.get(), buffer.get(), buffered, stored);
      stored += buffered;
      fill->add_written(buffered);
      buffered = 0;
      last_store = std::chrono::steady_clock::now();
      return true;
    };
    for (;;) {
      auto n = co_await response->read_some(asio::buffer(buffer.get() + buffered, write_chunk - buffered));
      if (n == 0) break;
      if (size && written + n > *size) {
        fill->set_failed(200, "upstream sent more bytes than its Content-Length");
        blobs_.discard(*temp);
        co_return;
      }
      if (written + n > limits_.max_blob_bytes) {
        fill->set_failed(200, "upstream " + upstream.settings().name + " sent more of " + fill->digest().str() +
                                  " than the " + largest + " (no Content-Length)");
        blobs_.discard(*temp);
        co_return;
      }
      hasher.update(buffer.get() + buffered, n);
      buffered += n;
      written += n;
      if ((buffered == write_chunk || std::chrono::steady_clock::now() - last_store >= write_pause) && !store()) {
        no_room(stored + buffered);
        co_return;
      }
    }
    if (buffered > 0 && !store()) {
      no_room(stored + buffered);
      co_return;
    }
    if (size && written != *size) {
      fill->set_failed(200, "upstream body ended at " + std::to_string(written) + " of " +
                                std::to_string(*size) + " bytes");
      blobs_.discard(*temp);
      co_return;
    }
    auto actual = hasher.finish();
    if (actual != fill->digest()) {
      fill->set_failed(200, "digest mismatch: upstream sent " + actual.str());
      blobs_.discard(*temp);
      co_return;
    }
    // Verified: the clients get their last bytes now. The file is made durable and
    // published afterwards (a crash before that leaves a temp file, removed at the
    // next start); a new request meanwhile joins this fill and reads its file.
    fill->set_complete();
  } catch (const registry::UpstreamError& e) {
    fill->set_failed(0, std::string("upstream ") + upstream.settings().name + ": " + e.what());
  } catch (const std::exception& e) {
    fill->set_failed_locally(std::string("storing blob: ") + e.what());
  }
  reported.report();
  if (!temp) co_return;
  if (fill->status().state != BlobFill::State::complete) {
    blobs_.discard(*temp);
    co_return;
  }
  // Durable before LMDB says it exists: a record never names a file a crash lost.
  std::string store_error;
  try {
    auto publish = [&] {
      auto held = blobs_.lock(fill->digest());  // not while an eviction removes it
      blobs_.publish(*temp, fill->digest());
      auto now = ms_since_epoch(clock_());
      try {
        meta_.put_blob(fill->digest(), BlobRecord{fill->status().written, now, now});
      } catch (...) {
        // No record (a full disk, a full map): the published file would be an orphan
        // that takes room until verify collects it. It goes now, unless another
        // repository's fill of the same blob recorded it meanwhile (unknown: it stays,
        // an orphan verify collects is better than a record without its file).
        bool recorded = true;
        try {
          recorded = meta_.get_blob(fill->digest()).has_value();
        } catch (...) {
        }
        if (!recorded) blobs_.remove(fill->digest());
        throw;
      }
    };
    co_await run_blocking(blocking_, publish);
  } catch (const std::exception& e) {
    store_error = e.what();
  }
  if (!store_error.empty()) {
    blobs_.discard(*temp);  // if the rename did not happen; a published file is whole and verified
    if (on_store_failure) on_store_failure(fill->digest(), store_error);
  }
}

}  // namespace pullgate::cache
