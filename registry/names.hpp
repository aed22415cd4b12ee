#pragma once
// Repository names, tags and references, validated once by the OCI distribution
// spec's grammar. After construction nothing re-checks them.
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "registry/digest.hpp"

namespace pullgate::registry {

// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
// at most 255 characters in all.
class Repository {
 public:
  static std::optional<Repository> parse(std::string_view text);
  const std::string& str() const { return value_; }
  // Number of '/'-separated components.
  std::size_t components() const;
  friend bool operator==(const Repository&, const Repository&) = default;

 private:
  explicit Repository(std::string value) : value_(std::move(value)) {}
  std::string value_;
};

// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
class Tag {
 public:
  static std::optional<Tag> parse(std::string_view text);
  const std::string& str() const { return value_; }
  friend bool operator==(const Tag&, const Tag&) = default;

 private:
  explicit Tag(std::string value) : value_(std::move(value)) {}
  std::string value_;
};

// A manifest reference: a tag or a digest. Text containing ':' is a digest.
class Reference {
 public:
  static std::optional<Reference> parse(std::string_view text);
  explicit Reference(Tag tag) : value_(std::move(tag)) {}
  explicit Reference(Digest digest) : value_(std::move(digest)) {}

  bool is_digest() const { return std::holds_alternative<Digest>(value_); }
  const Digest* digest() const { return std::get_if<Digest>(&value_); }
  const Tag* tag() const { return std::get_if<Tag>(&value_); }
  const std::string& str() const;

 private:
  std::variant<Tag, Digest> value_;
};

}  // namespace pullgate::registry
