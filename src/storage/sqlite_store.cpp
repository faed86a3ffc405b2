// SQLite Store. Concurrency model:
//  - A pool of connections (at most pool_size), each used by one thread at a time.
//  - WAL mode: readers never block the writer or each other.
//  - Writes are serialised inside the process by `write_mutex_` and across processes by
//    BEGIN IMMEDIATE + busy_timeout, so writers queue instead of failing with SQLITE_BUSY.
//  - Timestamps are int64 microseconds UTC taken from the process clock.
#include "storage/sqlite_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "domain/errors.h"
#include "storage/connection_pool.h"
#include "storage/row_mapping.h"

namespace transnotes::storage {

namespace {

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
  Connection(const std::string& path, std::chrono::milliseconds busy_timeout) {
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
      exec("PRAGMA synchronous=NORMAL");
      exec("PRAGMA foreign_keys=ON");
    } catch (...) {
      sqlite3_close_v2(db_);
      throw;
    }
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  // Switching a new database file to WAL needs it to itself for a moment, and SQLite answers
  // SQLITE_BUSY at once (without the busy handler) when another connection is opening it at the
  // same time; so retry for as long as any other lock wait may take. Once the file is in WAL mode
  // (which persists), this returns at the first try.
  void enable_wal(std::chrono::milliseconds busy_timeout) {
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

  // Runs one or more statements without results.
  void exec(const char* sql) {
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

  // The cached prepared statement for `sql` (compiled on first use on this connection).
  Statement prepare(const char* sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) throw_sqlite(db_, rc, "prepare");
      it = statements_.emplace(sql, stmt).first;
    }
    return Statement(db_, it->second);
  }

  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }
  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  std::int64_t changes() const { return sqlite3_changes64(db_); }

 private:
  sqlite3* db_ = nullptr;
  // Keyed by the SQL text's address: every statement is a string literal below.
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

using Pool = ConnectionPool<Connection>;

Pool::Policy pool_policy(const StorageConfig& config) {
  return {.max_size = config.pool_size, .wait = config.pool_wait};
}

// BEGIN ... COMMIT; rolls back when destroyed uncommitted (including on exceptions).
class Transaction {
 public:
  enum class Kind { kRead, kWrite };
  Transaction(Pool::Lease& conn, Kind kind) : conn_(conn) {
    conn_->exec(kind == Kind::kWrite ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (done_) return;
    try {
      conn_->exec("ROLLBACK");
    } catch (const std::exception& e) {
      spdlog::warn("sqlite rollback failed, discarding connection: {}", e.what());
      conn_.mark_broken();
    }
  }
  void commit() {
    conn_->exec("COMMIT");
    done_ = true;
  }

 private:
  Pool::Lease& conn_;
  bool done_ = false;
};

struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE notes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  title TEXT NOT NULL,
  original_text TEXT NOT NULL,
  original_language TEXT NOT NULL,
  translated_text TEXT NULL,
  translated_language TEXT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX notes_list_order ON notes (created_at DESC, id DESC);
CREATE INDEX notes_original_language ON notes (original_language);
CREATE TABLE translation_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  note_id INTEGER NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
  source_language TEXT NOT NULL,
  target_language TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  text TEXT NULL,
  error TEXT NULL,
  engine TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER NULL,
  finished_at INTEGER NULL,
  available_at INTEGER NOT NULL,
  lease_owner TEXT NULL,
  lease_expires_at INTEGER NULL
);
CREATE INDEX translation_jobs_claim ON translation_jobs (status, available_at);
CREATE INDEX translation_jobs_note ON translation_jobs (note_id, target_language, id);
)sql"},
    // Stats counters kept by triggers, so stats() reads O(languages) rows instead of scanning
    // notes. The triggers run inside the writing statement's transaction, so the counters are
    // exactly as consistent as the notes themselves. One shard: SQLite has one writer anyway.
    // The migration runs in one BEGIN IMMEDIATE transaction, so no write slips in between the
    // backfill and the triggers.
    {2, R"sql(
CREATE TABLE note_stats (
  original_language TEXT NOT NULL,
  shard INTEGER NOT NULL,
  notes INTEGER NOT NULL,
  translated INTEGER NOT NULL,
  PRIMARY KEY (original_language, shard)
) WITHOUT ROWID;
INSERT INTO note_stats (original_language, shard, notes, translated)
  SELECT original_language, 0, count(*), count(translated_text) FROM notes
  GROUP BY original_language;
CREATE TRIGGER note_stats_after_insert AFTER INSERT ON notes BEGIN
  INSERT INTO note_stats (original_language, shard, notes, translated)
    VALUES (NEW.original_language, 0, 1, NEW.translated_text IS NOT NULL)
    ON CONFLICT (original_language, shard) DO UPDATE
    SET notes = notes + excluded.notes, translated = translated + excluded.translated;
END;
CREATE TRIGGER note_stats_after_delete AFTER DELETE ON notes BEGIN
  INSERT INTO note_stats (original_language, shard, notes, translated)
    VALUES (OLD.original_language, 0, -1, -(OLD.translated_text IS NOT NULL))
    ON CONFLICT (original_language, shard) DO UPDATE
    SET notes = notes + excluded.notes, translated = translated + excluded.translated;
END;
CREATE TRIGGER note_stats_after_update
  AFTER UPDATE OF original_language, translated_text ON notes
  WHEN OLD.original_language IS NOT NEW.original_language
    OR (OLD.translated_text IS NULL) <> (NEW.translated_text IS NULL)
BEGIN
  INSERT INTO note_stats (original_language, shard, notes, translated)
    VALUES (OLD.original_language, 0, -1, -(OLD.translated_text IS NOT NULL))
    ON CONFLICT (original_language, shard) DO UPDATE
    SET notes = notes + excluded.notes, translated = translated + excluded.translated;
  INSERT INTO note_stats (original_language, shard, notes, translated)
    VALUES (NEW.original_language, 0, 1, NEW.translated_text IS NOT NULL)
    ON CONFLICT (original_language, shard) DO UPDATE
    SET notes = notes + excluded.notes, translated = translated + excluded.translated;
END;
)sql"},
};

#define TN_JOB_COLUMNS                                                                     \
  "id, note_id, source_language, target_language, status, text, error, engine, attempts, " \
  "max_attempts, created_at, started_at, finished_at"
#define TN_NOTE_COLUMNS                                                                 \
  "id, title, original_text, original_language, translated_text, translated_language, " \
  "created_at, updated_at, version"

// A queued job that is due, or a running job whose lease expired with attempts left.
#define TN_RUNNABLE                                 \
  "((status = 'queued' AND available_at <= ?1) OR " \
  " (status = 'running' AND lease_expires_at < ?1 AND attempts < max_attempts))"

constexpr const char* kInsertNote =
    "INSERT INTO notes (title, original_text, original_language, created_at, updated_at, version) "
    "VALUES (?1, ?2, ?3, ?4, ?4, 1) RETURNING " TN_NOTE_COLUMNS;
constexpr const char* kSelectNote = "SELECT " TN_NOTE_COLUMNS " FROM notes WHERE id = ?1";
constexpr const char* kListNotes = "SELECT " TN_NOTE_COLUMNS
                                   " FROM notes ORDER BY created_at DESC, id DESC "
                                   "LIMIT ?1 OFFSET ?2";
// Unset fields are NULL and keep the stored value; updated_at strictly increases per row.
constexpr const char* kUpdateNote =
    "UPDATE notes SET title = COALESCE(?2, title), original_text = COALESCE(?3, original_text), "
    "original_language = COALESCE(?4, original_language), "
    "updated_at = MAX(?5, updated_at + 1), version = version + 1 "
    "WHERE id = ?1 RETURNING " TN_NOTE_COLUMNS;
constexpr const char* kDeleteNote = "DELETE FROM notes WHERE id = ?1";
// Languages whose notes all went away keep a zero row; HAVING hides them. BINARY collation
// orders like Postgres' "C".
constexpr const char* kLanguageStats =
    "SELECT original_language, sum(notes) AS n, sum(translated) FROM note_stats "
    "GROUP BY original_language HAVING sum(notes) > 0 ORDER BY n DESC, original_language ASC";
constexpr const char* kNoteExists = "SELECT 1 FROM notes WHERE id = ?1";
constexpr const char* kInsertJob =
    "INSERT INTO translation_jobs (note_id, source_language, target_language, status, engine, "
    "attempts, max_attempts, created_at, available_at) "
    "VALUES (?1, ?2, ?3, 'queued', ?4, 0, ?5, ?6, ?6) RETURNING " TN_JOB_COLUMNS;
constexpr const char* kSelectJob = "SELECT " TN_JOB_COLUMNS " FROM translation_jobs WHERE id = ?1";
constexpr const char* kLatestJobs =
    "SELECT " TN_JOB_COLUMNS
    " FROM translation_jobs j WHERE note_id = ?1 AND id = (SELECT max(id) FROM translation_jobs "
    "WHERE note_id = j.note_id AND target_language = j.target_language) ORDER BY id DESC";
// A crashed worker's job that used up its attempts is failed instead of re-claimed.
constexpr const char* kFailExhausted =
    "UPDATE translation_jobs SET status = 'failed', finished_at = ?1, lease_owner = NULL, "
    "lease_expires_at = NULL, error = COALESCE(error, 'worker lost the job (lease expired)') "
    "WHERE status = 'running' AND lease_expires_at < ?1 AND attempts >= max_attempts";
constexpr const char* kClaimJob =
    "UPDATE translation_jobs SET status = 'running', attempts = attempts + 1, started_at = ?1, "
    "lease_owner = ?2, lease_expires_at = ?3 "
    "WHERE id = (SELECT id FROM translation_jobs WHERE " TN_RUNNABLE
    " AND (?4 IS NULL OR id = ?4) ORDER BY id LIMIT 1) RETURNING " TN_JOB_COLUMNS;
constexpr const char* kNoteTextForJob =
    "SELECT original_text, original_language FROM notes WHERE id = ?1";
constexpr const char* kRenewLease =
    "UPDATE translation_jobs SET lease_expires_at = ?3 "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
constexpr const char* kCompleteJob =
    "UPDATE translation_jobs SET status = 'succeeded', text = ?3, engine = ?4, error = NULL, "
    "finished_at = ?5, lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2 RETURNING note_id, target_language";
// Only the translation columns: a concurrent edit of title/text must not be overwritten.
constexpr const char* kSetTranslation =
    "UPDATE notes SET translated_text = ?2, translated_language = ?3, "
    "updated_at = MAX(?4, updated_at + 1), version = version + 1 WHERE id = ?1 RETURNING version";
constexpr const char* kRetryJob =
    "UPDATE translation_jobs SET status = 'queued', error = ?3, available_at = ?4, "
    "lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
constexpr const char* kFailJob =
    "UPDATE translation_jobs SET status = 'failed', error = ?3, finished_at = ?4, "
    "lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
constexpr const char* kRunnableIds =
    "SELECT id FROM translation_jobs WHERE " TN_RUNNABLE " ORDER BY id LIMIT ?2";
constexpr const char* kNextDue =
    "SELECT min(t) FROM (SELECT min(available_at) AS t FROM translation_jobs "
    "WHERE status = 'queued' UNION ALL SELECT min(lease_expires_at) FROM translation_jobs "
    "WHERE status = 'running' AND attempts < max_attempts)";

class SqliteStore final : public Store {
 private:
  static std::int64_t lease_micros(std::chrono::milliseconds d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  }
  static std::int64_t changes(Pool::Lease& conn) { return conn->changes(); }

  // Runs `body` in a write transaction (serialised in-process, BEGIN IMMEDIATE across
  // processes). Rolls back on any exception.
  template <class Body>
  auto write(Body&& body) {
    auto conn = pool_.acquire();
    std::lock_guard writer(write_mutex_);
    Transaction tx(conn, Transaction::Kind::kWrite);
    auto result = body(conn);
    tx.commit();
    return result;
  }
  // Runs a single read statement in autocommit mode.
  template <class Body>
  auto read(Body&& body) {
    auto conn = pool_.acquire();
    return body(conn);
  }

  Pool pool_;
  std::mutex write_mutex_;

 public:
  SqliteStore(std::string path, const StorageConfig& config)
      : pool_(
            pool_policy(config),
            [path = std::move(path), busy_timeout = config.busy_timeout] {
              return std::make_unique<Connection>(path, busy_timeout);
            },
            [](const Connection& conn) { return !conn.in_transaction(); }) {}

  void migrate() override {
    write([&](Pool::Lease& conn) {
      conn->exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
          "applied_at INTEGER NOT NULL)");
      for (const Migration& migration : kMigrations) {
        auto exists = conn->prepare("SELECT 1 FROM schema_migrations WHERE version = ?1");
        if (exists.bind(1, std::int64_t{migration.version}).step()) continue;
        spdlog::info("sqlite: applying schema migration {}", migration.version);
        conn->exec(migration.sql);
        conn->prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)")
            .bind(1, std::int64_t{migration.version})
            .bind(2, now_micros())
            .run();
      }
      return 0;
    });
  }

  Note create_note(const NoteFields& fields) override {
    return write([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kInsertNote);
      stmt.bind(1, fields.title.value_or(""))
          .bind(2, fields.original_text.value_or(""))
          .bind(3, fields.original_language.value_or(kDefaultLanguage))
          .bind(4, now_micros());
      if (!stmt.step()) throw Error("database error: insert returned no row");
      return read_note(stmt);
    });
  }

  std::optional<Note> get_note(std::int64_t id) override {
    return read([&](Pool::Lease& conn) -> std::optional<Note> {
      auto stmt = conn->prepare(kSelectNote);
      if (!stmt.bind(1, id).step()) return std::nullopt;
      return read_note(stmt);
    });
  }

  std::vector<Note> list_notes(const ListQuery& query) override {
    return read([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kListNotes);
      stmt.bind(1, std::max<std::int64_t>(query.limit, 0))
          .bind(2, std::max<std::int64_t>(query.offset, 0));
      std::vector<Note> notes;
      while (stmt.step()) notes.push_back(read_note(stmt));
      return notes;
    });
  }

  std::optional<Note> update_note(std::int64_t id, const NoteFields& fields) override {
    return write([&](Pool::Lease& conn) -> std::optional<Note> {
      auto stmt = conn->prepare(kUpdateNote);
      stmt.bind(1, id)
          .bind(2, fields.title)
          .bind(3, fields.original_text)
          .bind(4, fields.original_language)
          .bind(5, now_micros());
      if (!stmt.step()) return std::nullopt;
      return read_note(stmt);
    });
  }

  bool delete_note(std::int64_t id) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kDeleteNote).bind(1, id).run();
      return changes(conn) > 0;
    });
  }

  Stats stats() override {
    // One statement over the trigger-maintained counters: a consistent snapshot on its own.
    // Totals are the sums of the returned rows (a hidden zero-note language has 0 translated).
    return read([&](Pool::Lease& conn) {
      Stats stats;
      auto rows = conn->prepare(kLanguageStats);
      while (rows.step()) {
        stats.total_notes += rows.int64(1);
        stats.total_translations += rows.int64(2);
        stats.language_breakdown.push_back({rows.text(0), rows.int64(1)});
      }
      return stats;
    });
  }

  std::optional<TranslationJob> create_job(std::int64_t note_id, const std::string& source_language,
                                           const std::string& target_language,
                                           const std::string& engine, int max_attempts) override {
    return write([&](Pool::Lease& conn) -> std::optional<TranslationJob> {
      if (!conn->prepare(kNoteExists).bind(1, note_id).step()) return std::nullopt;
      auto stmt = conn->prepare(kInsertJob);
      stmt.bind(1, note_id)
          .bind(2, source_language)
          .bind(3, target_language)
          .bind(4, engine)
          .bind(5, std::int64_t{max_attempts})
          .bind(6, now_micros());
      if (!stmt.step()) throw Error("database error: insert returned no row");
      return read_job(stmt);
    });
  }

  std::optional<TranslationJob> get_job(std::int64_t id) override {
    return read([&](Pool::Lease& conn) -> std::optional<TranslationJob> {
      auto stmt = conn->prepare(kSelectJob);
      if (!stmt.bind(1, id).step()) return std::nullopt;
      return read_job(stmt);
    });
  }

  std::vector<TranslationJob> latest_jobs_for_note(std::int64_t note_id) override {
    return read([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kLatestJobs);
      stmt.bind(1, note_id);
      std::vector<TranslationJob> jobs;
      while (stmt.step()) jobs.push_back(read_job(stmt));
      return jobs;
    });
  }

  std::optional<ClaimedJob> claim_job(const std::string& worker_id, std::chrono::milliseconds lease,
                                      std::optional<std::int64_t> preferred_id) override {
    return write([&](Pool::Lease& conn) -> std::optional<ClaimedJob> {
      const Timestamp now = now_micros();
      conn->prepare(kFailExhausted).bind(1, now).run();
      ClaimedJob claimed;
      {
        auto stmt = conn->prepare(kClaimJob);
        stmt.bind(1, now)
            .bind(2, worker_id)
            .bind(3, now + lease_micros(lease))
            .bind(4, preferred_id);
        if (!stmt.step()) return std::nullopt;
        claimed.job = read_job(stmt);
      }
      auto note = conn->prepare(kNoteTextForJob);
      if (!note.bind(1, claimed.job.note_id).step()) {
        throw Error("database error: claimed a job whose note is missing");
      }
      claimed.note_text = note.text(0);
      claimed.note_language = note.text(1);
      return claimed;
    });
  }

  bool renew_lease(std::int64_t job_id, const std::string& worker_id,
                   std::chrono::milliseconds lease) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kRenewLease)
          .bind(1, job_id)
          .bind(2, worker_id)
          .bind(3, now_micros() + lease_micros(lease))
          .run();
      return changes(conn) > 0;
    });
  }

  CompleteResult complete_job(std::int64_t job_id, const std::string& worker_id,
                              const std::string& text, const std::string& engine) override {
    return write([&](Pool::Lease& conn) {
      CompleteResult result;
      const Timestamp now = now_micros();
      std::int64_t note_id = 0;
      std::string target_language;
      {
        auto job = conn->prepare(kCompleteJob);
        job.bind(1, job_id).bind(2, worker_id).bind(3, text).bind(4, engine).bind(5, now);
        if (!job.step()) return result;
        note_id = job.int64(0);
        target_language = job.text(1);
      }
      result.applied = true;
      auto note = conn->prepare(kSetTranslation);
      note.bind(1, note_id).bind(2, text).bind(3, target_language).bind(4, now);
      if (note.step()) result.note_version = note.int64(0);
      return result;
    });
  }

  bool fail_job(std::int64_t job_id, const std::string& worker_id, const std::string& error,
                std::optional<std::chrono::milliseconds> retry_after) override {
    return write([&](Pool::Lease& conn) {
      const Timestamp now = now_micros();
      if (retry_after) {
        conn->prepare(kRetryJob)
            .bind(1, job_id)
            .bind(2, worker_id)
            .bind(3, error)
            .bind(4, now + lease_micros(*retry_after))
            .run();
      } else {
        conn->prepare(kFailJob)
            .bind(1, job_id)
            .bind(2, worker_id)
            .bind(3, error)
            .bind(4, now)
            .run();
      }
      return changes(conn) > 0;
    });
  }

  std::vector<std::int64_t> runnable_job_ids(int limit) override {
    return read([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kRunnableIds);
      stmt.bind(1, now_micros()).bind(2, std::int64_t{std::max(limit, 0)});
      std::vector<std::int64_t> ids;
      while (stmt.step()) ids.push_back(stmt.int64(0));
      return ids;
    });
  }

  std::optional<Timestamp> next_due_time() override {
    return read([&](Pool::Lease& conn) -> std::optional<Timestamp> {
      auto stmt = conn->prepare(kNextDue);
      if (!stmt.step()) return std::nullopt;
      return stmt.optional_int64(0);
    });
  }
};

}  // namespace

std::unique_ptr<Store> make_sqlite_store(const std::string& path, const StorageConfig& config) {
  std::filesystem::path file(path);
  if (file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) {
      throw Unavailable("database unavailable: cannot create directory " +
                        file.parent_path().string() + ": " + ec.message());
    }
  }
  return std::make_unique<SqliteStore>(path, config);
}

}  // namespace transnotes::storage
