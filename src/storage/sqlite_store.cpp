// The SQLite Store: its queries and the transactions around them, plus the factory. The
// connection (settings, error mapping) is in sqlite_connection.*, the schema in sqlite_schema.*.
// Concurrency model:
//  - A pool of connections (at most pool_size), each used by one thread at a time.
//  - WAL mode: readers never block the writer or each other.
//  - Writes are serialised inside the process by `write_mutex_` and across processes by
//    BEGIN IMMEDIATE + busy_timeout, so writers queue instead of failing with SQLITE_BUSY.
//  - Timestamps are int64 microseconds UTC taken from the process clock.
#include "storage/sqlite_store.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "domain/errors.h"
#include "storage/connection_pool.h"
#include "storage/row_mapping.h"
#include "storage/sqlite_connection.h"
#include "storage/sqlite_schema.h"

namespace transnotes::storage {

namespace sqlite {

namespace {

Pool::Policy pool_policy(const StorageConfig& config) {
  return {.max_size = config.pool_size, .wait = config.pool_wait};
}

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
constexpr const char* kReleaseJob =
    "UPDATE translation_jobs SET status = 'queued', attempts = attempts - 1, available_at = ?3, "
    "lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
constexpr const char* kRunnableIds =
    "SELECT id FROM translation_jobs WHERE " TN_RUNNABLE " ORDER BY id LIMIT ?2";

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
      sqlite::migrate(*conn);
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

  bool release_job(std::int64_t job_id, const std::string& worker_id) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kReleaseJob).bind(1, job_id).bind(2, worker_id).bind(3, now_micros()).run();
      return changes(conn) > 0;
    });
  }
};

}  // namespace

}  // namespace sqlite

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
  return std::make_unique<sqlite::SqliteStore>(path, config);
}

}  // namespace transnotes::storage
