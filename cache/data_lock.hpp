#pragma once
// Who works on a data directory: a server holds a shared lock on <data>/server.lock
// for its lifetime; a command that must not change the cache under a running server
// (`pullgate cache evict`: the server's in-memory manifest cache and blob locks would
// not know) takes it exclusively, and is told when a server holds it. flock(2): the
// kernel drops a lock when its process dies, so a killed server leaves none.
#include <filesystem>
#include <optional>

#include "cache/blob_store.hpp"

namespace pullgate::cache {

// The server's lock; waits while a command holds the exclusive one (briefly). Throws
// std::runtime_error (one line) when the file cannot be opened.
FileHandle hold_data_dir_shared(const std::filesystem::path& data_dir);
// The exclusive lock, or nullopt when a server holds the shared one. Throws as above.
std::optional<FileHandle> try_hold_data_dir_exclusive(const std::filesystem::path& data_dir);

}  // namespace pullgate::cache
