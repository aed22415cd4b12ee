// CBOR: a recursive reader over a cursor that never reads past the end, with the
// depth and item count bounded so that no input can exhaust the stack or memory
// beyond a small multiple of its own size.
#include "policy/cbor.hpp"

#include <limits>
#include <optional>

namespace pullgate::policy::cbor {
namespace {

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  std::optional<std::string> read(Item& out, std::size_t depth) {
    if (depth > max_depth) return "nested deeper than " + std::to_string(max_depth) + " levels";
    if (++items_ > max_items) return "more than " + std::to_string(max_items) + " items";
    if (at_ >= bytes_.size()) return std::string("ends inside an item");
    const auto initial = static_cast<unsigned char>(bytes_[at_++]);
    const unsigned major = initial >> 5;
    const unsigned info = initial & 0x1f;
    if (major == 7) return simple(info, out);
    std::uint64_t argument = 0;
    if (auto error = read_argument(info, argument)) return error;
    switch (major) {
      case 0:
      case 1:
        if (argument > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          return std::string("an integer beyond 64-bit signed range");
        }
        out.kind = Item::Kind::integer;
        out.value = major == 0 ? static_cast<std::int64_t>(argument) : -1 - static_cast<std::int64_t>(argument);
        return std::nullopt;
      case 2:
      case 3:
        if (argument > bytes_.size() - at_) return std::string("a string longer than what follows it");
        out.kind = major == 2 ? Item::Kind::bytes : Item::Kind::text;
        out.bytes.assign(bytes_.substr(at_, static_cast<std::size_t>(argument)));
        at_ += static_cast<std::size_t>(argument);
        return std::nullopt;
      case 4:
      case 5: return container(major, argument, out, depth);
      default:  // 6
        out.kind = Item::Kind::tag;
        if (argument > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          return std::string("a tag number beyond 64-bit signed range");
        }
        out.value = static_cast<std::int64_t>(argument);
        out.items.resize(1);
        return read(out.items[0], depth + 1);
    }
  }

  bool at_end() const { return at_ == bytes_.size(); }

 private:
  std::optional<std::string> read_argument(unsigned info, std::uint64_t& argument) {
    if (info < 24) {
      argument = info;
      return std::nullopt;
    }
    if (info == 31) return std::string("an indefinite length, which is not supported");
    if (info > 27) return "reserved additional information " + std::to_string(info);
    const std::size_t width = std::size_t{1} << (info - 24);
    if (width > bytes_.size() - at_) return std::string("ends inside an item's head");
    for (std::size_t i = 0; i < width; ++i) argument = (argument << 8) | static_cast<unsigned char>(bytes_[at_ + i]);
    at_ += width;
    return std::nullopt;
  }

  std::optional<std::string> simple(unsigned info, Item& out) {
    if (info >= 20 && info <= 23) {
      out.kind = Item::Kind::simple;
      out.value = info;
      return std::nullopt;
    }
    if (info >= 25 && info <= 27) return std::string("a floating-point number, which is not supported");
    return "simple value " + std::to_string(info) + ", which is not supported";
  }

  std::optional<std::string> container(unsigned major, std::uint64_t count, Item& out, std::size_t depth) {
    // Every element takes a byte at least: a count beyond what follows is a lie.
    const std::uint64_t elements = major == 5 ? count * 2 : count;
    if (count > bytes_.size() || elements > bytes_.size() - at_) {
      return std::string("an array or map longer than what follows it");
    }
    // Nor may it make room for more items than the reader will ever read.
    if (elements > max_items - items_) return "more than " + std::to_string(max_items) + " items";
    out.kind = major == 4 ? Item::Kind::array : Item::Kind::map;
    out.items.resize(static_cast<std::size_t>(elements));
    for (std::size_t i = 0; i < out.items.size(); ++i) {
      if (auto error = read(out.items[i], depth + 1)) return error;
      if (major == 5 && i % 2 == 0) {
        const Item& key = out.items[i];
        if (!key.is(Item::Kind::integer) && !key.is(Item::Kind::text)) {
          return std::string("a map key that is neither an integer nor text");
        }
        for (std::size_t j = 0; j < i; j += 2) {
          const Item& other = out.items[j];
          if (other.kind == key.kind && other.value == key.value && other.bytes == key.bytes) {
            return std::string("a map with a key twice");
          }
        }
      }
    }
    return std::nullopt;
  }

  std::string_view bytes_;
  std::size_t at_ = 0;
  std::size_t items_ = 0;
};

template <typename Matches>
const Item* find_in(const Item& map, Matches matches) {
  if (!map.is(Item::Kind::map)) return nullptr;
  for (std::size_t i = 0; i + 1 < map.items.size(); i += 2) {
    if (matches(map.items[i])) return &map.items[i + 1];
  }
  return nullptr;
}

}  // namespace

const Item* Item::find(std::int64_t key) const {
  return find_in(*this, [&](const Item& candidate) { return candidate.is(Kind::integer) && candidate.value == key; });
}

const Item* Item::find(std::string_view key) const {
  return find_in(*this, [&](const Item& candidate) { return candidate.is(Kind::text) && candidate.bytes == key; });
}

std::variant<Item, std::string> decode(std::string_view bytes) {
  Reader reader(bytes);
  Item item;
  if (auto error = reader.read(item, 0)) return "not CBOR: " + *error;
  if (!reader.at_end()) return std::string("not CBOR: bytes after the data item");
  return item;
}

void append_head(std::string& out, unsigned major, std::uint64_t argument) {
  const auto type = static_cast<char>(major << 5);
  if (argument < 24) {
    out += static_cast<char>(type | static_cast<char>(argument));
    return;
  }
  const int width = argument <= 0xff ? 1 : argument <= 0xffff ? 2 : argument <= 0xffffffff ? 4 : 8;
  out += static_cast<char>(type | static_cast<char>(width == 1 ? 24 : width == 2 ? 25 : width == 4 ? 26 : 27));
  for (int i = width - 1; i >= 0; --i) out += static_cast<char>((argument >> (8 * i)) & 0xff);
}

void append_string(std::string& out, unsigned major, std::string_view content) {
  append_head(out, major, content.size());
  out.append(content);
}

}  // namespace pullgate::policy::cbor
