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
    // Users and per-user isolation. Every note that existed before gets the reserved user 0 (the
    // open-mode owner). SQLite cannot add a NOT NULL foreign-key column with a default, so notes
    // and translation_jobs are rebuilt: renamed aside, recreated, copied with their ids, and the
    // AUTOINCREMENT sequences carried over so that ids of deleted rows are never handed out again.
    // The old tables are dropped only after their rows were copied (the jobs first, so the drop of
    // the old notes cascades into nothing); jobs orphaned by a write made without foreign keys are
    // left behind rather than failing the upgrade. The stats counters become per (owner, language).
    {3, R"sql(
DROP TRIGGER note_stats_after_insert;
DROP TRIGGER note_stats_after_delete;
DROP TRIGGER note_stats_after_update;
DROP TABLE note_stats;
CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL,
  email TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  is_active INTEGER NOT NULL,
  date_joined INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));
INSERT INTO users (id, username, email, password_hash, is_active, date_joined)
  VALUES (0, '', '', '!', 0, 0);
DROP INDEX notes_list_order;
DROP INDEX notes_original_language;
DROP INDEX translation_jobs_claim;
DROP INDEX translation_jobs_note;
ALTER TABLE translation_jobs RENAME TO translation_jobs_v2;
ALTER TABLE notes RENAME TO notes_v2;
CREATE TABLE notes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  owner_id INTEGER NOT NULL DEFAULT 0 REFERENCES users (id) ON DELETE CASCADE,
  title TEXT NOT NULL,
  original_text TEXT NOT NULL,
  original_language TEXT NOT NULL,
  translated_text TEXT NULL,
  translated_language TEXT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 1
);
INSERT INTO notes (id, owner_id, title, original_text, original_language, translated_text,
                   translated_language, created_at, updated_at, version)
  SELECT id, 0, title, original_text, original_language, translated_text, translated_language,
         created_at, updated_at, version FROM notes_v2;
CREATE TABLE translation_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  note_id INTEGER NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
  owner_id INTEGER NOT NULL DEFAULT 0,
  source_language TEXT NOT NULL,
  target_language TEXT NOT NULL,
  source_digest TEXT NULL,
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
INSERT INTO translation_jobs (id, note_id, owner_id, source_language, target_language, status,
                              text, error, engine, attempts, max_attempts, created_at, started_at,
                              finished_at, available_at, lease_owner, lease_expires_at)
  SELECT id, note_id, 0, source_language, target_language, status, text, error, engine,
         attempts, max_attempts, created_at, started_at, finished_at, available_at, lease_owner,
         lease_expires_at FROM translation_jobs_v2 WHERE note_id IN (SELECT id FROM notes);
DELETE FROM sqlite_sequence WHERE name IN ('notes', 'translation_jobs');
UPDATE sqlite_sequence SET name = 'notes' WHERE name = 'notes_v2';
UPDATE sqlite_sequence SET name = 'translation_jobs' WHERE name = 'translation_jobs_v2';
DROP TABLE translation_jobs_v2;
DROP TABLE notes_v2;
CREATE INDEX notes_owner_list ON notes (owner_id, created_at DESC, id DESC);
CREATE INDEX translation_jobs_claim ON translation_jobs (status, available_at);
CREATE INDEX translation_jobs_note ON translation_jobs (note_id, target_language, id);
CREATE INDEX translation_jobs_owner_active ON translation_jobs (owner_id)
  WHERE status IN ('queued', 'running');
CREATE TABLE note_stats (
  owner_id INTEGER NOT NULL,
  original_language TEXT NOT NULL,
  shard INTEGER NOT NULL,
  notes INTEGER NOT NULL,
  translated INTEGER NOT NULL,
  PRIMARY KEY (owner_id, original_language, shard)
) WITHOUT ROWID;
INSERT INTO note_stats (owner_id, original_language, shard, notes, translated)
  SELECT owner_id, original_language, 0, count(*), count(translated_text) FROM notes
  GROUP BY owner_id, original_language;
CREATE TRIGGER note_stats_after_insert AFTER INSERT ON notes BEGIN
  INSERT INTO note_stats (owner_id, original_language, shard, notes, translated)
    VALUES (NEW.owner_id, NEW.original_language, 0, 1, NEW.translated_text IS NOT NULL)
    ON CONFLICT (owner_id, original_language, shard) DO UPDATE
    SET notes = notes + excluded.notes, translated = translated + excluded.translated;
END;
CREATE TRIGGER note_stats_after_delete AFTER DELETE ON notes BEGIN
  INSERT INTO note_stats (owner_id, original_language, shard, notes, translated)
    VALUES (OLD.owner_id, OLD.original_language, 0, -1, -(OLD.translated_text IS NOT NULL))
    ON CONFLICT (owner_id, original_language, shard) DO UPDATE
    SET notes = notes + excluded.notes, translated = translated + excluded.translated;
END;
CREATE TRIGGER note_stats_after_update
  AFTER UPDATE OF owner_id, original_language, translated_text ON notes
  WHEN OLD.owner_id IS NOT NEW.owner_id
    OR OLD.original_language IS NOT NEW.original_language
    OR (OLD.translated_text IS NULL) <> (NEW.translated_text IS NULL)
BEGIN
  INSERT INTO note_stats (owner_id, original_language, shard, notes, translated)
    VALUES (OLD.owner_id, OLD.original_language, 0, -1, -(OLD.translated_text IS NOT NULL))
    ON CONFLICT (owner_id, original_language, shard) DO UPDATE
    SET notes = notes + excluded.notes, translated = translated + excluded.translated;
  INSERT INTO note_stats (owner_id, original_language, shard, notes, translated)
    VALUES (NEW.owner_id, NEW.original_language, 0, 1, NEW.translated_text IS NOT NULL)
    ON CONFLICT (owner_id, original_language, shard) DO UPDATE
    SET notes = notes + excluded.notes, translated = translated + excluded.translated;
END;
CREATE TABLE token_blacklist (
  jti TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  expires_at INTEGER NOT NULL
);
CREATE INDEX token_blacklist_expiry ON token_blacklist (expires_at);
CREATE INDEX token_blacklist_user ON token_blacklist (user_id);
CREATE TABLE idempotency_keys (
  owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status INTEGER NOT NULL,
  body TEXT NOT NULL,
  location TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (owner_id, key)
);
)sql"},
    // Job administration (issue 11): the 'cancelled' status, the request id a job was asked for
    // with, a running job's pending cancellation, and staff users. SQLite cannot change a CHECK
    // constraint in place, so translation_jobs is rebuilt as in migration 3: renamed aside,
    // recreated, copied with its ids, its AUTOINCREMENT sequence carried over. Nothing refers to
    // translation_jobs, so the rename rewrites no other table. The new indexes serve the
    // administrators' listing (by status, newest first; by note) and the purge by finished_at.
    {4, R"sql(
DROP INDEX translation_jobs_claim;
DROP INDEX translation_jobs_note;
DROP INDEX translation_jobs_owner_active;
ALTER TABLE translation_jobs RENAME TO translation_jobs_v3;
CREATE TABLE translation_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  note_id INTEGER NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
  owner_id INTEGER NOT NULL DEFAULT 0,
  source_language TEXT NOT NULL,
  target_language TEXT NOT NULL,
  source_digest TEXT NULL,
  status TEXT NOT NULL
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
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
  lease_expires_at INTEGER NULL,
  request_id TEXT NOT NULL DEFAULT '',
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
INSERT INTO translation_jobs (id, note_id, owner_id, source_language, target_language,
                              source_digest, status, text, error, engine, attempts, max_attempts,
                              created_at, started_at, finished_at, available_at, lease_owner,
                              lease_expires_at)
  SELECT id, note_id, owner_id, source_language, target_language, source_digest, status, text,
         error, engine, attempts, max_attempts, created_at, started_at, finished_at, available_at,
         lease_owner, lease_expires_at FROM translation_jobs_v3;
DELETE FROM sqlite_sequence WHERE name = 'translation_jobs';
UPDATE sqlite_sequence SET name = 'translation_jobs' WHERE name = 'translation_jobs_v3';
DROP TABLE translation_jobs_v3;
CREATE INDEX translation_jobs_claim ON translation_jobs (status, available_at);
CREATE INDEX translation_jobs_note ON translation_jobs (note_id, target_language, id);
CREATE INDEX translation_jobs_owner_active ON translation_jobs (owner_id)
  WHERE status IN ('queued', 'running');
CREATE INDEX translation_jobs_status_newest ON translation_jobs (status, id);
CREATE INDEX translation_jobs_finished ON translation_jobs (finished_at);
ALTER TABLE users ADD COLUMN is_staff INTEGER NOT NULL DEFAULT 0;
)sql"},
    // The per-owner notes version (Store::notes_version, issue 13): every row written to notes
    // adds 1 to its owner's counter (both owners' when a note changes hands) in the writing
    // transaction. One writer at a time, so one row per owner (no shards as in PostgreSQL).
    // Rows are never deleted, not even with their user (ids are not reused): a version never
    // goes back. No backfill: a missing row counts 0.
    {5, R"sql(
CREATE TABLE note_versions (
  owner_id INTEGER PRIMARY KEY,
  writes INTEGER NOT NULL
);
CREATE TRIGGER note_versions_after_insert AFTER INSERT ON notes BEGIN
  INSERT INTO note_versions (owner_id, writes) VALUES (NEW.owner_id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET writes = writes + 1;
END;
CREATE TRIGGER note_versions_after_delete AFTER DELETE ON notes BEGIN
  INSERT INTO note_versions (owner_id, writes) VALUES (OLD.owner_id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET writes = writes + 1;
END;
CREATE TRIGGER note_versions_after_update AFTER UPDATE ON notes BEGIN
  INSERT INTO note_versions (owner_id, writes) VALUES (OLD.owner_id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET writes = writes + 1;
  INSERT INTO note_versions (owner_id, writes)
    SELECT NEW.owner_id, 1 WHERE NEW.owner_id IS NOT OLD.owner_id
    ON CONFLICT (owner_id) DO UPDATE SET writes = writes + 1;
END;
)sql"},
};

}  // namespace

void migrate(Connection& conn, int up_to_version) {
  conn.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
      "applied_at INTEGER NOT NULL)");
  for (const Migration& migration : kMigrations) {
    if (migration.version > up_to_version) break;
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
