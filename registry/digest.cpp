#include "registry/digest.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace pullgate::registry {
namespace {

constexpr std::size_t hex_length(DigestAlgorithm algorithm) {
  return algorithm == DigestAlgorithm::sha256 ? 64 : 128;
}

constexpr std::string_view name_of(DigestAlgorithm algorithm) {
  return algorithm == DigestAlgorithm::sha256 ? "sha256" : "sha512";
}

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

const EVP_MD* evp_md_of(DigestAlgorithm algorithm) {
  return algorithm == DigestAlgorithm::sha256 ? EVP_sha256() : EVP_sha512();
}

}  // namespace

std::optional<Digest> Digest::parse(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto name = text.substr(0, colon);
  const auto hex = text.substr(colon + 1);
  DigestAlgorithm algorithm;
  if (name == "sha256") {
    algorithm = DigestAlgorithm::sha256;
  } else if (name == "sha512") {
    algorithm = DigestAlgorithm::sha512;
  } else {
    return std::nullopt;
  }
  if (hex.size() != hex_length(algorithm)) return std::nullopt;
  for (char c : hex) {
    if (!is_lower_hex(c)) return std::nullopt;
  }
  return Digest(std::string(text), algorithm);
}

std::string_view Digest::algorithm_name() const { return name_of(algorithm_); }

std::string_view Digest::hex() const {
  return std::string_view(value_).substr(name_of(algorithm_).size() + 1);
}

// The EVP context lives behind a pimpl so the header needs no OpenSSL include.
struct DigestHasher::State {
  EVP_MD_CTX* ctx = nullptr;
  ~State() { EVP_MD_CTX_free(ctx); }
};

DigestHasher::DigestHasher(DigestAlgorithm algorithm)
    : state_(std::make_unique<State>()), algorithm_(algorithm) {
  state_->ctx = EVP_MD_CTX_new();
  // Allocation or init failure is an environment fault, not bad input: throw.
  if (state_->ctx == nullptr || EVP_DigestInit_ex(state_->ctx, evp_md_of(algorithm), nullptr) != 1) {
    throw std::runtime_error("EVP_DigestInit_ex failed");
  }
}

DigestHasher::~DigestHasher() = default;
DigestHasher::DigestHasher(DigestHasher&&) noexcept = default;
DigestHasher& DigestHasher::operator=(DigestHasher&&) noexcept = default;

void DigestHasher::update(const void* data, std::size_t size) {
  if (!state_ || state_->ctx == nullptr) throw std::logic_error("DigestHasher used after finish");
  if (size == 0) return;
  if (EVP_DigestUpdate(state_->ctx, data, size) != 1) throw std::runtime_error("EVP_DigestUpdate failed");
}

Digest DigestHasher::finish() {
  if (!state_ || state_->ctx == nullptr) throw std::logic_error("DigestHasher::finish called twice");
  unsigned char raw[EVP_MAX_MD_SIZE];
  unsigned int raw_size = 0;
  const int ok = EVP_DigestFinal_ex(state_->ctx, raw, &raw_size);
  EVP_MD_CTX_free(state_->ctx);
  state_->ctx = nullptr;
  if (ok != 1) throw std::runtime_error("EVP_DigestFinal_ex failed");

  static constexpr char digits[] = "0123456789abcdef";
  std::string value(name_of(algorithm_));
  value.push_back(':');
  value.reserve(value.size() + raw_size * 2);
  for (unsigned int i = 0; i < raw_size; ++i) {
    value.push_back(digits[raw[i] >> 4]);
    value.push_back(digits[raw[i] & 0x0f]);
  }
  // Digest's constructor is private; parse() builds it (and cannot fail on our own hex).
  return Digest::parse(value).value();
}

Digest digest_of(DigestAlgorithm algorithm, std::string_view bytes) {
  DigestHasher hasher(algorithm);
  hasher.update(bytes.data(), bytes.size());
  return hasher.finish();
}

}  // namespace pullgate::registry
