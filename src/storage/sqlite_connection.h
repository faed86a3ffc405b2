// Private to src/storage: one SQLite connection and the rules for talking to SQLite.
//  - Error mapping: every SQLite result code becomes a transnotes error here and nowhere else
//    (busy, locked, I/O, full, corrupt, permission ... -> Unavailable; anything else -> Error).
//  - Connection: opened with the busy timeout and WAL that the store's concurrency model relies
//    on, synchronous=FULL or NORMAL as configured, and caching each statement it prepares.
//  - Transaction: BEGIN ... COMMIT on a pooled connection, rolled back when left uncommitted.
// Kept apart from the schema and the queries so that a change of SQLite settings or of the error
// vocabulary happens in one file.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "storage/connection_pool.h"
#include "storage/storage.h"

namespace transnotes::storage::sqlite {

// Throws the transnotes error for SQLite result code `rc`; `what` names the failed call.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const char* what);

// A cached prepared statement borrowed for one use; resets itself when done.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  Statement& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& bind(int index, const std::string& value) {
    check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
    return *this;
  }
  Statement& bind(int index, const std::optional<std::string>& value) {
    if (value) return bind(index, *value);
    check(sqlite3_bind_null(stmt_, index));
    return *this;
  }
  Statement& bind(int index, const std::optional<std::int64_t>& value) {
    if (value) return bind(index, *value);
    check(sqlite3_bind_null(stmt_, index));
    return *this;
  }

  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw_sqlite(db_, rc, "step");
  }
  void run() {
    while (step()) {
    }
  }

  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    int size = sqlite3_column_bytes(stmt_, col);
    return data == nullptr ? std::string() : std::string(data, static_cast<std::size_t>(size));
  }
  std::optional<std::string> optional_text(int col) const {
    if (is_null(col)) return std::nullopt;
    return text(col);
  }
  std::optional<std::int64_t> optional_int64(int col) const {
    if (is_null(col)) return std::nullopt;
    return int64(col);
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// One SQLite connection with its prepared-statement cache. Not thread safe: used by one thread
// at a time (the pool hands it out exclusively).
class Connection {
 public:
  Connection(const std::string& path, std::chrono::milliseconds busy_timeout, SqliteSync sync);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Switching a new database file to WAL needs it to itself for a moment, and SQLite answers
  // SQLITE_BUSY at once (without the busy handler) when another connection is opening it at the
  // same time; so retry for as long as any other lock wait may take. Once the file is in WAL mode
  // (which persists), this returns at the first try.
  void enable_wal(std::chrono::milliseconds busy_timeout);

  // Runs one or more statements without results.
  void exec(const char* sql);

  // The integer a PRAGMA query answers (e.g. "PRAGMA synchronous").
  std::int64_t pragma_int(const char* sql);

  // The cached prepared statement for `sql` (compiled on first use on this connection).
  Statement prepare(const char* sql);

  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }
  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  std::int64_t changes() const { return sqlite3_changes64(db_); }

 private:
  sqlite3* db_ = nullptr;
  // Keyed by the SQL text's address: every statement is a string literal (the named constants
  // in sqlite_store.cpp, the migration bookkeeping in sqlite_schema.cpp).
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

using Pool = ConnectionPool<Connection>;

// BEGIN ... COMMIT; rolls back when destroyed uncommitted (including on exceptions).
class Transaction {
 public:
  enum class Kind { kRead, kWrite };
  Transaction(Pool::Lease& conn, Kind kind);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Pool::Lease& conn_;
  bool done_ = false;
};

}  // namespace transnotes::storage::sqlite
