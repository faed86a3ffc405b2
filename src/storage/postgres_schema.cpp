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

}  // namespace

void migrate(Connection& conn, const std::optional<std::string>& schema) {
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
