// The LMDB map's growth (lmdb.hpp, MapGrowth).
#include "cache/lmdb.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pullgate::cache::lmdb {

namespace {

std::size_t page_round(std::size_t bytes) {
  long page = sysconf(_SC_PAGESIZE);
  std::size_t p = page > 0 ? std::size_t(page) : 4096;
  return bytes / p * p;
}

// Past this share of the map in use, the next write grows it first.
bool past_threshold(const MapUsage& u) { return u.used_bytes > u.map_bytes / 4 * 3; }

// Whether `bytes` of address space can be mapped now. mdb_env_set_mapsize unmaps the
// map before mapping it again at the new size, and when that mmap fails the
// environment is left with no map at all (LMDB 0.9: the next transaction reads
// unmapped memory); so the room is tried first with a mapping that reserves nothing.
bool address_space_for(std::size_t bytes) {
  void* probe = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (probe == MAP_FAILED) return false;
  ::munmap(probe, bytes);
  return true;
}

}  // namespace

MapUsage MapGrowth::usage(MDB_env* env) const {
  MDB_envinfo info{};
  MDB_stat stat{};
  check(mdb_env_info(env, &info), "read environment info");
  check(mdb_env_stat(env, &stat), "read environment stat");
  return MapUsage{(static_cast<std::size_t>(info.me_last_pgno) + 1) * stat.ms_psize, info.me_mapsize,
                  std::max(max_bytes_, info.me_mapsize)};
}

void MapGrowth::before_write(MDB_env* env) {
  MapUsage before = usage(env);
  if (!past_threshold(before)) return;
  if (before.map_bytes >= max_bytes_) {
    if (!warned_.exchange(true) && on_event) on_event(MapEvent{MapEvent::Kind::at_max, before, 0, {}});
    return;
  }
  // Every transaction of this process must have ended; wait a moment for readers,
  // else leave it to the next write (the threshold leaves a quarter of the map).
  auto lock = lock_exclusive(std::chrono::milliseconds(500));
  if (!lock.owns_lock()) return;
  before = usage(env);  // another thread may have grown it meanwhile
  if (!past_threshold(before)) return;
  std::size_t target = std::min(max_bytes_, std::max(before.map_bytes * 2, before.used_bytes * 2));
  target = std::max(page_round(target), before.map_bytes);
  std::string error;
  if (!address_space_for(target)) {
    // Tried with the old map still in place beside it: stricter than needed (LMDB
    // unmaps the old map first), never looser.
    error = "no address space for a map of " + std::to_string(target >> 20) + " MiB (mmap: " + std::strerror(errno) +
            ")";
  } else if (int rc = mdb_env_set_mapsize(env, target); rc != MDB_SUCCESS) {
    // The old map is gone and the new one failed (the address space went between
    // the probe and now): LMDB has no map left and the next transaction would read
    // unmapped memory. What was committed is on disk; stop clearly instead.
    std::fprintf(stderr, "pullgate: the LMDB map could not be mapped again at %zu MiB (%s); stopping (committed data is intact)\n",
                 target >> 20, mdb_strerror(rc));
    std::abort();
  }
  lock.unlock();
  if (!error.empty()) {
    if (!warned_.exchange(true) && on_event) on_event(MapEvent{MapEvent::Kind::failed, before, target, error});
    return;
  }
  warned_ = false;
  if (on_event) on_event(MapEvent{MapEvent::Kind::grown, before, target, {}});
}

void MapGrowth::adopt(MDB_env* env) {
  auto lock = lock_exclusive(std::nullopt);
  // Size 0 takes the size the environment's meta page records (set by the other process).
  check(mdb_env_set_mapsize(env, 0), "adopt the map size another process set");
}

std::unique_lock<std::shared_timed_mutex> MapGrowth::lock_exclusive(std::optional<std::chrono::milliseconds> timeout) {
  std::lock_guard<std::mutex> gated(gate);
  growing.store(true, std::memory_order_release);
  std::unique_lock<std::shared_timed_mutex> lock(mutex, std::defer_lock);
  if (timeout) {
    (void)lock.try_lock_for(*timeout);
  } else {
    lock.lock();
  }
  growing.store(false, std::memory_order_release);
  return lock;
}

}  // namespace pullgate::cache::lmdb
