// tar::Writer and tar::Reader: round trips (short and long names, empty and
// block-sized files) and every refusal naming its entry.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "cache/tar.hpp"

namespace pullgate::cache::tar {
namespace {

struct Read {
  std::string name;
  Entry::Type type;
  std::string bytes;
};

std::vector<Read> read_all(const std::string& archive) {
  std::istringstream in(archive);
  Reader reader(in);
  std::vector<Read> out;
  while (auto entry = reader.next()) {
    Read r{entry->name, entry->type, {}};
    char buffer[7];  // small on purpose: bytes cross the reads
    while (auto n = reader.read(buffer, sizeof buffer)) r.bytes.append(buffer, n);
    EXPECT_EQ(r.bytes.size(), entry->size);
    out.push_back(std::move(r));
  }
  return out;
}

std::string error_of(const std::string& archive) {
  try {
    read_all(archive);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string archive_with(const std::vector<std::pair<std::string, std::string>>& files) {
  std::ostringstream out;
  Writer writer(out);
  for (auto& [name, bytes] : files) writer.file(name, bytes);
  writer.finish();
  return out.str();
}

// Checksums the first header again, as the writer does, after a test changed it.
void rechecksum(std::string& archive) {
  unsigned sum = 0;
  for (std::size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : unsigned(static_cast<unsigned char>(archive[i]));
  char field[8];
  std::snprintf(field, sizeof field, "%06o", sum);
  std::copy(field, field + 7, archive.begin() + 148);
}

// A one-file archive whose name field is `name`, checksummed.
std::string with_raw_name(const std::string& name) {
  std::string archive = archive_with({{"placeholder", "x"}});
  std::fill(archive.begin(), archive.begin() + 100, '\0');
  std::copy(name.begin(), name.end(), archive.begin());
  rechecksum(archive);
  return archive;
}

TEST(TarTest, WhatIsWrittenReadsBackEntryByEntry) {
  std::ostringstream out;
  Writer writer(out);
  writer.directory("blobs/sha256");
  writer.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  writer.file("empty", "");
  writer.file("block", std::string(512, 'b'));
  const std::string long_name = "pullgate/" + std::string(150, 'n') + "/evidence.json";
  writer.begin_file(long_name, 5);
  writer.write("he", 2);
  writer.write("llo", 3);
  writer.end_file();
  writer.finish();
  EXPECT_EQ(out.str().size() % 512, 0u);

  auto entries = read_all(out.str());
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[0].name, "blobs/sha256");
  EXPECT_EQ(entries[0].type, Entry::Type::directory);
  EXPECT_EQ(entries[1].name, "oci-layout");
  EXPECT_EQ(entries[1].bytes, R"({"imageLayoutVersion":"1.0.0"})");
  EXPECT_EQ(entries[2].bytes, "");
  EXPECT_EQ(entries[3].bytes, std::string(512, 'b'));
  EXPECT_EQ(entries[4].name, long_name);
  EXPECT_EQ(entries[4].bytes, "hello");
}

TEST(TarTest, NextSkipsWhatWasNotRead) {
  std::istringstream in(archive_with({{"a", std::string(1000, 'a')}, {"b", "bee"}}));
  Reader reader(in);
  ASSERT_EQ(reader.next()->name, "a");
  char c;
  EXPECT_EQ(reader.read(&c, 1), 1u);
  auto b = reader.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->name, "b");
  EXPECT_FALSE(reader.next());
}

TEST(TarTest, TheWriterRefusesAFileOfAnotherSize) {
  std::ostringstream out;
  Writer writer(out);
  writer.begin_file("f", 3);
  EXPECT_THROW(writer.write("abcd", 4), Error);
  writer.write("ab", 2);
  EXPECT_THROW(writer.end_file(), Error);
}

// Messages are one line whatever a name holds (found by tests/fuzz/fuzz_bundle's kind).
TEST(TarTest, ANameWithControlCharactersIsQuotedOnOneLine) {
  std::string archive = with_raw_name("a\nb\x1b");
  archive[300] ^= 0x01;  // inside the header, after the checksum was set
  EXPECT_EQ(error_of(archive), "entry 1 (a?b?): bad header checksum");
}

TEST(TarTest, AFlippedHeaderByteIsABadChecksumNamingTheEntry) {
  std::string archive = archive_with({{"first", "1"}, {"second", "2"}});
  archive[512 * 2 + 1] ^= 0x01;  // the second header's name: "sdcond"
  EXPECT_EQ(error_of(archive), "entry 2 (sdcond): bad header checksum");
}

TEST(TarTest, TruncationIsRefusedWhereverItFalls) {
  std::string archive = archive_with({{"first", std::string(700, 'x')}, {"second", "2"}});
  // Inside the first file's bytes, at an entry boundary, inside the end blocks.
  EXPECT_EQ(error_of(archive.substr(0, 512 + 100)), "the archive is truncated in entry 1 (first)");
  EXPECT_EQ(error_of(archive.substr(0, 512 * 3)),
            "the archive is truncated after entry 1 (first): no end-of-archive blocks");
  EXPECT_EQ(error_of(archive.substr(0, archive.size() - 512)),
            "the archive is truncated after entry 2 (second): one end-of-archive block of two");
  EXPECT_EQ(error_of(""), "the archive is truncated at its start: no end-of-archive blocks");
}

TEST(TarTest, NamesThatLeaveTheDirectoryAreRefused) {
  for (std::string name : {"../evil", "/etc/passwd", "blobs/../../evil", "a//b", "./.."}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(error_of(with_raw_name(name)),
              "entry 1 (" + name + "): name is absolute, empty or has a \".\" or \"..\" component");
  }
  EXPECT_EQ(read_all(with_raw_name("./blobs/x"))[0].name, "blobs/x");
}

TEST(TarTest, DevicesAreRefused) {
  std::string archive = with_raw_name("device");
  archive[156] = '3';
  rechecksum(archive);
  EXPECT_EQ(error_of(archive), "entry 1 (device): entry type '3' is not allowed (only files, directories and links)");
}

// A link entry as docker-archives hold them: `name` -> `target`.
Entry link_entry(const std::string& name, const std::string& target, char type = '2') {
  std::string archive = with_raw_name(name);
  archive[156] = type;
  std::copy(target.begin(), target.end(), archive.begin() + 157);
  rechecksum(archive);
  std::istringstream in(archive);
  Reader reader(in);
  auto entry = reader.next();
  EXPECT_TRUE(entry);
  return entry ? *entry : Entry{};
}

TEST(TarTest, LinksAreReportedAndResolvedInsideTheArchiveOnly) {
  auto link = link_entry("7a26/layer.tar", "../a390.tar");
  EXPECT_EQ(link.type, Entry::Type::symlink);
  EXPECT_EQ(link.link_target, "../a390.tar");
  EXPECT_EQ(resolve_link(link), "a390.tar");
  EXPECT_EQ(resolve_link(link_entry("a/b/c", "./../d/./e")), "a/d/e");
  auto hard = link_entry("a/b", "x/y", '1');
  EXPECT_EQ(hard.type, Entry::Type::hardlink);
  EXPECT_EQ(resolve_link(hard), "x/y");  // a hard link's target is from the archive's root
  for (auto [name, target] : {std::pair{"a/l", "../../etc/passwd"}, {"l", "/etc/passwd"}, {"l", ".."}, {"l", ""}}) {
    SCOPED_TRACE(std::string(name) + " -> " + target);
    EXPECT_EQ(resolve_link(link_entry(name, target)), std::nullopt);
  }
}

TEST(TarTest, CleanNameDropsTheLeadingDotAndTrailingSlash) {
  EXPECT_EQ(clean_name("./blobs/sha256/"), "blobs/sha256");
  EXPECT_FALSE(clean_name(""));
  EXPECT_FALSE(clean_name("a/./b"));
  EXPECT_FALSE(clean_name(std::string_view("a\0b", 3)));
}

}  // namespace
}  // namespace pullgate::cache::tar
