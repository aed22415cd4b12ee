// Names and digests as clients and upstreams write them (registry/names.hpp,
// registry/digest.hpp): what parses re-serializes to the same text, and obeys the
// grammar's limits.
#include "registry/digest.hpp"
#include "registry/names.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace pullgate::registry;
using pullgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = pullgate::fuzz::as_text(data, size);
  if (auto digest = Digest::parse(text)) {
    require(digest->str() == text, "a digest is its text", text);
    const std::size_t hex = digest->algorithm() == DigestAlgorithm::sha256 ? 64 : 128;
    require(digest->hex().size() == hex, "the algorithm's hex length", text);
    require(std::string(digest->algorithm_name()) + ":" + std::string(digest->hex()) == text, "name:hex", text);
    for (char c : digest->hex()) require((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'), "lower-case hex", text);
  }
  if (auto repository = Repository::parse(text)) {
    require(repository->str() == text, "a repository is its text", text);
    require(text.size() <= 255, "at most 255 characters", text);
    std::size_t slashes = 0;
    for (char c : text) slashes += c == '/';
    require(repository->components() == slashes + 1, "components are the slashes plus one", text);
    for (char c : text)
      require((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/',
              "the repository alphabet", text);
  }
  if (auto tag = Tag::parse(text)) {
    require(tag->str() == text && !text.empty() && text.size() <= 128, "a tag is its text, 1 to 128 long", text);
  }
  if (auto reference = Reference::parse(text)) {
    require(reference->str() == text, "a reference is its text", text);
    require(reference->is_digest() == (text.find(':') != std::string_view::npos), "a digest exactly when ':'", text);
    require(reference->is_digest() ? Digest::parse(text).has_value() : Tag::parse(text).has_value(),
            "a reference is a digest or a tag", text);
  }
  return 0;
}
