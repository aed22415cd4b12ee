#pragma once
// A mutex per key, for synchronous work that must not run twice at once for one key
// while other keys go on in parallel (the gate's first evaluation of a digest). An
// entry lives while someone holds or waits for its key.
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace pullgate::cache {

class KeyLocks {
  struct Entry {
    std::mutex mutex;
    std::size_t users = 0;  // holding or waiting; guarded by KeyLocks::mutex_
  };

 public:
  // The key, held until destroyed (or moved from).
  class Held {
   public:
    Held() = default;
    ~Held();
    Held(Held&& other) noexcept;
    Held& operator=(Held&& other) noexcept;
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;

   private:
    friend class KeyLocks;
    Held(KeyLocks* locks, std::string key, Entry* entry) : locks_(locks), key_(std::move(key)), entry_(entry) {}
    void release() noexcept;
    KeyLocks* locks_ = nullptr;
    std::string key_;
    Entry* entry_ = nullptr;
  };

  // Blocks while another thread holds `key`.
  Held lock(const std::string& key);
  // Keys held or waited for (for tests).
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
};

}  // namespace pullgate::cache
