// SQLite connection setup and error mapping (see sqlite_connection.h): how a connection is
// opened and configured, how its statements are run, and which SQLite failures mean
// "unavailable" rather than "bug".
#include "storage/sqlite_connection.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <thread>

#include "domain/errors.h"

namespace transnotes::storage::sqlite {

[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const char* what) {
  const char* message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string detail = std::string(what) + ": " + message;
  switch (rc & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
      throw Unavailable("database unavailable: " + detail);
    default:
      throw Error("database error: " + detail);
  }
}

Connection::Connection(const std::string& path, std::chrono::milliseconds busy_timeout,
                       SqliteSync sync) {
  int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Unavailable("database unavailable: cannot open " + path + ": " + message);
  }
  sqlite3_extended_result_codes(db_, 1);
  try {
    sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout.count()));
    enable_wal(busy_timeout);
    exec(sync == SqliteSync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec("PRAGMA foreign_keys=ON");
  } catch (...) {
    sqlite3_close_v2(db_);
    throw;
  }
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

void Connection::enable_wal(std::chrono::milliseconds busy_timeout) {
  const auto deadline = std::chrono::steady_clock::now() + busy_timeout;
  for (;;) {
    try {
      exec("PRAGMA journal_mode=WAL");
      return;
    } catch (const Unavailable&) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

void Connection::exec(const char* sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error != nullptr ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    if ((rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED) {
      throw Unavailable("database unavailable: " + message);
    }
    throw_sqlite(db_, rc, "exec");
  }
}

std::int64_t Connection::pragma_int(const char* sql) {
  auto stmt = prepare(sql);
  if (!stmt.step()) throw Error(std::string("database error: no answer to ") + sql);
  return stmt.int64(0);
}

Statement Connection::prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "prepare");
    it = statements_.emplace(sql, stmt).first;
  }
  return Statement(db_, it->second);
}

Transaction::Transaction(Pool::Lease& conn, Kind kind) : conn_(conn) {
  conn_->exec(kind == Kind::kWrite ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
}

Transaction::~Transaction() {
  if (done_) return;
  try {
    conn_->exec("ROLLBACK");
  } catch (const std::exception& e) {
    spdlog::warn("sqlite rollback failed, discarding connection: {}", e.what());
    conn_.mark_broken();
  }
}

void Transaction::commit() {
  conn_->exec("COMMIT");
  done_ = true;
}

}  // namespace transnotes::storage::sqlite
