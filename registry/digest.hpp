#pragma once
// Content digests: the only thing a blob path or a cache key is ever derived from.
#include <compare>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pullgate::registry {

enum class DigestAlgorithm { sha256, sha512 };

// "sha256:<64 lowercase hex>" or "sha512:<128 lowercase hex>". Nothing else parses:
// other algorithms, upper case hex, wrong lengths, empty parts are all refused.
class Digest {
 public:
  static std::optional<Digest> parse(std::string_view text);

  DigestAlgorithm algorithm() const { return algorithm_; }
  std::string_view algorithm_name() const;  // "sha256" | "sha512"
  std::string_view hex() const;             // the part after ':'
  const std::string& str() const { return value_; }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest& a, const Digest& b) { return a.value_ <=> b.value_; }

 private:
  Digest(std::string value, DigestAlgorithm algorithm)
      : value_(std::move(value)), algorithm_(algorithm) {}
  std::string value_;
  DigestAlgorithm algorithm_;
};

// Incremental hash (OpenSSL EVP). Movable, not copyable.
class DigestHasher {
 public:
  explicit DigestHasher(DigestAlgorithm algorithm);
  ~DigestHasher();
  DigestHasher(DigestHasher&&) noexcept;
  DigestHasher& operator=(DigestHasher&&) noexcept;
  DigestHasher(const DigestHasher&) = delete;
  DigestHasher& operator=(const DigestHasher&) = delete;

  void update(const void* data, std::size_t size);
  Digest finish();  // may be called once

 private:
  struct State;
  std::unique_ptr<State> state_;
  DigestAlgorithm algorithm_;
};

Digest digest_of(DigestAlgorithm algorithm, std::string_view bytes);

}  // namespace pullgate::registry

template <>
struct std::hash<pullgate::registry::Digest> {
  std::size_t operator()(const pullgate::registry::Digest& d) const noexcept {
    return std::hash<std::string>{}(d.str());
  }
};
