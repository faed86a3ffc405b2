// The PostgreSQL schema: every migration since the first, and the loop that applies the missing
// ones under a cross-process lock. The tables mirror the SQLite schema (sqlite_schema.cpp)
// column for column, so both stores read rows the same way (row_mapping.h).
#include "storage/postgres_schema.h"

#include <spdlog/spdlog.h>

#include <cstdint>
#include <unordered_set>

namespace transnotes::storage::postgres {

namespace {

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

// The same pieces for the per-owner counters (migration 3).
#define TN_OWNER_STATS_ACCUMULATE                               \
  "ON CONFLICT (owner_id, original_language, shard) DO UPDATE " \
  "SET notes = s.notes + excluded.notes, translated = s.translated + excluded.translated;\n"
#define TN_OWNER_STATS_ADD_NEW                                                             \
  "INSERT INTO note_stats AS s (owner_id, original_language, shard, notes, translated) "   \
  "VALUES (NEW.owner_id, NEW.original_language, shard_id, 1, (NEW.translated_text IS NOT " \
  "NULL)::int) " TN_OWNER_STATS_ACCUMULATE
#define TN_OWNER_STATS_REMOVE_OLD                                                            \
  "INSERT INTO note_stats AS s (owner_id, original_language, shard, notes, translated) "     \
  "VALUES (OLD.owner_id, OLD.original_language, shard_id, -1, -(OLD.translated_text IS NOT " \
  "NULL)::int) " TN_OWNER_STATS_ACCUMULATE

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
    // Users and per-user isolation. Every note that existed before gets the reserved user 0 (the
    // open-mode owner); user ids from the sequence start at 1. The stats counters become per
    // (owner, language, shard), rebuilt from the notes under the same table lock as migration 2;
    // the trigger function is replaced in place, so the triggers keep calling it. Two counter
    // rows of one update belong to one owner, so the language order still orders their locks.
    {3, R"sql(
LOCK TABLE notes IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE users (
  id BIGSERIAL PRIMARY KEY,
  username TEXT NOT NULL,
  email TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  is_active BOOLEAN NOT NULL,
  date_joined TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));
INSERT INTO users (id, username, email, password_hash, is_active, date_joined)
  VALUES (0, '', '', '!', false, clock_timestamp());
ALTER TABLE notes
  ADD COLUMN owner_id BIGINT NOT NULL DEFAULT 0 REFERENCES users (id) ON DELETE CASCADE;
DROP INDEX notes_list_order;
DROP INDEX notes_original_language;
CREATE INDEX notes_owner_list ON notes (owner_id, created_at DESC, id DESC);
ALTER TABLE translation_jobs
  ADD COLUMN owner_id BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN source_digest TEXT NULL;
CREATE INDEX translation_jobs_owner_active ON translation_jobs (owner_id)
  WHERE status IN ('queued', 'running');
DROP TABLE note_stats;
CREATE TABLE note_stats (
  owner_id BIGINT NOT NULL,
  original_language TEXT NOT NULL,
  shard INTEGER NOT NULL,
  notes BIGINT NOT NULL,
  translated BIGINT NOT NULL,
  PRIMARY KEY (owner_id, original_language, shard)
);
INSERT INTO note_stats (owner_id, original_language, shard, notes, translated)
  SELECT owner_id, original_language, 0, count(*), count(translated_text) FROM notes
  GROUP BY owner_id, original_language;
CREATE OR REPLACE FUNCTION note_stats_track() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
DECLARE
  shard_id INTEGER := pg_backend_pid() % 16;
BEGIN
  IF TG_OP = 'INSERT' THEN
    )sql" TN_OWNER_STATS_ADD_NEW R"sql(
  ELSIF TG_OP = 'DELETE' THEN
    )sql" TN_OWNER_STATS_REMOVE_OLD R"sql(
  ELSIF OLD.owner_id = NEW.owner_id AND OLD.original_language = NEW.original_language THEN
    INSERT INTO note_stats AS s (owner_id, original_language, shard, notes, translated)
    VALUES (NEW.owner_id, NEW.original_language, shard_id, 0,
            (NEW.translated_text IS NOT NULL)::int - (OLD.translated_text IS NOT NULL)::int)
    )sql" TN_OWNER_STATS_ACCUMULATE R"sql(
  ELSIF (OLD.owner_id, OLD.original_language COLLATE "C")
        < (NEW.owner_id, NEW.original_language COLLATE "C") THEN
    )sql" TN_OWNER_STATS_REMOVE_OLD TN_OWNER_STATS_ADD_NEW R"sql(
  ELSE
    )sql" TN_OWNER_STATS_ADD_NEW TN_OWNER_STATS_REMOVE_OLD R"sql(
  END IF;
  RETURN NULL;
END
$fn$;
DROP TRIGGER note_stats_after_update ON notes;
CREATE TRIGGER note_stats_after_update
  AFTER UPDATE OF owner_id, original_language, translated_text ON notes
  FOR EACH ROW
  WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id
        OR OLD.original_language IS DISTINCT FROM NEW.original_language
        OR (OLD.translated_text IS NULL) <> (NEW.translated_text IS NULL))
  EXECUTE FUNCTION note_stats_track();
CREATE TABLE token_blacklist (
  jti TEXT PRIMARY KEY,
  user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX token_blacklist_expiry ON token_blacklist (expires_at);
CREATE INDEX token_blacklist_user ON token_blacklist (user_id);
CREATE TABLE idempotency_keys (
  owner_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status INTEGER NOT NULL,
  body TEXT NOT NULL,
  location TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (owner_id, key)
);
)sql"},
    // Job administration (issue 11): the 'cancelled' status, the request id a job was asked for
    // with, a running job's pending cancellation, and staff users. Columns with constant
    // defaults are added without rewriting the table. The new indexes serve the administrators'
    // listing (by status, newest first; by note via translation_jobs_note) and the purge by
    // finished_at.
    {4, R"sql(
ALTER TABLE translation_jobs
  DROP CONSTRAINT translation_jobs_status_check,
  ADD CONSTRAINT translation_jobs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  ADD COLUMN request_id TEXT NOT NULL DEFAULT '',
  ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX translation_jobs_status_newest ON translation_jobs (status, id);
CREATE INDEX translation_jobs_finished ON translation_jobs (finished_at);
ALTER TABLE users ADD COLUMN is_staff BOOLEAN NOT NULL DEFAULT false;
)sql"},
    // The per-owner notes version (Store::notes_version, issue 13): every row written to notes
    // adds 1 to a counter of its owner (both owners when a note changes hands) in the writing
    // transaction, so the sum over an owner's counters grows with every committed write and a
    // snapshot that sees the same sum sees the same notes. Shards as in migration 2 (pid % 16):
    // concurrent writers of one owner on different connections rarely wait on one counter row
    // until commit. Deadlocks: the counter is bumped BEFORE each row is written, and the stats
    // counters of migration 2 only AFTER the statement's rows, so a statement locks note row
    // and version rows first, then stats rows (never a version row while holding a stats row,
    // which a multi-row INSERT on one connection and a language change on another in the same
    // shard would otherwise do in opposite orders). Version rows among themselves go in owner
    // order: both owners' in id order when a note changes hands, batched inserts sorted by owner
    // (PostgresStore::insert_notes); reassign_notes locks the table against other writers first.
    // Rows are never deleted (not even with their user: user ids are not reused), so a sum never
    // goes back. No backfill: a missing row counts 0 and nobody has cached anything under the
    // old schema.
    {5, R"sql(
CREATE TABLE note_versions (
  owner_id BIGINT NOT NULL,
  shard INTEGER NOT NULL,
  writes BIGINT NOT NULL,
  PRIMARY KEY (owner_id, shard)
);
CREATE FUNCTION note_versions_bump() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
DECLARE
  shard_id INTEGER := pg_backend_pid() % 16;
  first_owner BIGINT;
  second_owner BIGINT;
BEGIN
  IF TG_OP = 'INSERT' THEN
    first_owner := NEW.owner_id;
  ELSIF TG_OP = 'DELETE' THEN
    first_owner := OLD.owner_id;
  ELSIF OLD.owner_id = NEW.owner_id THEN
    first_owner := NEW.owner_id;
  ELSE
    first_owner := LEAST(OLD.owner_id, NEW.owner_id);
    second_owner := GREATEST(OLD.owner_id, NEW.owner_id);
  END IF;
  INSERT INTO note_versions AS v (owner_id, shard, writes) VALUES (first_owner, shard_id, 1)
    ON CONFLICT (owner_id, shard) DO UPDATE SET writes = v.writes + 1;
  IF second_owner IS NOT NULL THEN
    INSERT INTO note_versions AS v (owner_id, shard, writes) VALUES (second_owner, shard_id, 1)
      ON CONFLICT (owner_id, shard) DO UPDATE SET writes = v.writes + 1;
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER note_versions_before_write BEFORE INSERT OR UPDATE OR DELETE ON notes
  FOR EACH ROW EXECUTE FUNCTION note_versions_bump();
)sql"},
};

}  // namespace

void migrate(Connection& conn, const std::optional<std::string>& schema, int up_to_version) {
  try {
    // Serialises migrators across processes; the key is per schema so separate schemas
    // (e.g. tests) do not wait for each other. Session lock: released on unlock or disconnect.
    const std::string lock_key = "transnotes.migrate." + schema.value_or("");
    conn.exec(("SELECT pg_advisory_lock(hashtext('" + lock_key + "'))").c_str());
    if (schema) conn.exec(("CREATE SCHEMA IF NOT EXISTS \"" + *schema + "\"").c_str());
    conn.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())");
    auto applied = conn.exec("SELECT version FROM schema_migrations");
    std::unordered_set<std::int64_t> versions;
    for (int i = 0; i < PQntuples(applied.get()); ++i) {
      versions.insert(Row(applied.get(), i).int64(0));
    }
    for (const Migration& migration : kMigrations) {
      if (migration.version > up_to_version) break;
      if (versions.count(migration.version) != 0) continue;
      spdlog::info("postgres: applying schema migration {}", migration.version);
      conn.exec("BEGIN");
      try {
        conn.exec(migration.sql);
        conn.exec(("INSERT INTO schema_migrations (version) VALUES (" +
                   std::to_string(migration.version) + ")")
                      .c_str());
        conn.exec("COMMIT");
      } catch (...) {
        rollback(conn);
        throw;
      }
    }
    conn.exec("SELECT pg_advisory_unlock_all()");
  } catch (...) {
    conn.mark_broken();  // closing the session releases the advisory lock
    throw;
  }
}

}  // namespace transnotes::storage::postgres
