// Online backup and offline restore of the embedded SQLite database.
//
// Backup runs while the service writes: it reads through SQLite's online backup API, so the copy
// is one consistent snapshot, and it never leaves a half-written file at the destination.
// Restore replaces the database file of a stopped service; it refuses while any process (serve,
// worker, another command) has the database open, detected through SQLite's own file locks (see
// restore_sqlite_database).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "domain/errors.h"

namespace transnotes::storage {

// The backup destination exists and overwriting was not asked for.
class BackupExists : public Error {
 public:
  using Error::Error;
};

// The file given to restore is not a sound transnotes database.
class InvalidBackup : public Error {
 public:
  using Error::Error;
};

// Another process has the database open; restore would pull the file from under it.
class DatabaseInUse : public Error {
 public:
  using Error::Error;
};

// The file path of an embedded database URL ("sqlite:///abs/db" or "sqlite:rel.db"); nullopt for
// any other scheme (PostgreSQL, whose backups are pg_dump's business).
std::optional<std::string> sqlite_database_path(const std::string& database_url);

struct BackupOptions {
  bool overwrite = false;
  // Pages copied per step and the pause between steps: a step holds a read snapshot, the pause
  // lets the checkpointer (and, outside WAL mode, writers) run between them.
  int pages_per_step = 256;
  std::chrono::milliseconds pause_between_steps{2};
  // A write by the service makes SQLite restart the copy from page one. After this many
  // restarts the rest is copied in one step: in WAL mode one read snapshot does not block
  // writers, and without it a busy service could keep the backup from ever finishing.
  int restarts_before_single_step = 3;
  std::chrono::milliseconds busy_timeout{5000};
};

struct BackupReport {
  std::int64_t pages = 0;
  std::int64_t bytes = 0;
  int restarts = 0;
};

// Copies the database at `database_path` to `destination`: into a temporary file beside it,
// checked with PRAGMA integrity_check, fsynced, then renamed into place (and the folder fsynced).
// Throws BackupExists, Unavailable (source missing or unreadable) or Error.
BackupReport backup_sqlite_database(const std::string& database_path,
                                    const std::string& destination,
                                    const BackupOptions& options = {});

// Replaces the database at `database_path` with the backup at `backup_path`. The backup is copied
// beside the database and checked there (SQLite header, integrity_check, the transnotes tables)
// before anything is replaced; then, holding SQLite's exclusive lock (which fails at once while
// any other connection has the database open: in WAL mode every open connection keeps a shared
// lock on the file), the old database and its -wal/-shm are retired and the copy renamed in.
// Throws InvalidBackup, DatabaseInUse or Error.
void restore_sqlite_database(const std::string& backup_path, const std::string& database_path);

}  // namespace transnotes::storage
