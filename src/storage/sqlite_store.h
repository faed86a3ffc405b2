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

// Tests only: applies the migrations up to `version` and no further, to build a database as an
// older release left it.
void migrate_sqlite_to_version(const std::string& path, const StorageConfig& config, int version);

}  // namespace transnotes::storage
