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
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "domain/errors.h"
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
constexpr StatementDef kReleaseJob{
    "release_job",
    "UPDATE translation_jobs SET status = 'queued', attempts = attempts - 1, "
    "available_at = clock_timestamp(), lease_owner = NULL, lease_expires_at = NULL "
    "WHERE id = $1 AND status = 'running' AND lease_owner = $2"};
constexpr StatementDef kRunnableIds{
    "runnable_ids", "SELECT id FROM translation_jobs WHERE " TN_RUNNABLE " ORDER BY id LIMIT $1"};

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
    postgres::migrate(*conn, schema_);
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

  bool release_job(std::int64_t job_id, const std::string& worker_id) override {
    return affected(single(kReleaseJob, Params().add(job_id).add(worker_id))) > 0;
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

}  // namespace transnotes::storage
