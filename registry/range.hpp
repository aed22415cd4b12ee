#pragma once
// HTTP Range for blobs: one byte range, RFC 9110 semantics.
#include <cstdint>
#include <string>
#include <string_view>

namespace pullgate::registry {

struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
  std::uint64_t length() const { return last - first + 1; }
};

struct RangeRequest {
  enum class Kind {
    none,           // no Range header, or one we ignore (multi-range, other unit): serve 200
    satisfiable,    // serve 206 with `range`
    unsatisfiable,  // serve 416 with Content-Range: bytes */size
    invalid,        // syntactically broken: serve 416 as well (Distribution does), never 200
  };
  Kind kind = Kind::none;
  ByteRange range;
};

// header: the Range header value ("bytes=N-", "bytes=N-M", "bytes=-S"); size: the
// full length. N-M with M >= size is clipped to size-1. Empty header => none.
RangeRequest parse_range(std::string_view header, std::uint64_t size);

// "bytes first-last/size"
std::string content_range(const ByteRange& range, std::uint64_t size);

}  // namespace pullgate::registry
