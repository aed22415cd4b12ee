#pragma once
// A streaming tar writer and reader (POSIX ustar, with pax extended headers for names
// longer than ustar holds), for air-gap bundles (cache/bundle.hpp). Both move one
// entry's bytes at a time through the caller's buffer: memory does not grow with the
// archive. The reader trusts nothing: a bad header, a bad checksum, an entry type
// other than file, directory or link, a name with a ".." component or an absolute
// name, and an archive that ends early are refused with a tar::Error naming the entry.
// Links (docker-archives hold `<id>/layer.tar -> ../<hex>.tar`) are reported with
// their target as written; nothing here follows or creates them.
#include <cstdint>
#include <istream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pullgate::cache::tar {

constexpr std::size_t block_size = 512;

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Writer {
 public:
  explicit Writer(std::ostream& out) : out_(out) {}

  void directory(std::string_view name);  // "blobs/" (the trailing '/' is added when missing)
  // A file whose bytes follow through write(), exactly `size` of them, then end_file().
  void begin_file(std::string_view name, std::uint64_t size);
  void write(const char* data, std::size_t length);
  void end_file();
  // A small file in one call.
  void file(std::string_view name, std::string_view bytes);
  // The two zero blocks that end an archive; flushes. Throws tar::Error when the
  // stream failed at any point.
  void finish();

 private:
  void header(std::string_view name, char type, std::uint64_t size);
  void check();

  std::ostream& out_;
  std::uint64_t remaining_ = 0;  // bytes of the open file still to come
  std::uint64_t written_ = 0;    // of the open file
  bool open_ = false;
};

struct Entry {
  enum class Type { file, directory, symlink, hardlink };
  std::string name;  // relative, no "." or ".." components, no trailing '/'
  Type type = Type::file;
  std::uint64_t size = 0;
  // A link's target as the archive wrote it (unchecked: resolve it with resolve_link):
  // a symlink's relative to the link's folder, a hard link's to the archive's root.
  std::string link_target;
};

class Reader {
 public:
  explicit Reader(std::istream& in) : in_(in) {}

  // The next file or directory, skipping what is left of the current one; nullopt at
  // the end-of-archive blocks. Throws tar::Error.
  std::optional<Entry> next();
  // Up to `length` bytes of the current file; 0 at its end. Throws tar::Error when
  // the archive ends inside the file.
  std::size_t read(char* data, std::size_t length);
  // "entry N (NAME)" of the entry last returned by next(), for messages.
  std::string where() const { return describe(); }

 private:
  void skip_rest();
  std::string describe() const;

  std::istream& in_;
  std::uint64_t remaining_ = 0;  // of the current entry
  std::uint64_t padding_ = 0;    // after it
  std::size_t index_ = 0;        // entries read, for messages
  std::string name_;             // of the current entry, for messages
};

// Whether an entry name is one the reader accepts: relative, each component neither
// empty, "." nor "..", no NUL. A leading "./" is allowed (and dropped by the reader).
std::optional<std::string> clean_name(std::string_view name);

// The archive name a link entry points at, or nullopt when the target is absolute or
// climbs out of the archive ("..", lexically, past its root).
std::optional<std::string> resolve_link(const Entry& link);

}  // namespace pullgate::cache::tar
