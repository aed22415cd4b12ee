#include "cache/key_locks.hpp"

#include <utility>

namespace pullgate::cache {

KeyLocks::Held KeyLocks::lock(const std::string& key) {
  Entry* entry = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto& slot = entries_[key];
    if (!slot) slot = std::make_unique<Entry>();
    entry = slot.get();
    ++entry->users;  // keeps the entry alive while this thread waits for it
  }
  entry->mutex.lock();
  return Held(this, key, entry);
}

std::size_t KeyLocks::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void KeyLocks::Held::release() noexcept {
  if (!entry_) return;
  entry_->mutex.unlock();
  std::lock_guard lock(locks_->mutex_);
  if (--entry_->users == 0) locks_->entries_.erase(key_);
  entry_ = nullptr;
}

KeyLocks::Held::~Held() { release(); }

KeyLocks::Held::Held(Held&& other) noexcept
    : locks_(other.locks_), key_(std::move(other.key_)), entry_(std::exchange(other.entry_, nullptr)) {}

KeyLocks::Held& KeyLocks::Held::operator=(Held&& other) noexcept {
  if (this != &other) {
    release();
    locks_ = other.locks_;
    key_ = std::move(other.key_);
    entry_ = std::exchange(other.entry_, nullptr);
  }
  return *this;
}

}  // namespace pullgate::cache
