// Private to src/storage: the SQLite Store (use open_store(); only storage.cpp includes this).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "domain/ports.h"
#include "storage/storage.h"

namespace transnotes::storage {

// `path` is a filesystem path; its parent directory is created if missing.
// Durability: WAL with synchronous as config.sqlite_sync says (FULL: an acknowledged write
// survives a power cut; NORMAL: a power cut may drop the last commits, never corrupts).
// Concurrent writes share one transaction and one commit (group commit, config.write_batch).
std::unique_ptr<Store> make_sqlite_store(const std::string& path, const StorageConfig& config);

// Tests only: PRAGMA synchronous as one of `store`'s connections reads it back (2 = FULL,
// 1 = NORMAL). Throws Error when `store` is not a SQLite store.
std::int64_t sqlite_synchronous_mode_for_tests(Store& store);

// Tests only: applies the migrations up to `version` and no further, to build a database as an
// older release left it.
void migrate_sqlite_to_version(const std::string& path, const StorageConfig& config, int version);

}  // namespace transnotes::storage
