#include "cache/scan_claims.hpp"

#include <mutex>
#include <random>

namespace pullgate::cache {

bool valid_claim_holder(const std::string& holder) {
  if (holder.empty() || holder.size() > 128) return false;
  for (unsigned char c : holder)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

namespace {

class LocalScanClaims final : public ScanClaims {
 public:
  ClaimAnswer claim(const registry::Digest& digest, std::chrono::seconds ttl, const std::string& holder) override {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    drop_expired(now);
    if (auto it = claims_.find(digest.str()); it != claims_.end()) return ClaimedElsewhere{it->second.holder};
    std::string id = next_id();
    claims_[digest.str()] = Held{id, holder, ttl, now + ttl};
    return ScanClaim{id, ttl};
  }

  std::optional<std::chrono::seconds> keep_alive(const registry::Digest& digest, const std::string& id) override {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    drop_expired(now);
    auto it = claims_.find(digest.str());
    if (it == claims_.end() || it->second.id != id) return std::nullopt;
    it->second.until = now + it->second.ttl;
    return it->second.ttl;
  }

  bool release(const registry::Digest& digest, const std::string& id) override {
    std::lock_guard lock(mutex_);
    drop_expired(Clock::now());
    auto it = claims_.find(digest.str());
    if (it == claims_.end() || it->second.id != id) return false;
    claims_.erase(it);
    return true;
  }

  std::map<std::string, std::string> held() override {
    std::lock_guard lock(mutex_);
    drop_expired(Clock::now());
    std::map<std::string, std::string> out;
    for (const auto& [digest, claim] : claims_) out[digest] = claim.holder;
    return out;
  }

  bool remote() const override { return false; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Held {
    std::string id;
    std::string holder;
    std::chrono::seconds ttl;
    Clock::time_point until;
  };

  void drop_expired(Clock::time_point now) {
    std::erase_if(claims_, [&](const auto& entry) { return entry.second.until <= now; });
  }

  // Not a secret (any scanner may see the queue): unique within this process.
  std::string next_id() {
    static constexpr char digits[] = "0123456789abcdef";
    std::string id(16, '0');
    auto bits = engine_();
    for (auto& c : id) {
      c = digits[bits & 15];
      bits >>= 4;
    }
    return id;
  }

  std::mutex mutex_;
  std::map<std::string, Held> claims_;
  std::mt19937_64 engine_{std::random_device{}()};
};

}  // namespace

std::unique_ptr<ScanClaims> local_scan_claims() {
  return std::make_unique<LocalScanClaims>();
}

}  // namespace pullgate::cache
