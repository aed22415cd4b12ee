// ustar headers, with a pax extended header in front of an entry whose name or size
// does not fit. The reader follows the same layout and checks every field it uses.
#include "cache/tar.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "registry/text.hpp"

namespace pullgate::cache::tar {
namespace {

using Block = std::array<char, block_size>;

constexpr std::size_t name_field = 100;
constexpr std::uint64_t max_octal_size = 077777777777ULL;  // 11 octal digits
constexpr std::size_t max_pax_bytes = 64 * 1024;           // of one extended header

std::uint64_t padding_of(std::uint64_t size) { return (block_size - size % block_size) % block_size; }

void put_octal(char* field, std::size_t width, std::uint64_t value) {
  // width - 1 digits, zero filled, then NUL.
  for (std::size_t i = width - 1; i-- > 0; value >>= 3) field[i] = char('0' + (value & 7));
  field[width - 1] = '\0';
}

unsigned checksum_of(const Block& block) {
  unsigned sum = 0;
  for (std::size_t i = 0; i < block_size; ++i)
    sum += (i >= 148 && i < 156) ? unsigned(' ') : unsigned(static_cast<unsigned char>(block[i]));
  return sum;
}

// Older writers summed signed chars; accepted as well.
int signed_checksum_of(const Block& block) {
  int sum = 0;
  for (std::size_t i = 0; i < block_size; ++i)
    sum += (i >= 148 && i < 156) ? int(' ') : int(static_cast<signed char>(block[i]));
  return sum;
}

// An octal field: optional leading spaces, digits, then NUL or space or the field's end.
std::optional<std::uint64_t> read_octal(const char* field, std::size_t width) {
  std::size_t i = 0;
  while (i < width && field[i] == ' ') ++i;
  std::uint64_t value = 0;
  std::size_t digits = 0;
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i, ++digits) {
    if (value > (UINT64_MAX >> 3)) return std::nullopt;
    value = value * 8 + std::uint64_t(field[i] - '0');
  }
  if (digits == 0) return std::nullopt;
  for (; i < width; ++i)
    if (field[i] != '\0' && field[i] != ' ') return std::nullopt;
  return value;
}

std::string field_text(const char* field, std::size_t width) { return std::string(field, strnlen(field, width)); }

std::string pax_record(std::string_view key, std::string_view value) {
  // "<length> <key>=<value>\n", the length counting its own digits.
  std::size_t body = 1 + key.size() + 1 + value.size() + 1;
  std::size_t length = body + 1;
  while (std::to_string(length).size() + body != length) length = std::to_string(length).size() + body;
  return std::to_string(length) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

bool all_zero(const Block& block) {
  return std::all_of(block.begin(), block.end(), [](char c) { return c == '\0'; });
}

}  // namespace

std::optional<std::string> clean_name(std::string_view name) {
  while (name.starts_with("./")) name.remove_prefix(2);
  while (name.ends_with('/')) name.remove_suffix(1);
  if (name.empty() || name.front() == '/' || name.find('\0') != std::string_view::npos) return std::nullopt;
  std::size_t start = 0;
  while (start <= name.size()) {
    auto end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    auto component = name.substr(start, end - start);
    if (component.empty() || component == "." || component == "..") return std::nullopt;
    start = end + 1;
  }
  return std::string(name);
}

std::optional<std::string> resolve_link(const Entry& link) {
  std::string_view target = link.link_target;
  if (target.empty() || target.front() == '/' || target.find('\0') != std::string_view::npos) return std::nullopt;
  std::vector<std::string_view> parts;
  auto push = [&](std::string_view path) {
    for (std::size_t start = 0; start <= path.size();) {
      auto end = std::min(path.find('/', start), path.size());
      auto component = path.substr(start, end - start);
      if (component == "..") {
        if (parts.empty()) return false;  // above the archive's root
        parts.pop_back();
      } else if (!component.empty() && component != ".") {
        parts.push_back(component);
      }
      start = end + 1;
    }
    return true;
  };
  if (link.type == Entry::Type::symlink) {
    auto slash = link.name.rfind('/');
    if (slash != std::string::npos && !push(std::string_view(link.name).substr(0, slash))) return std::nullopt;
  }
  if (!push(target) || parts.empty()) return std::nullopt;
  std::string out;
  for (auto part : parts) out += (out.empty() ? "" : "/") + std::string(part);
  return out;
}

// ---- Writer

void Writer::header(std::string_view name, char type, std::uint64_t size) {
  if (name.size() > name_field || size > max_octal_size) {
    std::string records;
    if (name.size() > name_field) records += pax_record("path", name);
    if (size > max_octal_size) records += pax_record("size", std::to_string(size));
    header("PaxHeaders/entry", 'x', records.size());
    out_.write(records.data(), std::streamsize(records.size()));
    std::string pad(padding_of(records.size()), '\0');
    out_.write(pad.data(), std::streamsize(pad.size()));
    name = name.substr(0, std::min(name.size(), name_field));
    size = std::min(size, max_octal_size);
  }
  Block block{};
  std::memcpy(block.data(), name.data(), name.size());
  put_octal(block.data() + 100, 8, type == '5' ? 0755 : 0644);
  put_octal(block.data() + 108, 8, 0);
  put_octal(block.data() + 116, 8, 0);
  put_octal(block.data() + 124, 12, size);
  put_octal(block.data() + 136, 12, 0);  // mtime: a bundle's bytes depend on its content only
  block[156] = type;
  std::memcpy(block.data() + 257, "ustar", 6);
  std::memcpy(block.data() + 263, "00", 2);
  unsigned sum = checksum_of(block);
  put_octal(block.data() + 148, 7, sum);  // six digits and NUL, then a space
  block[155] = ' ';
  out_.write(block.data(), block_size);
  check();
}

void Writer::check() {
  if (!out_) throw Error("cannot write the archive (write error or disk full)");
}

void Writer::directory(std::string_view name) {
  std::string with_slash(name);
  if (!with_slash.ends_with('/')) with_slash += '/';
  header(with_slash, '5', 0);
}

void Writer::begin_file(std::string_view name, std::uint64_t size) {
  header(name, '0', size);
  remaining_ = size;
  written_ = size;
  open_ = true;
}

void Writer::write(const char* data, std::size_t length) {
  if (!open_ || length > remaining_) throw Error("tar writer: more bytes than the entry's size");
  out_.write(data, std::streamsize(length));
  remaining_ -= length;
  check();
}

void Writer::end_file() {
  if (!open_ || remaining_ != 0) throw Error("tar writer: fewer bytes than the entry's size");
  std::string pad(padding_of(written_), '\0');
  out_.write(pad.data(), std::streamsize(pad.size()));
  open_ = false;
  check();
}

void Writer::file(std::string_view name, std::string_view bytes) {
  begin_file(name, bytes.size());
  write(bytes.data(), bytes.size());
  end_file();
}

void Writer::finish() {
  if (open_) throw Error("tar writer: finished inside an entry");
  Block zero{};
  out_.write(zero.data(), block_size);
  out_.write(zero.data(), block_size);
  out_.flush();
  check();
}

// ---- Reader

std::string Reader::describe() const {
  if (index_ == 0) return "the archive's first entry";
  return "entry " + std::to_string(index_) + " (" + name_ + ")";
}

void Reader::skip_rest() {
  std::array<char, 64 * 1024> buffer;
  std::uint64_t left = remaining_ + padding_;
  while (left > 0) {
    auto chunk = std::size_t(std::min<std::uint64_t>(left, buffer.size()));
    in_.read(buffer.data(), std::streamsize(chunk));
    if (std::size_t(in_.gcount()) != chunk) throw Error("the archive is truncated in " + describe());
    left -= chunk;
  }
  remaining_ = padding_ = 0;
}

std::optional<Entry> Reader::next() {
  skip_rest();
  std::optional<std::string> pax_path;
  std::optional<std::uint64_t> pax_size;
  std::optional<std::string> pax_link;
  for (;;) {
    Block block;
    auto after = [&] { return index_ == 0 ? std::string("at its start") : "after " + describe(); };
    in_.read(block.data(), block_size);
    if (std::size_t(in_.gcount()) != block_size)
      throw Error("the archive is truncated " + after() + ": no end-of-archive blocks");
    if (all_zero(block)) {
      in_.read(block.data(), block_size);
      if (std::size_t(in_.gcount()) != block_size || !all_zero(block))
        throw Error("the archive is truncated " + after() + ": one end-of-archive block of two");
      return std::nullopt;
    }
    const std::string where = "entry " + std::to_string(index_ + 1) + " (" +
                              registry::printable(field_text(block.data(), name_field), 200) + ")";
    auto stored = read_octal(block.data() + 148, 8);
    if (!stored || (*stored != checksum_of(block) && std::int64_t(*stored) != signed_checksum_of(block)))
      throw Error(where + ": bad header checksum");
    if (std::memcmp(block.data() + 257, "ustar", 5) != 0) throw Error(where + ": not a ustar header");
    auto size = read_octal(block.data() + 124, 12);
    if (!size) throw Error(where + ": bad size field");
    const char type = block[156];

    if (type == 'x' || type == 'g') {
      if (*size > max_pax_bytes) throw Error(where + ": extended header larger than 64 KiB");
      std::string records(*size, '\0');
      in_.read(records.data(), std::streamsize(records.size()));
      std::string pad(padding_of(*size), '\0');
      in_.read(pad.data(), std::streamsize(pad.size()));
      if (!in_) throw Error("the archive is truncated in " + where);
      if (type == 'g') continue;  // global defaults: nothing pullgate uses
      std::string_view rest = records;
      while (!rest.empty()) {
        auto space = rest.find(' ');
        std::size_t length = 0;
        if (space == std::string_view::npos || space == 0) throw Error(where + ": bad extended header");
        for (char c : rest.substr(0, space)) {
          if (c < '0' || c > '9' || length > max_pax_bytes) throw Error(where + ": bad extended header");
          length = length * 10 + std::size_t(c - '0');
        }
        if (length <= space + 1 || length > rest.size() || rest[length - 1] != '\n')
          throw Error(where + ": bad extended header");
        auto record = rest.substr(space + 1, length - space - 2);
        auto equals = record.find('=');
        if (equals == std::string_view::npos) throw Error(where + ": bad extended header");
        auto key = record.substr(0, equals);
        auto value = record.substr(equals + 1);
        if (key == "path") pax_path = std::string(value);
        if (key == "linkpath") pax_link = std::string(value);
        if (key == "size") {
          std::uint64_t n = 0;
          if (value.empty() || value.size() > 19) throw Error(where + ": bad extended size");
          for (char c : value) {
            if (c < '0' || c > '9') throw Error(where + ": bad extended size");
            n = n * 10 + std::uint64_t(c - '0');
          }
          pax_size = n;
        }
        rest.remove_prefix(length);
      }
      continue;
    }

    std::string raw = field_text(block.data(), name_field);
    std::string prefix = field_text(block.data() + 345, 155);
    if (!prefix.empty()) raw = prefix + "/" + raw;
    if (pax_path) raw = *pax_path;
    ++index_;
    name_ = registry::printable(raw, 200);  // messages are one line, whatever the name holds
    if (pax_size) size = pax_size;

    Entry entry;
    if (type == '0' || type == '\0' || type == '7') {
      entry.type = Entry::Type::file;
    } else if (type == '5') {
      entry.type = Entry::Type::directory;
    } else if (type == '1' || type == '2') {
      entry.type = type == '1' ? Entry::Type::hardlink : Entry::Type::symlink;
      entry.link_target = pax_link ? *pax_link : field_text(block.data() + 157, 100);
    } else {
      throw Error(describe() + ": entry type '" + std::string(1, type) +
                  "' is not allowed (only files, directories and links)");
    }
    // "." itself, as some writers add it, is the archive's root: nothing to create.
    if (entry.type == Entry::Type::directory && (raw == "." || raw == "./")) {
      padding_ = *size + padding_of(*size);
      pax_path.reset();
      pax_size.reset();
      pax_link.reset();
      skip_rest();
      continue;
    }
    auto name = clean_name(raw);
    if (!name) throw Error(describe() + ": name is absolute, empty or has a \".\" or \"..\" component");
    entry.name = std::move(*name);
    entry.size = entry.type == Entry::Type::file ? *size : 0;
    remaining_ = entry.size;
    padding_ = padding_of(*size) + (entry.type == Entry::Type::file ? 0 : *size);
    return entry;
  }
}

std::size_t Reader::read(char* data, std::size_t length) {
  auto chunk = std::size_t(std::min<std::uint64_t>(length, remaining_));
  if (chunk == 0) return 0;
  in_.read(data, std::streamsize(chunk));
  if (std::size_t(in_.gcount()) != chunk) throw Error("the archive is truncated in " + describe());
  remaining_ -= chunk;
  return chunk;
}

}  // namespace pullgate::cache::tar
