// The PostgreSQL Store: its queries (named statements) and the transactions around them, plus
// the factory that reads our URL parameters. The connection (settings, error mapping) is in
// postgres_connection.*, the schema in postgres_schema.*. Concurrency model:
//  - A pool of at most pool_size connections; each is used by one thread at a time.
//  - Statements are prepared once per connection (PQprepare) from the named constants below.
//  - Claims use `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same job.
//  - Row locks are always taken note first, then job (as ON DELETE CASCADE does), so
//    complete_job and delete_note cannot deadlock; deadlock/serialization errors are retried.
//  - A connection that reports a connection-level failure is discarded, never reused; the next
//    call opens a fresh one. Timestamps come from the database clock (clock_timestamp()).
#include "storage/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "domain/errors.h"
#include "domain/text.h"
#include "storage/batcher.h"
#include "storage/connection_pool.h"
#include "storage/postgres_connection.h"
#include "storage/postgres_schema.h"
#include "storage/row_mapping.h"

namespace transnotes::storage {

namespace postgres {

namespace {

// timestamptz <-> int64 microseconds since the epoch.
#define TN_MICROS(col) "(extract(epoch FROM " col ") * 1000000)::int8"
#define TN_FROM_MICROS(param) "(timestamptz 'epoch' + " param "::int8 * interval '1 microsecond')"
#define TN_NOTE_COLUMNS                                                                            \
  "id, title, original_text, original_language, translated_text, translated_language, " TN_MICROS( \
      "created_at") ", " TN_MICROS("updated_at") ", version, owner_id"
#define TN_JOB_COLUMNS                                                                     \
  "id, note_id, source_language, target_language, status, text, error, engine, attempts, " \
  "max_attempts, " TN_MICROS("created_at") ", " TN_MICROS("started_at") ", " TN_MICROS(    \
      "finished_at") ", owner_id, request_id, cancel_requested::int"
#define TN_USER_COLUMNS \
  "id, username, email, password_hash, is_active::int, " TN_MICROS("date_joined") ", " \
                                                                                  "is_staff::int"
// A job being cancelled no longer counts: a new request for the note makes a new job.
#define TN_ACTIVE_JOB "status IN ('queued', 'running') AND NOT cancel_requested"
// A queued job that is due, or a running job whose lease expired with attempts left and no
// cancellation pending.
#define TN_RUNNABLE                                                                            \
  "((status = 'queued' AND available_at <= clock_timestamp()) OR "                             \
  " (status = 'running' AND lease_expires_at < clock_timestamp() AND attempts < max_attempts " \
  "  AND NOT cancel_requested))"
#define TN_MS(param) "(" param "::int8 * interval '1 millisecond')"

constexpr StatementDef kInsertNote{
    "insert_note",
    "INSERT INTO notes (owner_id, title, original_text, original_language, created_at, "
    "updated_at, version) SELECT $4, $1, $2, $3, t, t, 1 FROM (SELECT clock_timestamp() AS t) now "
    "RETURNING " TN_NOTE_COLUMNS};
// Concurrent creates are inserted together (group commit): one statement, one transaction,
// one WAL flush for up to kMaxCreateBatch notes. Statements for each batch size are built once.
constexpr std::size_t kMaxCreateBatch = 64;
constexpr std::size_t kInsertParams = 4;  // title, text, language, owner

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
          "INSERT INTO notes (owner_id, title, original_text, original_language, created_at, "
          "updated_at, version) SELECT owner, title, body, lang, t, t, 1 FROM (SELECT v.owner, "
          "v.title, v.body, v.lang, clock_timestamp() AS t FROM (VALUES ";
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t p = i * kInsertParams;
        sql += (i ? ", ($" : "($") + std::to_string(p + 1) + "::text, $" + std::to_string(p + 2) +
               "::text, $" + std::to_string(p + 3) + "::text, $" + std::to_string(p + 4) +
               "::int8)";
      }
      sql += ") AS v (title, body, lang, owner)) AS input RETURNING " TN_NOTE_COLUMNS;
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

constexpr StatementDef kSelectNote{
    "select_note", "SELECT " TN_NOTE_COLUMNS " FROM notes WHERE id = $1 AND owner_id = $2"};
constexpr StatementDef kListNotes{"list_notes", "SELECT " TN_NOTE_COLUMNS
                                                " FROM notes WHERE owner_id = $3 "
                                                "ORDER BY created_at DESC, id DESC "
                                                "LIMIT $1 OFFSET $2"};
// The sum of the owner's trigger-maintained counters (migration 5): at most 16 rows.
constexpr StatementDef kNotesVersion{
    "notes_version",
    "SELECT coalesce(sum(writes), 0)::int8 FROM note_versions WHERE owner_id = $1"};
// Unset fields are NULL and keep the stored value; updated_at strictly increases per row.
constexpr StatementDef kUpdateNote{
    "update_note",
    "UPDATE notes SET title = COALESCE($2, title), original_text = COALESCE($3, original_text), "
    "original_language = COALESCE($4, original_language), "
    "updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond'), "
    "version = version + 1 WHERE id = $1 AND owner_id = $5 RETURNING " TN_NOTE_COLUMNS};
constexpr StatementDef kDeleteNote{"delete_note",
                                   "DELETE FROM notes WHERE id = $1 AND owner_id = $2"};
// Sums the trigger-maintained shards of every asked-for owner in one query; languages whose
// notes all went away are hidden.
constexpr StatementDef kLanguageStats{
    "language_stats",
    "SELECT owner_id, original_language, sum(notes)::int8 AS n, sum(translated)::int8 "
    "FROM note_stats WHERE owner_id = ANY($1::int8[]) "
    "GROUP BY owner_id, original_language HAVING sum(notes) > 0 "
    "ORDER BY owner_id, n DESC, original_language COLLATE \"C\" ASC"};
// Locks the note so a concurrent delete waits (and keeps the note-then-job lock order).
constexpr StatementDef kLockNote{"lock_note", "SELECT 1 FROM notes WHERE id = $1 FOR UPDATE"};
constexpr StatementDef kLockOwnedNote{
    "lock_owned_note",
    "SELECT original_text, original_language FROM notes WHERE id = $1 AND owner_id = $2 "
    "FOR UPDATE"};
// Serialises the job requests of one owner (only when a cap is enforced), so that two requests
// for different notes cannot both see room for one more job. Taken before any row lock.
constexpr StatementDef kLockOwnerJobs{
    "lock_owner_jobs",
    "SELECT pg_advisory_xact_lock(hashtextextended('transnotes.request_job', $1::int8))"};
constexpr StatementDef kActiveJobForText{
    "active_job_for_text",
    "SELECT " TN_JOB_COLUMNS
    " FROM translation_jobs WHERE note_id = $1 AND target_language = $2 AND source_digest = $3 "
    "AND " TN_ACTIVE_JOB " ORDER BY id DESC LIMIT 1"};
// Counts no further than the cap: the answer only has to say whether the cap is reached.
constexpr StatementDef kActiveJobsOfOwner{
    "active_jobs_of_owner",
    "SELECT count(*) FROM (SELECT 1 FROM translation_jobs WHERE owner_id = $1 AND " TN_ACTIVE_JOB
    " LIMIT $2) active"};
constexpr StatementDef kInsertJob{
    "insert_job",
    "INSERT INTO translation_jobs (note_id, owner_id, source_language, target_language, "
    "source_digest, status, engine, attempts, max_attempts, created_at, available_at, "
    "request_id) SELECT $1, $6, $2, $3, $7, 'queued', $4, 0, $5, t, t, $8 "
    "FROM (SELECT clock_timestamp() AS t) now RETURNING " TN_JOB_COLUMNS};
constexpr StatementDef kSelectJob{"select_job",
                                  "SELECT " TN_JOB_COLUMNS
                                  " FROM translation_jobs WHERE id = $1 AND owner_id = $2"};
constexpr StatementDef kLatestJobs{
    "latest_jobs",
    "SELECT " TN_JOB_COLUMNS
    " FROM translation_jobs j WHERE note_id = $1 AND owner_id = $2 AND id = (SELECT max(id) "
    "FROM translation_jobs WHERE note_id = j.note_id AND target_language = j.target_language) "
    "ORDER BY id DESC"};
// A crashed worker's job is not re-claimed when it used up its attempts (it fails) or was being
// cancelled (it ends cancelled). One statement for both: it runs before every claim.
constexpr StatementDef kEndAbandoned{
    "end_abandoned",
    "UPDATE translation_jobs SET "
    "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END, "
    "finished_at = clock_timestamp(), lease_owner = NULL, lease_expires_at = NULL, "
    "error = CASE WHEN cancel_requested THEN error "
    "ELSE COALESCE(error, 'worker lost the job (lease expired)') END, cancel_requested = false "
    "WHERE status = 'running' AND lease_expires_at < clock_timestamp() "
    "AND (cancel_requested OR attempts >= max_attempts)"};
constexpr StatementDef kClaimJob{
    "claim_job",
    "UPDATE translation_jobs j SET status = 'running', attempts = j.attempts + 1, "
    "started_at = clock_timestamp(), lease_owner = $1, "
    "lease_expires_at = clock_timestamp() + " TN_MS("$2") " FROM notes n "
    "WHERE n.id = j.note_id AND j.id = (SELECT id FROM translation_jobs WHERE " TN_RUNNABLE
    " AND ($3::int8 IS NULL OR id = $3::int8) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "RETURNING j.id, j.note_id, j.source_language, j.target_language, j.status, j.text, j.error, "
    "j.engine, j.attempts, j.max_attempts, " TN_MICROS("j.created_at") ", " TN_MICROS(
        "j.started_at") ", " TN_MICROS("j.finished_at") ", j.owner_id, j.request_id, "
                        "j.cancel_requested::int, n.original_text, n.original_language"};
constexpr StatementDef kRenewLease{
    "renew_lease", "UPDATE translation_jobs SET lease_expires_at = clock_timestamp() + " TN_MS(
                       "$3") " WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kJobNote{"job_note", "SELECT note_id FROM translation_jobs WHERE id = $1"};
// A result that arrives wins over a cancellation asked for meanwhile: the work is done.
constexpr StatementDef kCompleteJob{
    "complete_job",
    "UPDATE translation_jobs SET status = 'succeeded', text = $3, engine = $4, error = NULL, "
    "finished_at = clock_timestamp(), lease_owner = NULL, lease_expires_at = NULL, "
    "cancel_requested = false "
    "WHERE id = $1 AND status = 'running' AND lease_owner = $2 RETURNING note_id, "
    "target_language, owner_id"};
// Only the translation columns: a concurrent edit of title/text must not be overwritten. Only
// into a note of the job's owner.
constexpr StatementDef kSetTranslation{
    "set_translation",
    "UPDATE notes SET translated_text = $2, translated_language = $3, "
    "updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond'), "
    "version = version + 1 WHERE id = $1 AND owner_id = $4 RETURNING version"};
// A failed attempt, a final failure or a release of a job being cancelled ends it cancelled
// (keeping the attempt's error): running it again is what the administrator asked to stop.
constexpr StatementDef kRetryJob{
    "retry_job",
    "UPDATE translation_jobs SET "
    "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, error = $3, "
    "available_at = clock_timestamp() + " TN_MS("$4") ", "
    "finished_at = CASE WHEN cancel_requested THEN clock_timestamp() ELSE finished_at END, "
    "lease_owner = NULL, lease_expires_at = NULL, cancel_requested = false "
    "WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kFailJob{
    "fail_job",
    "UPDATE translation_jobs SET "
    "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END, error = $3, "
    "finished_at = clock_timestamp(), lease_owner = NULL, lease_expires_at = NULL, "
    "cancel_requested = false WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kReleaseJob{
    "release_job",
    "UPDATE translation_jobs SET "
    "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, "
    "attempts = attempts - 1, available_at = clock_timestamp(), "
    "finished_at = CASE WHEN cancel_requested THEN clock_timestamp() ELSE finished_at END, "
    "lease_owner = NULL, lease_expires_at = NULL, cancel_requested = false "
    "WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kRunnableJobs{"runnable_jobs",
                                     "SELECT id, owner_id FROM translation_jobs WHERE " TN_RUNNABLE
                                     " ORDER BY id LIMIT $1"};

// Job administration, across owners. The listing has one statement per filter combination, so
// that each is planned on the index that serves it (status, id) / (note_id, ...) / id.
#define TN_LIST_JOBS(filter)                                              \
  "SELECT " TN_JOB_COLUMNS " FROM translation_jobs WHERE id < $1 " filter \
  " ORDER BY id DESC LIMIT $2"
constexpr StatementDef kListJobs{"list_jobs", TN_LIST_JOBS("")};
constexpr StatementDef kListJobsByStatus{"list_jobs_by_status", TN_LIST_JOBS("AND status = $3")};
constexpr StatementDef kListJobsByNote{"list_jobs_by_note", TN_LIST_JOBS("AND note_id = $3")};
constexpr StatementDef kListJobsByStatusAndNote{"list_jobs_by_status_and_note",
                                                TN_LIST_JOBS("AND status = $3 AND note_id = $4")};
constexpr StatementDef kJobStatus{"job_status",
                                  "SELECT status FROM translation_jobs WHERE id = $1"};
#define TN_REQUEUE                                                                    \
  "UPDATE translation_jobs SET status = 'queued', available_at = clock_timestamp(), " \
  "attempts = 0, error = NULL, text = NULL, started_at = NULL, finished_at = NULL, "  \
  "lease_owner = NULL, lease_expires_at = NULL, cancel_requested = false "
constexpr StatementDef kRequeueJob{
    "requeue_job",
    TN_REQUEUE "WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING " TN_JOB_COLUMNS};
constexpr StatementDef kRequeueFailedJobs{
    "requeue_failed_jobs", TN_REQUEUE "WHERE status = 'failed' RETURNING id, owner_id"};
// One statement for both cases, so that a claim committed while it waited for the row lock is
// seen (the row is re-read): a job claimed meanwhile gets cancel_requested instead.
constexpr StatementDef kCancelJob{
    "cancel_job",
    "UPDATE translation_jobs SET "
    "status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, "
    "finished_at = CASE WHEN status = 'queued' THEN clock_timestamp() ELSE finished_at END, "
    "cancel_requested = (status = 'running') "
    "WHERE id = $1 AND status IN ('queued', 'running') RETURNING " TN_JOB_COLUMNS};
constexpr StatementDef kCancelRequested{
    "cancel_requested",
    "SELECT 1 FROM translation_jobs WHERE id = $1 AND status = 'running' AND cancel_requested"};
constexpr StatementDef kFinishCancelled{
    "finish_cancelled",
    "UPDATE translation_jobs SET status = 'cancelled', finished_at = clock_timestamp(), "
    "lease_owner = NULL, lease_expires_at = NULL, cancel_requested = false "
    "WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kPurgeJobs{
    "purge_jobs",
    "DELETE FROM translation_jobs WHERE finished_at < " TN_FROM_MICROS("$1") " "
    "AND status IN ('succeeded', 'failed', 'cancelled')"};
// One statement, one snapshot of the queue.
constexpr StatementDef kJobSummary{
    "job_summary",
    "SELECT status, count(*)::int8, NULL::int8 FROM translation_jobs GROUP BY status "
    "UNION ALL SELECT NULL, NULL, " TN_MICROS("min(created_at)") " FROM translation_jobs "
    "WHERE status = 'queued'"};

// Users: the reserved row 0 is invisible to every statement here. ON CONFLICT DO NOTHING covers
// the unique index on lower(username), also against a concurrent insert of the same name.
constexpr StatementDef kInsertUser{
    "insert_user",
    "INSERT INTO users (username, email, password_hash, is_active, date_joined) "
    "VALUES ($1, $2, $3, true, clock_timestamp()) ON CONFLICT DO NOTHING "
    "RETURNING " TN_USER_COLUMNS};
constexpr StatementDef kFindUser{"find_user",
                                 "SELECT " TN_USER_COLUMNS
                                 " FROM users WHERE lower(username) = lower($1) AND id <> 0"};
constexpr StatementDef kSelectUser{
    "select_user", "SELECT " TN_USER_COLUMNS " FROM users WHERE id = $1 AND id <> 0"};
constexpr StatementDef kListUsers{
    "list_users", "SELECT " TN_USER_COLUMNS " FROM users WHERE id <> 0 ORDER BY id"};
constexpr StatementDef kDeleteUser{"delete_user", "DELETE FROM users WHERE id = $1 AND id <> 0"};
// The cascade of the user's notes left counter rows that sum to zero; they would only be clutter.
constexpr StatementDef kDeleteOwnerStats{"delete_owner_stats",
                                         "DELETE FROM note_stats WHERE owner_id = $1"};
// Reassigning notes. The user row is key-share locked so `to` cannot be deleted under the move.
constexpr StatementDef kLockUser{"lock_user", "SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE"};
// Every writer locks its note rows before any counter row; the move takes all of them first.
constexpr StatementDef kLockNotesOfOwner{
    "lock_notes_of_owner",
    "SELECT count(*) FROM (SELECT 1 FROM notes WHERE owner_id = $1 ORDER BY id FOR UPDATE) n"};
// A move changes rows that other connections may be writing one by one, and their triggers lock
// counter rows after the note row, while the move would hold counters before reaching a note
// committed after its row locks: only the table lock orders them. It waits for writers in
// progress and holds new ones back for the move (an admin operation, seldom and short); reads
// go on.
constexpr const char* kLockNotesForMove = "LOCK TABLE notes IN SHARE ROW EXCLUSIVE MODE";
// The triggers of the move touch two counter rows per language in this backend's shard, row by
// row in note order; a single-note language change of `to` locks two of them in (owner,
// language) order. Locking all of them up front in that order, before any trigger runs, keeps
// the two from deadlocking. Upserting a zero delta creates the missing rows locked as well.
constexpr StatementDef kLockMoveCounters{
    "lock_move_counters",
    "INSERT INTO note_stats AS s (owner_id, original_language, shard, notes, translated) "
    "SELECT o.owner_id, l.original_language, pg_backend_pid() % 16, 0, 0 "
    "FROM (SELECT DISTINCT original_language FROM notes WHERE owner_id = $1) l "
    "CROSS JOIN (VALUES ($1::int8), ($2::int8)) AS o (owner_id) "
    "ORDER BY o.owner_id, l.original_language COLLATE \"C\" "
    "ON CONFLICT (owner_id, original_language, shard) DO UPDATE SET notes = s.notes"};
// The stats trigger on UPDATE OF owner_id (migration 3) moves the counters.
constexpr StatementDef kMoveNotes{"move_notes",
                                  "UPDATE notes SET owner_id = $2 WHERE owner_id = $1"};
constexpr StatementDef kMoveJobs{"move_jobs",
                                 "UPDATE translation_jobs SET owner_id = $2 WHERE owner_id = $1 "
                                 "AND note_id IN (SELECT id FROM notes WHERE owner_id = $2)"};
constexpr StatementDef kSetPasswordHash{
    "set_password_hash", "UPDATE users SET password_hash = $2 WHERE id = $1 AND id <> 0"};
constexpr StatementDef kSetStaff{
    "set_staff", "UPDATE users SET is_staff = ($2::int8 <> 0) WHERE id = $1 AND id <> 0"};

// A token of a user that no longer exists needs no row: nothing can use it any more.
constexpr StatementDef kBlacklistToken{
    "blacklist_token",
    "INSERT INTO token_blacklist (jti, user_id, expires_at) SELECT $1, $2, " TN_FROM_MICROS(
        "$3") " WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) ON CONFLICT (jti) DO NOTHING"};
// A bounded purge per insert keeps the table near the live tokens without a sweeper.
constexpr StatementDef kPurgeBlacklist{
    "purge_blacklist",
    "DELETE FROM token_blacklist WHERE jti IN (SELECT jti FROM token_blacklist "
    "WHERE expires_at < clock_timestamp() LIMIT 64 FOR UPDATE SKIP LOCKED)"};
constexpr StatementDef kTokenBlacklisted{"token_blacklisted",
                                         "SELECT 1 FROM token_blacklist WHERE jti = $1"};

#define TN_IDEMPOTENCY_COLUMNS "fingerprint, status, body, location, " TN_MICROS("created_at")
// Inserts a fresh reservation, or takes over an expired one; returns a row only then.
constexpr StatementDef kReserveIdempotencyKey{
    "reserve_idempotency_key",
    "INSERT INTO idempotency_keys AS k (owner_id, key, fingerprint, status, body, location, "
    "created_at) VALUES ($1, $2, $3, 0, '', '', clock_timestamp()) "
    "ON CONFLICT (owner_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, status = 0, "
    "body = '', location = '', created_at = excluded.created_at "
    "WHERE k.created_at < " TN_FROM_MICROS("$4") " RETURNING 1"};
constexpr StatementDef kSelectIdempotencyKey{
    "select_idempotency_key",
    "SELECT " TN_IDEMPOTENCY_COLUMNS " FROM idempotency_keys WHERE owner_id = $1 AND key = $2"};
constexpr StatementDef kFinishIdempotencyKey{
    "finish_idempotency_key",
    "UPDATE idempotency_keys SET status = $3, body = $4, location = $5 "
    "WHERE owner_id = $1 AND key = $2"};
constexpr StatementDef kReleaseIdempotencyKey{
    "release_idempotency_key",
    "DELETE FROM idempotency_keys WHERE owner_id = $1 AND key = $2 AND status = 0"};

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
        rollback(*conn);
        if (attempt >= 5) throw Unavailable(std::string("database unavailable: ") + e.what());
      } catch (...) {
        rollback(*conn);
        throw;
      }
    }
  }
  struct CreateRequest {
    UserId owner = kOpenModeOwner;
    const NoteFields* fields = nullptr;
  };
  using CreateBatcher = Batcher<CreateRequest, Note>;
  struct StatsRequest {
    UserId owner = kOpenModeOwner;
  };
  using StatsBatcher = Batcher<StatsRequest, Stats>;

  // One autocommit statement for every owner asked for: a single snapshot of the counters.
  // Totals are the sums of the returned rows (a hidden zero-note language also has 0 translated).
  void query_stats(std::span<StatsBatcher::Slot*> slots) {
    std::string owners = "{";
    for (auto* slot : slots) {
      if (owners.size() > 1) owners += ',';
      owners += std::to_string(slot->input->owner);
    }
    owners += "}";
    auto result = single(kLanguageStats, Params().add(owners));
    std::unordered_map<UserId, Stats> per_owner;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      Row row(result.get(), i);
      Stats& stats = per_owner[row.int64(0)];
      stats.total_notes += row.int64(2);
      stats.total_translations += row.int64(3);
      stats.language_breakdown.push_back({row.text(1), row.int64(2)});
    }
    for (auto* slot : slots) slot->output = per_owner[slot->input->owner];
  }

  static void add_insert_params(Params& params, const CreateRequest& request) {
    const NoteFields& fields = *request.fields;
    params.add(fields.title.value_or(""))
        .add(fields.original_text.value_or(""))
        .add(fields.original_language.value_or(kDefaultLanguage))
        .add(request.owner);
  }
  Note insert_one(const CreateRequest& request) {
    Params params;
    add_insert_params(params, request);
    try {
      auto result = single(kInsertNote, params);
      return read_note(Row(result.get(), 0));
    } catch (const ForeignKeyViolation&) {
      throw UnknownUser();  // the only foreign key of a note is its owner
    }
  }

  // Inserts the batch's notes with one multi-row INSERT (autocommit: one durable commit). If it
  // fails for a reason other than the database being down (e.g. one note's invalid UTF-8, or an
  // owner that was deleted), the notes are inserted one by one so that only the bad one fails.
  void insert_notes(std::span<CreateBatcher::Slot*> slots) {
    if (slots.size() == 1) {
      slots[0]->output = insert_one(*slots[0]->input);
      return;
    }
    // Rows in (owner, language) order: their triggers then lock version rows in owner order
    // and stats rows in (owner, language) order, as every other writer does (migration 5).
    std::vector<CreateBatcher::Slot*> ordered(slots.begin(), slots.end());
    auto language = [](const CreateBatcher::Slot* slot) -> std::string_view {
      const auto& given = slot->input->fields->original_language;
      return given ? std::string_view(*given) : std::string_view(kDefaultLanguage);
    };
    std::stable_sort(ordered.begin(), ordered.end(), [&](const auto* a, const auto* b) {
      if (a->input->owner != b->input->owner) return a->input->owner < b->input->owner;
      return language(a) < language(b);
    });
    Params params;
    for (auto* slot : ordered) add_insert_params(params, *slot->input);
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
    auto key = [](UserId owner, const std::string& title, const std::string& text,
                  const std::string& lang) {
      return std::to_string(owner) + ':' + std::to_string(title.size()) + ':' + title +
             std::to_string(text.size()) + ':' + text + lang;
    };
    std::unordered_multimap<std::string, Note> rows;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      Note note = read_note(Row(result.get(), i));
      std::string row_key =
          key(note.owner_id, note.title, note.original_text, note.original_language);
      rows.emplace(std::move(row_key), std::move(note));
    }
    for (auto* slot : slots) {
      const NoteFields& f = *slot->input->fields;
      auto it =
          rows.find(key(slot->input->owner, f.title.value_or(""), f.original_text.value_or(""),
                        f.original_language.value_or(kDefaultLanguage)));
      if (it == rows.end()) {
        slot->error = std::make_exception_ptr(Error("batched insert returned no row for a note"));
        continue;
      }
      slot->output = std::move(it->second);
      rows.erase(it);
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

  void migrate() override { migrate_to(INT_MAX); }

  void migrate_to(int version) {
    auto conn = pool_.acquire();
    postgres::migrate(*conn, schema_, version);
  }

  Note create_note(UserId owner, const NoteFields& fields) override {
    const CreateRequest request{owner, &fields};
    return create_batcher_.submit(
        request, [this](std::span<CreateBatcher::Slot*> slots) { insert_notes(slots); });
  }

  std::optional<Note> get_note(UserId owner, std::int64_t id) override {
    auto result = single(kSelectNote, Params().add(id).add(owner));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_note(Row(result.get(), 0));
  }

  std::vector<Note> list_notes(UserId owner, const ListQuery& query) override {
    auto result = single(kListNotes, Params()
                                         .add(std::max<std::int64_t>(query.limit, 0))
                                         .add(std::max<std::int64_t>(query.offset, 0))
                                         .add(owner));
    std::vector<Note> notes;
    for (int i = 0; i < PQntuples(result.get()); ++i)
      notes.push_back(read_note(Row(result.get(), i)));
    return notes;
  }

  std::optional<std::int64_t> notes_version(UserId owner) override {
    auto result = single(kNotesVersion, Params().add(owner));
    return Row(result.get(), 0).int64(0);
  }

  std::optional<Note> update_note(UserId owner, std::int64_t id,
                                  const NoteFields& fields) override {
    auto result = single(kUpdateNote, Params()
                                          .add(id)
                                          .add(fields.title)
                                          .add(fields.original_text)
                                          .add(fields.original_language)
                                          .add(owner));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_note(Row(result.get(), 0));
  }

  bool delete_note(UserId owner, std::int64_t id) override {
    return affected(single(kDeleteNote, Params().add(id).add(owner))) > 0;
  }

  Stats stats(UserId owner) override {
    // Callers that arrive while a stats query runs share the next one: it starts after they
    // arrived, so each still sees every write that finished before its call.
    const StatsRequest request{owner};
    return stats_batcher_.submit(
        request, [this](std::span<StatsBatcher::Slot*> slots) { query_stats(slots); });
  }

  JobRequestResult request_job(const JobRequest& request) override {
    return transaction([&](Pool::Lease& conn) {
      JobRequestResult result;
      const bool capped = request.max_active_per_owner > 0;
      if (capped) conn->run(kLockOwnerJobs, Params().add(request.owner));
      // The note's row lock orders requests for one note (de-duplication) and pins its text.
      auto note = conn->run(kLockOwnedNote, Params().add(request.note_id).add(request.owner));
      if (PQntuples(note.get()) == 0) {
        result.outcome = JobRequestResult::Outcome::kNoteNotFound;
        return result;
      }
      const std::string digest =
          source_digest(Row(note.get(), 0).text(0), Row(note.get(), 0).text(1));
      auto existing =
          conn->run(kActiveJobForText,
                    Params().add(request.note_id).add(request.target_language).add(digest));
      if (PQntuples(existing.get()) > 0) {
        result.outcome = JobRequestResult::Outcome::kExisting;
        result.job = read_job(Row(existing.get(), 0));
        return result;
      }
      if (capped) {
        auto active =
            conn->run(kActiveJobsOfOwner,
                      Params().add(request.owner).add(std::int64_t{request.max_active_per_owner}));
        if (Row(active.get(), 0).int64(0) >= request.max_active_per_owner) {
          result.outcome = JobRequestResult::Outcome::kOwnerQueueFull;
          return result;
        }
      }
      auto inserted = conn->run(kInsertJob, Params()
                                                .add(request.note_id)
                                                .add(request.source_language)
                                                .add(request.target_language)
                                                .add(request.engine)
                                                .add(std::int64_t{request.max_attempts})
                                                .add(request.owner)
                                                .add(digest)
                                                .add(request.request_id));
      result.outcome = JobRequestResult::Outcome::kCreated;
      result.job = read_job(Row(inserted.get(), 0));
      return result;
    });
  }

  std::optional<TranslationJob> get_job(UserId owner, std::int64_t id) override {
    auto result = single(kSelectJob, Params().add(id).add(owner));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_job(Row(result.get(), 0));
  }

  std::vector<TranslationJob> latest_jobs_for_note(UserId owner, std::int64_t note_id) override {
    auto result = single(kLatestJobs, Params().add(note_id).add(owner));
    std::vector<TranslationJob> jobs;
    for (int i = 0; i < PQntuples(result.get()); ++i)
      jobs.push_back(read_job(Row(result.get(), i)));
    return jobs;
  }

  std::optional<ClaimedJob> claim_job(const std::string& worker_id, std::chrono::milliseconds lease,
                                      std::optional<std::int64_t> preferred_id) override {
    auto conn = pool_.acquire();
    conn->run(kEndAbandoned, Params());
    auto result =
        conn->run(kClaimJob, Params().add(worker_id).add(millis(lease)).add(preferred_id));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    Row row(result.get(), 0);
    ClaimedJob claimed;
    claimed.job = read_job(row);
    claimed.note_text = row.text(16);
    claimed.note_language = row.text(17);
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
      Row done(job.get(), 0);
      auto note = conn->run(kSetTranslation,
                            Params().add(note_id).add(text).add(done.text(1)).add(done.int64(2)));
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

  std::vector<JobNotice> runnable_jobs(int limit) override {
    auto result = single(kRunnableJobs, Params().add(std::int64_t{std::max(limit, 0)}));
    std::vector<JobNotice> jobs;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      Row row(result.get(), i);
      jobs.push_back({row.int64(0), row.int64(1)});
    }
    return jobs;
  }

  bool release_job(std::int64_t job_id, const std::string& worker_id) override {
    return affected(single(kReleaseJob, Params().add(job_id).add(worker_id))) > 0;
  }

  std::vector<TranslationJob> list_jobs(const JobFilter& filter) override {
    Params params;
    params.add(filter.before_id > 0 ? filter.before_id : std::int64_t{INT64_MAX})
        .add(std::max<std::int64_t>(filter.limit, 0));
    if (filter.status) params.add(std::string(to_string(*filter.status)));
    if (filter.note_id) params.add(*filter.note_id);
    const StatementDef& statement =
        filter.status ? (filter.note_id ? kListJobsByStatusAndNote : kListJobsByStatus)
                      : (filter.note_id ? kListJobsByNote : kListJobs);
    auto result = single(statement, params);
    std::vector<TranslationJob> jobs;
    for (int i = 0; i < PQntuples(result.get()); ++i)
      jobs.push_back(read_job(Row(result.get(), i)));
    return jobs;
  }

  std::optional<TranslationJob> retry_job(std::int64_t job_id) override {
    auto conn = pool_.acquire();
    // The status read after a refused update may already be stale (another administrator acted
    // in between); then the update is tried again.
    for (;;) {
      auto requeued = conn->run(kRequeueJob, Params().add(job_id));
      if (PQntuples(requeued.get()) > 0) return read_job(Row(requeued.get(), 0));
      auto status = conn->run(kJobStatus, Params().add(job_id));
      if (PQntuples(status.get()) == 0) return std::nullopt;
      const std::string now = Row(status.get(), 0).text(0);
      if (now != "failed" && now != "cancelled") throw Conflict(retry_refused_message(now));
    }
  }

  std::vector<JobNotice> retry_failed_jobs() override {
    auto result = single(kRequeueFailedJobs, Params());
    std::vector<JobNotice> notices;
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      Row row(result.get(), i);
      notices.push_back({row.int64(0), row.int64(1)});
    }
    return notices;
  }

  std::optional<TranslationJob> cancel_job(std::int64_t job_id) override {
    auto conn = pool_.acquire();
    for (;;) {
      auto cancelled = conn->run(kCancelJob, Params().add(job_id));
      if (PQntuples(cancelled.get()) > 0) return read_job(Row(cancelled.get(), 0));
      auto status = conn->run(kJobStatus, Params().add(job_id));
      if (PQntuples(status.get()) == 0) return std::nullopt;
      const std::string now = Row(status.get(), 0).text(0);
      if (now != "queued" && now != "running") throw Conflict(cancel_refused_message(now));
    }
  }

  bool cancel_requested(std::int64_t job_id) override {
    return PQntuples(single(kCancelRequested, Params().add(job_id)).get()) > 0;
  }

  bool finish_cancelled(std::int64_t job_id, const std::string& worker_id) override {
    return affected(single(kFinishCancelled, Params().add(job_id).add(worker_id))) > 0;
  }

  std::int64_t purge_jobs(Timestamp finished_before) override {
    return affected(single(kPurgeJobs, Params().add(std::int64_t{finished_before})));
  }

  JobSummary job_summary() override {
    auto result = single(kJobSummary, Params());
    JobSummary summary = empty_job_summary();
    for (int i = 0; i < PQntuples(result.get()); ++i) {
      Row row(result.get(), i);
      if (auto status = row.optional_text(0)) {
        if (auto known = job_status_from_string(*status)) summary.by_status[*known] = row.int64(1);
      } else {
        summary.oldest_queued_created_at = row.optional_int64(2);
      }
    }
    return summary;
  }

  PoolStats pool_stats() override {
    const auto pool = pool_.stats();
    return {.size = pool.open,
            .in_use = pool.leased,
            .waiting = pool.waiting,
            .capacity = pool.max_size};
  }

  bool set_staff(UserId id, bool is_staff) override {
    return affected(single(kSetStaff, Params().add(id).add(std::int64_t{is_staff ? 1 : 0}))) > 0;
  }

  std::optional<User> create_user(const std::string& username, const std::string& email,
                                  const std::string& password_hash) override {
    auto result = single(kInsertUser, Params().add(username).add(email).add(password_hash));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_user(Row(result.get(), 0));
  }

  std::optional<User> find_user(const std::string& username) override {
    auto result = single(kFindUser, Params().add(username));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_user(Row(result.get(), 0));
  }

  std::optional<User> get_user(UserId id) override {
    auto result = single(kSelectUser, Params().add(id));
    if (PQntuples(result.get()) == 0) return std::nullopt;
    return read_user(Row(result.get(), 0));
  }

  std::vector<User> list_users() override {
    auto result = single(kListUsers, Params());
    std::vector<User> users;
    for (int i = 0; i < PQntuples(result.get()); ++i)
      users.push_back(read_user(Row(result.get(), i)));
    return users;
  }

  bool delete_user(UserId id) override {
    return transaction([&](Pool::Lease& conn) {
      if (affected(conn->run(kDeleteUser, Params().add(id))) == 0) return false;
      conn->run(kDeleteOwnerStats, Params().add(id));
      return true;
    });
  }

  std::int64_t reassign_notes(UserId from, UserId to) override {
    return transaction([&](Pool::Lease& conn) -> std::int64_t {
      if (from != to) conn->exec(kLockNotesForMove);
      if (PQntuples(conn->run(kLockUser, Params().add(to)).get()) == 0) throw UnknownUser();
      if (from == to) return 0;
      conn->run(kLockNotesOfOwner, Params().add(from));
      conn->run(kLockMoveCounters, Params().add(from).add(to));
      // A note `from` committed since the lock is moved too (this statement's snapshot is
      // newer); its counters are then locked by the trigger, as for any single-note write.
      const std::int64_t moved = affected(conn->run(kMoveNotes, Params().add(from).add(to)));
      // A job request for a moved note locked it as `from`'s note: it committed before the move
      // (its job is seen here) or finds the note gone from `from` after it.
      conn->run(kMoveJobs, Params().add(from).add(to));
      return moved;
    });
  }

  bool set_password_hash(UserId id, const std::string& password_hash) override {
    return affected(single(kSetPasswordHash, Params().add(id).add(password_hash))) > 0;
  }

  void blacklist_token(const std::string& jti, UserId user, Timestamp expires_at) override {
    auto conn = pool_.acquire();
    conn->run(kPurgeBlacklist, Params());
    try {
      conn->run(kBlacklistToken, Params().add(jti).add(user).add(expires_at));
    } catch (const ForeignKeyViolation&) {
      // The user was deleted meanwhile; their tokens are dead without a row.
    }
  }

  bool is_token_blacklisted(const std::string& jti) override {
    return PQntuples(single(kTokenBlacklisted, Params().add(jti)).get()) > 0;
  }

  std::optional<IdempotentResponse> reserve_idempotency_key(UserId owner, const std::string& key,
                                                            const std::string& fingerprint,
                                                            Timestamp expire_before) override {
    auto conn = pool_.acquire();
    // The record found may be released before it is read; then the key is free again.
    for (;;) {
      Result reserved;
      try {
        reserved = conn->run(kReserveIdempotencyKey,
                             Params().add(owner).add(key).add(fingerprint).add(expire_before));
      } catch (const ForeignKeyViolation&) {
        throw UnknownUser();  // the key's only foreign key is its owner
      }
      if (PQntuples(reserved.get()) > 0) return std::nullopt;
      auto existing = conn->run(kSelectIdempotencyKey, Params().add(owner).add(key));
      if (PQntuples(existing.get()) > 0) return read_idempotent_response(Row(existing.get(), 0));
    }
  }

  void finish_idempotency_key(UserId owner, const std::string& key, int status,
                              const std::string& body, const std::string& location) override {
    single(kFinishIdempotencyKey,
           Params().add(owner).add(key).add(std::int64_t{status}).add(body).add(location));
  }

  void release_idempotency_key(UserId owner, const std::string& key) override {
    single(kReleaseIdempotencyKey, Params().add(owner).add(key));
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

}  // namespace postgres

namespace {

std::unique_ptr<postgres::PostgresStore> open_postgres_store(const std::string& url,
                                                             const StorageConfig& config) {
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
  if (schema && !postgres::valid_schema_name(*schema)) {
    throw Error("invalid database URL: schema must be letters, digits and underscores");
  }
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(libpq_url.c_str(), &error);
  if (options == nullptr) {
    std::string message = postgres::first_line(error != nullptr ? error : "cannot parse");
    PQfreemem(error);
    throw Error("invalid database URL: " + message);
  }
  PQconninfoFree(options);
  return std::make_unique<postgres::PostgresStore>(libpq_url, schema, config);
}

}  // namespace

std::unique_ptr<Store> make_postgres_store(const std::string& url, const StorageConfig& config) {
  return open_postgres_store(url, config);
}

void migrate_postgres_to_version(const std::string& url, const StorageConfig& config, int version) {
  open_postgres_store(url, config)->migrate_to(version);
}

}  // namespace transnotes::storage
