// PostgreSQL connection setup and error mapping (see postgres_connection.h): how a connection
// is opened and configured, how statements are prepared and run on it, and which SQLSTATEs mean
// "unavailable", "retry" or "bug".
#include "storage/postgres_connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <exception>

namespace transnotes::storage::postgres {

std::string first_line(const char* message) {
  std::string text = message != nullptr ? message : "unknown error";
  auto end = text.find('\n');
  if (end != std::string::npos) text.resize(end);
  return text;
}

Result Connection::run(const StatementDef& statement, const Params& params) {
  if (prepared_.count(statement.name) == 0) {
    check(PQprepare(conn_, statement.name, statement.sql, 0, nullptr));
    prepared_.insert(statement.name);
  }
  auto values = params.pointers();
  auto lengths = params.lengths();
  return check(PQexecPrepared(conn_, statement.name, params.size(), values.data(), lengths.data(),
                              nullptr, 0));
}

Result Connection::check(PGresult* raw) {
  Result result(raw);
  ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  const char* state = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state != nullptr ? state : "";
  std::string message =
      first_line(result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn_));
  if (message.empty()) message = first_line(PQerrorMessage(conn_));
  if (!result || PQstatus(conn_) != CONNECTION_OK || sqlstate.empty() ||
      sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0 ||
      sqlstate.rfind("53", 0) == 0) {
    broken_ = true;
    throw Unavailable("database unavailable: " + message);
  }
  if (sqlstate == "57014") throw Unavailable("database unavailable: " + message);
  if (sqlstate == "40P01" || sqlstate == "40001") throw RetryableConflict(message);
  if (sqlstate == "22021") throw InvalidValue("text is not valid UTF-8");
  if (sqlstate == "23503") throw ForeignKeyViolation("database error: " + message);
  throw Error("database error: " + message);
}

std::unique_ptr<Connection> open_connection(const std::string& url,
                                            const std::optional<std::string>& schema,
                                            std::chrono::milliseconds connect_timeout,
                                            std::chrono::milliseconds statement_timeout) {
  // libpq takes whole seconds and treats values below 2 as 2.
  const auto seconds = std::max<long long>(1, (connect_timeout.count() + 999) / 1000);
  const std::string timeout = std::to_string(seconds);
  const char* keywords[] = {"dbname",
                            "connect_timeout",
                            "keepalives",
                            "keepalives_idle",
                            "keepalives_interval",
                            "keepalives_count",
                            "fallback_application_name",
                            nullptr};
  const char* values[] = {url.c_str(), timeout.c_str(), "1",    "30", "10",
                          "3",         "transnotes",    nullptr};
  PGconn* raw = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  auto conn = std::make_unique<Connection>(raw);
  if (raw == nullptr || PQstatus(raw) != CONNECTION_OK) {
    throw Unavailable("database unavailable: " +
                      first_line(raw != nullptr ? PQerrorMessage(raw) : "out of memory"));
  }
  std::string setup = "SET statement_timeout = " + std::to_string(statement_timeout.count()) +
                      "; " + "SET TIME ZONE 'UTC'; SET client_min_messages = warning";
  if (schema) setup += "; SET search_path TO \"" + *schema + "\"";
  conn->exec(setup.c_str());
  return conn;
}

std::int64_t affected(const Result& result) {
  const char* tuples = PQcmdTuples(result.get());
  std::int64_t n = 0;
  std::from_chars(tuples, tuples + std::strlen(tuples), n);
  return n;
}

void rollback(Connection& conn) {
  if (conn.broken()) return;
  try {
    conn.exec("ROLLBACK");
  } catch (const std::exception& e) {
    spdlog::warn("postgres rollback failed, discarding connection: {}", e.what());
    conn.mark_broken();
  }
}

}  // namespace transnotes::storage::postgres
