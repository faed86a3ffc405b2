// Backup of a real SQLite file while another connection keeps writing, and restore's checks.
#include "storage/sqlite_backup.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using transnotes::storage::backup_sqlite_database;
using transnotes::storage::BackupExists;
using transnotes::storage::BackupOptions;
using transnotes::storage::DatabaseInUse;
using transnotes::storage::InvalidBackup;
using transnotes::storage::restore_sqlite_database;

std::string temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "transnotes-backup-XXXXXX").string();
  EXPECT_NE(mkdtemp(pattern.data()), nullptr);
  return pattern;
}

// A connection configured as the store configures its own (WAL, waits for locks).
struct Db {
  sqlite3* db = nullptr;
  explicit Db(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
  }
  ~Db() { sqlite3_close(db); }
  void exec(const std::string& sql) {
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }
  std::int64_t number(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW) << sql;
    auto value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return value;
  }
};

void make_transnotes_tables(Db& db) {
  db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)");
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, original_text TEXT NOT NULL)");
  db.exec("CREATE TABLE translation_jobs (id INTEGER PRIMARY KEY)");
}

TEST(SqliteBackup, CopyUnderConcurrentWritesHoldsEveryCommittedRowAndIsIntact) {
  const auto dir = temp_dir();
  const auto path = dir + "/live.sqlite3";
  Db setup(path);
  make_transnotes_tables(setup);
  // Enough pages that a step of a few pages cannot copy it at once: writes land between steps.
  setup.exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
      "INSERT INTO notes (original_text) SELECT printf('%0300d', i) FROM n");

  std::atomic<std::int64_t> committed{3000};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    Db db(path);
    while (!stop) {
      db.exec("INSERT INTO notes (original_text) VALUES (printf('%0300d', " +
              std::to_string(committed + 1) + "))");
      ++committed;
    }
  });
  while (committed < 3100) std::this_thread::yield();  // the writer is really writing
  const auto committed_before_backup = committed.load();
  BackupOptions options;
  options.pages_per_step = 8;
  options.pause_between_steps = std::chrono::milliseconds(1);
  auto report = backup_sqlite_database(path, dir + "/copy.sqlite3", options);
  stop = true;
  writer.join();

  EXPECT_GT(report.pages, 100);
  RecordProperty("restarts", report.restarts);
  Db copy(dir + "/copy.sqlite3");
  const auto rows = copy.number("SELECT count(*) FROM notes");
  EXPECT_GE(rows, committed_before_backup);
  // One snapshot: the rows are a prefix of the writer's sequence, with no holes.
  EXPECT_EQ(copy.number("SELECT max(id) FROM notes"), rows);
  EXPECT_EQ(copy.number("SELECT count(*) FROM notes WHERE original_text = printf('%0300d', id)"),
            rows);
  EXPECT_EQ(copy.number("SELECT count(*) FROM pragma_integrity_check WHERE integrity_check='ok'"),
            1);
  // Nothing temporary is left beside the copy.
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  }
}

TEST(SqliteBackup, RefusesAnExistingDestinationUnlessOverwriting) {
  const auto dir = temp_dir();
  Db db(dir + "/live.sqlite3");
  make_transnotes_tables(db);
  { std::ofstream(dir + "/taken") << "precious"; }
  EXPECT_THROW(backup_sqlite_database(dir + "/live.sqlite3", dir + "/taken"), BackupExists);
  std::ifstream in(dir + "/taken");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
  BackupOptions overwrite;
  overwrite.overwrite = true;
  backup_sqlite_database(dir + "/live.sqlite3", dir + "/taken", overwrite);
  Db copy(dir + "/taken");
  EXPECT_EQ(copy.number("SELECT count(*) FROM notes"), 0);
}

TEST(SqliteBackup, RestoreRefusesWhileAnotherConnectionHasTheDatabaseOpen) {
  const auto dir = temp_dir();
  {
    Db source(dir + "/source.sqlite3");
    make_transnotes_tables(source);
  }
  backup_sqlite_database(dir + "/source.sqlite3", dir + "/backup.sqlite3");
  Db live(dir + "/live.sqlite3");
  live.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY)");
  live.exec("INSERT INTO notes VALUES (42)");  // idle afterwards, as a serve between requests
  EXPECT_THROW(restore_sqlite_database(dir + "/backup.sqlite3", dir + "/live.sqlite3"),
               DatabaseInUse);
  EXPECT_EQ(live.number("SELECT count(*) FROM notes"), 1);  // untouched
}

TEST(SqliteBackup, RestoreReplacesTheDatabaseAndDropsTheOldWal) {
  const auto dir = temp_dir();
  {
    Db source(dir + "/source.sqlite3");
    make_transnotes_tables(source);
    source.exec("INSERT INTO notes (original_text) VALUES ('kept')");
  }
  backup_sqlite_database(dir + "/source.sqlite3", dir + "/backup.sqlite3");
  {
    Db old(dir + "/live.sqlite3");
    make_transnotes_tables(old);
    old.exec("INSERT INTO notes (original_text) VALUES ('old 1'), ('old 2')");
  }
  restore_sqlite_database(dir + "/backup.sqlite3", dir + "/live.sqlite3");
  EXPECT_FALSE(fs::exists(dir + "/live.sqlite3-wal"));
  Db restored(dir + "/live.sqlite3");
  EXPECT_EQ(restored.number("SELECT count(*) FROM notes"), 1);
  EXPECT_EQ(restored.number("SELECT count(*) FROM notes WHERE original_text = 'kept'"), 1);
}

TEST(SqliteBackup, RestoreRejectsFilesThatAreNotTransnotesDatabases) {
  const auto dir = temp_dir();
  { std::ofstream(dir + "/text") << "not a database at all, just some words"; }
  EXPECT_THROW(restore_sqlite_database(dir + "/text", dir + "/live.sqlite3"), InvalidBackup);
  {
    Db other(dir + "/other.sqlite3");
    other.exec("CREATE TABLE unrelated (x)");
  }
  EXPECT_THROW(restore_sqlite_database(dir + "/other.sqlite3", dir + "/live.sqlite3"),
               InvalidBackup);
  // A damaged page: the header is fine, the integrity check is not.
  {
    Db source(dir + "/source.sqlite3");
    make_transnotes_tables(source);
    source.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
        "INSERT INTO notes (original_text) SELECT printf('%0300d', i) FROM n");
  }
  backup_sqlite_database(dir + "/source.sqlite3", dir + "/damaged.sqlite3");
  {
    std::fstream f(dir + "/damaged.sqlite3", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 * 4);  // a whole b-tree page of the notes table, its header included
    const std::string garbage(4096, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  EXPECT_THROW(restore_sqlite_database(dir + "/damaged.sqlite3", dir + "/live.sqlite3"),
               InvalidBackup);
  EXPECT_FALSE(fs::exists(dir + "/live.sqlite3"));
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename().string().find(".restore-"), std::string::npos)
        << entry.path();
  }
}

}  // namespace
