// Private to src/storage: the SQLite Store (use open_store(); only storage.cpp includes this).
#pragma once

#include <memory>
#include <string>

#include "domain/ports.h"
#include "storage/storage.h"

namespace transnotes::storage {

// `path` is a filesystem path; its parent directory is created if missing.
// Durability: WAL with synchronous=NORMAL (a power loss may drop the last commits, never corrupts).
std::unique_ptr<Store> make_sqlite_store(const std::string& path, const StorageConfig& config);

}  // namespace transnotes::storage
