// Private to src/storage: one libpq connection and the rules for talking to PostgreSQL.
//  - Error mapping: every libpq failure becomes a transnotes error here and nowhere else:
//    a lost connection (no result, SQLSTATE classes 08, 53, 57P) or a cancelled statement
//    (57014, statement_timeout) -> Unavailable; a deadlock or serialization failure (40P01,
//    40001) -> RetryableConflict, which the store's transactions retry; invalid UTF-8 (22021)
//    -> InvalidValue; a foreign key violation (23503) -> ForeignKeyViolation, which the store
//    turns into its own terms; anything else -> Error.
//  - Connection: opened with the timeouts, keepalives and session settings every query relies
//    on; prepares each named statement once; marks itself broken after a connection-level
//    failure so the pool discards it instead of handing it out again.
//  - Params / Row: statement parameters and result columns in libpq's text format.
// Kept apart from the schema and the queries so that a change of connection settings or of the
// error vocabulary happens in one file.
#pragma once

#include <libpq-fe.h>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "domain/errors.h"
#include "storage/connection_pool.h"

namespace transnotes::storage::postgres {

// A deadlock or serialization failure: the whole transaction may be retried.
class RetryableConflict : public Error {
 public:
  using Error::Error;
};

// A foreign key refused a row (SQLSTATE 23503), e.g. a note for a user that no longer exists.
class ForeignKeyViolation : public Error {
 public:
  using Error::Error;
};

// The first line of a libpq message (which may go on with DETAIL/HINT lines), for one-line
// errors; a null message reads "unknown error".
std::string first_line(const char* message);

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// A prepared statement: the name is unique per connection, `sql` uses $1..$n placeholders.
struct StatementDef {
  const char* name;
  const char* sql;
};

// NULL-able text parameters for PQexecPrepared (text format).
class Params {
 public:
  Params& add(const std::string& value) {
    values_.emplace_back(value);
    return *this;
  }
  Params& add(std::int64_t value) {
    values_.emplace_back(std::to_string(value));
    return *this;
  }
  Params& add(const std::optional<std::string>& value) {
    values_.push_back(value);
    return *this;
  }
  Params& add(const std::optional<std::int64_t>& value) {
    if (value) return add(*value);
    values_.emplace_back(std::nullopt);
    return *this;
  }
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    for (const auto& value : values_) out.push_back(value ? value->c_str() : nullptr);
    return out;
  }
  std::vector<int> lengths() const {
    std::vector<int> out;
    for (const auto& value : values_) out.push_back(value ? static_cast<int>(value->size()) : 0);
    return out;
  }
  int size() const { return static_cast<int>(values_.size()); }

 private:
  std::vector<std::optional<std::string>> values_;
};

// Reads typed values from a result row (text format).
class Row {
 public:
  Row(const PGresult* result, int row) : result_(result), row_(row) {}
  bool is_null(int col) const { return PQgetisnull(result_, row_, col) != 0; }
  std::string text(int col) const {
    return std::string(PQgetvalue(result_, row_, col),
                       static_cast<std::size_t>(PQgetlength(result_, row_, col)));
  }
  std::optional<std::string> optional_text(int col) const {
    if (is_null(col)) return std::nullopt;
    return text(col);
  }
  std::int64_t int64(int col) const {
    const char* begin = PQgetvalue(result_, row_, col);
    std::int64_t value = 0;
    std::from_chars(begin, begin + PQgetlength(result_, row_, col), value);
    return value;
  }
  std::optional<std::int64_t> optional_int64(int col) const {
    if (is_null(col)) return std::nullopt;
    return int64(col);
  }

 private:
  const PGresult* result_;
  int row_;
};

// One libpq connection with the set of statements prepared on it. Not thread safe.
class Connection {
 public:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { PQfinish(conn_); }

  bool broken() const { return broken_ || PQstatus(conn_) != CONNECTION_OK; }
  void mark_broken() { broken_ = true; }

  // Runs a parameterless command (BEGIN, COMMIT, DDL, SET ...).
  Result exec(const char* sql) { return check(PQexec(conn_, sql)); }

  Result run(const StatementDef& statement, const Params& params);

 private:
  // Turns a failed result into the right exception, marking the connection broken when the
  // failure is at the connection level.
  Result check(PGresult* raw);

  PGconn* conn_;
  bool broken_ = false;
  std::unordered_set<std::string> prepared_;
};

using Pool = ConnectionPool<Connection>;

// Opens one PostgreSQL connection with the session settings every query relies on; `schema`,
// when given, becomes its search_path. Throws Unavailable when the server cannot be reached.
std::unique_ptr<Connection> open_connection(const std::string& url,
                                            const std::optional<std::string>& schema,
                                            std::chrono::milliseconds connect_timeout,
                                            std::chrono::milliseconds statement_timeout);

// Rows changed by an INSERT/UPDATE/DELETE result.
std::int64_t affected(const Result& result);

// Ends the open transaction; a connection that cannot even roll back is marked broken.
void rollback(Connection& conn);

}  // namespace transnotes::storage::postgres
