// Opens the system of record (transnotes::Store) from a database URL.
// SQLite is the embedded default; PostgreSQL is for production. Both implementations are safe to
// use from many threads at once and throw Unavailable when the database cannot be reached.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "domain/ports.h"

namespace transnotes::storage {

// How SQLite makes a commit durable. kFull: the WAL is fsynced at every commit, so an
// acknowledged write survives a power cut. kNormal: the WAL is fsynced only at checkpoints; a
// power cut (not a process crash) may drop the last commits, never corrupts the file.
enum class SqliteSync { kFull, kNormal };

struct StorageConfig {
  // "sqlite:///abs/path/db.sqlite3", "sqlite:relative.db", or
  // "postgresql://user:pass@host:port/db[?schema=name&libpq-params...]" (also "postgres://").
  std::string database_url;
  // Most connections held open at once (Postgres pool size; SQLite connection pool size).
  int pool_size = 8;
  // How long a caller waits for a free connection when all pool_size are in use, before the
  // operation fails with Unavailable (the same policy for both stores).
  std::chrono::milliseconds pool_wait{10'000};
  // Concurrent writes committed together, up to this many per commit (group commit; 1 = one
  // commit each). Postgres: creates, one multi-row INSERT. SQLite: every write, one
  // transaction. 1..64.
  int write_batch = 64;
  // Bound on establishing a connection (Postgres rounds up to whole seconds, minimum 2 s).
  std::chrono::milliseconds connect_timeout{3000};
  // SQLite: how long a writer waits for another process's write lock before Unavailable.
  std::chrono::milliseconds busy_timeout{5000};
  // SQLite: durability of a commit (see SqliteSync).
  SqliteSync sqlite_sync = SqliteSync::kFull;
  // Postgres: server-side limit on one statement; exceeding it throws Unavailable.
  std::chrono::milliseconds statement_timeout{5000};
};

// Creates the store for `config.database_url`. Connects lazily: an unreachable database makes
// later calls throw Unavailable, not this one. Throws Error with a one-line message for bad
// settings (unknown scheme, malformed URL, pool_size < 1). Call migrate() before use.
std::unique_ptr<Store> open_store(const StorageConfig& config);

}  // namespace transnotes::storage
