// Backup and restore of the embedded database (see sqlite_backup.h).
#include "storage/sqlite_backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <thread>
#include <vector>

namespace transnotes::storage {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string errno_text() { return std::strerror(errno); }

// One sqlite3 handle, closed on every path out.
class Handle {
 public:
  Handle(const std::string& path, int flags) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw Unavailable("cannot open " + path + ": " + message);
    }
    sqlite3_extended_result_codes(db_, 1);
  }
  ~Handle() { close(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  sqlite3* get() const { return db_; }
  void close() {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = nullptr;
  }
  // The result code of running `sql` (no rows expected).
  int exec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }
  void exec_or_throw(const char* sql) {
    if (int rc = exec(sql); rc != SQLITE_OK) {
      throw Error(std::string(sql) + ": " + sqlite3_errmsg(db_) + " (" + sqlite3_errstr(rc) + ")");
    }
  }
  // Every row's first column of `sql`, as text.
  std::vector<std::string> column(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      throw Error(std::string(sql) + ": " + sqlite3_errmsg(db_));
    }
    std::vector<std::string> values;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(stmt, 0);
      values.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
    }
    std::string message = sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) throw Error(std::string(sql) + ": " + message);
    return values;
  }

 private:
  sqlite3* db_ = nullptr;
};

// A uniquely named file beside `target`, removed (with any journal SQLite left beside it) unless
// released after it was renamed into place.
class TempFile {
 public:
  explicit TempFile(const std::string& target, const char* tag) {
    std::string pattern = target + tag + "XXXXXX";
    std::vector<char> name(pattern.begin(), pattern.end());
    name.push_back('\0');
    int fd = mkstemp(name.data());
    if (fd < 0)
      throw Error("cannot create a temporary file beside " + target + ": " + errno_text());
    ::close(fd);
    path_ = name.data();
  }
  ~TempFile() {
    if (path_.empty()) return;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) ::unlink((path_ + suffix).c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + " to sync it: " + errno_text());
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) throw Error("cannot sync " + path + ": " + std::strerror(saved));
}

std::string folder_of(const std::string& path) {
  auto parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

void check_integrity(Handle& db, const std::string& what) {
  auto result = db.column("PRAGMA integrity_check");
  if (result.size() != 1 || result[0] != "ok") {
    throw InvalidBackup(what + " fails SQLite's integrity check: " +
                        (result.empty() ? std::string("no result") : result[0]));
  }
}

bool has_sqlite_header(const std::string& path) {
  static constexpr char kHeader[] = "SQLite format 3";  // 16 bytes with its NUL
  std::array<char, sizeof kHeader> head{};
  std::ifstream in(path, std::ios::binary);
  if (!in.read(head.data(), head.size())) return false;
  return std::memcmp(head.data(), kHeader, sizeof kHeader) == 0;
}

}  // namespace

std::optional<std::string> sqlite_database_path(const std::string& database_url) {
  if (starts_with(database_url, "sqlite://")) return database_url.substr(9);
  if (starts_with(database_url, "sqlite:")) return database_url.substr(7);
  return std::nullopt;
}

BackupReport backup_sqlite_database(const std::string& database_path,
                                    const std::string& destination, const BackupOptions& options) {
  if (!fs::exists(database_path)) {
    throw Unavailable("no database at " + database_path + " (wrong --data-dir?)");
  }
  if (!options.overwrite && fs::exists(destination)) {
    throw BackupExists(destination + " already exists (use --force to replace it)");
  }
  // No SQLITE_OPEN_CREATE: a mistyped path must not create an empty database to back up.
  Handle source(database_path, SQLITE_OPEN_READWRITE);
  sqlite3_busy_timeout(source.get(), static_cast<int>(options.busy_timeout.count()));

  TempFile temp(destination, ".tmp-");
  BackupReport report;
  {
    Handle copy(temp.path(), SQLITE_OPEN_READWRITE);
    sqlite3_backup* backup = sqlite3_backup_init(copy.get(), "main", source.get(), "main");
    if (backup == nullptr)
      throw Error("cannot start the backup: " + std::string(sqlite3_errmsg(copy.get())));
    int pages_per_step = options.pages_per_step;
    int copied_before = 0;
    int rc;
    for (;;) {
      rc = sqlite3_backup_step(backup, pages_per_step);
      const int total = sqlite3_backup_pagecount(backup);
      const int copied = total - sqlite3_backup_remaining(backup);
      if (copied < copied_before && ++report.restarts >= options.restarts_before_single_step) {
        pages_per_step = -1;
      }
      copied_before = copied;
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_OK && (rc & 0xFF) != SQLITE_BUSY && (rc & 0xFF) != SQLITE_LOCKED) break;
      std::this_thread::sleep_for(options.pause_between_steps);
    }
    report.pages = sqlite3_backup_pagecount(backup);
    int finish_rc = sqlite3_backup_finish(backup);
    if (rc != SQLITE_DONE || finish_rc != SQLITE_OK) {
      throw Error("backup failed: " +
                  std::string(sqlite3_errstr(rc != SQLITE_DONE ? rc : finish_rc)));
    }
    check_integrity(copy, "the copy");
  }
  fsync_path(temp.path(), O_RDONLY);
  report.bytes = static_cast<std::int64_t>(fs::file_size(temp.path()));
  if (options.overwrite) {
    if (::rename(temp.path().c_str(), destination.c_str()) != 0) {
      throw Error("cannot rename the copy to " + destination + ": " + errno_text());
    }
  } else {
    // link() fails when the name exists, so a file created meanwhile is never replaced.
    if (::link(temp.path().c_str(), destination.c_str()) != 0) {
      if (errno == EEXIST)
        throw BackupExists(destination + " already exists (use --force to replace it)");
      throw Error("cannot link the copy to " + destination + ": " + errno_text());
    }
    ::unlink(temp.path().c_str());
  }
  temp.release();
  fsync_path(folder_of(destination), O_RDONLY | O_DIRECTORY);
  return report;
}

void restore_sqlite_database(const std::string& backup_path, const std::string& database_path) {
  if (!fs::is_regular_file(backup_path)) throw InvalidBackup(backup_path + " is not a file");
  if (!has_sqlite_header(backup_path)) {
    throw InvalidBackup(backup_path + " is not an SQLite database (no SQLite header)");
  }
  fs::create_directories(folder_of(database_path));

  // The backup is checked as the copy that will become the database, so what was checked is
  // exactly what is renamed in (and the operator's file is never opened for writing).
  TempFile temp(database_path, ".restore-");
  fs::copy_file(backup_path, temp.path(), fs::copy_options::overwrite_existing);
  try {
    Handle copy(temp.path(), SQLITE_OPEN_READWRITE);
    check_integrity(copy, backup_path);
    auto tables = copy.column("SELECT name FROM sqlite_master WHERE type = 'table'");
    for (const char* wanted : {"schema_migrations", "notes", "translation_jobs"}) {
      if (std::find(tables.begin(), tables.end(), wanted) == tables.end()) {
        throw InvalidBackup(backup_path + " is not a transnotes database (no table " + wanted +
                            ")");
      }
    }
  } catch (const InvalidBackup&) {
    throw;
  } catch (const Error& e) {
    // SQLite refusing to read it at all (malformed, truncated, encrypted) is the same verdict.
    throw InvalidBackup(backup_path + " cannot be read as a database: " + e.what());
  }
  fsync_path(temp.path(), O_RDONLY);

  if (fs::exists(database_path)) {
    // In WAL mode every open connection keeps a shared lock on the database file for as long as
    // it is open, idle or not. An exclusive lock taken without waiting therefore fails while any
    // serve, worker or command has the database open, wherever it is in its work.
    Handle current(database_path, SQLITE_OPEN_READWRITE);
    sqlite3_busy_timeout(current.get(), 0);
    current.exec_or_throw("PRAGMA locking_mode=EXCLUSIVE");
    int rc = current.exec("BEGIN EXCLUSIVE");
    if ((rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED) {
      throw DatabaseInUse("the database " + database_path +
                          " is open in another process (a running serve or worker?); stop it "
                          "before restoring");
    }
    // A database file too damaged to lock cannot be in use by a working service; replace it.
    if (rc == SQLITE_OK) current.exec("COMMIT");
  }
  // The old database's WAL and index must go before the new file takes its name: SQLite would
  // otherwise replay the old WAL's frames into the restored database.
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    if (::unlink((database_path + suffix).c_str()) != 0 && errno != ENOENT) {
      throw Error("cannot remove " + database_path + suffix + ": " + errno_text());
    }
  }
  if (::rename(temp.path().c_str(), database_path.c_str()) != 0) {
    throw Error("cannot rename the restored copy to " + database_path + ": " + errno_text());
  }
  temp.release();
  fsync_path(folder_of(database_path), O_RDONLY | O_DIRECTORY);
}

}  // namespace transnotes::storage
