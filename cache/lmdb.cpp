// The LMDB map's growth (lmdb.hpp, MapGrowth).
#include "cache/lmdb.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace pullgate::cache::lmdb {

namespace {

std::size_t page_round(std::size_t bytes) {
  long page = sysconf(_SC_PAGESIZE);
  std::size_t p = page > 0 ? std::size_t(page) : 4096;
  return bytes / p * p;
}

// Past this share of the map in use, the next write grows it first.
bool past_threshold(const MapUsage& u) { return u.used_bytes > u.map_bytes / 4 * 3; }

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
  std::unique_lock<std::mutex> gated(gate);
  growing.store(true, std::memory_order_release);
  std::unique_lock<std::shared_timed_mutex> lock(mutex, std::defer_lock);
  bool locked = lock.try_lock_for(std::chrono::milliseconds(500));
  growing.store(false, std::memory_order_release);
  gated.unlock();
  if (!locked) return;
  before = usage(env);  // another thread may have grown it meanwhile
  if (!past_threshold(before)) return;
  std::size_t target = std::min(max_bytes_, std::max(before.map_bytes * 2, before.used_bytes * 2));
  target = std::max(page_round(target), before.map_bytes);
  int rc = mdb_env_set_mapsize(env, target);
  lock.unlock();
  if (rc != MDB_SUCCESS) {
    if (!warned_.exchange(true) && on_event) on_event(MapEvent{MapEvent::Kind::failed, before, target, mdb_strerror(rc)});
    return;
  }
  warned_ = false;
  if (on_event) on_event(MapEvent{MapEvent::Kind::grown, before, target, {}});
}

void MapGrowth::adopt(MDB_env* env) {
  std::unique_lock<std::mutex> gated(gate);
  growing.store(true, std::memory_order_release);
  std::unique_lock<std::shared_timed_mutex> lock(mutex);
  growing.store(false, std::memory_order_release);
  gated.unlock();
  // Size 0 takes the size the environment's meta page records (set by the other process).
  check(mdb_env_set_mapsize(env, 0), "adopt the map size another process set");
}

}  // namespace pullgate::cache::lmdb
