// The SQLite schema: every migration since the first, and the loop that applies the missing
// ones. The tables mirror the PostgreSQL schema (postgres_schema.cpp) column for column, with
// timestamps as INTEGER microseconds, so both stores read rows the same way (row_mapping.h).
#include "storage/sqlite_schema.h"

#include <spdlog/spdlog.h>

#include <cstdint>

#include "domain/model.h"

namespace transnotes::storage::sqlite {

namespace {

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

}  // namespace

void migrate(Connection& conn) {
  conn.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
      "applied_at INTEGER NOT NULL)");
  for (const Migration& migration : kMigrations) {
    auto exists = conn.prepare("SELECT 1 FROM schema_migrations WHERE version = ?1");
    if (exists.bind(1, std::int64_t{migration.version}).step()) continue;
    spdlog::info("sqlite: applying schema migration {}", migration.version);
    conn.exec(migration.sql);
    conn.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)")
        .bind(1, std::int64_t{migration.version})
        .bind(2, now_micros())
        .run();
  }
}

}  // namespace transnotes::storage::sqlite
