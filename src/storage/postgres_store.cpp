// PostgreSQL Store over libpq. Concurrency model:
//  - A pool of at most pool_size connections; each is used by one thread at a time.
//  - Statements are prepared once per connection (PQprepare) from the named constants below.
//  - Claims use `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same job.
//  - Row locks are always taken note first, then job (as ON DELETE CASCADE does), so
//    complete_job and delete_note cannot deadlock; deadlock/serialization errors are retried.
//  - A connection that reports a connection-level failure is discarded, never reused; the next
//    call opens a fresh one. Timestamps come from the database clock (clock_timestamp()).
#include "storage/postgres_store.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "domain/errors.h"
#include "storage/batcher.h"
#include "storage/connection_pool.h"
#include "storage/row_mapping.h"

namespace transnotes::storage {

namespace {

// A deadlock or serialization failure: the whole transaction may be retried.
class RetryableConflict : public Error {
 public:
  using Error::Error;
};

std::string first_line(const char* message) {
  std::string text = message != nullptr ? message : "unknown error";
  auto end = text.find('\n');
  if (end != std::string::npos) text.resize(end);
  return text;
}

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

  Result run(const StatementDef& statement, const Params& params) {
    if (prepared_.count(statement.name) == 0) {
      check(PQprepare(conn_, statement.name, statement.sql, 0, nullptr));
      prepared_.insert(statement.name);
    }
    auto values = params.pointers();
    auto lengths = params.lengths();
    return check(PQexecPrepared(conn_, statement.name, params.size(), values.data(), lengths.data(),
                                nullptr, 0));
  }

 private:
  // Turns a failed result into the right exception, marking the connection broken when the
  // failure is at the connection level.
  Result check(PGresult* raw) {
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
    if (sqlstate == "22021") throw BadRequest("text is not valid UTF-8");
    throw Error("database error: " + message);
  }

  PGconn* conn_;
  bool broken_ = false;
  std::unordered_set<std::string> prepared_;
};

using Pool = ConnectionPool<Connection>;

// Opens one PostgreSQL connection with the session settings every query relies on.
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

struct Migration {
  int version;
  const char* sql;
};

// Pieces of the stats trigger (migration 2): add a delta to this backend's counter shard.
#define TN_STATS_ACCUMULATE                           \
  "ON CONFLICT (original_language, shard) DO UPDATE " \
  "SET notes = s.notes + excluded.notes, translated = s.translated + excluded.translated;\n"
#define TN_STATS_ADD_NEW                                                       \
  "INSERT INTO note_stats AS s (original_language, shard, notes, translated) " \
  "VALUES (NEW.original_language, shard_id, 1, (NEW.translated_text IS NOT "   \
  "NULL)::int) " TN_STATS_ACCUMULATE
#define TN_STATS_REMOVE_OLD                                                    \
  "INSERT INTO note_stats AS s (original_language, shard, notes, translated) " \
  "VALUES (OLD.original_language, shard_id, -1, -(OLD.translated_text IS NOT " \
  "NULL)::int) " TN_STATS_ACCUMULATE

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE notes (
  id BIGSERIAL PRIMARY KEY,
  title TEXT NOT NULL,
  original_text TEXT NOT NULL,
  original_language TEXT NOT NULL,
  translated_text TEXT NULL,
  translated_language TEXT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL,
  version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX notes_list_order ON notes (created_at DESC, id DESC);
CREATE INDEX notes_original_language ON notes (original_language);
CREATE TABLE translation_jobs (
  id BIGSERIAL PRIMARY KEY,
  note_id BIGINT NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
  source_language TEXT NOT NULL,
  target_language TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  text TEXT NULL,
  error TEXT NULL,
  engine TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  started_at TIMESTAMPTZ NULL,
  finished_at TIMESTAMPTZ NULL,
  available_at TIMESTAMPTZ NOT NULL,
  lease_owner TEXT NULL,
  lease_expires_at TIMESTAMPTZ NULL
);
CREATE INDEX translation_jobs_claim ON translation_jobs (status, available_at);
CREATE INDEX translation_jobs_note ON translation_jobs (note_id, target_language, id);
)sql"},
    // Stats counters kept by a trigger in the writing transaction, so stats() reads
    // O(languages x shards) rows instead of scanning notes, and stays exactly consistent.
    //  - Contention: each backend adds to its own shard (pid % 16), so concurrent writers from
    //    different connections rarely wait on one counter row. A shard may go negative (created
    //    on one connection, deleted on another); only the per-language sums mean anything.
    //  - Deadlocks: a language change touches two counter rows; they are always locked in
    //    language order, and every writer locks its note row before any counter row.
    //  - The function pins the search_path it was created under, so a write from a session with
    //    another search_path still counts into this schema's note_stats.
    //  - The table lock keeps writers out between the backfill and the trigger's creation.
    {2, R"sql(
LOCK TABLE notes IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE note_stats (
  original_language TEXT NOT NULL,
  shard INTEGER NOT NULL,
  notes BIGINT NOT NULL,
  translated BIGINT NOT NULL,
  PRIMARY KEY (original_language, shard)
);
INSERT INTO note_stats (original_language, shard, notes, translated)
  SELECT original_language, 0, count(*), count(translated_text) FROM notes
  GROUP BY original_language;
CREATE FUNCTION note_stats_track() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
DECLARE
  shard_id INTEGER := pg_backend_pid() % 16;
BEGIN
  IF TG_OP = 'INSERT' THEN
    )sql" TN_STATS_ADD_NEW R"sql(
  ELSIF TG_OP = 'DELETE' THEN
    )sql" TN_STATS_REMOVE_OLD R"sql(
  ELSIF OLD.original_language = NEW.original_language THEN
    INSERT INTO note_stats AS s (original_language, shard, notes, translated)
    VALUES (NEW.original_language, shard_id, 0,
            (NEW.translated_text IS NOT NULL)::int - (OLD.translated_text IS NOT NULL)::int)
    )sql" TN_STATS_ACCUMULATE R"sql(
  ELSIF OLD.original_language COLLATE "C" < NEW.original_language COLLATE "C" THEN
    )sql" TN_STATS_REMOVE_OLD TN_STATS_ADD_NEW R"sql(
  ELSE
    )sql" TN_STATS_ADD_NEW TN_STATS_REMOVE_OLD R"sql(
  END IF;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER note_stats_after_insert_or_delete AFTER INSERT OR DELETE ON notes
  FOR EACH ROW EXECUTE FUNCTION note_stats_track();
CREATE TRIGGER note_stats_after_update AFTER UPDATE OF original_language, translated_text ON notes
  FOR EACH ROW
  WHEN (OLD.original_language IS DISTINCT FROM NEW.original_language
        OR (OLD.translated_text IS NULL) <> (NEW.translated_text IS NULL))
  EXECUTE FUNCTION note_stats_track();
)sql"},
};

// timestamptz <-> int64 microseconds since the epoch.
#define TN_MICROS(col) "(extract(epoch FROM " col ") * 1000000)::int8"
#define TN_NOTE_COLUMNS                                                                            \
  "id, title, original_text, original_language, translated_text, translated_language, " TN_MICROS( \
      "created_at") ", " TN_MICROS("updated_at") ", version"
#define TN_JOB_COLUMNS                                                                     \
  "id, note_id, source_language, target_language, status, text, error, engine, attempts, " \
  "max_attempts, " TN_MICROS("created_at") ", " TN_MICROS("started_at") ", " TN_MICROS(    \
      "finished_at")
#define TN_RUNNABLE                                                \
  "((status = 'queued' AND available_at <= clock_timestamp()) OR " \
  " (status = 'running' AND lease_expires_at < clock_timestamp() AND attempts < max_attempts))"
#define TN_MS(param) "(" param "::int8 * interval '1 millisecond')"

constexpr StatementDef kInsertNote{
    "insert_note",
    "INSERT INTO notes (title, original_text, original_language, created_at, updated_at, version) "
    "SELECT $1, $2, $3, t, t, 1 FROM (SELECT clock_timestamp() AS t) now "
    "RETURNING " TN_NOTE_COLUMNS};
// Concurrent creates are inserted together (group commit): one statement, one transaction,
// one WAL flush for up to kMaxCreateBatch notes. Statements for each batch size are built once.
constexpr std::size_t kMaxCreateBatch = 64;

class BatchInsertStatements {
 public:
  BatchInsertStatements() {
    names_.resize(kMaxCreateBatch + 1);
    sqls_.resize(kMaxCreateBatch + 1);
    for (std::size_t n = 2; n <= kMaxCreateBatch; ++n) {
      names_[n] = "insert_notes_" + std::to_string(n);
      // clock_timestamp() in the inner query's target list is evaluated per row, and both
      // timestamps of a row come from that one value.
      std::string sql =
          "INSERT INTO notes (title, original_text, original_language, created_at, updated_at, "
          "version) SELECT title, body, lang, t, t, 1 FROM (SELECT v.title, v.body, v.lang, "
          "clock_timestamp() AS t FROM (VALUES ";
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t p = i * 3;
        sql += (i ? ", ($" : "($") + std::to_string(p + 1) + "::text, $" + std::to_string(p + 2) +
               "::text, $" + std::to_string(p + 3) + "::text)";
      }
      sql += ") AS v (title, body, lang)) AS input RETURNING " TN_NOTE_COLUMNS;
      sqls_[n] = std::move(sql);
    }
  }
  StatementDef get(std::size_t n) const { return {names_.at(n).c_str(), sqls_.at(n).c_str()}; }

 private:
  std::vector<std::string> names_, sqls_;
};

const BatchInsertStatements& batch_insert_statements() {
  static const BatchInsertStatements statements;
  return statements;
}

constexpr StatementDef kSelectNote{"select_note",
                                   "SELECT " TN_NOTE_COLUMNS " FROM notes WHERE id = $1"};
constexpr StatementDef kListNotes{"list_notes", "SELECT " TN_NOTE_COLUMNS
                                                " FROM notes ORDER BY created_at DESC, id DESC "
                                                "LIMIT $1 OFFSET $2"};
// Unset fields are NULL and keep the stored value; updated_at strictly increases per row.
constexpr StatementDef kUpdateNote{
    "update_note",
    "UPDATE notes SET title = COALESCE($2, title), original_text = COALESCE($3, original_text), "
    "original_language = COALESCE($4, original_language), "
    "updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond'), "
    "version = version + 1 WHERE id = $1 RETURNING " TN_NOTE_COLUMNS};
constexpr StatementDef kDeleteNote{"delete_note", "DELETE FROM notes WHERE id = $1"};
// Sums the trigger-maintained shards; languages whose notes all went away are hidden.
constexpr StatementDef kLanguageStats{
    "language_stats",
    "SELECT original_language, sum(notes)::int8 AS n, sum(translated)::int8 FROM note_stats "
    "GROUP BY original_language HAVING sum(notes) > 0 "
    "ORDER BY n DESC, original_language COLLATE \"C\" ASC"};
// Locks the note so a concurrent delete waits (and keeps the note-then-job lock order).
constexpr StatementDef kLockNote{"lock_note", "SELECT 1 FROM notes WHERE id = $1 FOR UPDATE"};
constexpr StatementDef kInsertJob{
    "insert_job",
    "INSERT INTO translation_jobs (note_id, source_language, target_language, status, engine, "
    "attempts, max_attempts, created_at, available_at) "
    "SELECT $1, $2, $3, 'queued', $4, 0, $5, t, t FROM (SELECT clock_timestamp() AS t) now "
    "RETURNING " TN_JOB_COLUMNS};
constexpr StatementDef kSelectJob{"select_job",
                                  "SELECT " TN_JOB_COLUMNS " FROM translation_jobs WHERE id = $1"};
constexpr StatementDef kLatestJobs{
    "latest_jobs",
    "SELECT " TN_JOB_COLUMNS
    " FROM translation_jobs j WHERE note_id = $1 AND id = (SELECT max(id) FROM translation_jobs "
    "WHERE note_id = j.note_id AND target_language = j.target_language) ORDER BY id DESC"};
// A crashed worker's job that used up its attempts is failed instead of re-claimed.
constexpr StatementDef kFailExhausted{
    "fail_exhausted",
    "UPDATE translation_jobs SET status = 'failed', finished_at = clock_timestamp(), "
    "lease_owner = NULL, lease_expires_at = NULL, "
    "error = COALESCE(error, 'worker lost the job (lease expired)') "
    "WHERE status = 'running' AND lease_expires_at < clock_timestamp() "
    "AND attempts >= max_attempts"};
constexpr StatementDef kClaimJob{
    "claim_job",
    "UPDATE translation_jobs j SET status = 'running', attempts = j.attempts + 1, "
    "started_at = clock_timestamp(), lease_owner = $1, "
    "lease_expires_at = clock_timestamp() + " TN_MS("$2") " FROM notes n "
    "WHERE n.id = j.note_id AND j.id = (SELECT id FROM translation_jobs WHERE " TN_RUNNABLE
    " AND ($3::int8 IS NULL OR id = $3::int8) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "RETURNING j.id, j.note_id, j.source_language, j.target_language, j.status, j.text, j.error, "
    "j.engine, j.attempts, j.max_attempts, " TN_MICROS("j.created_at") ", " TN_MICROS(
        "j.started_at") ", " TN_MICROS("j.finished_at") ", n.original_text, n.original_language"};
constexpr StatementDef kRenewLease{
    "renew_lease", "UPDATE translation_jobs SET lease_expires_at = clock_timestamp() + " TN_MS(
                       "$3") " WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kJobNote{"job_note", "SELECT note_id FROM translation_jobs WHERE id = $1"};
constexpr StatementDef kCompleteJob{
    "complete_job",
    "UPDATE translation_jobs SET status = 'succeeded', text = $3, engine = $4, error = NULL, "
    "finished_at = clock_timestamp(), lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = $1 AND status = 'running' AND lease_owner = $2 RETURNING note_id, "
    "target_language"};
// Only the translation columns: a concurrent edit of title/text must not be overwritten.
constexpr StatementDef kSetTranslation{
    "set_translation",
    "UPDATE notes SET translated_text = $2, translated_language = $3, "
    "updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond'), "
    "version = version + 1 WHERE id = $1 RETURNING version"};
constexpr StatementDef kRetryJob{
    "retry_job",
    "UPDATE translation_jobs SET status = 'queued', error = $3, "
    "available_at = clock_timestamp() + " TN_MS("$4") ", lease_owner = NULL, "
    "lease_expires_at = NULL WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kFailJob{
    "fail_job",
    "UPDATE translation_jobs SET status = 'failed', error = $3, finished_at = clock_timestamp(), "
    "lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kRunnableIds{
    "runnable_ids", "SELECT id FROM translation_jobs WHERE " TN_RUNNABLE " ORDER BY id LIMIT $1"};
constexpr StatementDef kNextDue{
    "next_due",
    "SELECT " TN_MICROS("least((SELECT min(available_at) FROM translation_jobs "
                        "WHERE status = 'queued'), (SELECT min(lease_expires_at) FROM "
                        "translation_jobs WHERE status = 'running' AND attempts < max_attempts))")};

std::int64_t affected(const Result& result) {
  const char* tuples = PQcmdTuples(result.get());
  std::int64_t n = 0;
  std::from_chars(tuples, tuples + std::strlen(tuples), n);
  return n;
}

class PostgresStore final : public Store {
 private:
  static std::int64_t millis(std::chrono::milliseconds d) { return d.count(); }

  // Runs `body` in BEGIN ... COMMIT; rolls back on any exception (discarding the connection if
  // even that fails) and retries deadlocks/serialization failures a few times.
  template <class Body>
  auto transaction(Body&& body) {
    for (int attempt = 1;; ++attempt) {
      auto conn = pool_.acquire();
      conn->exec("BEGIN");
      try {
        auto result = body(conn);
        conn->exec("COMMIT");
        return result;
      } catch (const RetryableConflict& e) {
        rollback(conn);
        if (attempt >= 5) throw Unavailable(std::string("database unavailable: ") + e.what());
      } catch (...) {
        rollback(conn);
        throw;
      }
    }
  }
  using CreateBatcher = Batcher<NoteFields, Note>;
  struct StatsRequest {};
  using StatsBatcher = Batcher<StatsRequest, Stats>;

  // One autocommit statement: a single snapshot of the counters. Totals are the sums of the
  // returned rows (a hidden zero-note language also has 0 translated).
  Stats query_stats() {
    auto result = single(kLanguageStats, Params());
    Stats stats;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      Row row(result.get(), i);
      stats.total_notes += row.int64(1);
      stats.total_translations += row.int64(2);
      stats.language_breakdown.push_back({row.text(0), row.int64(1)});
    }
    return stats;
  }

  static void add_insert_params(Params& params, const NoteFields& fields) {
    params.add(fields.title.value_or(""))
        .add(fields.original_text.value_or(""))
        .add(fields.original_language.value_or(kDefaultLanguage));
  }
  Note insert_one(const NoteFields& fields) {
    Params params;
    add_insert_params(params, fields);
    auto result = single(kInsertNote, params);
    return read_note(Row(result.get(), 0));
  }

  // Inserts the batch's notes with one multi-row INSERT (autocommit: one durable commit). If it
  // fails for a reason other than the database being down (e.g. one note's invalid UTF-8), the
  // notes are inserted one by one so that only the bad one fails.
  void insert_notes(std::span<CreateBatcher::Slot*> slots) {
    if (slots.size() == 1) {
      slots[0]->output = insert_one(*slots[0]->input);
      return;
    }
    Params params;
    for (auto* slot : slots) add_insert_params(params, *slot->input);
    Result result;
    try {
      result = single(batch_insert_statements().get(slots.size()), params);
    } catch (const Unavailable&) {
      throw;
    } catch (const std::exception&) {
      for (auto* slot : slots) {
        try {
          slot->output = insert_one(*slot->input);
        } catch (...) {
          slot->error = std::current_exception();
        }
      }
      return;
    }
    // RETURNING's row order is not specified, so each caller takes a row with its own content;
    // notes with identical content are interchangeable (each gets a distinct one).
    auto key = [](const std::string& title, const std::string& text, const std::string& lang) {
      return std::to_string(title.size()) + ':' + title + std::to_string(text.size()) + ':' + text +
             lang;
    };
    std::unordered_multimap<std::string, Note> rows;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      Note note = read_note(Row(result.get(), i));
      std::string row_key = key(note.title, note.original_text, note.original_language);
      rows.emplace(std::move(row_key), std::move(note));
    }
    for (auto* slot : slots) {
      const NoteFields& f = *slot->input;
      auto it = rows.find(key(f.title.value_or(""), f.original_text.value_or(""),
                              f.original_language.value_or(kDefaultLanguage)));
      if (it == rows.end()) {
        slot->error = std::make_exception_ptr(Error("batched insert returned no row for a note"));
        continue;
      }
      slot->output = std::move(it->second);
      rows.erase(it);
    }
  }

  static void rollback(Pool::Lease& conn) {
    if (conn->broken()) return;
    try {
      conn->exec("ROLLBACK");
    } catch (const std::exception& e) {
      spdlog::warn("postgres rollback failed, discarding connection: {}", e.what());
      conn->mark_broken();
    }
  }
  // Runs one autocommit statement.
  Result single(const StatementDef& statement, const Params& params) {
    auto conn = pool_.acquire();
    return conn->run(statement, params);
  }

 public:
  PostgresStore(std::string url, std::optional<std::string> schema, const StorageConfig& config)
      : schema_(schema),
        pool_(
            {.max_size = config.pool_size, .wait = config.pool_wait},
            [url = std::move(url), schema = std::move(schema),
             connect_timeout = config.connect_timeout,
             statement_timeout = config.statement_timeout] {
              return open_connection(url, schema, connect_timeout, statement_timeout);
            },
            [](const Connection& conn) { return !conn.broken(); }),
        // A quarter of the connections may run insert batches at once; the rest stay free for
        // reads and other writes. Latency is unchanged when idle: a lone create leads at once.
        create_batcher_(std::clamp<std::size_t>(config.write_batch, 1, kMaxCreateBatch),
                        std::max(1, config.pool_size / 4)) {}

  void migrate() override {
    auto conn = pool_.acquire();
    try {
      // Serialises migrators across processes; the key is per schema so separate schemas
      // (e.g. tests) do not wait for each other. Session lock: released on unlock or disconnect.
      const std::string lock_key = "transnotes.migrate." + schema_.value_or("");
      conn->exec(("SELECT pg_advisory_lock(hashtext('" + lock_key + "'))").c_str());
      if (schema_) conn->exec(("CREATE SCHEMA IF NOT EXISTS \"" + *schema_ + "\"").c_str());
      conn->exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
          "applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())");
      auto applied = conn->exec("SELECT version FROM schema_migrations");
      std::unordered_set<std::int64_t> versions;
      for (int i = 0; i < PQntuples(applied.get()); ++i) {
        versions.insert(Row(applied.get(), i).int64(0));
      }
      for (const Migration& migration : kMigrations) {
        if (versions.count(migration.version) != 0) continue;
        spdlog::info("postgres: applying schema migration {}", migration.version);
        conn->exec("BEGIN");
        try {
          conn->exec(migration.sql);
          conn->exec(("INSERT INTO schema_migrations (version) VALUES (" +
                      std::to_string(migration.version) + ")")
                         .c_str());
          conn->exec("COMMIT");
        } catch (...) {
          rollback(conn);
          throw;
        }
      }
      conn->exec("SELECT pg_advisory_unlock_all()");
    } catch (...) {
      conn->mark_broken();  // closing the session releases the advisory lock
      throw;
    }
  }

  Note create_note(const NoteFields& fields) override {
    return create_batcher_.submit(
        fields, [this](std::span<CreateBatcher::Slot*> slots) { insert_notes(slots); });
  }

  std::optional<Note> get_note(std::int64_t id) override {
    auto result = single(kSelectNote, Params().add(id));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_note(Row(result.get(), 0));
  }

  std::vector<Note> list_notes(const ListQuery& query) override {
    auto result = single(kListNotes, Params()
                                         .add(std::max<std::int64_t>(query.limit, 0))
                                         .add(std::max<std::int64_t>(query.offset, 0)));
    std::vector<Note> notes;
    for (int i = 0; i < PQntuples(result.get()); ++i)
      notes.push_back(read_note(Row(result.get(), i)));
    return notes;
  }

  std::optional<Note> update_note(std::int64_t id, const NoteFields& fields) override {
    auto result = single(
        kUpdateNote,
        Params().add(id).add(fields.title).add(fields.original_text).add(fields.original_language));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_note(Row(result.get(), 0));
  }

  bool delete_note(std::int64_t id) override {
    return affected(single(kDeleteNote, Params().add(id))) > 0;
  }

  Stats stats() override {
    // Callers that arrive while a stats query runs share the next one: it starts after they
    // arrived, so each still sees every write that finished before its call.
    const StatsRequest request;
    return stats_batcher_.submit(request, [this](std::span<StatsBatcher::Slot*> slots) {
      Stats stats = query_stats();
      for (auto* slot : slots) slot->output = stats;
    });
  }

  std::optional<TranslationJob> create_job(std::int64_t note_id, const std::string& source_language,
                                           const std::string& target_language,
                                           const std::string& engine, int max_attempts) override {
    return transaction([&](Pool::Lease& conn) -> std::optional<TranslationJob> {
      if (PQntuples(conn->run(kLockNote, Params().add(note_id)).get()) == 0) return std::nullopt;
      auto result = conn->run(kInsertJob, Params()
                                              .add(note_id)
                                              .add(source_language)
                                              .add(target_language)
                                              .add(engine)
                                              .add(std::int64_t{max_attempts}));
      return read_job(Row(result.get(), 0));
    });
  }

  std::optional<TranslationJob> get_job(std::int64_t id) override {
    auto result = single(kSelectJob, Params().add(id));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_job(Row(result.get(), 0));
  }

  std::vector<TranslationJob> latest_jobs_for_note(std::int64_t note_id) override {
    auto result = single(kLatestJobs, Params().add(note_id));
    std::vector<TranslationJob> jobs;
    for (int i = 0; i < PQntuples(result.get()); ++i)
      jobs.push_back(read_job(Row(result.get(), i)));
    return jobs;
  }

  std::optional<ClaimedJob> claim_job(const std::string& worker_id, std::chrono::milliseconds lease,
                                      std::optional<std::int64_t> preferred_id) override {
    auto conn = pool_.acquire();
    conn->run(kFailExhausted, Params());
    auto result =
        conn->run(kClaimJob, Params().add(worker_id).add(millis(lease)).add(preferred_id));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    Row row(result.get(), 0);
    ClaimedJob claimed;
    claimed.job = read_job(row);
    claimed.note_text = row.text(13);
    claimed.note_language = row.text(14);
    return claimed;
  }

  bool renew_lease(std::int64_t job_id, const std::string& worker_id,
                   std::chrono::milliseconds lease) override {
    return affected(single(kRenewLease, Params().add(job_id).add(worker_id).add(millis(lease)))) >
           0;
  }

  CompleteResult complete_job(std::int64_t job_id, const std::string& worker_id,
                              const std::string& text, const std::string& engine) override {
    return transaction([&](Pool::Lease& conn) {
      CompleteResult result;
      auto owner = conn->run(kJobNote, Params().add(job_id));
      if (PQntuples(owner.get()) == 0) return result;
      const std::int64_t note_id = Row(owner.get(), 0).int64(0);
      conn->run(kLockNote, Params().add(note_id));  // note before job, like the cascade
      auto job = conn->run(kCompleteJob, Params().add(job_id).add(worker_id).add(text).add(engine));
      if (PQntuples(job.get()) == 0) return result;
      result.applied = true;
      auto note = conn->run(kSetTranslation,
                            Params().add(note_id).add(text).add(Row(job.get(), 0).text(1)));
      if (PQntuples(note.get()) > 0) result.note_version = Row(note.get(), 0).int64(0);
      return result;
    });
  }

  bool fail_job(std::int64_t job_id, const std::string& worker_id, const std::string& error,
                std::optional<std::chrono::milliseconds> retry_after) override {
    if (retry_after) {
      return affected(single(kRetryJob, Params().add(job_id).add(worker_id).add(error).add(
                                            millis(*retry_after)))) > 0;
    }
    return affected(single(kFailJob, Params().add(job_id).add(worker_id).add(error))) > 0;
  }

  std::vector<std::int64_t> runnable_job_ids(int limit) override {
    auto result = single(kRunnableIds, Params().add(std::int64_t{std::max(limit, 0)}));
    std::vector<std::int64_t> ids;
    for (int i = 0; i < PQntuples(result.get()); ++i) ids.push_back(Row(result.get(), i).int64(0));
    return ids;
  }

  std::optional<Timestamp> next_due_time() override {
    auto result = single(kNextDue, Params());
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return Row(result.get(), 0).optional_int64(0);
  }

 private:
  std::optional<std::string> schema_;
  Pool pool_;
  CreateBatcher create_batcher_;
  StatsBatcher stats_batcher_{1024, 1};
};

bool valid_schema_name(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<Store> make_postgres_store(const std::string& url, const StorageConfig& config) {
  // Take our own `schema` parameter out of the query string; libpq rejects unknown parameters.
  std::string libpq_url = url;
  std::optional<std::string> schema;
  auto question = url.find('?');
  if (question != std::string::npos) {
    std::string kept;
    std::string query = url.substr(question + 1);
    std::size_t pos = 0;
    while (pos <= query.size()) {
      auto amp = query.find('&', pos);
      std::string param =
          query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      if (param.rfind("schema=", 0) == 0) {
        schema = param.substr(7);
      } else if (!param.empty()) {
        kept += (kept.empty() ? "" : "&") + param;
      }
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
    libpq_url = url.substr(0, question) + (kept.empty() ? "" : "?" + kept);
  }
  if (schema && !valid_schema_name(*schema)) {
    throw Error("invalid database URL: schema must be letters, digits and underscores");
  }
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(libpq_url.c_str(), &error);
  if (options == nullptr) {
    std::string message = first_line(error != nullptr ? error : "cannot parse");
    PQfreemem(error);
    throw Error("invalid database URL: " + message);
  }
  PQconninfoFree(options);
  return std::make_unique<PostgresStore>(libpq_url, schema, config);
}

}  // namespace transnotes::storage
