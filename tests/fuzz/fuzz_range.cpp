// The Range header of a blob request (registry/range.hpp) against a blob size taken
// from the input: what is served is always inside the blob.
#include <cstring>

#include "registry/range.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::registry;
using pullgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The first 8 bytes are the blob's size (small ones more often: the top bytes are
  // usually what the mutator left at zero), the rest the header.
  std::uint64_t blob_size = 0;
  const std::size_t head = size < 8 ? size : 8;
  std::memcpy(&blob_size, data, head);
  const auto header = pullgate::fuzz::as_text(data + head, size - head);
  const auto request = parse_range(header, blob_size);
  if (header.empty()) require(request.kind == RangeRequest::Kind::none, "no header, no range");
  if (request.kind == RangeRequest::Kind::satisfiable) {
    require(blob_size > 0, "a satisfiable range of an empty blob", header);
    require(request.range.first <= request.range.last, "first <= last", header);
    require(request.range.last < blob_size, "the range ends inside the blob", header);
    require(request.range.length() >= 1 && request.range.length() <= blob_size, "a length the blob has", header);
    const auto text = content_range(request.range, blob_size);
    require(text == "bytes " + std::to_string(request.range.first) + "-" + std::to_string(request.range.last) + "/" +
                        std::to_string(blob_size),
            "Content-Range names the range", text);
  }
  return 0;
}
