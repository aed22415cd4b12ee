#pragma once
// A bounded CBOR reader (RFC 8949) for untrusted bytes, and the little of an encoder
// that COSE's Sig_structure needs: enough for the Notary Project's COSE_Sign1 envelope
// (policy/notation.hpp), nothing more. Definite lengths only; integers that fit an
// int64; no floating point; map keys integers or text, each once; at most
// max_depth levels of nesting and max_items items. Anything else is one error line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pullgate::policy::cbor {

inline constexpr std::size_t max_depth = 16;
inline constexpr std::size_t max_items = 10'000;

struct Item {
  enum class Kind { integer, bytes, text, array, map, tag, simple };
  Kind kind = Kind::simple;
  std::int64_t value = 0;   // an integer, a tag's number, a simple value (20 false, 21 true, 22 null)
  std::string bytes;        // a byte or text string
  std::vector<Item> items;  // an array's elements; a map's keys and values in turn; a tag's one item

  // A map's value under an integer or text key; null when absent or not a map.
  const Item* find(std::int64_t key) const;
  const Item* find(std::string_view key) const;
  bool is(Kind wanted) const { return kind == wanted; }
};

// One data item and nothing after it.
std::variant<Item, std::string> decode(std::string_view bytes);

// The head of a data item of major type `major` (0 to 7) and argument `argument`, in
// the shortest form (RFC 8949 section 4.2.1), appended to `out`.
void append_head(std::string& out, unsigned major, std::uint64_t argument);
// A byte string (major 2) or text string (major 3), appended to `out`.
void append_string(std::string& out, unsigned major, std::string_view content);

}  // namespace pullgate::policy::cbor
