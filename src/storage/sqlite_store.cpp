// The SQLite Store: its queries and the transactions around them, plus the factory. The
// connection (settings, error mapping) is in sqlite_connection.*, the schema in sqlite_schema.*.
// Concurrency model:
//  - A pool of connections (at most pool_size), each used by one thread at a time.
//  - WAL mode: readers never block the writer or each other.
//  - Writes are serialised inside the process by the write batcher (one leader commits the
//    writes queued meanwhile as one transaction: group commit) and across processes by
//    BEGIN IMMEDIATE + busy_timeout, so writers queue instead of failing with SQLITE_BUSY.
//  - Timestamps are int64 microseconds UTC taken from the process clock.
#include "storage/sqlite_store.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "domain/errors.h"
#include "domain/text.h"
#include "storage/batcher.h"
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
  "max_attempts, created_at, started_at, finished_at, owner_id, request_id, cancel_requested"
#define TN_NOTE_COLUMNS                                                                 \
  "id, title, original_text, original_language, translated_text, translated_language, " \
  "created_at, updated_at, version, owner_id"
#define TN_USER_COLUMNS "id, username, email, password_hash, is_active, date_joined, is_staff"
// A job being cancelled no longer counts: a new request for the note makes a new job.
#define TN_ACTIVE_JOB "status IN ('queued', 'running') AND NOT cancel_requested"

// A queued job that is due, or a running job whose lease expired with attempts left and no
// cancellation pending.
#define TN_RUNNABLE                                                                 \
  "((status = 'queued' AND available_at <= ?1) OR "                                 \
  " (status = 'running' AND lease_expires_at < ?1 AND attempts < max_attempts AND " \
  "  NOT cancel_requested))"

constexpr const char* kUserExists = "SELECT 1 FROM users WHERE id = ?1";
constexpr const char* kInsertNote =
    "INSERT INTO notes (owner_id, title, original_text, original_language, created_at, "
    "updated_at, version) VALUES (?5, ?1, ?2, ?3, ?4, ?4, 1) RETURNING " TN_NOTE_COLUMNS;
constexpr const char* kSelectNote =
    "SELECT " TN_NOTE_COLUMNS " FROM notes WHERE id = ?1 AND owner_id = ?2";
constexpr const char* kListNotes = "SELECT " TN_NOTE_COLUMNS
                                   " FROM notes WHERE owner_id = ?3 "
                                   "ORDER BY created_at DESC, id DESC LIMIT ?1 OFFSET ?2";
// The owner's trigger-maintained counter (migration 5); no row yet counts 0.
constexpr const char* kNotesVersion =
    "SELECT coalesce((SELECT writes FROM note_versions WHERE owner_id = ?1), 0)";
// Unset fields are NULL and keep the stored value; updated_at strictly increases per row.
constexpr const char* kUpdateNote =
    "UPDATE notes SET title = COALESCE(?2, title), original_text = COALESCE(?3, original_text), "
    "original_language = COALESCE(?4, original_language), "
    "updated_at = MAX(?5, updated_at + 1), version = version + 1 "
    "WHERE id = ?1 AND owner_id = ?6 RETURNING " TN_NOTE_COLUMNS;
constexpr const char* kDeleteNote = "DELETE FROM notes WHERE id = ?1 AND owner_id = ?2";
// Languages whose notes all went away keep a zero row; HAVING hides them. BINARY collation
// orders like Postgres' "C".
constexpr const char* kLanguageStats =
    "SELECT original_language, sum(notes) AS n, sum(translated) FROM note_stats "
    "WHERE owner_id = ?1 GROUP BY original_language HAVING sum(notes) > 0 "
    "ORDER BY n DESC, original_language ASC";
constexpr const char* kOwnedNoteText =
    "SELECT original_text, original_language FROM notes WHERE id = ?1 AND owner_id = ?2";
constexpr const char* kActiveJobForText =
    "SELECT " TN_JOB_COLUMNS
    " FROM translation_jobs WHERE note_id = ?1 AND target_language = ?2 AND source_digest = ?3 "
    "AND " TN_ACTIVE_JOB " ORDER BY id DESC LIMIT 1";
// Counts no further than the cap: the answer only has to say whether the cap is reached.
constexpr const char* kActiveJobsOfOwner =
    "SELECT count(*) FROM (SELECT 1 FROM translation_jobs WHERE owner_id = ?1 AND " TN_ACTIVE_JOB
    " LIMIT ?2)";
constexpr const char* kInsertJob =
    "INSERT INTO translation_jobs (note_id, owner_id, source_language, target_language, "
    "source_digest, status, engine, attempts, max_attempts, created_at, available_at, "
    "request_id) VALUES (?1, ?7, ?2, ?3, ?8, 'queued', ?4, 0, ?5, ?6, ?6, ?9) "
    "RETURNING " TN_JOB_COLUMNS;
constexpr const char* kSelectJob =
    "SELECT " TN_JOB_COLUMNS " FROM translation_jobs WHERE id = ?1 AND owner_id = ?2";
constexpr const char* kLatestJobs =
    "SELECT " TN_JOB_COLUMNS
    " FROM translation_jobs j WHERE note_id = ?1 AND owner_id = ?2 AND id = (SELECT max(id) "
    "FROM translation_jobs WHERE note_id = j.note_id AND target_language = j.target_language) "
    "ORDER BY id DESC";
// A crashed worker's job is not re-claimed when it used up its attempts (it fails) or was being
// cancelled (it ends cancelled). One statement for both: it runs before every claim.
constexpr const char* kEndAbandoned =
    "UPDATE translation_jobs SET "
    "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END, finished_at = ?1, "
    "lease_owner = NULL, lease_expires_at = NULL, error = CASE WHEN cancel_requested THEN error "
    "ELSE COALESCE(error, 'worker lost the job (lease expired)') END, cancel_requested = 0 "
    "WHERE status = 'running' AND lease_expires_at < ?1 "
    "AND (cancel_requested OR attempts >= max_attempts)";
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
// A result that arrives wins over a cancellation asked for meanwhile: the work is done.
constexpr const char* kCompleteJob =
    "UPDATE translation_jobs SET status = 'succeeded', text = ?3, engine = ?4, error = NULL, "
    "finished_at = ?5, lease_owner = NULL, lease_expires_at = NULL, cancel_requested = 0 "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2 "
    "RETURNING note_id, target_language, owner_id";
// Only the translation columns: a concurrent edit of title/text must not be overwritten. Only
// into a note of the job's owner.
constexpr const char* kSetTranslation =
    "UPDATE notes SET translated_text = ?2, translated_language = ?3, "
    "updated_at = MAX(?4, updated_at + 1), version = version + 1 "
    "WHERE id = ?1 AND owner_id = ?5 RETURNING version";
// A failed attempt, a final failure or a release of a job being cancelled ends it cancelled
// (keeping the attempt's error): running it again is what the administrator asked to stop.
constexpr const char* kRetryJob =
    "UPDATE translation_jobs SET "
    "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, error = ?3, "
    "available_at = ?4, finished_at = CASE WHEN cancel_requested THEN ?5 ELSE finished_at END, "
    "lease_owner = NULL, lease_expires_at = NULL, cancel_requested = 0 "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
constexpr const char* kFailJob =
    "UPDATE translation_jobs SET "
    "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END, error = ?3, "
    "finished_at = ?4, lease_owner = NULL, lease_expires_at = NULL, cancel_requested = 0 "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
constexpr const char* kReleaseJob =
    "UPDATE translation_jobs SET "
    "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, "
    "attempts = attempts - 1, available_at = ?3, "
    "finished_at = CASE WHEN cancel_requested THEN ?3 ELSE finished_at END, "
    "lease_owner = NULL, lease_expires_at = NULL, cancel_requested = 0 "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
constexpr const char* kRunnableJobs =
    "SELECT id, owner_id FROM translation_jobs WHERE " TN_RUNNABLE " ORDER BY id LIMIT ?2";

// Job administration, across owners. The listing has one statement per filter combination, so
// that each is planned on the index that serves it (status, id) / (note_id, ...) / id.
#define TN_LIST_JOBS(filter)                                              \
  "SELECT " TN_JOB_COLUMNS " FROM translation_jobs WHERE id < ?1 " filter \
  " ORDER BY id DESC LIMIT ?2"
constexpr const char* kListJobs = TN_LIST_JOBS("");
constexpr const char* kListJobsByStatus = TN_LIST_JOBS("AND status = ?3");
constexpr const char* kListJobsByNote = TN_LIST_JOBS("AND note_id = ?4");
constexpr const char* kListJobsByStatusAndNote = TN_LIST_JOBS("AND status = ?3 AND note_id = ?4");
constexpr const char* kJobStatus = "SELECT status FROM translation_jobs WHERE id = ?1";
#define TN_REQUEUE                                                                         \
  "UPDATE translation_jobs SET status = 'queued', available_at = ?1, attempts = 0, "       \
  "error = NULL, text = NULL, started_at = NULL, finished_at = NULL, lease_owner = NULL, " \
  "lease_expires_at = NULL, cancel_requested = 0 "
constexpr const char* kRequeueJob =
    TN_REQUEUE "WHERE id = ?2 AND status IN ('failed', 'cancelled') RETURNING " TN_JOB_COLUMNS;
constexpr const char* kRequeueFailedJobs =
    TN_REQUEUE "WHERE status = 'failed' RETURNING id, owner_id";
constexpr const char* kCancelQueuedJob =
    "UPDATE translation_jobs SET status = 'cancelled', finished_at = ?2 "
    "WHERE id = ?1 AND status = 'queued' RETURNING " TN_JOB_COLUMNS;
constexpr const char* kRequestCancel =
    "UPDATE translation_jobs SET cancel_requested = 1 "
    "WHERE id = ?1 AND status = 'running' RETURNING " TN_JOB_COLUMNS;
constexpr const char* kCancelRequested =
    "SELECT 1 FROM translation_jobs WHERE id = ?1 AND status = 'running' AND cancel_requested";
constexpr const char* kFinishCancelled =
    "UPDATE translation_jobs SET status = 'cancelled', finished_at = ?3, lease_owner = NULL, "
    "lease_expires_at = NULL, cancel_requested = 0 "
    "WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
// Only ended jobs have a finished_at; the status test is a safeguard, and its unary + keeps the
// planner on the finished_at index (the status index would visit every ended job).
constexpr const char* kPurgeJobs =
    "DELETE FROM translation_jobs "
    "WHERE finished_at < ?1 AND +status IN ('succeeded', 'failed', 'cancelled')";
constexpr const char* kCountJobsByStatus =
    "SELECT status, count(*) FROM translation_jobs GROUP BY status";
constexpr const char* kOldestQueued =
    "SELECT min(created_at) FROM translation_jobs WHERE status = 'queued'";

// Users: the reserved row 0 is invisible to every statement here. A taken username (compared
// through the unique index on lower(username)) makes the insert return no row.
constexpr const char* kInsertUser =
    "INSERT INTO users (username, email, password_hash, is_active, date_joined) "
    "VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT DO NOTHING RETURNING " TN_USER_COLUMNS;
constexpr const char* kFindUser =
    "SELECT " TN_USER_COLUMNS " FROM users WHERE lower(username) = lower(?1) AND id <> 0";
constexpr const char* kSelectUser =
    "SELECT " TN_USER_COLUMNS " FROM users WHERE id = ?1 AND id <> 0";
constexpr const char* kListUsers =
    "SELECT " TN_USER_COLUMNS " FROM users WHERE id <> 0 ORDER BY id";
constexpr const char* kDeleteUser = "DELETE FROM users WHERE id = ?1 AND id <> 0";
// The cascade of the user's notes left zero rows behind; they would only be clutter.
constexpr const char* kDeleteOwnerStats = "DELETE FROM note_stats WHERE owner_id = ?1";
// The stats trigger on UPDATE OF owner_id (migration 3) moves the counters.
constexpr const char* kMoveNotes = "UPDATE notes SET owner_id = ?2 WHERE owner_id = ?1";
constexpr const char* kMoveJobs =
    "UPDATE translation_jobs SET owner_id = ?2 WHERE owner_id = ?1 "
    "AND note_id IN (SELECT id FROM notes WHERE owner_id = ?2)";
constexpr const char* kSetPasswordHash =
    "UPDATE users SET password_hash = ?2 WHERE id = ?1 AND id <> 0";
constexpr const char* kSetStaff = "UPDATE users SET is_staff = ?2 WHERE id = ?1 AND id <> 0";

// A token of a user that no longer exists needs no row: nothing can use it any more.
constexpr const char* kBlacklistToken =
    "INSERT INTO token_blacklist (jti, user_id, expires_at) SELECT ?1, ?2, ?3 "
    "WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2) ON CONFLICT (jti) DO NOTHING";
// A bounded purge per insert keeps the table near the live tokens without a sweeper.
constexpr const char* kPurgeBlacklist =
    "DELETE FROM token_blacklist WHERE jti IN (SELECT jti FROM token_blacklist "
    "WHERE expires_at < ?1 LIMIT 64)";
constexpr const char* kTokenBlacklisted = "SELECT 1 FROM token_blacklist WHERE jti = ?1";

#define TN_IDEMPOTENCY_COLUMNS "fingerprint, status, body, location, created_at"
constexpr const char* kSelectIdempotencyKey = "SELECT " TN_IDEMPOTENCY_COLUMNS
                                              " FROM idempotency_keys "
                                              "WHERE owner_id = ?1 AND key = ?2";
constexpr const char* kReserveIdempotencyKey =
    "INSERT OR REPLACE INTO idempotency_keys (owner_id, key, fingerprint, status, body, "
    "location, created_at) VALUES (?1, ?2, ?3, 0, '', '', ?4)";
constexpr const char* kFinishIdempotencyKey =
    "UPDATE idempotency_keys SET status = ?3, body = ?4, location = ?5 "
    "WHERE owner_id = ?1 AND key = ?2";
constexpr const char* kReleaseIdempotencyKey =
    "DELETE FROM idempotency_keys WHERE owner_id = ?1 AND key = ?2 AND status = 0";

// Per write of a group commit (see SqliteStore::commit); the name is reused, as savepoints nest
// only within one write.
constexpr const char* kSavepoint = "SAVEPOINT one_write";
constexpr const char* kRollbackToSavepoint = "ROLLBACK TO one_write";
constexpr const char* kReleaseSavepoint = "RELEASE one_write";
constexpr const char* kSynchronous = "PRAGMA synchronous";

class SqliteStore final : public Store {
 private:
  static std::int64_t lease_micros(std::chrono::milliseconds d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  }
  static std::int64_t changes(Pool::Lease& conn) { return conn->changes(); }

  // One write of a batch: runs its statements on the batch's connection and keeps its own
  // result (the caller's frame outlives the batch).
  using WriteOp = std::function<void(Pool::Lease&)>;
  using WriteBatcher = Batcher<WriteOp, bool>;

  // Runs `body` in a write transaction, committed together with the writes that arrived while
  // the previous commit was running (group commit: with synchronous=FULL, one WAL fsync for the
  // whole batch). Each write of a batch runs in its own savepoint, so one that throws leaves no
  // trace and fails alone; the caller returns only once the shared COMMIT has succeeded.
  template <class Body>
  auto write(Body&& body) {
    using Result = decltype(body(std::declval<Pool::Lease&>()));
    std::optional<Result> result;
    const WriteOp op = [&](Pool::Lease& conn) { result.emplace(body(conn)); };
    write_batcher_.submit(op, [this](std::span<WriteBatcher::Slot*> slots) { commit(slots); });
    return std::move(*result);
  }

  // The batch's one transaction (serialised in-process by the batcher's single leader, across
  // processes by BEGIN IMMEDIATE + busy_timeout). Unavailable (busy, I/O, full) fails the batch:
  // SQLite may already have rolled the whole transaction back.
  void commit(std::span<WriteBatcher::Slot*> slots) {
    auto conn = pool_.acquire();
    Transaction tx(conn, Transaction::Kind::kWrite);
    if (slots.size() == 1) {
      (*slots[0]->input)(conn);
      slots[0]->output = true;
    } else {
      for (auto* slot : slots) {
        conn->prepare(kSavepoint).run();
        try {
          (*slot->input)(conn);
        } catch (const Unavailable&) {
          throw;
        } catch (...) {
          slot->error = std::current_exception();
          conn->prepare(kRollbackToSavepoint).run();
        }
        conn->prepare(kReleaseSavepoint).run();
        if (!slot->error) slot->output = true;
      }
    }
    tx.commit();
  }

  // Runs a single read statement in autocommit mode.
  template <class Body>
  auto read(Body&& body) {
    auto conn = pool_.acquire();
    return body(conn);
  }

  Pool pool_;
  WriteBatcher write_batcher_;

 public:
  SqliteStore(std::string path, const StorageConfig& config)
      : pool_(
            pool_policy(config),
            [path = std::move(path), busy_timeout = config.busy_timeout,
             sync = config.sqlite_sync] {
              return std::make_unique<Connection>(path, busy_timeout, sync);
            },
            [](const Connection& conn) { return !conn.in_transaction(); }),
        // One leader: SQLite has one writer at a time anyway. A lone write leads at once, so an
        // idle store adds no latency; under load the next batch gathers during this commit.
        write_batcher_(static_cast<std::size_t>(std::clamp(config.write_batch, 1, 64)), 1) {}

  // Tests: PRAGMA synchronous as a pooled connection reads it back (2 = FULL, 1 = NORMAL).
  std::int64_t synchronous_mode() {
    auto conn = pool_.acquire();
    return conn->pragma_int(kSynchronous);
  }

  void migrate() override {
    write([&](Pool::Lease& conn) {
      sqlite::migrate(*conn);
      return 0;
    });
  }

  void migrate_to(int version) {
    write([&](Pool::Lease& conn) {
      sqlite::migrate(*conn, version);
      return 0;
    });
  }

  Note create_note(UserId owner, const NoteFields& fields) override {
    return write([&](Pool::Lease& conn) {
      // In the write transaction, so the user cannot go away between the check and the insert.
      if (!conn->prepare(kUserExists).bind(1, owner).step()) throw UnknownUser();
      auto stmt = conn->prepare(kInsertNote);
      stmt.bind(1, fields.title.value_or(""))
          .bind(2, fields.original_text.value_or(""))
          .bind(3, fields.original_language.value_or(kDefaultLanguage))
          .bind(4, now_micros())
          .bind(5, owner);
      if (!stmt.step()) throw Error("database error: insert returned no row");
      return read_note(stmt);
    });
  }

  std::optional<Note> get_note(UserId owner, std::int64_t id) override {
    return read([&](Pool::Lease& conn) -> std::optional<Note> {
      auto stmt = conn->prepare(kSelectNote);
      if (!stmt.bind(1, id).bind(2, owner).step()) return std::nullopt;
      return read_note(stmt);
    });
  }

  std::vector<Note> list_notes(UserId owner, const ListQuery& query) override {
    return read([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kListNotes);
      stmt.bind(1, std::max<std::int64_t>(query.limit, 0))
          .bind(2, std::max<std::int64_t>(query.offset, 0))
          .bind(3, owner);
      std::vector<Note> notes;
      while (stmt.step()) notes.push_back(read_note(stmt));
      return notes;
    });
  }

  std::optional<std::int64_t> notes_version(UserId owner) override {
    return read([&](Pool::Lease& conn) -> std::optional<std::int64_t> {
      auto stmt = conn->prepare(kNotesVersion);
      stmt.bind(1, owner).step();
      return stmt.int64(0);
    });
  }

  std::optional<Note> update_note(UserId owner, std::int64_t id,
                                  const NoteFields& fields) override {
    return write([&](Pool::Lease& conn) -> std::optional<Note> {
      auto stmt = conn->prepare(kUpdateNote);
      stmt.bind(1, id)
          .bind(2, fields.title)
          .bind(3, fields.original_text)
          .bind(4, fields.original_language)
          .bind(5, now_micros())
          .bind(6, owner);
      if (!stmt.step()) return std::nullopt;
      return read_note(stmt);
    });
  }

  bool delete_note(UserId owner, std::int64_t id) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kDeleteNote).bind(1, id).bind(2, owner).run();
      return changes(conn) > 0;
    });
  }

  Stats stats(UserId owner) override {
    // One statement over the trigger-maintained counters: a consistent snapshot on its own.
    // Totals are the sums of the returned rows (a hidden zero-note language has 0 translated).
    return read([&](Pool::Lease& conn) {
      Stats stats;
      auto rows = conn->prepare(kLanguageStats);
      rows.bind(1, owner);
      while (rows.step()) {
        stats.total_notes += rows.int64(1);
        stats.total_translations += rows.int64(2);
        stats.language_breakdown.push_back({rows.text(0), rows.int64(1)});
      }
      return stats;
    });
  }

  JobRequestResult request_job(const JobRequest& request) override {
    // The write transaction (BEGIN IMMEDIATE) holds the only write lock: no other request can
    // add a job between the checks and the insert.
    return write([&](Pool::Lease& conn) {
      JobRequestResult result;
      std::string digest;
      {
        auto note = conn->prepare(kOwnedNoteText);
        if (!note.bind(1, request.note_id).bind(2, request.owner).step()) {
          result.outcome = JobRequestResult::Outcome::kNoteNotFound;
          return result;
        }
        digest = source_digest(note.text(0), note.text(1));
      }
      {
        auto existing = conn->prepare(kActiveJobForText);
        if (existing.bind(1, request.note_id)
                .bind(2, request.target_language)
                .bind(3, digest)
                .step()) {
          result.outcome = JobRequestResult::Outcome::kExisting;
          result.job = read_job(existing);
          return result;
        }
      }
      if (request.max_active_per_owner > 0) {
        auto active = conn->prepare(kActiveJobsOfOwner);
        active.bind(1, request.owner).bind(2, std::int64_t{request.max_active_per_owner}).step();
        if (active.int64(0) >= request.max_active_per_owner) {
          result.outcome = JobRequestResult::Outcome::kOwnerQueueFull;
          return result;
        }
      }
      auto stmt = conn->prepare(kInsertJob);
      stmt.bind(1, request.note_id)
          .bind(2, request.source_language)
          .bind(3, request.target_language)
          .bind(4, request.engine)
          .bind(5, std::int64_t{request.max_attempts})
          .bind(6, now_micros())
          .bind(7, request.owner)
          .bind(8, digest)
          .bind(9, request.request_id);
      if (!stmt.step()) throw Error("database error: insert returned no row");
      result.outcome = JobRequestResult::Outcome::kCreated;
      result.job = read_job(stmt);
      return result;
    });
  }

  std::optional<TranslationJob> get_job(UserId owner, std::int64_t id) override {
    return read([&](Pool::Lease& conn) -> std::optional<TranslationJob> {
      auto stmt = conn->prepare(kSelectJob);
      if (!stmt.bind(1, id).bind(2, owner).step()) return std::nullopt;
      return read_job(stmt);
    });
  }

  std::vector<TranslationJob> latest_jobs_for_note(UserId owner, std::int64_t note_id) override {
    return read([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kLatestJobs);
      stmt.bind(1, note_id).bind(2, owner);
      std::vector<TranslationJob> jobs;
      while (stmt.step()) jobs.push_back(read_job(stmt));
      return jobs;
    });
  }

  std::optional<ClaimedJob> claim_job(const std::string& worker_id, std::chrono::milliseconds lease,
                                      std::optional<std::int64_t> preferred_id) override {
    return write([&](Pool::Lease& conn) -> std::optional<ClaimedJob> {
      const Timestamp now = now_micros();
      conn->prepare(kEndAbandoned).bind(1, now).run();
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
      UserId owner = kOpenModeOwner;
      std::string target_language;
      {
        auto job = conn->prepare(kCompleteJob);
        job.bind(1, job_id).bind(2, worker_id).bind(3, text).bind(4, engine).bind(5, now);
        if (!job.step()) return result;
        note_id = job.int64(0);
        target_language = job.text(1);
        owner = job.int64(2);
      }
      result.applied = true;
      auto note = conn->prepare(kSetTranslation);
      note.bind(1, note_id).bind(2, text).bind(3, target_language).bind(4, now).bind(5, owner);
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
            .bind(5, now)
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

  std::vector<JobNotice> runnable_jobs(int limit) override {
    return read([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kRunnableJobs);
      stmt.bind(1, now_micros()).bind(2, std::int64_t{std::max(limit, 0)});
      std::vector<JobNotice> jobs;
      while (stmt.step()) jobs.push_back({stmt.int64(0), stmt.int64(1)});
      return jobs;
    });
  }

  bool release_job(std::int64_t job_id, const std::string& worker_id) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kReleaseJob).bind(1, job_id).bind(2, worker_id).bind(3, now_micros()).run();
      return changes(conn) > 0;
    });
  }

  std::vector<TranslationJob> list_jobs(const JobFilter& filter) override {
    return read([&](Pool::Lease& conn) {
      const char* sql = filter.status
                            ? (filter.note_id ? kListJobsByStatusAndNote : kListJobsByStatus)
                            : (filter.note_id ? kListJobsByNote : kListJobs);
      auto stmt = conn->prepare(sql);
      stmt.bind(1, filter.before_id > 0 ? filter.before_id : INT64_MAX)
          .bind(2, std::max<std::int64_t>(filter.limit, 0));
      if (filter.status) stmt.bind(3, std::string(to_string(*filter.status)));
      if (filter.note_id) stmt.bind(4, *filter.note_id);
      std::vector<TranslationJob> jobs;
      while (stmt.step()) jobs.push_back(read_job(stmt));
      return jobs;
    });
  }

  std::optional<TranslationJob> retry_job(std::int64_t job_id) override {
    return write([&](Pool::Lease& conn) -> std::optional<TranslationJob> {
      {
        auto stmt = conn->prepare(kRequeueJob);
        if (stmt.bind(1, now_micros()).bind(2, job_id).step()) return read_job(stmt);
      }
      auto status = conn->prepare(kJobStatus);
      if (!status.bind(1, job_id).step()) return std::nullopt;
      throw Conflict(retry_refused_message(status.text(0)));
    });
  }

  std::vector<JobNotice> retry_failed_jobs() override {
    return write([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kRequeueFailedJobs);
      stmt.bind(1, now_micros());
      std::vector<JobNotice> notices;
      while (stmt.step()) notices.push_back({stmt.int64(0), stmt.int64(1)});
      return notices;
    });
  }

  std::optional<TranslationJob> cancel_job(std::int64_t job_id) override {
    // In the write transaction no claim can move the job between the two updates.
    return write([&](Pool::Lease& conn) -> std::optional<TranslationJob> {
      {
        auto queued = conn->prepare(kCancelQueuedJob);
        if (queued.bind(1, job_id).bind(2, now_micros()).step()) return read_job(queued);
      }
      {
        auto running = conn->prepare(kRequestCancel);
        if (running.bind(1, job_id).step()) return read_job(running);
      }
      auto status = conn->prepare(kJobStatus);
      if (!status.bind(1, job_id).step()) return std::nullopt;
      throw Conflict(cancel_refused_message(status.text(0)));
    });
  }

  bool cancel_requested(std::int64_t job_id) override {
    return read(
        [&](Pool::Lease& conn) { return conn->prepare(kCancelRequested).bind(1, job_id).step(); });
  }

  bool finish_cancelled(std::int64_t job_id, const std::string& worker_id) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kFinishCancelled)
          .bind(1, job_id)
          .bind(2, worker_id)
          .bind(3, now_micros())
          .run();
      return changes(conn) > 0;
    });
  }

  std::int64_t purge_jobs(Timestamp finished_before) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kPurgeJobs).bind(1, finished_before).run();
      return changes(conn);
    });
  }

  JobSummary job_summary() override {
    // Both reads in one read transaction: one snapshot of the queue.
    auto conn = pool_.acquire();
    Transaction tx(conn, Transaction::Kind::kRead);
    JobSummary summary = empty_job_summary();
    {
      auto counts = conn->prepare(kCountJobsByStatus);
      while (counts.step()) {
        if (auto status = job_status_from_string(counts.text(0))) {
          summary.by_status[*status] = counts.int64(1);
        }
      }
    }
    {
      auto oldest = conn->prepare(kOldestQueued);
      if (oldest.step()) summary.oldest_queued_created_at = oldest.optional_int64(0);
    }
    tx.commit();
    return summary;
  }

  PoolStats pool_stats() override {
    const auto pool = pool_.stats();
    return {.size = pool.open,
            .in_use = pool.leased,
            .waiting = pool.waiting + static_cast<int>(write_batcher_.queued()),
            .capacity = pool.max_size};
  }

  bool set_staff(UserId id, bool is_staff) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kSetStaff).bind(1, id).bind(2, std::int64_t{is_staff ? 1 : 0}).run();
      return changes(conn) > 0;
    });
  }

  std::optional<User> create_user(const std::string& username, const std::string& email,
                                  const std::string& password_hash) override {
    return write([&](Pool::Lease& conn) -> std::optional<User> {
      auto stmt = conn->prepare(kInsertUser);
      stmt.bind(1, username).bind(2, email).bind(3, password_hash).bind(4, now_micros());
      if (!stmt.step()) return std::nullopt;
      return read_user(stmt);
    });
  }

  std::optional<User> find_user(const std::string& username) override {
    return read([&](Pool::Lease& conn) -> std::optional<User> {
      auto stmt = conn->prepare(kFindUser);
      if (!stmt.bind(1, username).step()) return std::nullopt;
      return read_user(stmt);
    });
  }

  std::optional<User> get_user(UserId id) override {
    return read([&](Pool::Lease& conn) -> std::optional<User> {
      auto stmt = conn->prepare(kSelectUser);
      if (!stmt.bind(1, id).step()) return std::nullopt;
      return read_user(stmt);
    });
  }

  std::vector<User> list_users() override {
    return read([&](Pool::Lease& conn) {
      auto stmt = conn->prepare(kListUsers);
      std::vector<User> users;
      while (stmt.step()) users.push_back(read_user(stmt));
      return users;
    });
  }

  bool delete_user(UserId id) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kDeleteUser).bind(1, id).run();
      if (changes(conn) == 0) return false;
      conn->prepare(kDeleteOwnerStats).bind(1, id).run();
      return true;
    });
  }

  std::int64_t reassign_notes(UserId from, UserId to) override {
    // One write transaction: no other write (a create for `from` included) lands in between.
    return write([&](Pool::Lease& conn) -> std::int64_t {
      if (!conn->prepare(kUserExists).bind(1, to).step()) throw UnknownUser();
      if (from == to) return 0;
      conn->prepare(kMoveNotes).bind(1, from).bind(2, to).run();
      const std::int64_t moved = changes(conn);
      conn->prepare(kMoveJobs).bind(1, from).bind(2, to).run();
      return moved;
    });
  }

  bool set_password_hash(UserId id, const std::string& password_hash) override {
    return write([&](Pool::Lease& conn) {
      conn->prepare(kSetPasswordHash).bind(1, id).bind(2, password_hash).run();
      return changes(conn) > 0;
    });
  }

  void blacklist_token(const std::string& jti, UserId user, Timestamp expires_at) override {
    write([&](Pool::Lease& conn) {
      conn->prepare(kPurgeBlacklist).bind(1, now_micros()).run();
      conn->prepare(kBlacklistToken).bind(1, jti).bind(2, user).bind(3, expires_at).run();
      return 0;
    });
  }

  bool is_token_blacklisted(const std::string& jti) override {
    return read(
        [&](Pool::Lease& conn) { return conn->prepare(kTokenBlacklisted).bind(1, jti).step(); });
  }

  std::optional<IdempotentResponse> reserve_idempotency_key(UserId owner, const std::string& key,
                                                            const std::string& fingerprint,
                                                            Timestamp expire_before) override {
    return write([&](Pool::Lease& conn) -> std::optional<IdempotentResponse> {
      if (!conn->prepare(kUserExists).bind(1, owner).step()) throw UnknownUser();
      {
        auto existing = conn->prepare(kSelectIdempotencyKey);
        if (existing.bind(1, owner).bind(2, key).step()) {
          IdempotentResponse response = read_idempotent_response(existing);
          if (response.created_at >= expire_before) return response;
        }
      }
      conn->prepare(kReserveIdempotencyKey)
          .bind(1, owner)
          .bind(2, key)
          .bind(3, fingerprint)
          .bind(4, now_micros())
          .run();
      return std::nullopt;
    });
  }

  void finish_idempotency_key(UserId owner, const std::string& key, int status,
                              const std::string& body, const std::string& location) override {
    write([&](Pool::Lease& conn) {
      conn->prepare(kFinishIdempotencyKey)
          .bind(1, owner)
          .bind(2, key)
          .bind(3, std::int64_t{status})
          .bind(4, body)
          .bind(5, location)
          .run();
      return 0;
    });
  }

  void release_idempotency_key(UserId owner, const std::string& key) override {
    write([&](Pool::Lease& conn) {
      conn->prepare(kReleaseIdempotencyKey).bind(1, owner).bind(2, key).run();
      return 0;
    });
  }
};

}  // namespace

}  // namespace sqlite

namespace {

void create_parent_directories(const std::string& path) {
  std::filesystem::path file(path);
  if (file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) {
      throw Unavailable("database unavailable: cannot create directory " +
                        file.parent_path().string() + ": " + ec.message());
    }
  }
}

}  // namespace

std::unique_ptr<Store> make_sqlite_store(const std::string& path, const StorageConfig& config) {
  create_parent_directories(path);
  return std::make_unique<sqlite::SqliteStore>(path, config);
}

std::int64_t sqlite_synchronous_mode_for_tests(Store& store) {
  auto* sqlite_store = dynamic_cast<sqlite::SqliteStore*>(&store);
  if (sqlite_store == nullptr) throw Error("not a SQLite store");
  return sqlite_store->synchronous_mode();
}

void migrate_sqlite_to_version(const std::string& path, const StorageConfig& config, int version) {
  create_parent_directories(path);
  sqlite::SqliteStore(path, config).migrate_to(version);
}

}  // namespace transnotes::storage
