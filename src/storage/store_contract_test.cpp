// One contract suite for every Store implementation: each test runs against SQLite (a fresh file)
// and PostgreSQL (a fresh schema in $TRANSNOTES_TEST_DATABASE_URL; skipped when unset).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "domain/errors.h"
#include "storage/migration_testing.h"
#include "storage/sqlite_store.h"
#include "storage/storage.h"

namespace transnotes::storage {
namespace {

using namespace std::chrono_literals;

std::string unique_suffix() {
  static std::atomic<int> counter{0};
  return std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

const char* test_postgres_url() { return std::getenv("TRANSNOTES_TEST_DATABASE_URL"); }

// Runs one SQL command on the test Postgres server directly (setup/cleanup only).
void postgres_admin(const std::string& sql) {
  PGconn* conn = PQconnectdb(test_postgres_url());
  const std::string quiet = "SET client_min_messages = warning; " + sql;
  if (PQstatus(conn) == CONNECTION_OK) PQclear(PQexec(conn, quiet.c_str()));
  PQfinish(conn);
}

NoteFields fields(std::string title, std::string text, std::string language = "en") {
  NoteFields f;
  f.title = std::move(title);
  f.original_text = std::move(text);
  f.original_language = std::move(language);
  return f;
}

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres" && test_postgres_url() == nullptr) {
      GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL is unset; start services with "
                      "eval \"$(scripts/services.sh start)\" to run the PostgreSQL contract tests";
    }
    store_ = open_fresh_store();
    store_->migrate();
  }

  void TearDown() override {
    store_.reset();
    for (const auto& dir : sqlite_dirs_) std::filesystem::remove_all(dir);
    for (const auto& schema : pg_schemas_) {
      postgres_admin("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
    }
  }

  // A URL naming a database (SQLite file or Postgres schema) nobody has used yet.
  std::string fresh_database_url() {
    if (GetParam() == "sqlite") {
      auto dir = std::filesystem::temp_directory_path() / ("transnotes_store_" + unique_suffix());
      sqlite_dirs_.push_back(dir);
      return "sqlite://" + (dir / "nested" / "db.sqlite3").string();  // parent dirs are created
    }
    std::string schema = "tn_test_" + unique_suffix();
    pg_schemas_.push_back(schema);
    schema_ = schema;
    std::string url = test_postgres_url();
    return url + (url.find('?') == std::string::npos ? "?" : "&") + "schema=" + schema;
  }

  std::unique_ptr<Store> open_fresh_store() {
    url_ = fresh_database_url();
    return open_url(url_);
  }

  static std::unique_ptr<Store> open_url(const std::string& url) {
    StorageConfig config;
    config.database_url = url;
    config.pool_size = 8;
    return open_store(config);
  }

  Note make_note(const std::string& title = "Title", const std::string& language = "en") {
    return store_->create_note(kOpenModeOwner, fields(title, "Text of " + title, language));
  }

  // Asks for a job that must be new (request_job's kCreated), as the translate path does.
  std::optional<TranslationJob> create_job(std::int64_t note_id, const std::string& source,
                                           const std::string& target, const std::string& engine,
                                           int max_attempts, UserId owner = kOpenModeOwner) {
    JobRequest request;
    request.owner = owner;
    request.note_id = note_id;
    request.source_language = source;
    request.target_language = target;
    request.engine = engine;
    request.max_attempts = max_attempts;
    JobRequestResult result = store_->request_job(request);
    if (result.outcome != JobRequestResult::Outcome::kCreated) return std::nullopt;
    return result.job;
  }

  std::vector<std::int64_t> runnable_ids(int limit) {
    std::vector<std::int64_t> ids;
    for (const JobNotice& notice : store_->runnable_jobs(limit)) ids.push_back(notice.job_id);
    return ids;
  }

  // Runs SQL directly on this test's database (outside the store), failing the test on error.
  // Postgres: in a separate session whose search_path is this test's schema.
  void exec_direct(const std::string& sql) { query_direct(sql); }

  // Runs SQL directly like exec_direct and returns the first column of the first row as an
  // integer (0 when there is no row).
  std::int64_t query_direct(const std::string& sql) {
    std::int64_t value = 0;
    if (GetParam() == "sqlite") {
      sqlite3* db = nullptr;
      EXPECT_EQ(sqlite3_open(url_.substr(std::string("sqlite://").size()).c_str(), &db), SQLITE_OK);
      char* error = nullptr;
      int rc = sqlite3_exec(
          db, sql.c_str(),
          [](void* out, int columns, char** values, char**) {
            if (columns > 0 && values[0] != nullptr) {
              *static_cast<std::int64_t*>(out) = std::atoll(values[0]);
            }
            return 1;  // the first row is all we read
          },
          &value, &error);
      std::string message = error != nullptr ? error : "";
      sqlite3_free(error);
      sqlite3_close(db);
      EXPECT_TRUE(rc == SQLITE_OK || rc == SQLITE_ABORT) << message << "\n" << sql;
      return value;
    }
    PGconn* conn = PQconnectdb(test_postgres_url());
    EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    const std::string full =
        "SET client_min_messages = warning; SET search_path TO " + schema_ + "; " + sql;
    PGresult* result = PQexec(conn, full.c_str());
    const ExecStatusType status = PQresultStatus(result);
    const std::string message = PQresultErrorMessage(result);
    if (status == PGRES_TUPLES_OK && PQntuples(result) > 0 && PQnfields(result) > 0) {
      value = std::atoll(PQgetvalue(result, 0, 0));
    }
    PQclear(result);
    PQfinish(conn);
    EXPECT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) << message << "\n" << sql;
    return value;
  }

  // A timestamp literal in this backend's column type.
  std::string timestamp_literal() const { return GetParam() == "sqlite" ? "1000000" : "now()"; }

  // Points this test at a new, empty database and returns a store for it, migrated only up to
  // `version` (as an older release left it); exec_direct then runs there.
  void use_database_at_version(int version) {
    store_.reset();
    url_ = fresh_database_url();
    StorageConfig config;
    config.database_url = url_;
    migrate_to_version_for_tests(config, version);
  }

  // Stats recomputed from every note (the definition stats() must match).
  Stats recount(UserId owner = kOpenModeOwner) {
    std::map<std::string, std::int64_t> per_language;
    Stats stats;
    for (const Note& note : store_->list_notes(owner, {1'000'000, 0})) {
      ++stats.total_notes;
      if (note.translated_text) ++stats.total_translations;
      ++per_language[note.original_language];
    }
    for (const auto& [language, count] : per_language) {
      stats.language_breakdown.push_back({language, count});
    }
    std::stable_sort(
        stats.language_breakdown.begin(), stats.language_breakdown.end(),
        [](const LanguageCount& a, const LanguageCount& b) { return a.count > b.count; });
    return stats;
  }

  // Gives `note_id` a translation through the job path (create, claim, complete).
  void translate(std::int64_t note_id, const std::string& target, const std::string& text) {
    auto job = create_job(note_id, "en", target, "apertium", 3);
    ASSERT_TRUE(job);
    ASSERT_TRUE(store_->claim_job("translator", 30s, job->id));
    auto done = store_->complete_job(job->id, "translator", text, "apertium");
    ASSERT_TRUE(done.applied);
    ASSERT_TRUE(done.note_version.has_value());
  }

  std::unique_ptr<Store> store_;
  std::string url_;
  std::string schema_;  // Postgres: the schema url_ names
  std::vector<std::filesystem::path> sqlite_dirs_;
  std::vector<std::string> pg_schemas_;
};

TEST_P(StoreContract, CreateAndGetRoundTrip) {
  Note created = store_->create_note(kOpenModeOwner, fields("Hello", "Hello world", "en"));
  EXPECT_GT(created.id, 0);
  EXPECT_EQ(created.title, "Hello");
  EXPECT_EQ(created.original_text, "Hello world");
  EXPECT_EQ(created.original_language, "en");
  EXPECT_FALSE(created.translated_text.has_value());
  EXPECT_FALSE(created.translated_language.has_value());
  EXPECT_EQ(created.version, 1);
  EXPECT_GT(created.created_at, 0);
  EXPECT_EQ(created.created_at, created.updated_at);

  auto fetched = store_->get_note(kOpenModeOwner, created.id);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->id, created.id);
  EXPECT_EQ(fetched->title, created.title);
  EXPECT_EQ(fetched->original_text, created.original_text);
  EXPECT_EQ(fetched->created_at, created.created_at);
  EXPECT_EQ(fetched->updated_at, created.updated_at);
  EXPECT_EQ(fetched->version, 1);
}

TEST_P(StoreContract, MissingNoteIsReportedNotThrown) {
  EXPECT_FALSE(store_->get_note(kOpenModeOwner, 987654).has_value());
  EXPECT_FALSE(store_->update_note(kOpenModeOwner, 987654, fields("a", "b")).has_value());
  EXPECT_FALSE(store_->delete_note(kOpenModeOwner, 987654));
  EXPECT_FALSE(store_->get_job(kOpenModeOwner, 987654).has_value());
  EXPECT_TRUE(store_->latest_jobs_for_note(kOpenModeOwner, 987654).empty());
}

TEST_P(StoreContract, ListIsNewestFirstWithLimitAndOffset) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(make_note(std::string("n").append(std::to_string(i))).id);
  auto all = store_->list_notes(kOpenModeOwner, {100, 0});
  ASSERT_EQ(all.size(), 5u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].id, ids[4 - i]);
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i - 1].created_at, all[i].created_at);

  auto page = store_->list_notes(kOpenModeOwner, {2, 1});
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, ids[3]);
  EXPECT_EQ(page[1].id, ids[2]);
  EXPECT_TRUE(store_->list_notes(kOpenModeOwner, {10, 5}).empty());
  EXPECT_TRUE(store_->list_notes(kOpenModeOwner, {0, 0}).empty());
}

TEST_P(StoreContract, UpdateWritesOnlyGivenFieldsAndBumpsVersion) {
  Note note = store_->create_note(kOpenModeOwner, fields("Old title", "Old text", "en"));
  NoteFields patch;
  patch.title = "New title";
  auto updated = store_->update_note(kOpenModeOwner, note.id, patch);
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->title, "New title");
  EXPECT_EQ(updated->original_text, "Old text");
  EXPECT_EQ(updated->original_language, "en");
  EXPECT_EQ(updated->version, 2);
  EXPECT_EQ(updated->created_at, note.created_at);
  EXPECT_GT(updated->updated_at, note.updated_at);

  NoteFields language_only;
  language_only.original_language = "es";
  auto again = store_->update_note(kOpenModeOwner, note.id, language_only);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->title, "New title");
  EXPECT_EQ(again->original_language, "es");
  EXPECT_EQ(again->version, 3);
  EXPECT_GT(again->updated_at, updated->updated_at);

  auto empty_patch = store_->update_note(kOpenModeOwner, note.id, NoteFields{});
  ASSERT_TRUE(empty_patch.has_value());
  EXPECT_EQ(empty_patch->version, 4);
  EXPECT_EQ(store_->get_note(kOpenModeOwner, note.id)->version, 4);
}

TEST_P(StoreContract, DeleteCascadesJobs) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job.has_value());
  EXPECT_TRUE(store_->delete_note(kOpenModeOwner, note.id));
  EXPECT_FALSE(store_->get_note(kOpenModeOwner, note.id).has_value());
  EXPECT_FALSE(store_->get_job(kOpenModeOwner, job->id).has_value());
  EXPECT_FALSE(store_->delete_note(kOpenModeOwner, note.id));
  EXPECT_TRUE(runnable_ids(10).empty());
}

TEST_P(StoreContract, StatsCountsAndOrdersLanguages) {
  Stats empty = store_->stats(kOpenModeOwner);
  EXPECT_EQ(empty.total_notes, 0);
  EXPECT_EQ(empty.total_translations, 0);
  EXPECT_TRUE(empty.language_breakdown.empty());

  make_note("a", "fr");
  make_note("b", "es");
  make_note("c", "en");
  make_note("d", "es");
  make_note("e", "de");
  Note translated = make_note("f", "en");
  auto job = create_job(translated.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, job->id));
  ASSERT_TRUE(store_->complete_job(job->id, "w", "texto", "apertium").applied);

  Stats stats = store_->stats(kOpenModeOwner);
  EXPECT_EQ(stats.total_notes, 6);
  EXPECT_EQ(stats.total_translations, 1);
  ASSERT_EQ(stats.language_breakdown.size(), 4u);
  EXPECT_EQ(stats.language_breakdown[0].language, "en");
  EXPECT_EQ(stats.language_breakdown[0].count, 2);
  EXPECT_EQ(stats.language_breakdown[1].language, "es");
  EXPECT_EQ(stats.language_breakdown[1].count, 2);
  EXPECT_EQ(stats.language_breakdown[2].language, "de");
  EXPECT_EQ(stats.language_breakdown[3].language, "fr");
  EXPECT_EQ(stats.language_breakdown[3].count, 1);
}

// Renders stats as one comparable string, so a mismatch shows both sides whole.
std::string describe(const Stats& stats) {
  std::string out = "notes=" + std::to_string(stats.total_notes) +
                    " translated=" + std::to_string(stats.total_translations) + " [";
  for (const auto& entry : stats.language_breakdown) {
    out += entry.language + ":" + std::to_string(entry.count) + " ";
  }
  return out + "]";
}

TEST_P(StoreContract, StatsFollowCreateDeleteAndLanguageChange) {
  Note en = make_note("en note", "en");
  Note fr = make_note("fr note", "fr");
  Note translated = make_note("translated en note", "en");
  translate(translated.id, "es", "traducido");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=3 translated=1 [en:2 fr:1 ]");

  ASSERT_TRUE(store_->delete_note(kOpenModeOwner,
                                  translated.id));  // a translated note takes its count along
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=2 translated=0 [en:1 fr:1 ]");

  NoteFields to_german;
  to_german.original_language = "de";
  ASSERT_TRUE(store_->update_note(kOpenModeOwner, fr.id,
                                  to_german));  // fr drops to 0 and leaves the breakdown
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=2 translated=0 [de:1 en:1 ]");

  NoteFields title_only;
  title_only.title = "renamed";
  ASSERT_TRUE(store_->update_note(kOpenModeOwner, en.id, title_only));
  ASSERT_TRUE(
      store_->update_note(kOpenModeOwner, fr.id, to_german));  // same language again: no change
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=2 translated=0 [de:1 en:1 ]");

  translate(fr.id, "en", "translated");
  NoteFields back_to_english;
  back_to_english.original_language = "en";
  ASSERT_TRUE(
      store_->update_note(kOpenModeOwner, fr.id, back_to_english));  // moves its translation along
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=2 translated=1 [en:2 ]");

  ASSERT_TRUE(store_->delete_note(kOpenModeOwner, en.id));
  ASSERT_TRUE(store_->delete_note(kOpenModeOwner, fr.id));
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=0 translated=0 []");
  Note again = make_note("fr again", "fr");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=1 translated=0 [fr:1 ]");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), describe(recount()));
  EXPECT_GT(again.id, 0);
}

TEST_P(StoreContract, StatsCountATranslatedNoteOnceWhateverItsJobs) {
  Note note = make_note("multi", "en");
  make_note("plain", "en");
  translate(note.id, "es", "hola");
  translate(note.id, "fr", "bonjour");  // translated_text was already set: still one
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=2 translated=1 [en:2 ]");

  // A job completed after its note was deleted changes nothing.
  Note doomed = make_note("doomed", "ca");
  auto job = create_job(doomed.id, "ca", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, job->id));
  ASSERT_TRUE(store_->delete_note(kOpenModeOwner, doomed.id));
  EXPECT_FALSE(store_->complete_job(job->id, "w", "late", "apertium").note_version);
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=2 translated=1 [en:2 ]");
}

TEST_P(StoreContract, StatsMatchARecountAfterConcurrentWrites) {
  const std::vector<std::string> languages = {"en", "es", "fr", "de", "ca"};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(static_cast<unsigned>(1000 + t));
      const std::string worker = std::string("w").append(std::to_string(t));
      auto pick = [&] { return languages[random() % languages.size()]; };
      try {
        for (int i = 0; i < 25; ++i) {  // 200 notes in all
          Note note = make_note(std::string("t").append(std::to_string(t * 100 + i)), pick());
          if (i % 4 == 0) {
            auto job = create_job(note.id, note.original_language, "en", "apertium", 3);
            if (!job || !store_->claim_job(worker, 30s, job->id) ||
                !store_->complete_job(job->id, worker, "x", "apertium").applied) {
              throw std::runtime_error("translation path failed");
            }
          }
          if (i % 5 == 1) {  // language changes in both directions contend on counter rows
            NoteFields change;
            change.original_language = pick();
            if (!store_->update_note(kOpenModeOwner, note.id, change))
              throw std::runtime_error("update failed");
          }
          if (i % 3 == 2 && !store_->delete_note(kOpenModeOwner, note.id))
            throw std::runtime_error("delete");
          if (i % 7 == 0) store_->stats(kOpenModeOwner);
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++errors;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(errors.load(), 0);
  Stats stats = store_->stats(kOpenModeOwner);
  EXPECT_EQ(stats.total_notes, 200 - 8 * 8);  // i % 3 == 2 for 8 of each thread's 25
  EXPECT_EQ(describe(stats), describe(recount()));
}

// A database from before the stats counters (schema 1) with notes in it: the upgrade must count
// them, and counting goes on afterwards.
TEST_P(StoreContract, MigrationFromSchema1BackfillsStats) {
  use_database_at_version(1);
  const std::string ts = timestamp_literal();
  exec_direct(
      "INSERT INTO notes (title, original_text, original_language, translated_text, "
      "translated_language, created_at, updated_at) VALUES "
      "('a', 'x', 'es', NULL, NULL, " +
      ts + ", " + ts +
      "), "
      "('b', 'x', 'en', NULL, NULL, " +
      ts + ", " + ts +
      "), "
      "('c', 'x', 'es', 'translated', 'en', " +
      ts + ", " + ts +
      "), "
      "('d', 'x', 'fr', NULL, NULL, " +
      ts + ", " + ts +
      "), "
      "('old', 'x', 'de', NULL, NULL, " +
      ts + ", " + ts + ")");
  store_ = open_url(url_);
  store_->migrate();
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=5 translated=1 [es:2 de:1 en:1 fr:1 ]");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), describe(recount()));

  make_note("e", "fr");  // and counting goes on after the backfill
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=6 translated=1 [es:2 fr:2 de:1 en:1 ]");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), describe(recount()));
}

TEST_P(StoreContract, StatsCountWritesMadeOutsideTheStore) {
  // Another session (another search_path for Postgres) writing notes directly still counts into
  // this database's counters.
  make_note("kept", "en");
  Note gone = make_note("gone", "fr");
  exec_direct("DELETE FROM notes WHERE id = " + std::to_string(gone.id));
  exec_direct("UPDATE notes SET translated_text = 'x', original_language = 'it'");
  if (GetParam() == "postgres") {
    PGconn* conn = PQconnectdb(test_postgres_url());
    ASSERT_EQ(PQstatus(conn), CONNECTION_OK);
    const std::string sql = "INSERT INTO " + schema_ +
                            ".notes (title, original_text, original_language, created_at, "
                            "updated_at) VALUES ('t', 'x', 'it', now(), now())";
    PGresult* result = PQexec(conn, sql.c_str());
    EXPECT_EQ(PQresultStatus(result), PGRES_COMMAND_OK) << PQresultErrorMessage(result);
    PQclear(result);
    PQfinish(conn);
    EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=2 translated=1 [it:2 ]");
  } else {
    EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=1 translated=1 [it:1 ]");
  }
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), describe(recount()));
}

TEST_P(StoreContract, CreateJobOnMissingNoteReturnsNullopt) {
  EXPECT_FALSE(create_job(424242, "en", "es", "apertium", 3).has_value());
  EXPECT_TRUE(runnable_ids(10).empty());
}

TEST_P(StoreContract, CreateJobStartsQueued) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 5);
  ASSERT_TRUE(job.has_value());
  EXPECT_GT(job->id, 0);
  EXPECT_EQ(job->note_id, note.id);
  EXPECT_EQ(job->source_language, "en");
  EXPECT_EQ(job->target_language, "es");
  EXPECT_EQ(job->status, JobStatus::kQueued);
  EXPECT_EQ(job->engine, "apertium");
  EXPECT_EQ(job->attempts, 0);
  EXPECT_EQ(job->max_attempts, 5);
  EXPECT_FALSE(job->text || job->error || job->started_at || job->finished_at);
  auto fetched = store_->get_job(kOpenModeOwner, job->id);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->created_at, job->created_at);
  EXPECT_EQ(fetched->status, JobStatus::kQueued);
}

TEST_P(StoreContract, LatestJobsArePerTargetLanguageNewestFirst) {
  Note note = make_note();
  Note other = make_note("other");
  auto es1 = create_job(note.id, "en", "es", "apertium", 3);
  auto fr1 = create_job(note.id, "en", "fr", "apertium", 3);
  NoteFields new_text;
  new_text.original_text = "changed, so es needs a new job";
  ASSERT_TRUE(store_->update_note(kOpenModeOwner, note.id, new_text));
  auto es2 = create_job(note.id, "en", "es", "marian", 3);
  create_job(other.id, "en", "de", "apertium", 3);
  ASSERT_TRUE(es1 && fr1 && es2);
  auto latest = store_->latest_jobs_for_note(kOpenModeOwner, note.id);
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].id, es2->id);
  EXPECT_EQ(latest[0].engine, "marian");
  EXPECT_EQ(latest[1].id, fr1->id);
}

TEST_P(StoreContract, ClaimSetsLeaseAndReturnsCurrentNoteText) {
  Note note = store_->create_note(kOpenModeOwner, fields("T", "before", "en"));
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  NoteFields patch;
  patch.original_text = "after";
  patch.original_language = "ca";
  ASSERT_TRUE(store_->update_note(kOpenModeOwner, note.id, patch));

  auto claimed = store_->claim_job("worker-1", 30s, std::nullopt);
  ASSERT_TRUE(claimed.has_value());
  EXPECT_EQ(claimed->job.id, job->id);
  EXPECT_EQ(claimed->job.status, JobStatus::kRunning);
  EXPECT_EQ(claimed->job.attempts, 1);
  EXPECT_TRUE(claimed->job.started_at.has_value());
  EXPECT_EQ(claimed->note_text, "after");
  EXPECT_EQ(claimed->note_language, "ca");
  EXPECT_FALSE(store_->claim_job("worker-2", 30s, std::nullopt).has_value());
  EXPECT_FALSE(store_->claim_job("worker-2", 30s, job->id).has_value());
  EXPECT_TRUE(runnable_ids(10).empty());
  EXPECT_EQ(store_->get_job(kOpenModeOwner, job->id)->status, JobStatus::kRunning);
}

TEST_P(StoreContract, ClaimPreferredIdConsidersOnlyThatJob) {
  Note note = make_note();
  auto first = create_job(note.id, "en", "es", "apertium", 3);
  auto second = create_job(note.id, "en", "fr", "apertium", 3);
  ASSERT_TRUE(first && second);
  auto claimed = store_->claim_job("w", 30s, second->id);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->job.id, second->id);
  EXPECT_FALSE(store_->claim_job("w", 30s, 999999).has_value());
  auto rest = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(rest);
  EXPECT_EQ(rest->job.id, first->id);
}

TEST_P(StoreContract, ConcurrentClaimsTakeEachJobExactlyOnce) {
  Note note = make_note();
  std::set<std::int64_t> created;
  for (int i = 0; i < 50; ++i) {
    auto job = create_job(note.id, "en", std::string("t").append(std::to_string(i)), "apertium", 3);
    ASSERT_TRUE(job);
    created.insert(job->id);
  }
  std::mutex mutex;
  std::multiset<std::int64_t> claimed;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      try {
        while (auto job = store_->claim_job("worker-" + std::to_string(t), 60s, std::nullopt)) {
          std::lock_guard lock(mutex);
          claimed.insert(job->job.id);
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++errors;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(claimed.size(), 50u);
  EXPECT_EQ(std::set<std::int64_t>(claimed.begin(), claimed.end()), created);
}

TEST_P(StoreContract, ExpiredLeaseIsReclaimedAndOldWorkerIsRejected) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("crashed", 50ms, std::nullopt));

  std::optional<ClaimedJob> reclaimed;
  for (int i = 0; i < 200 && !reclaimed; ++i) {
    std::this_thread::sleep_for(25ms);
    reclaimed = store_->claim_job("rescuer", 30s, std::nullopt);
  }
  ASSERT_TRUE(reclaimed.has_value());
  EXPECT_EQ(reclaimed->job.id, job->id);
  EXPECT_EQ(reclaimed->job.attempts, 2);

  EXPECT_FALSE(store_->renew_lease(job->id, "crashed", 30s));
  EXPECT_FALSE(store_->complete_job(job->id, "crashed", "stale", "apertium").applied);
  EXPECT_FALSE(store_->fail_job(job->id, "crashed", "boom", std::nullopt));
  EXPECT_FALSE(store_->get_note(kOpenModeOwner, note.id)->translated_text.has_value());

  auto done = store_->complete_job(job->id, "rescuer", "fresh", "apertium");
  EXPECT_TRUE(done.applied);
  EXPECT_EQ(store_->get_note(kOpenModeOwner, note.id)->translated_text, "fresh");
}

TEST_P(StoreContract, ExpiredLeaseWithoutAttemptsLeftFails) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 1);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("crashed", 20ms, std::nullopt));
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(runnable_ids(10).empty());
  EXPECT_FALSE(store_->claim_job("rescuer", 30s, std::nullopt).has_value());
  auto after = store_->get_job(kOpenModeOwner, job->id);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, JobStatus::kFailed);
  EXPECT_TRUE(after->error.has_value());
  EXPECT_TRUE(after->finished_at.has_value());
}

TEST_P(StoreContract, RenewLeaseKeepsTheJob) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w1", 30s, std::nullopt));
  EXPECT_TRUE(store_->renew_lease(job->id, "w1", 60s));
  EXPECT_FALSE(store_->renew_lease(job->id, "w2", 60s));
  EXPECT_FALSE(store_->claim_job("w2", 30s, std::nullopt).has_value());
}

TEST_P(StoreContract, CompleteSetsTranslationWithoutOverwritingConcurrentEdit) {
  Note note = store_->create_note(kOpenModeOwner, fields("Title", "Hello", "en"));
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  auto claimed = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->note_text, "Hello");

  NoteFields edit;
  edit.title = "Edited while translating";
  edit.original_text = "Edited text";
  auto edited = store_->update_note(kOpenModeOwner, note.id, edit);
  ASSERT_TRUE(edited);
  EXPECT_EQ(edited->version, 2);

  auto result = store_->complete_job(job->id, "w", "Hola", "apertium");
  EXPECT_TRUE(result.applied);
  ASSERT_TRUE(result.note_version.has_value());
  EXPECT_EQ(*result.note_version, 3);

  auto after = store_->get_note(kOpenModeOwner, note.id);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->title, "Edited while translating");
  EXPECT_EQ(after->original_text, "Edited text");
  EXPECT_EQ(after->translated_text, "Hola");
  EXPECT_EQ(after->translated_language, "es");
  EXPECT_EQ(after->version, 3);
  EXPECT_GE(after->updated_at, edited->updated_at);

  auto finished = store_->get_job(kOpenModeOwner, job->id);
  ASSERT_TRUE(finished);
  EXPECT_EQ(finished->status, JobStatus::kSucceeded);
  EXPECT_EQ(finished->text, "Hola");
  EXPECT_TRUE(finished->finished_at.has_value());
  EXPECT_FALSE(store_->complete_job(job->id, "w", "again", "apertium").applied);
}

TEST_P(StoreContract, CompleteAfterNoteDeletedDoesNotResurrectIt) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, std::nullopt));
  ASSERT_TRUE(store_->delete_note(kOpenModeOwner, note.id));
  auto result = store_->complete_job(job->id, "w", "Hola", "apertium");
  EXPECT_FALSE(result.note_version.has_value());
  EXPECT_FALSE(store_->get_note(kOpenModeOwner, note.id).has_value());
  EXPECT_EQ(store_->stats(kOpenModeOwner).total_notes, 0);
  EXPECT_TRUE(store_->list_notes(kOpenModeOwner, {10, 0}).empty());
}

TEST_P(StoreContract, FailJobRetriesThenFailsFinally) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, std::nullopt));
  EXPECT_FALSE(store_->fail_job(job->id, "intruder", "nope", std::nullopt));

  // Retry far in the future: queued but neither runnable nor claimable.
  EXPECT_TRUE(store_->fail_job(job->id, "w", "engine crashed", std::chrono::hours(1)));
  auto queued = store_->get_job(kOpenModeOwner, job->id);
  ASSERT_TRUE(queued);
  EXPECT_EQ(queued->status, JobStatus::kQueued);
  EXPECT_EQ(queued->error, "engine crashed");
  EXPECT_EQ(queued->attempts, 1);
  EXPECT_TRUE(runnable_ids(10).empty());
  EXPECT_FALSE(store_->claim_job("w", 30s, std::nullopt).has_value());

  // A second job retried immediately is runnable again and counts attempts.
  auto job2 = create_job(note.id, "en", "fr", "apertium", 3);
  ASSERT_TRUE(job2);
  ASSERT_TRUE(store_->claim_job("w", 30s, job2->id));
  EXPECT_TRUE(store_->fail_job(job2->id, "w", "flaky", 0ms));
  EXPECT_EQ(runnable_ids(10), std::vector<std::int64_t>{job2->id});
  auto again = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job.id, job2->id);
  EXPECT_EQ(again->job.attempts, 2);

  EXPECT_TRUE(store_->fail_job(job2->id, "w", "gave up", std::nullopt));
  auto failed = store_->get_job(kOpenModeOwner, job2->id);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, JobStatus::kFailed);
  EXPECT_EQ(failed->error, "gave up");
  EXPECT_TRUE(failed->finished_at.has_value());
  EXPECT_FALSE(store_->fail_job(job2->id, "w", "twice", std::nullopt));
  EXPECT_FALSE(store_->claim_job("w", 30s, job2->id).has_value());
}

TEST_P(StoreContract, RunnableIdsOldestFirst) {
  EXPECT_TRUE(runnable_ids(10).empty());
  Note note = make_note();
  auto a = create_job(note.id, "en", "es", "apertium", 3);
  auto b = create_job(note.id, "en", "fr", "apertium", 3);
  auto c = create_job(note.id, "en", "de", "apertium", 3);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(runnable_ids(10), (std::vector<std::int64_t>{a->id, b->id, c->id}));
  EXPECT_EQ(runnable_ids(2), (std::vector<std::int64_t>{a->id, b->id}));
}

TEST_P(StoreContract, ReleasedJobIsQueuedAgainWithoutCountingTheTry) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, std::nullopt));
  EXPECT_EQ(store_->get_job(kOpenModeOwner, job->id)->attempts, 1);
  EXPECT_FALSE(store_->release_job(job->id, "intruder"));
  EXPECT_TRUE(store_->release_job(job->id, "w"));
  auto released = store_->get_job(kOpenModeOwner, job->id);
  ASSERT_TRUE(released);
  EXPECT_EQ(released->status, JobStatus::kQueued);
  EXPECT_EQ(released->attempts, 0);
  EXPECT_EQ(runnable_ids(10), (std::vector<std::int64_t>{job->id}));
  EXPECT_FALSE(store_->release_job(job->id, "w"));  // no longer held
  auto again = store_->claim_job("other", 30s, std::nullopt);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job.attempts, 1);
}

TEST_P(StoreContract, MigrateTwiceIsHarmless) {
  store_->migrate();
  store_->migrate();
  Note note = make_note();
  store_->migrate();
  EXPECT_TRUE(store_->get_note(kOpenModeOwner, note.id).has_value());
}

TEST_P(StoreContract, MigrateConcurrentlyFromSeparateStores) {
  const std::string url = fresh_database_url();
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < 4; ++i) stores.push_back(open_url(url));
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (auto& store : stores) {
    threads.emplace_back([&, s = store.get()] {
      try {
        s->migrate();
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++errors;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  Note note = stores[0]->create_note(kOpenModeOwner, fields("after migrate", "x"));
  EXPECT_TRUE(stores[3]->get_note(kOpenModeOwner, note.id).has_value());
}

TEST_P(StoreContract, ConcurrentCreatesGetDistinctIds) {
  std::mutex mutex;
  std::set<std::int64_t> ids;
  std::vector<std::thread> threads;
  for (int t = 0; t < 10; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        try {
          Note note = store_->create_note(
              kOpenModeOwner, fields(std::string("t").append(std::to_string(t)), "body"));
          std::lock_guard lock(mutex);
          ids.insert(note.id);
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ids.size(), 50u);
  EXPECT_EQ(store_->stats(kOpenModeOwner).total_notes, 50);
}

// Concurrent creates may be committed as one batch (Postgres group commit). One note the
// database rejects must fail alone; every other caller gets its own row, identical bodies
// included.
TEST_P(StoreContract, ConcurrentCreatesWithOneBadNoteFailOnlyThatOne) {
  const std::string invalid = std::string("bad \xff bytes", 11);
  std::atomic<int> created{0};
  std::atomic<int> ready{0};
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread> threads;
    ready = 0;
    for (int t = 0; t < 24; ++t) {
      threads.emplace_back([&, t, round] {
        const bool bad = t == 7;
        const std::string title =
            t % 4 == 0 ? "same" : "r" + std::to_string(round) + "t" + std::to_string(t);
        ++ready;
        while (ready < 24) std::this_thread::yield();
        try {
          Note note = store_->create_note(kOpenModeOwner, fields(title, bad ? invalid : "body"));
          EXPECT_EQ(note.title, title);
          EXPECT_EQ(note.original_text, bad ? invalid : "body");
          auto fetched = store_->get_note(kOpenModeOwner, note.id);
          ASSERT_TRUE(fetched);
          EXPECT_EQ(fetched->title, title);
          ++created;
        } catch (const InvalidValue&) {
          EXPECT_TRUE(bad) << "a valid note was rejected along with the bad one";
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
        }
      });
    }
    for (auto& thread : threads) thread.join();
  }
  EXPECT_GE(created.load(), 3 * 23);
  EXPECT_EQ(store_->stats(kOpenModeOwner).total_notes, created.load());
  EXPECT_EQ(store_->list_notes(kOpenModeOwner, {1000, 0}).size(),
            static_cast<std::size_t>(created.load()));
}

// Concurrent stats calls may share one query (Postgres): a call must still see every create
// that had returned before the call started.
TEST_P(StoreContract, ConcurrentStatsSeeEveryEarlierWrite) {
  std::atomic<int> finished_creates{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        try {
          store_->create_note(kOpenModeOwner,
                              fields(std::string("s").append(std::to_string(t)), "body"));
          ++finished_creates;
          const int at_least = finished_creates.load();
          const Stats stats = store_->stats(kOpenModeOwner);
          EXPECT_GE(stats.total_notes, at_least);
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(store_->stats(kOpenModeOwner).total_notes, 8 * 15);
}

TEST_P(StoreContract, UnicodeAndLargeTextRoundTrip) {
  std::string unicode =
      "Ünïcödé — 日本語テキスト 🚀 \"quotes\" 'single' \\backslash; DROP TABLE notes;";
  std::string large;
  while (large.size() < 2'000'000) large += unicode + "\n";
  Note note = store_->create_note(kOpenModeOwner, fields(unicode, large, "ja"));
  auto fetched = store_->get_note(kOpenModeOwner, note.id);
  ASSERT_TRUE(fetched);
  EXPECT_EQ(fetched->title, unicode);
  EXPECT_EQ(fetched->original_text.size(), large.size());
  EXPECT_TRUE(fetched->original_text == large);

  auto job = create_job(note.id, "ja", "en", "marian", 3);
  ASSERT_TRUE(job);
  auto claimed = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(claimed);
  EXPECT_TRUE(claimed->note_text == large);
  ASSERT_TRUE(store_->complete_job(job->id, "w", large, "marian").applied);
  EXPECT_TRUE(store_->get_note(kOpenModeOwner, note.id)->translated_text == large);
  EXPECT_TRUE(store_->get_job(kOpenModeOwner, job->id)->text == large);
}

TEST_P(StoreContract, InvalidUtf8EitherRoundTripsOrIsRejectedCleanly) {
  const std::string invalid = std::string("bad \xff\xfe bytes \xc3", 13);
  try {
    Note note = store_->create_note(kOpenModeOwner, fields("t", invalid));
    EXPECT_EQ(store_->get_note(kOpenModeOwner, note.id)->original_text, invalid);
  } catch (const InvalidValue&) {
    SUCCEED() << "rejected as InvalidValue";  // PostgreSQL text columns only hold valid UTF-8
  }
  EXPECT_EQ(store_->list_notes(kOpenModeOwner, {10, 0}).size(),
            store_->stats(kOpenModeOwner).total_notes + 0u);
  make_note("still works");
}

// ---- Schema upgrades keep what an older release wrote ----

// A database at schema 2 (before users) with notes and jobs: after the upgrade they all belong to
// the open-mode owner, stay reachable, and ids of deleted rows are not handed out again.
TEST_P(StoreContract, MigrationFromSchema2GivesExistingNotesAndJobsToTheOpenModeOwner) {
  use_database_at_version(2);
  const std::string ts = timestamp_literal();
  exec_direct(
      "INSERT INTO notes (title, original_text, original_language, translated_text, "
      "translated_language, created_at, updated_at, version) VALUES "
      "('first', 'Hello', 'en', NULL, NULL, " +
      ts + ", " + ts +
      ", 1), "
      "('second', 'Hola', 'es', 'Hello', 'en', " +
      ts + ", " + ts +
      ", 3), "
      "('third', 'deleted later', 'en', NULL, NULL, " +
      ts + ", " + ts + ", 1)");
  exec_direct(
      "INSERT INTO translation_jobs (note_id, source_language, target_language, status, text, "
      "engine, attempts, max_attempts, created_at, available_at) VALUES "
      "(1, 'en', 'es', 'queued', NULL, 'apertium', 0, 3, " +
      ts + ", " + ts +
      "), "
      "(2, 'es', 'en', 'succeeded', 'Hello', 'apertium', 1, 3, " +
      ts + ", " + ts +
      "), "
      "(3, 'en', 'fr', 'queued', NULL, 'apertium', 0, 3, " +
      ts + ", " + ts + ")");
  // The highest ids are gone before the upgrade (with their job, as the store deletes).
  exec_direct(std::string(GetParam() == "sqlite" ? "PRAGMA foreign_keys = ON; " : "") +
              "DELETE FROM notes WHERE id = 3");

  store_ = open_url(url_);
  store_->migrate();

  auto first = store_->get_note(kOpenModeOwner, 1);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->owner_id, kOpenModeOwner);
  EXPECT_EQ(first->title, "first");
  auto second = store_->get_note(kOpenModeOwner, 2);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->translated_text, "Hello");
  EXPECT_EQ(second->version, 3);
  EXPECT_EQ(store_->list_notes(kOpenModeOwner, {10, 0}).size(), 2u);
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=2 translated=1 [en:1 es:1 ]");

  auto done = store_->get_job(kOpenModeOwner, 2);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->owner_id, kOpenModeOwner);
  EXPECT_EQ(done->text, "Hello");
  EXPECT_FALSE(store_->get_job(kOpenModeOwner, 3));
  EXPECT_EQ(store_->runnable_jobs(10), (std::vector<JobNotice>{{1, kOpenModeOwner}}));
  auto claimed = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->job.id, 1);
  EXPECT_EQ(claimed->job.owner_id, kOpenModeOwner);
  EXPECT_EQ(claimed->note_text, "Hello");
  EXPECT_TRUE(store_->complete_job(1, "w", "Hola", "apertium").note_version.has_value());

  Note newer = make_note("after the upgrade");
  EXPECT_GT(newer.id, 3);
  auto job = create_job(newer.id, "en", "de", "apertium", 3);
  ASSERT_TRUE(job);
  EXPECT_GT(job->id, 3);

  auto user = store_->create_user("alice", "", "hash");
  ASSERT_TRUE(user);
  EXPECT_GE(user->id, 1);
  EXPECT_FALSE(store_->get_note(user->id, 1));
  EXPECT_TRUE(store_->list_notes(user->id, {10, 0}).empty());
}

// ---- Owners: one user's notes and jobs are invisible to another ----

TEST_P(StoreContract, AnotherOwnersNoteAndJobBehaveExactlyLikeMissingOnes) {
  auto alice = store_->create_user("alice", "a@example.com", "hash-a");
  auto bob = store_->create_user("bob", "", "hash-b");
  ASSERT_TRUE(alice && bob);
  Note note = store_->create_note(alice->id, fields("Alice's", "secret", "en"));
  EXPECT_EQ(note.owner_id, alice->id);
  auto job = create_job(note.id, "en", "es", "apertium", 3, alice->id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->owner_id, alice->id);

  EXPECT_FALSE(store_->get_note(bob->id, note.id));
  EXPECT_FALSE(store_->get_note(kOpenModeOwner, note.id));
  EXPECT_TRUE(store_->list_notes(bob->id, {100, 0}).empty());
  EXPECT_FALSE(store_->update_note(bob->id, note.id, fields("stolen", "x")));
  EXPECT_FALSE(store_->delete_note(bob->id, note.id));
  EXPECT_EQ(describe(store_->stats(bob->id)), "notes=0 translated=0 []");
  EXPECT_FALSE(store_->get_job(bob->id, job->id));
  EXPECT_TRUE(store_->latest_jobs_for_note(bob->id, note.id).empty());
  JobRequest request;
  request.owner = bob->id;
  request.note_id = note.id;
  request.source_language = "en";
  request.target_language = "es";
  request.engine = "apertium";
  EXPECT_EQ(store_->request_job(request).outcome, JobRequestResult::Outcome::kNoteNotFound);
  EXPECT_FALSE(store_->request_job(request).job);

  auto kept = store_->get_note(alice->id, note.id);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->title, "Alice's");
  EXPECT_EQ(kept->version, 1);
  EXPECT_EQ(store_->list_notes(alice->id, {100, 0}).size(), 1u);
  EXPECT_EQ(describe(store_->stats(alice->id)), "notes=1 translated=0 [en:1 ]");
  EXPECT_EQ(store_->latest_jobs_for_note(alice->id, note.id).size(), 1u);
  EXPECT_EQ(store_->runnable_jobs(10), (std::vector<JobNotice>{{job->id, alice->id}}));
  auto claimed = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->job.owner_id, alice->id);
  EXPECT_TRUE(store_->delete_note(alice->id, note.id));
}

TEST_P(StoreContract, ListsAndStatsAreEachOwnersOwn) {
  auto alice = store_->create_user("alice", "", "h");
  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(alice && bob);
  std::vector<std::int64_t> alice_ids;
  for (int i = 0; i < 3; ++i) {
    alice_ids.push_back(
        store_
            ->create_note(alice->id, fields(std::string("a").append(std::to_string(i)), "x", "fr"))
            .id);
    store_->create_note(bob->id, fields(std::string("b").append(std::to_string(i)), "x", "de"));
  }
  make_note("open", "en");
  auto listed = store_->list_notes(alice->id, {100, 0});
  ASSERT_EQ(listed.size(), 3u);
  for (std::size_t i = 0; i < listed.size(); ++i) EXPECT_EQ(listed[i].id, alice_ids[2 - i]);
  auto page = store_->list_notes(alice->id, {1, 1});
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].id, alice_ids[1]);
  EXPECT_EQ(describe(store_->stats(alice->id)), "notes=3 translated=0 [fr:3 ]");
  EXPECT_EQ(describe(store_->stats(bob->id)), "notes=3 translated=0 [de:3 ]");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=1 translated=0 [en:1 ]");
}

TEST_P(StoreContract, CreateNoteForAnUnknownOwnerThrowsUnknownUser) {
  EXPECT_THROW(store_->create_note(987654, fields("t", "x")), UnknownUser);
  auto gone = store_->create_user("gone", "", "h");
  ASSERT_TRUE(gone);
  ASSERT_TRUE(store_->delete_user(gone->id));
  EXPECT_THROW(store_->create_note(gone->id, fields("t", "x")), UnknownUser);
  EXPECT_TRUE(store_->list_notes(gone->id, {10, 0}).empty());
  EXPECT_EQ(describe(store_->stats(gone->id)), "notes=0 translated=0 []");
}

// Concurrent creates may be committed as one batch (Postgres group commit): a create for a
// deleted user fails alone with UnknownUser.
TEST_P(StoreContract, ConcurrentCreatesWithOneUnknownOwnerFailOnlyThatOne) {
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  std::atomic<int> created{0};
  std::atomic<int> refused{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      const UserId owner = t == 5 ? 424242 : alice->id;
      ++ready;
      while (ready < 16) std::this_thread::yield();
      try {
        Note note =
            store_->create_note(owner, fields(std::string("t").append(std::to_string(t)), "body"));
        EXPECT_EQ(note.owner_id, alice->id);
        ++created;
      } catch (const UnknownUser&) {
        EXPECT_EQ(t, 5);
        ++refused;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(created.load(), 15);
  EXPECT_EQ(refused.load(), 1);
  EXPECT_EQ(store_->list_notes(alice->id, {100, 0}).size(), 15u);
  EXPECT_EQ(store_->stats(alice->id).total_notes, 15);
}

// ---- request_job: not found, created, existing, owner queue full ----

JobRequest job_request(UserId owner, std::int64_t note_id, const std::string& target,
                       int max_active = 0) {
  JobRequest request;
  request.owner = owner;
  request.note_id = note_id;
  request.source_language = "en";
  request.target_language = target;
  request.engine = "apertium";
  request.max_attempts = 4;
  request.max_active_per_owner = max_active;
  return request;
}

TEST_P(StoreContract, RequestJobCreatesThenReturnsTheActiveJobForTheSameText) {
  using Outcome = JobRequestResult::Outcome;
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  EXPECT_EQ(store_->request_job(job_request(alice->id, 424242, "es")).outcome,
            Outcome::kNoteNotFound);
  Note note = store_->create_note(alice->id, fields("t", "Hello", "en"));

  auto first = store_->request_job(job_request(alice->id, note.id, "es"));
  ASSERT_EQ(first.outcome, Outcome::kCreated);
  ASSERT_TRUE(first.job);
  EXPECT_EQ(first.job->owner_id, alice->id);
  EXPECT_EQ(first.job->note_id, note.id);
  EXPECT_EQ(first.job->status, JobStatus::kQueued);
  EXPECT_EQ(first.job->engine, "apertium");
  EXPECT_EQ(first.job->max_attempts, 4);

  auto again = store_->request_job(job_request(alice->id, note.id, "es"));
  EXPECT_EQ(again.outcome, Outcome::kExisting);
  ASSERT_TRUE(again.job);
  EXPECT_EQ(again.job->id, first.job->id);

  auto other_target = store_->request_job(job_request(alice->id, note.id, "fr"));
  EXPECT_EQ(other_target.outcome, Outcome::kCreated);

  ASSERT_TRUE(store_->claim_job("w", 30s, first.job->id));  // running still counts as active
  auto while_running = store_->request_job(job_request(alice->id, note.id, "es"));
  EXPECT_EQ(while_running.outcome, Outcome::kExisting);
  EXPECT_EQ(while_running.job->id, first.job->id);
  EXPECT_EQ(while_running.job->status, JobStatus::kRunning);

  // The text changed: the running job translates the old text, so a new one is needed.
  NoteFields edit;
  edit.original_text = "Hello again";
  ASSERT_TRUE(store_->update_note(alice->id, note.id, edit));
  auto after_edit = store_->request_job(job_request(alice->id, note.id, "es"));
  ASSERT_EQ(after_edit.outcome, Outcome::kCreated);
  EXPECT_NE(after_edit.job->id, first.job->id);
  EXPECT_EQ(store_->request_job(job_request(alice->id, note.id, "es")).job->id, after_edit.job->id);

  // So did the language, with the same text.
  NoteFields language;
  language.original_language = "ca";
  ASSERT_TRUE(store_->update_note(alice->id, note.id, language));
  EXPECT_EQ(store_->request_job(job_request(alice->id, note.id, "es")).outcome, Outcome::kCreated);

  // A finished job is not active: asking again makes a new one.
  ASSERT_TRUE(store_->complete_job(first.job->id, "w", "Hola", "apertium").applied);
  auto fr_claim = store_->claim_job("w", 30s, other_target.job->id);
  ASSERT_TRUE(fr_claim);
  ASSERT_TRUE(store_->fail_job(other_target.job->id, "w", "broken", std::nullopt));
  NoteFields back;
  back.original_language = "en";
  back.original_text = "Hello";
  ASSERT_TRUE(store_->update_note(alice->id, note.id, back));
  EXPECT_EQ(store_->request_job(job_request(alice->id, note.id, "fr")).outcome, Outcome::kCreated);
  auto es_again = store_->request_job(job_request(alice->id, note.id, "es"));
  EXPECT_EQ(es_again.outcome, Outcome::kCreated);  // the job for "Hello" succeeded
  EXPECT_NE(es_again.job->id, first.job->id);
}

TEST_P(StoreContract, RequestJobRefusesWhenTheOwnersQueueIsFull) {
  using Outcome = JobRequestResult::Outcome;
  auto alice = store_->create_user("alice", "", "h");
  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(alice && bob);
  Note a1 = store_->create_note(alice->id, fields("a1", "one"));
  Note a2 = store_->create_note(alice->id, fields("a2", "two"));
  Note b1 = store_->create_note(bob->id, fields("b1", "three"));

  auto es = store_->request_job(job_request(alice->id, a1.id, "es", 2));
  auto fr = store_->request_job(job_request(alice->id, a2.id, "fr", 2));
  ASSERT_EQ(es.outcome, Outcome::kCreated);
  ASSERT_EQ(fr.outcome, Outcome::kCreated);
  auto full = store_->request_job(job_request(alice->id, a1.id, "de", 2));
  EXPECT_EQ(full.outcome, Outcome::kOwnerQueueFull);
  EXPECT_FALSE(full.job);
  // De-duplication comes first: the job that exists is still answered.
  EXPECT_EQ(store_->request_job(job_request(alice->id, a1.id, "es", 2)).outcome,
            Outcome::kExisting);
  // Without a cap, or for another owner, there is room.
  EXPECT_EQ(store_->request_job(job_request(bob->id, b1.id, "de", 2)).outcome, Outcome::kCreated);
  EXPECT_EQ(store_->request_job(job_request(alice->id, a1.id, "it", 0)).outcome, Outcome::kCreated);

  // Finished jobs free their places.
  auto claimed = store_->claim_job("w", 30s, es.job->id);
  ASSERT_TRUE(claimed);
  ASSERT_TRUE(store_->complete_job(es.job->id, "w", "x", "apertium").applied);
  auto claimed_fr = store_->claim_job("w", 30s, fr.job->id);
  ASSERT_TRUE(claimed_fr);
  ASSERT_TRUE(store_->fail_job(fr.job->id, "w", "x", std::nullopt));
  EXPECT_EQ(store_->request_job(job_request(alice->id, a1.id, "de", 2)).outcome,
            Outcome::kCreated);  // "it" and "de" are active now
  EXPECT_EQ(store_->request_job(job_request(alice->id, a2.id, "pt", 2)).outcome,
            Outcome::kOwnerQueueFull);
}

TEST_P(StoreContract, ConcurrentRequestsForOneNoteAndTargetMakeOneJob) {
  using Outcome = JobRequestResult::Outcome;
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  // A few rounds, since one burst may happen to run one after another; with and without a cap.
  for (int round = 0; round < 10; ++round) {
    const int cap = round % 2 == 0 ? 0 : 50;  // with a cap, the owner lock is taken too
    Note note = store_->create_note(
        alice->id, fields("t", std::string("Hello ").append(std::to_string(round))));
    std::mutex mutex;
    std::vector<JobRequestResult> results;
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        ++ready;
        while (ready < 8) std::this_thread::yield();
        try {
          auto result = store_->request_job(job_request(alice->id, note.id, "es", cap));
          std::lock_guard lock(mutex);
          results.push_back(result);
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
        }
      });
    }
    for (auto& thread : threads) thread.join();
    ASSERT_EQ(results.size(), 8u);
    std::set<std::int64_t> ids;
    int created = 0;
    for (const auto& result : results) {
      ASSERT_TRUE(result.job);
      ids.insert(result.job->id);
      if (result.outcome == Outcome::kCreated)
        ++created;
      else
        EXPECT_EQ(result.outcome, Outcome::kExisting);
    }
    EXPECT_EQ(created, 1) << "round " << round;
    EXPECT_EQ(ids.size(), 1u) << "round " << round;
  }
}

// Requests for different notes of one owner race for the last places; a few rounds, since one
// burst may happen to run one after another.
TEST_P(StoreContract, ConcurrentRequestsNeverExceedTheOwnersCap) {
  using Outcome = JobRequestResult::Outcome;
  constexpr int kThreads = 8;
  for (int round = 0; round < 10; ++round) {
    auto user = store_->create_user(std::string("user").append(std::to_string(round)), "", "h");
    ASSERT_TRUE(user);
    std::vector<Note> notes;
    for (int i = 0; i < kThreads; ++i) {
      notes.push_back(store_->create_note(
          user->id, fields("n", std::string("text ").append(std::to_string(i)))));
    }
    std::atomic<int> created{0};
    std::atomic<int> full{0};
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ++ready;
        while (ready < kThreads) std::this_thread::yield();
        try {
          auto result = store_->request_job(job_request(user->id, notes[t].id, "es", 3));
          if (result.outcome == Outcome::kCreated) ++created;
          if (result.outcome == Outcome::kOwnerQueueFull) ++full;
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
        }
      });
    }
    for (auto& thread : threads) thread.join();
    ASSERT_EQ(created.load(), 3) << "round " << round;
    EXPECT_EQ(full.load(), kThreads - 3);
  }
  EXPECT_EQ(store_->runnable_jobs(100).size(), 30u);
}

// A job's result goes only into a note that still exists and still belongs to the job's owner.
TEST_P(StoreContract, CompleteJobWritesOnlyIntoTheJobOwnersNote) {
  auto alice = store_->create_user("alice", "", "h");
  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(alice && bob);
  Note note = store_->create_note(alice->id, fields("t", "Hello"));
  auto job = create_job(note.id, "en", "es", "apertium", 3, alice->id);
  ASSERT_TRUE(job);
  auto claimed = store_->claim_job("w", 30s, job->id);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->job.owner_id, alice->id);
  // A job whose owner is not the note's (which the store never creates) must not write into it.
  exec_direct("UPDATE translation_jobs SET owner_id = " + std::to_string(bob->id) +
              " WHERE id = " + std::to_string(job->id));
  auto result = store_->complete_job(job->id, "w", "Hola", "apertium");
  EXPECT_TRUE(result.applied);
  EXPECT_FALSE(result.note_version);
  auto untouched = store_->get_note(alice->id, note.id);
  ASSERT_TRUE(untouched);
  EXPECT_FALSE(untouched->translated_text);
  EXPECT_EQ(untouched->version, 1);
  EXPECT_EQ(store_->stats(alice->id).total_translations, 0);
}

// ---- Users ----

TEST_P(StoreContract, UsersAreUniqueCaseInsensitivelyAndFoundThatWay) {
  auto alice = store_->create_user("Alice", "alice@example.com", "hash-1");
  ASSERT_TRUE(alice);
  EXPECT_GE(alice->id, 1);
  EXPECT_EQ(alice->username, "Alice");
  EXPECT_EQ(alice->email, "alice@example.com");
  EXPECT_EQ(alice->password_hash, "hash-1");
  EXPECT_TRUE(alice->is_active);
  EXPECT_GT(alice->date_joined, 0);
  EXPECT_FALSE(store_->create_user("alice", "", "h"));
  EXPECT_FALSE(store_->create_user("ALICE", "", "h"));

  auto found = store_->find_user("aLiCe");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, alice->id);
  EXPECT_EQ(found->username, "Alice");
  EXPECT_EQ(found->date_joined, alice->date_joined);
  EXPECT_FALSE(store_->find_user("alic"));
  auto by_id = store_->get_user(alice->id);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->username, "Alice");
  EXPECT_EQ(by_id->password_hash, "hash-1");

  EXPECT_TRUE(store_->set_password_hash(alice->id, "hash-2"));
  EXPECT_EQ(store_->find_user("alice")->password_hash, "hash-2");
  EXPECT_FALSE(store_->set_password_hash(424242, "x"));

  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(bob);
  EXPECT_GT(bob->id, alice->id);
  auto users = store_->list_users();
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].id, alice->id);
  EXPECT_EQ(users[1].id, bob->id);
}

TEST_P(StoreContract, TheReservedOpenModeOwnerIsNeverAUser) {
  EXPECT_TRUE(store_->list_users().empty());
  EXPECT_FALSE(store_->get_user(kOpenModeOwner));
  EXPECT_FALSE(store_->find_user(""));
  EXPECT_FALSE(store_->delete_user(kOpenModeOwner));
  EXPECT_FALSE(store_->set_password_hash(kOpenModeOwner, "known"));
  EXPECT_FALSE(store_->delete_user(424242));
  // Open-mode notes still work, the row is still there.
  Note note = make_note();
  EXPECT_TRUE(store_->get_note(kOpenModeOwner, note.id));
  auto user = store_->create_user("carol", "", "h");
  ASSERT_TRUE(user);
  EXPECT_NE(user->id, kOpenModeOwner);
  EXPECT_EQ(store_->list_users().size(), 1u);
}

TEST_P(StoreContract, ConcurrentRegistrationsOfOneNameMakeOneUser) {
  std::atomic<int> created{0};
  std::atomic<int> taken{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string name = t % 2 == 0 ? "dave" : "DAVE";
      ++ready;
      while (ready < 8) std::this_thread::yield();
      try {
        if (store_->create_user(name, "", std::string("h").append(std::to_string(t)))) {
          ++created;
        } else {
          ++taken;
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(taken.load(), 7);
  EXPECT_EQ(store_->list_users().size(), 1u);
}

TEST_P(StoreContract, DeleteUserTakesEverythingOfTheirsAlong) {
  auto alice = store_->create_user("alice", "", "h");
  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(alice && bob);
  Note note = store_->create_note(alice->id, fields("t", "x", "fr"));
  auto job = create_job(note.id, "fr", "en", "apertium", 3, alice->id);
  ASSERT_TRUE(job);
  Note bobs = store_->create_note(bob->id, fields("t", "y", "fr"));
  auto bobs_job = create_job(bobs.id, "fr", "en", "apertium", 3, bob->id);
  ASSERT_TRUE(bobs_job);
  const Timestamp later = now_micros() + 3'600'000'000;
  store_->blacklist_token("alice-token", alice->id, later);
  store_->blacklist_token("bob-token", bob->id, later);
  ASSERT_FALSE(store_->reserve_idempotency_key(alice->id, "k", "fp", 0));
  ASSERT_FALSE(store_->reserve_idempotency_key(bob->id, "k", "fp", 0));

  EXPECT_TRUE(store_->delete_user(alice->id));
  EXPECT_FALSE(store_->get_user(alice->id));
  EXPECT_FALSE(store_->find_user("alice"));
  EXPECT_FALSE(store_->get_note(alice->id, note.id));
  EXPECT_FALSE(store_->get_job(alice->id, job->id));
  EXPECT_EQ(describe(store_->stats(alice->id)), "notes=0 translated=0 []");
  EXPECT_FALSE(store_->is_token_blacklisted("alice-token"));
  EXPECT_EQ(store_->runnable_jobs(10), (std::vector<JobNotice>{{bobs_job->id, bob->id}}));
  const std::string alice_id = std::to_string(alice->id);
  EXPECT_EQ(query_direct("SELECT count(*) FROM notes WHERE owner_id = " + alice_id), 0);
  EXPECT_EQ(query_direct("SELECT count(*) FROM translation_jobs WHERE owner_id = " + alice_id), 0);
  EXPECT_EQ(query_direct("SELECT count(*) FROM idempotency_keys WHERE owner_id = " + alice_id), 0);
  EXPECT_EQ(query_direct("SELECT count(*) FROM note_stats WHERE owner_id = " + alice_id), 0);
  EXPECT_FALSE(store_->delete_user(alice->id));

  // Bob keeps everything.
  EXPECT_TRUE(store_->get_note(bob->id, bobs.id));
  EXPECT_TRUE(store_->get_job(bob->id, bobs_job->id));
  EXPECT_TRUE(store_->is_token_blacklisted("bob-token"));
  EXPECT_TRUE(store_->reserve_idempotency_key(bob->id, "k", "fp", 0));
  EXPECT_EQ(describe(store_->stats(bob->id)), "notes=1 translated=0 [fr:1 ]");
  // The name is free again.
  EXPECT_TRUE(store_->create_user("Alice", "", "h"));
}

// ---- Token blacklist ----

TEST_P(StoreContract, BlacklistedTokensAreRememberedAndExpiredOnesPurged) {
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  const Timestamp later = now_micros() + 3'600'000'000;
  EXPECT_FALSE(store_->is_token_blacklisted("jti-1"));
  store_->blacklist_token("jti-1", alice->id, later);
  store_->blacklist_token("jti-1", alice->id, later);  // idempotent
  EXPECT_TRUE(store_->is_token_blacklisted("jti-1"));
  EXPECT_FALSE(store_->is_token_blacklisted("jti-2"));

  store_->blacklist_token("expired", alice->id, now_micros() - 1'000'000);
  EXPECT_EQ(query_direct("SELECT count(*) FROM token_blacklist"), 2);
  store_->blacklist_token("jti-3", alice->id, later);  // purges what expired
  EXPECT_EQ(query_direct("SELECT count(*) FROM token_blacklist"), 2);
  EXPECT_FALSE(store_->is_token_blacklisted("expired"));
  EXPECT_TRUE(store_->is_token_blacklisted("jti-1"));
  EXPECT_TRUE(store_->is_token_blacklisted("jti-3"));

  store_->blacklist_token("of-nobody", 424242, later);  // a deleted user's token: no row, no error
  EXPECT_FALSE(store_->is_token_blacklisted("of-nobody"));
}

// ---- Idempotency keys ----

TEST_P(StoreContract, IdempotencyKeysReserveFinishReleaseAndExpire) {
  auto alice = store_->create_user("alice", "", "h");
  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(alice && bob);
  const Timestamp long_ago = 0;

  EXPECT_FALSE(store_->reserve_idempotency_key(alice->id, "key-1", "POST /notes abc", long_ago));
  auto running = store_->reserve_idempotency_key(alice->id, "key-1", "POST /notes xyz", long_ago);
  ASSERT_TRUE(running);
  EXPECT_EQ(running->status, 0);
  EXPECT_EQ(running->fingerprint, "POST /notes abc");
  EXPECT_GT(running->created_at, 0);
  // Keys are per owner.
  EXPECT_FALSE(store_->reserve_idempotency_key(bob->id, "key-1", "POST /notes abc", long_ago));
  EXPECT_FALSE(
      store_->reserve_idempotency_key(kOpenModeOwner, "key-1", "POST /notes abc", long_ago));

  store_->finish_idempotency_key(alice->id, "key-1", 201, "{\"id\":1}", "/notes/1");
  auto done = store_->reserve_idempotency_key(alice->id, "key-1", "POST /notes abc", long_ago);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, 201);
  EXPECT_EQ(done->body, "{\"id\":1}");
  EXPECT_EQ(done->location, "/notes/1");
  EXPECT_EQ(done->created_at, running->created_at);
  store_->release_idempotency_key(alice->id, "key-1");  // finished: release leaves it
  EXPECT_EQ(store_->reserve_idempotency_key(alice->id, "key-1", "x", long_ago)->status, 201);

  // A failed request frees its key for a retry.
  EXPECT_FALSE(store_->reserve_idempotency_key(alice->id, "key-2", "fp", long_ago));
  store_->release_idempotency_key(alice->id, "key-2");
  EXPECT_FALSE(store_->reserve_idempotency_key(alice->id, "key-2", "fp-retry", long_ago));
  EXPECT_EQ(store_->reserve_idempotency_key(alice->id, "key-2", "x", long_ago)->fingerprint,
            "fp-retry");

  // An expired key counts as absent: reserved anew, its old answer gone.
  const Timestamp everything_older = now_micros() + 3'600'000'000;
  EXPECT_FALSE(store_->reserve_idempotency_key(alice->id, "key-1", "fresh", everything_older));
  auto renewed = store_->reserve_idempotency_key(alice->id, "key-1", "x", long_ago);
  ASSERT_TRUE(renewed);
  EXPECT_EQ(renewed->status, 0);
  EXPECT_EQ(renewed->fingerprint, "fresh");
  EXPECT_EQ(renewed->body, "");

  EXPECT_THROW(store_->reserve_idempotency_key(424242, "key-1", "fp", long_ago), UnknownUser);
}

TEST_P(StoreContract, ConcurrentReservationsOfOneKeyLetOneRequestRun) {
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  std::atomic<int> free_answers{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      ++ready;
      while (ready < 8) std::this_thread::yield();
      try {
        if (!store_->reserve_idempotency_key(alice->id, "same", "fp", 0)) ++free_answers;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(free_answers.load(), 1);
}

// ---- reassign_notes: handing an owner's notes (e.g. open mode's) to a real account ----

TEST_P(StoreContract, ReassignNotesMovesNotesJobsAndStatsButNotIdempotencyKeys) {
  auto alice = store_->create_user("alice", "", "h");
  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(alice && bob);
  Note first = make_note("first", "en");
  Note second = make_note("second", "en");
  Note third = make_note("third", "fr");
  translate(first.id, "es", "Primero");
  auto queued = create_job(second.id, "en", "de", "apertium", 3);
  ASSERT_TRUE(queued);
  Note bobs = store_->create_note(bob->id, fields("bob's", "x", "en"));
  Note alices = store_->create_note(alice->id, fields("alice's", "x", "it"));
  ASSERT_FALSE(store_->reserve_idempotency_key(kOpenModeOwner, "key", "fp", 0));
  store_->finish_idempotency_key(kOpenModeOwner, "key", 201, "{}", "/notes/1");

  EXPECT_EQ(store_->reassign_notes(kOpenModeOwner, bob->id), 3);

  EXPECT_EQ(describe(store_->stats(bob->id)), "notes=4 translated=1 [en:3 fr:1 ]");
  EXPECT_EQ(describe(store_->stats(bob->id)), describe(recount(bob->id)));
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=0 translated=0 []");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), describe(recount(kOpenModeOwner)));
  EXPECT_EQ(describe(store_->stats(alice->id)), "notes=1 translated=0 [it:1 ]");
  EXPECT_TRUE(store_->get_note(alice->id, alices.id));

  EXPECT_TRUE(store_->list_notes(kOpenModeOwner, {100, 0}).empty());
  auto listed = store_->list_notes(bob->id, {100, 0});
  ASSERT_EQ(listed.size(), 4u);
  EXPECT_EQ(listed[0].id, bobs.id);
  for (const Note& note : {first, second, third}) {
    EXPECT_FALSE(store_->get_note(kOpenModeOwner, note.id));
    auto moved = store_->get_note(bob->id, note.id);
    ASSERT_TRUE(moved);
    EXPECT_EQ(moved->owner_id, bob->id);
    EXPECT_EQ(moved->title, note.title);
  }
  EXPECT_EQ(store_->get_note(bob->id, first.id)->translated_text, "Primero");
  EXPECT_EQ(store_->get_note(bob->id, first.id)->version, 2);  // the translation's bump only

  EXPECT_FALSE(store_->get_job(kOpenModeOwner, queued->id));
  EXPECT_TRUE(store_->latest_jobs_for_note(kOpenModeOwner, first.id).empty());
  ASSERT_EQ(store_->latest_jobs_for_note(bob->id, first.id).size(), 1u);
  EXPECT_EQ(store_->latest_jobs_for_note(bob->id, first.id)[0].owner_id, bob->id);
  EXPECT_EQ(query_direct("SELECT count(*) FROM translation_jobs WHERE owner_id = 0"), 0);
  EXPECT_EQ(store_->runnable_jobs(10), (std::vector<JobNotice>{{queued->id, bob->id}}));
  auto claimed = store_->claim_job("w", 30s, queued->id);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->job.owner_id, bob->id);
  auto done = store_->complete_job(queued->id, "w", "Zweiter", "apertium");
  EXPECT_TRUE(done.note_version.has_value());  // the note of the job's (new) owner
  EXPECT_EQ(describe(store_->stats(bob->id)), "notes=4 translated=2 [en:3 fr:1 ]");

  // Idempotency keys answer for the account that sent them, so they stay with it.
  auto kept = store_->reserve_idempotency_key(kOpenModeOwner, "key", "fp", 0);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->status, 201);
  EXPECT_FALSE(store_->reserve_idempotency_key(bob->id, "key", "fp", 0));

  // The moved notes are bob's like any other: edits and deletes keep his counters exact.
  ASSERT_TRUE(store_->update_note(bob->id, third.id, fields("third", "x", "de")));
  ASSERT_TRUE(store_->delete_note(bob->id, second.id));
  EXPECT_FALSE(store_->update_note(kOpenModeOwner, first.id, fields("stolen", "x")));
  EXPECT_EQ(describe(store_->stats(bob->id)), "notes=3 translated=1 [en:2 de:1 ]");
  EXPECT_EQ(describe(store_->stats(bob->id)), describe(recount(bob->id)));

  // And back: kOpenModeOwner is a users row, and moving into an owner with notes merges.
  make_note("new open note", "en");
  EXPECT_EQ(store_->reassign_notes(bob->id, kOpenModeOwner), 3);
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=4 translated=1 [en:3 de:1 ]");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), describe(recount(kOpenModeOwner)));
  EXPECT_EQ(describe(store_->stats(bob->id)), "notes=0 translated=0 []");
}

// notes_version (issue 13) is what a cached list page is checked against, so it must change
// with every kind of write to an owner's notes, whoever makes it, and with nothing else.
TEST_P(StoreContract, NotesVersionChangesWithEveryWriteOfTheOwnersNotesAndNothingElse) {
  auto alice = store_->create_user("alice", "", "h");
  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(alice && bob);
  const UserId a = alice->id;
  const UserId b = bob->id;
  std::map<UserId, std::int64_t> last;
  for (UserId owner : {a, b}) {
    auto version = store_->notes_version(owner);
    ASSERT_TRUE(version.has_value());
    last[owner] = *version;
  }
  // Checks that exactly the owners in `changed` have a new (greater) version since the last check.
  auto expect_versions = [&](const std::string& what, std::set<UserId> changed) {
    for (UserId owner : {a, b}) {
      const std::int64_t now = store_->notes_version(owner).value_or(-1);
      if (changed.count(owner) != 0) {
        EXPECT_GT(now, last[owner]) << what << ": owner " << owner;
      } else {
        EXPECT_EQ(now, last[owner]) << what << ": owner " << owner;
      }
      last[owner] = now;
    }
  };

  Note note = store_->create_note(a, fields("t", "Hello", "en"));
  expect_versions("create", {a});
  Note other = store_->create_note(a, fields("u", "World", "en"));
  expect_versions("second create", {a});

  EXPECT_TRUE(store_->get_note(a, note.id));
  EXPECT_EQ(store_->list_notes(a, {100, 0}).size(), 2u);
  store_->stats(a);
  auto job = create_job(note.id, "en", "es", "apertium", 3, a);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, job->id));
  EXPECT_TRUE(store_->renew_lease(job->id, "w", 30s));
  store_->latest_jobs_for_note(a, note.id);
  expect_versions("reads and job bookkeeping", {});

  NoteFields title_only;
  title_only.title = "new title";
  ASSERT_TRUE(store_->update_note(a, note.id, title_only));
  expect_versions("patch", {a});
  EXPECT_FALSE(store_->update_note(b, note.id, title_only));
  EXPECT_FALSE(store_->delete_note(b, note.id));
  expect_versions("writes that found no note", {});

  ASSERT_TRUE(store_->complete_job(job->id, "w", "Hola", "apertium").note_version);
  expect_versions("translation landing", {a});

  store_->create_note(b, fields("b", "Bob's", "fr"));
  expect_versions("another owner's create", {b});
  EXPECT_EQ(store_->reassign_notes(b, a), 1);
  expect_versions("reassign", {a, b});

  EXPECT_TRUE(store_->delete_note(a, other.id));
  expect_versions("delete", {a});

  exec_direct("UPDATE notes SET title = 'edited outside' WHERE id = " + std::to_string(note.id));
  expect_versions("a write outside the store", {a});

  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i) {
    writers.emplace_back([&, i] {
      store_->create_note(b, fields(std::string("c").append(std::to_string(i)), "x"));
    });
  }
  for (auto& writer : writers) writer.join();
  expect_versions("concurrent creates", {b});

  EXPECT_TRUE(store_->delete_user(a));
  expect_versions("delete_user", {a});
  EXPECT_TRUE(store_->list_notes(a, {100, 0}).empty());
  expect_versions("reads after delete_user", {});
}

// More connections than PostgreSQL's counter shards (pid % 16), so some share a shard and lock
// the same counter rows: batched creates of two owners in many languages, language changes,
// patches, deletes and moves between the owners, all at once, must never deadlock (an error
// here would reach a client), and every owner's version and stats must still add up.
TEST_P(StoreContract, ConcurrentWritersSharingCounterShardsNeverDeadlock) {
  auto alice = store_->create_user("alice", "", "h");
  auto bob = store_->create_user("bob", "", "h");
  ASSERT_TRUE(alice && bob);
  const std::array<UserId, 2> owners = {alice->id, bob->id};
  StorageConfig config;
  config.database_url = url_;
  config.pool_size = 24;
  auto store = open_store(config);
  const std::vector<std::string> languages = {"ca", "de", "en", "es", "fr"};
  std::atomic<int> errors{0};
  std::atomic<std::int64_t> deleted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 24; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(static_cast<unsigned>(7000 + t));
      auto pick = [&] { return languages[random() % languages.size()]; };
      try {
        for (int i = 0; i < 20; ++i) {
          const UserId owner = owners[random() % 2];
          Note note = store->create_note(owner, fields("n", "text", pick()));
          NoteFields change;
          change.original_language = pick();
          if (i % 2 == 0) change.title = "patched";
          store->update_note(owner, note.id, change);  // may have moved meanwhile: no error
          if (i % 3 == 1 && store->delete_note(owner, note.id)) ++deleted;
          if (t % 8 == 0 && i % 5 == 4) {
            store->reassign_notes(owner, owner == owners[0] ? owners[1] : owners[0]);
          }
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++errors;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  std::int64_t total = 0;
  for (UserId owner : owners) {
    const auto notes = store->list_notes(owner, {1000, 0});
    total += static_cast<std::int64_t>(notes.size());
    EXPECT_EQ(store->stats(owner).total_notes, static_cast<std::int64_t>(notes.size()));
  }
  EXPECT_EQ(total, 24 * 20 - deleted.load());
}

TEST_P(StoreContract, ReassignNotesToAnUnknownUserThrowsAndMovesNothing) {
  Note note = make_note("kept", "en");
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  EXPECT_THROW(store_->reassign_notes(kOpenModeOwner, 987654), UnknownUser);
  auto gone = store_->create_user("gone", "", "h");
  ASSERT_TRUE(gone);
  ASSERT_TRUE(store_->delete_user(gone->id));
  EXPECT_THROW(store_->reassign_notes(kOpenModeOwner, gone->id), UnknownUser);
  EXPECT_THROW(store_->reassign_notes(987654, 987654), UnknownUser);

  EXPECT_TRUE(store_->get_note(kOpenModeOwner, note.id));
  EXPECT_TRUE(store_->get_job(kOpenModeOwner, job->id));
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=1 translated=0 [en:1 ]");
  EXPECT_EQ(describe(store_->stats(gone->id)), "notes=0 translated=0 []");

  EXPECT_EQ(store_->reassign_notes(kOpenModeOwner, kOpenModeOwner), 0);
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  EXPECT_EQ(store_->reassign_notes(987654, alice->id), 0);  // an owner without notes
  EXPECT_EQ(store_->reassign_notes(alice->id, kOpenModeOwner), 0);
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=1 translated=0 [en:1 ]");
  EXPECT_EQ(describe(store_->stats(alice->id)), "notes=0 translated=0 []");
  EXPECT_TRUE(store_->get_job(kOpenModeOwner, job->id));
}

// Creates (with jobs) for `from` and language changes of `to`'s notes run while the notes move:
// each note ends up whole with one owner (note and job together), and both owners' counters
// match a recount. The language changes lock two counter rows of `to`, as the move does.
TEST_P(StoreContract, ReassignNotesDuringConcurrentWritesKeepsEveryNoteWholeAndStatsExact) {
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  const std::vector<std::string> languages = {"de", "en", "es", "fr"};
  std::vector<std::int64_t> alices;
  for (const auto& language : languages) {
    alices.push_back(store_->create_note(alice->id, fields("a", "x", language)).id);
  }
  constexpr int kBefore = 120;
  for (int i = 0; i < kBefore; ++i) make_note("before", languages[i % languages.size()]);

  constexpr int kCreators = 4;
  constexpr int kPerCreator = 12;
  std::atomic<int> created{0};
  std::atomic<int> creators_done{0};
  std::atomic<bool> moves_done{false};
  std::mutex ids_mutex;
  std::vector<std::pair<std::int64_t, std::int64_t>> note_and_job;  // job 0: none requested
  std::vector<std::thread> threads;
  for (int t = 0; t < kCreators; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kPerCreator; ++i) {
          Note note = make_note("during", languages[(t + i) % languages.size()]);
          std::int64_t job_id = 0;
          if (i % 2 == 0) {
            JobRequest request;
            request.owner = kOpenModeOwner;
            request.note_id = note.id;
            request.source_language = note.original_language;
            request.target_language = "it";
            request.engine = "apertium";
            request.max_attempts = 3;
            JobRequestResult result = store_->request_job(request);
            // Moved in between: the note is alice's now, so open mode cannot ask for it.
            if (result.job) job_id = result.job->id;
          }
          std::lock_guard lock(ids_mutex);
          note_and_job.emplace_back(note.id, job_id);
          ++created;
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
      ++creators_done;
    });
  }
  for (std::size_t u = 0; u < alices.size(); ++u) {
    threads.emplace_back([&, u] {
      try {
        for (std::size_t i = u + 1; !moves_done; ++i) {
          const std::string& language = languages[i % languages.size()];
          ASSERT_TRUE(store_->update_note(alice->id, alices[u], fields("a", "x", language)));
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  }

  std::int64_t moved = 0;
  // Moves run while creators are part-way through: once some notes exist, then repeatedly.
  while (created < kCreators && creators_done < kCreators) std::this_thread::yield();
  for (int round = 0; round < 5; ++round) {
    moved += store_->reassign_notes(kOpenModeOwner, alice->id);
    const int seen = created;
    while (created == seen && creators_done < kCreators) std::this_thread::yield();
  }
  moves_done = true;
  for (auto& thread : threads) thread.join();

  int with_alice = 0;
  for (const auto& [note_id, job_id] : note_and_job) {
    const bool open = store_->get_note(kOpenModeOwner, note_id).has_value();
    const bool alices_now = store_->get_note(alice->id, note_id).has_value();
    ASSERT_NE(open, alices_now) << "note " << note_id;
    with_alice += alices_now ? 1 : 0;
    if (job_id != 0) {
      const UserId owner = alices_now ? alice->id : kOpenModeOwner;
      auto job = store_->get_job(owner, job_id);
      ASSERT_TRUE(job) << "job " << job_id << " of note " << note_id;
      EXPECT_EQ(job->owner_id, owner);
    }
  }
  EXPECT_EQ(query_direct("SELECT count(*) FROM translation_jobs j JOIN notes n ON n.id = j.note_id "
                         "WHERE j.owner_id <> n.owner_id"),
            0);
  EXPECT_EQ(moved, kBefore + with_alice);
  EXPECT_GT(moved, kBefore);
  const Stats open_stats = store_->stats(kOpenModeOwner);
  const Stats alice_stats = store_->stats(alice->id);
  EXPECT_EQ(describe(open_stats), describe(recount(kOpenModeOwner)));
  EXPECT_EQ(describe(alice_stats), describe(recount(alice->id)));
  EXPECT_EQ(open_stats.total_notes + alice_stats.total_notes,
            4 + kBefore + kCreators * kPerCreator);
}

// ---- Job administration (issue 11) ----

TEST_P(StoreContract, RequestIdIsStoredAndReadWithEveryJob) {
  Note note = make_note();
  JobRequest request = job_request(kOpenModeOwner, note.id, "es");
  request.request_id = "req-7f3a";
  auto created = store_->request_job(request);
  ASSERT_EQ(created.outcome, JobRequestResult::Outcome::kCreated);
  EXPECT_EQ(created.job->request_id, "req-7f3a");
  EXPECT_FALSE(created.job->cancel_requested);
  EXPECT_EQ(store_->get_job(kOpenModeOwner, created.job->id)->request_id, "req-7f3a");
  EXPECT_EQ(store_->list_jobs({})[0].request_id, "req-7f3a");
  auto claimed = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->job.request_id, "req-7f3a");
  EXPECT_EQ(claimed->note_text, "Text of Title");
  EXPECT_EQ(claimed->note_language, "en");
  // A request without one stores "".
  auto plain = create_job(note.id, "en", "fr", "apertium", 3);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->request_id, "");
}

TEST_P(StoreContract, ListJobsIsEveryOwnersNewestFirstFilteredAndPaged) {
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  Note mine = make_note();
  Note hers = store_->create_note(alice->id, fields("t", "x"));
  auto a = create_job(mine.id, "en", "es", "apertium", 3);
  auto b = create_job(hers.id, "en", "es", "apertium", 3, alice->id);
  auto c = create_job(mine.id, "en", "fr", "apertium", 3);
  ASSERT_TRUE(a && b && c);
  ASSERT_TRUE(store_->claim_job("w", 30s, b->id));
  ASSERT_TRUE(store_->fail_job(b->id, "w", "broken", std::nullopt));

  auto ids = [](const std::vector<TranslationJob>& jobs) {
    std::vector<std::int64_t> out;
    for (const auto& job : jobs) out.push_back(job.id);
    return out;
  };
  using Ids = std::vector<std::int64_t>;
  EXPECT_EQ(ids(store_->list_jobs({})), (Ids{c->id, b->id, a->id}));
  JobFilter failed;
  failed.status = JobStatus::kFailed;
  auto failed_jobs = store_->list_jobs(failed);
  ASSERT_EQ(ids(failed_jobs), (Ids{b->id}));
  EXPECT_EQ(failed_jobs[0].owner_id, alice->id);
  EXPECT_EQ(failed_jobs[0].error, "broken");
  JobFilter of_note;
  of_note.note_id = mine.id;
  EXPECT_EQ(ids(store_->list_jobs(of_note)), (Ids{c->id, a->id}));
  JobFilter queued_of_note = of_note;
  queued_of_note.status = JobStatus::kQueued;
  queued_of_note.limit = 1;
  EXPECT_EQ(ids(store_->list_jobs(queued_of_note)), (Ids{c->id}));
  queued_of_note.before_id = c->id;
  EXPECT_EQ(ids(store_->list_jobs(queued_of_note)), (Ids{a->id}));
  queued_of_note.before_id = a->id;
  EXPECT_TRUE(store_->list_jobs(queued_of_note).empty());
  JobFilter none;
  none.limit = 0;
  EXPECT_TRUE(store_->list_jobs(none).empty());
  JobFilter cancelled;
  cancelled.status = JobStatus::kCancelled;
  EXPECT_TRUE(store_->list_jobs(cancelled).empty());
}

TEST_P(StoreContract, RetryJobRequeuesFailedAndCancelledJobsOnly) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 2);
  ASSERT_TRUE(job);
  EXPECT_FALSE(store_->retry_job(999999));
  try {
    store_->retry_job(job->id);
    ADD_FAILURE() << "a queued job was retried";
  } catch (const Conflict& e) {
    EXPECT_STREQ(e.what(),
                 "Only failed or cancelled translations can be retried; this one is queued.");
  }
  ASSERT_TRUE(store_->claim_job("w", 30s, job->id));
  EXPECT_THROW(store_->retry_job(job->id), Conflict);
  ASSERT_TRUE(store_->fail_job(job->id, "w", "first", 0ms));
  ASSERT_TRUE(store_->claim_job("w", 30s, job->id));
  ASSERT_TRUE(store_->fail_job(job->id, "w", "broken", std::nullopt));
  ASSERT_EQ(store_->get_job(kOpenModeOwner, job->id)->attempts, 2);

  auto retried = store_->retry_job(job->id);
  ASSERT_TRUE(retried);
  EXPECT_EQ(retried->status, JobStatus::kQueued);
  EXPECT_EQ(retried->attempts, 0);
  EXPECT_FALSE(retried->error);
  EXPECT_FALSE(retried->text);
  EXPECT_FALSE(retried->finished_at);
  EXPECT_FALSE(retried->started_at);
  EXPECT_EQ(store_->get_job(kOpenModeOwner, job->id)->status, JobStatus::kQueued);
  EXPECT_EQ(runnable_ids(10), (std::vector<std::int64_t>{job->id}));  // due now
  auto claimed = store_->claim_job("w2", 30s, std::nullopt);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->job.attempts, 1);
  ASSERT_TRUE(store_->complete_job(job->id, "w2", "Hola", "apertium").applied);
  EXPECT_THROW(store_->retry_job(job->id), Conflict);  // succeeded

  auto cancelled = create_job(note.id, "en", "fr", "apertium", 3);
  ASSERT_TRUE(cancelled);
  ASSERT_TRUE(store_->cancel_job(cancelled->id));
  auto again = store_->retry_job(cancelled->id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, JobStatus::kQueued);
  EXPECT_FALSE(again->finished_at);
  EXPECT_FALSE(again->cancel_requested);
  EXPECT_EQ(runnable_ids(10), (std::vector<std::int64_t>{cancelled->id}));
}

TEST_P(StoreContract, RetryFailedJobsRequeuesEveryFailedJobOfEveryOwner) {
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  Note mine = make_note();
  Note hers = store_->create_note(alice->id, fields("t", "x"));
  auto failed_mine = create_job(mine.id, "en", "es", "apertium", 1);
  auto failed_hers = create_job(hers.id, "en", "es", "apertium", 1, alice->id);
  auto succeeded = create_job(mine.id, "en", "de", "apertium", 1);
  auto queued = create_job(mine.id, "en", "fr", "apertium", 1);
  auto cancelled = create_job(mine.id, "en", "it", "apertium", 1);
  ASSERT_TRUE(failed_mine && failed_hers && succeeded && queued && cancelled);
  for (auto id : {failed_mine->id, failed_hers->id}) {
    ASSERT_TRUE(store_->claim_job("w", 30s, id));
    ASSERT_TRUE(store_->fail_job(id, "w", "broken", std::nullopt));
  }
  ASSERT_TRUE(store_->claim_job("w", 30s, succeeded->id));
  ASSERT_TRUE(store_->complete_job(succeeded->id, "w", "x", "apertium").applied);
  ASSERT_TRUE(store_->cancel_job(cancelled->id));

  auto notices = store_->retry_failed_jobs();
  std::sort(notices.begin(), notices.end(),
            [](const JobNotice& a, const JobNotice& b) { return a.job_id < b.job_id; });
  EXPECT_EQ(notices, (std::vector<JobNotice>{{failed_mine->id, kOpenModeOwner},
                                             {failed_hers->id, alice->id}}));
  EXPECT_EQ(store_->get_job(alice->id, failed_hers->id)->status, JobStatus::kQueued);
  EXPECT_EQ(store_->get_job(alice->id, failed_hers->id)->attempts, 0);
  EXPECT_EQ(store_->get_job(kOpenModeOwner, succeeded->id)->status, JobStatus::kSucceeded);
  EXPECT_EQ(store_->get_job(kOpenModeOwner, cancelled->id)->status, JobStatus::kCancelled);
  EXPECT_TRUE(store_->retry_failed_jobs().empty());
}

TEST_P(StoreContract, CancelQueuedJobEndsItAtOnceAndNoWorkerClaimsIt) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  EXPECT_FALSE(store_->cancel_job(999999));
  const Timestamp before = now_micros();
  auto cancelled = store_->cancel_job(job->id);
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->status, JobStatus::kCancelled);
  ASSERT_TRUE(cancelled->finished_at);
  EXPECT_GE(*cancelled->finished_at, before - 1'000'000);  // the database's clock, same host
  EXPECT_FALSE(cancelled->cancel_requested);
  EXPECT_TRUE(runnable_ids(10).empty());
  EXPECT_FALSE(store_->claim_job("w", 30s, std::nullopt));
  EXPECT_FALSE(store_->claim_job("w", 30s, job->id));
  try {
    store_->cancel_job(job->id);
    ADD_FAILURE() << "a cancelled job was cancelled again";
  } catch (const Conflict& e) {
    EXPECT_STREQ(e.what(),
                 "Only queued or running translations can be cancelled; this one has already "
                 "ended as cancelled.");
  }
  EXPECT_EQ(store_->get_job(kOpenModeOwner, job->id)->status, JobStatus::kCancelled);
}

TEST_P(StoreContract, CancelRunningJobAsksItsWorkerToStop) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w1", 30s, std::nullopt));
  EXPECT_FALSE(store_->cancel_requested(job->id));
  auto asked = store_->cancel_job(job->id);
  ASSERT_TRUE(asked);
  EXPECT_EQ(asked->status, JobStatus::kRunning);
  EXPECT_TRUE(asked->cancel_requested);
  EXPECT_FALSE(asked->finished_at);
  EXPECT_TRUE(store_->cancel_requested(job->id));
  EXPECT_TRUE(store_->get_job(kOpenModeOwner, job->id)->cancel_requested);
  // Asking twice is harmless; the job is still running.
  EXPECT_EQ(store_->cancel_job(job->id)->status, JobStatus::kRunning);
  EXPECT_TRUE(store_->renew_lease(job->id, "w1", 30s));

  EXPECT_FALSE(store_->finish_cancelled(job->id, "someone-else"));
  EXPECT_TRUE(store_->finish_cancelled(job->id, "w1"));
  auto ended = store_->get_job(kOpenModeOwner, job->id);
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->status, JobStatus::kCancelled);
  EXPECT_TRUE(ended->finished_at);
  EXPECT_FALSE(ended->cancel_requested);
  EXPECT_FALSE(store_->cancel_requested(job->id));
  EXPECT_FALSE(store_->finish_cancelled(job->id, "w1"));
  EXPECT_FALSE(store_->renew_lease(job->id, "w1", 30s));
  EXPECT_FALSE(store_->complete_job(job->id, "w1", "late", "apertium").applied);
  EXPECT_FALSE(store_->get_note(kOpenModeOwner, note.id)->translated_text);
  EXPECT_FALSE(store_->claim_job("w2", 30s, std::nullopt));
  EXPECT_THROW(store_->cancel_job(job->id), Conflict);
  EXPECT_FALSE(store_->cancel_requested(424242));
}

TEST_P(StoreContract, ACancelRequestedJobEndsCancelledUnlessItsResultArrived) {
  Note note = make_note();
  auto completes = create_job(note.id, "en", "es", "apertium", 3);
  auto fails = create_job(note.id, "en", "fr", "apertium", 3);
  auto fails_finally = create_job(note.id, "en", "de", "apertium", 3);
  auto released = create_job(note.id, "en", "it", "apertium", 3);
  ASSERT_TRUE(completes && fails && fails_finally && released);
  for (auto id : {completes->id, fails->id, fails_finally->id, released->id}) {
    ASSERT_TRUE(store_->claim_job("w", 30s, id));
    ASSERT_TRUE(store_->cancel_job(id));
  }
  // The result arrived: it is kept.
  auto done = store_->complete_job(completes->id, "w", "Hola", "apertium");
  EXPECT_TRUE(done.applied);
  EXPECT_TRUE(done.note_version);
  auto succeeded = store_->get_job(kOpenModeOwner, completes->id);
  EXPECT_EQ(succeeded->status, JobStatus::kSucceeded);
  EXPECT_FALSE(succeeded->cancel_requested);
  // A failed attempt is not retried, a final failure and a release end cancelled too.
  EXPECT_TRUE(store_->fail_job(fails->id, "w", "engine died", 0ms));
  EXPECT_TRUE(store_->fail_job(fails_finally->id, "w", "engine died", std::nullopt));
  EXPECT_TRUE(store_->release_job(released->id, "w"));
  for (auto id : {fails->id, fails_finally->id, released->id}) {
    auto job = store_->get_job(kOpenModeOwner, id);
    ASSERT_TRUE(job);
    EXPECT_EQ(job->status, JobStatus::kCancelled) << id;
    EXPECT_TRUE(job->finished_at) << id;
    EXPECT_FALSE(job->cancel_requested) << id;
  }
  EXPECT_EQ(store_->get_job(kOpenModeOwner, fails->id)->error, "engine died");
  EXPECT_TRUE(runnable_ids(10).empty());
  EXPECT_FALSE(store_->claim_job("w", 30s, std::nullopt));
}

TEST_P(StoreContract, ACancelRequestedJobWhoseWorkerDiedEndsCancelledInsteadOfRunningAgain) {
  Note note = make_note();
  auto job = create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("crashed", 20ms, std::nullopt));
  ASSERT_TRUE(store_->cancel_job(job->id));
  std::this_thread::sleep_for(100ms);  // the lease runs out: no event to wait for
  EXPECT_TRUE(runnable_ids(10).empty());
  EXPECT_FALSE(store_->claim_job("rescuer", 30s, std::nullopt));
  auto ended = store_->get_job(kOpenModeOwner, job->id);
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->status, JobStatus::kCancelled);
  EXPECT_TRUE(ended->finished_at);
  EXPECT_FALSE(store_->finish_cancelled(job->id, "crashed"));
}

TEST_P(StoreContract, ACancelledJobIsNotActiveForDeduplicationOrTheOwnersCap) {
  using Outcome = JobRequestResult::Outcome;
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  Note note = store_->create_note(alice->id, fields("t", "Hello"));
  auto queued = store_->request_job(job_request(alice->id, note.id, "es", 1));
  ASSERT_EQ(queued.outcome, Outcome::kCreated);
  ASSERT_TRUE(store_->cancel_job(queued.job->id));
  auto after_cancel = store_->request_job(job_request(alice->id, note.id, "es", 1));
  ASSERT_EQ(after_cancel.outcome, Outcome::kCreated);
  EXPECT_NE(after_cancel.job->id, queued.job->id);

  // Still running while its worker has not stopped yet, but asked to: no longer active either.
  ASSERT_TRUE(store_->claim_job("w", 30s, after_cancel.job->id));
  ASSERT_TRUE(store_->cancel_job(after_cancel.job->id));
  auto while_stopping = store_->request_job(job_request(alice->id, note.id, "es", 1));
  ASSERT_EQ(while_stopping.outcome, Outcome::kCreated);
  EXPECT_NE(while_stopping.job->id, after_cancel.job->id);
  EXPECT_EQ(store_->request_job(job_request(alice->id, note.id, "es", 1)).job->id,
            while_stopping.job->id);
  EXPECT_EQ(store_->request_job(job_request(alice->id, note.id, "fr", 1)).outcome,
            Outcome::kOwnerQueueFull);
}

TEST_P(StoreContract, ConcurrentCancelsAndClaimsNeverLetACancelledJobRun) {
  Note note = make_note();
  std::vector<std::int64_t> jobs;
  for (int i = 0; i < 80; ++i) {
    auto job = create_job(note.id, "en", std::string("t").append(std::to_string(i)), "apertium", 3);
    ASSERT_TRUE(job);
    jobs.push_back(job->id);
  }
  std::mutex mutex;
  std::set<std::int64_t> claimed;
  std::map<std::int64_t, TranslationJob> cancel_results;
  std::vector<std::thread> threads;
  // Every thread goes through all jobs in its own random order, so claims and cancels of one job
  // meet at all sorts of moments.
  for (int t = 0; t < 4; ++t) {
    std::vector<std::int64_t> order = jobs;
    std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(t)));
    threads.emplace_back([&, t, order] {
      try {
        for (auto id : order) {
          if (t == 0) {
            auto result = store_->cancel_job(id);
            EXPECT_TRUE(result);
            std::lock_guard lock(mutex);
            if (result) cancel_results[id] = *result;
          } else if (auto job = store_->claim_job("worker-" + std::to_string(t), 60s, id)) {
            std::lock_guard lock(mutex);
            EXPECT_TRUE(claimed.insert(job->job.id).second) << "claimed twice: " << id;
          }
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();

  ASSERT_EQ(cancel_results.size(), jobs.size());
  for (auto id : jobs) {
    const TranslationJob& answer = cancel_results[id];
    const TranslationJob stored = *store_->get_job(kOpenModeOwner, id);
    if (claimed.count(id) != 0) {
      // Claimed before the cancel: its worker is told to stop.
      EXPECT_EQ(answer.status, JobStatus::kRunning) << id;
      EXPECT_TRUE(answer.cancel_requested) << id;
      EXPECT_EQ(stored.status, JobStatus::kRunning) << id;
      EXPECT_TRUE(store_->cancel_requested(id)) << id;
    } else {
      EXPECT_EQ(answer.status, JobStatus::kCancelled) << id;
      EXPECT_EQ(stored.status, JobStatus::kCancelled) << id;
      EXPECT_EQ(stored.attempts, 0) << id;
    }
  }
  EXPECT_TRUE(runnable_ids(100).empty());
}

TEST_P(StoreContract, PurgeJobsDeletesOnlyJobsThatEndedBeforeTheTimestamp) {
  Note note = make_note();
  auto succeeded = create_job(note.id, "en", "es", "apertium", 1);
  auto failed = create_job(note.id, "en", "fr", "apertium", 1);
  auto cancelled = create_job(note.id, "en", "de", "apertium", 1);
  ASSERT_TRUE(succeeded && failed && cancelled);
  const Timestamp before_any_ended = now_micros() - 1'000'000;
  ASSERT_TRUE(store_->claim_job("w", 30s, succeeded->id));
  ASSERT_TRUE(store_->complete_job(succeeded->id, "w", "Hola", "apertium").applied);
  ASSERT_TRUE(store_->claim_job("w", 30s, failed->id));
  ASSERT_TRUE(store_->fail_job(failed->id, "w", "x", std::nullopt));
  ASSERT_TRUE(store_->cancel_job(cancelled->id));
  auto queued = create_job(note.id, "en", "it", "apertium", 1);
  auto running = create_job(note.id, "en", "pt", "apertium", 1);
  ASSERT_TRUE(queued && running);
  ASSERT_TRUE(store_->claim_job("w", 30s, running->id));

  EXPECT_EQ(store_->purge_jobs(before_any_ended), 0);
  EXPECT_EQ(store_->list_jobs({}).size(), 5u);
  EXPECT_EQ(store_->purge_jobs(now_micros() + 3'600'000'000), 3);
  std::set<std::int64_t> left;
  for (const auto& job : store_->list_jobs({})) left.insert(job.id);
  EXPECT_EQ(left, (std::set<std::int64_t>{queued->id, running->id}));
  auto kept = store_->get_note(kOpenModeOwner, note.id);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->translated_text, "Hola");
  EXPECT_EQ(describe(store_->stats(kOpenModeOwner)), "notes=1 translated=1 [en:1 ]");
  EXPECT_EQ(store_->purge_jobs(now_micros() + 3'600'000'000), 0);
}

TEST_P(StoreContract, JobSummaryCountsEveryStatusAndTheOldestQueuedJob) {
  JobSummary empty = store_->job_summary();
  EXPECT_EQ(empty.by_status.size(), 5u);
  for (const auto& [status, count] : empty.by_status) EXPECT_EQ(count, 0) << to_string(status);
  EXPECT_FALSE(empty.oldest_queued_created_at);

  Note note = make_note();
  auto first = create_job(note.id, "en", "es", "apertium", 1);
  auto second = create_job(note.id, "en", "fr", "apertium", 1);
  auto third = create_job(note.id, "en", "de", "apertium", 1);
  auto fourth = create_job(note.id, "en", "it", "apertium", 1);
  ASSERT_TRUE(first && second && third && fourth);
  ASSERT_TRUE(store_->claim_job("w", 30s, first->id));
  ASSERT_TRUE(store_->fail_job(first->id, "w", "x", std::nullopt));
  ASSERT_TRUE(store_->claim_job("w", 30s, second->id));
  ASSERT_TRUE(store_->cancel_job(fourth->id));

  JobSummary summary = store_->job_summary();
  EXPECT_EQ(summary.by_status[JobStatus::kQueued], 1);
  EXPECT_EQ(summary.by_status[JobStatus::kRunning], 1);
  EXPECT_EQ(summary.by_status[JobStatus::kSucceeded], 0);
  EXPECT_EQ(summary.by_status[JobStatus::kFailed], 1);
  EXPECT_EQ(summary.by_status[JobStatus::kCancelled], 1);
  EXPECT_EQ(summary.oldest_queued_created_at, third->created_at);
}

TEST_P(StoreContract, PoolStatsDescribeTheConnectionPool) {
  make_note();  // opens at least one connection
  PoolStats idle = store_->pool_stats();
  EXPECT_EQ(idle.capacity, 8);
  EXPECT_GE(idle.size, 1);
  EXPECT_LE(idle.size, idle.capacity);
  EXPECT_EQ(idle.in_use, 0);
  EXPECT_EQ(idle.waiting, 0);
}

TEST_P(StoreContract, SetStaffGrantsAndRevokesAndEveryUserReadCarriesIt) {
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  EXPECT_FALSE(alice->is_staff);
  EXPECT_TRUE(store_->set_staff(alice->id, true));
  EXPECT_TRUE(store_->get_user(alice->id)->is_staff);
  EXPECT_TRUE(store_->find_user("ALICE")->is_staff);
  EXPECT_TRUE(store_->list_users().at(0).is_staff);
  EXPECT_TRUE(store_->set_staff(alice->id, false));
  EXPECT_FALSE(store_->get_user(alice->id)->is_staff);
  EXPECT_FALSE(store_->set_staff(424242, true));
  EXPECT_FALSE(store_->set_staff(kOpenModeOwner, true));
}

TEST_P(StoreContract, MigrationFromSchema3KeepsJobsAndUsersAndAcceptsCancelled) {
  use_database_at_version(3);
  const std::string ts = timestamp_literal();
  const std::string yes = GetParam() == "sqlite" ? "1" : "true";
  exec_direct(
      "INSERT INTO users (username, email, password_hash, is_active, date_joined) "
      "VALUES ('alice', 'a@example.com', 'hash', " +
      yes + ", " + ts + ")");
  exec_direct(
      "INSERT INTO notes (owner_id, title, original_text, original_language, created_at, "
      "updated_at, version) VALUES (1, 'n', 'Hello', 'en', " +
      ts + ", " + ts + ", 1)");
  exec_direct(
      "INSERT INTO translation_jobs (note_id, owner_id, source_language, target_language, "
      "source_digest, status, text, error, engine, attempts, max_attempts, created_at, "
      "finished_at, available_at) VALUES "
      "(1, 1, 'en', 'es', 'd1', 'queued', NULL, NULL, 'apertium', 0, 3, " +
      ts + ", NULL, " + ts +
      "), (1, 1, 'en', 'fr', 'd2', 'failed', NULL, 'broken', 'apertium', 3, 3, " + ts + ", " + ts +
      ", " + ts + "), (1, 1, 'en', 'de', 'd3', 'queued', NULL, NULL, 'apertium', 0, 3, " + ts +
      ", NULL, " + ts + ")");
  exec_direct("DELETE FROM translation_jobs WHERE id = 3");  // its id is never handed out again

  store_ = open_url(url_);
  store_->migrate();

  auto alice = store_->find_user("alice");
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice->id, 1);
  EXPECT_EQ(alice->email, "a@example.com");
  EXPECT_FALSE(alice->is_staff);
  auto failed = store_->get_job(1, 2);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, JobStatus::kFailed);
  EXPECT_EQ(failed->error, "broken");
  EXPECT_EQ(failed->attempts, 3);
  EXPECT_EQ(failed->request_id, "");
  EXPECT_FALSE(failed->cancel_requested);
  EXPECT_EQ(store_->list_jobs({}).size(), 2u);

  auto cancelled = store_->cancel_job(1);
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->status, JobStatus::kCancelled);
  EXPECT_EQ(store_->retry_job(2)->status, JobStatus::kQueued);
  EXPECT_TRUE(store_->set_staff(alice->id, true));
  JobRequest request = job_request(alice->id, 1, "it");
  request.request_id = "after-upgrade";
  auto created = store_->request_job(request);
  ASSERT_EQ(created.outcome, JobRequestResult::Outcome::kCreated);
  EXPECT_GT(created.job->id, 3);
  EXPECT_EQ(created.job->request_id, "after-upgrade");
  EXPECT_EQ(store_->job_summary().by_status[JobStatus::kCancelled], 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// ---- Settings and failure handling (not part of the shared contract) ----

TEST(OpenStore, RejectsBadSettingsWithOneLineMessage) {
  for (std::string url : {"", "mysql://x", "sqlite:", "sqlite:///:memory:", "ftp"}) {
    StorageConfig config;
    config.database_url = url;
    try {
      open_store(config);
      ADD_FAILURE() << "accepted " << url;
    } catch (const Unavailable&) {
      ADD_FAILURE() << "bad setting reported as Unavailable: " << url;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("database URL"), std::string::npos) << e.what();
    }
  }
  StorageConfig bad_pool;
  bad_pool.database_url = "sqlite:x.db";
  bad_pool.pool_size = 0;
  EXPECT_THROW(open_store(bad_pool), Error);
  StorageConfig bad_pg;
  bad_pg.database_url = "postgresql://host:5432/db?nonsense_param=1";
  EXPECT_THROW(open_store(bad_pg), Error);
  bad_pg.database_url = "postgresql://host/db?schema=bad;name";
  EXPECT_THROW(open_store(bad_pg), Error);
}

TEST(OpenStore, SqliteRelativeUrlCreatesFile) {
  auto dir = std::filesystem::temp_directory_path() / ("transnotes_rel_" + unique_suffix());
  std::filesystem::create_directories(dir);
  auto old = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  {
    StorageConfig config;
    config.database_url = "sqlite:sub/rel.db";
    auto store = open_store(config);
    store->migrate();
    store->create_note(kOpenModeOwner, fields("a", "b"));
  }
  std::filesystem::current_path(old);
  EXPECT_TRUE(std::filesystem::exists(dir / "sub" / "rel.db"));
  std::filesystem::remove_all(dir);
}

// The durability setting reaches every connection: synchronous reads back 2 (FULL, the
// default) or 1 (NORMAL), also on connections the pool opens under concurrent load.
TEST(SqliteDurability, ConnectionsRunWithTheConfiguredSynchronousMode) {
  for (auto [sync, expected] :
       {std::pair{SqliteSync::kFull, 2}, std::pair{SqliteSync::kNormal, 1}}) {
    auto dir = std::filesystem::temp_directory_path() / ("transnotes_sync_" + unique_suffix());
    {
      StorageConfig config;
      config.database_url = "sqlite://" + (dir / "db.sqlite3").string();
      config.pool_size = 4;
      config.sqlite_sync = sync;
      auto store = open_store(config);
      store->migrate();
      std::vector<std::thread> readers;
      for (int t = 0; t < 4; ++t) {
        readers.emplace_back([&] {
          for (int i = 0; i < 20; ++i) {
            EXPECT_EQ(sqlite_synchronous_mode_for_tests(*store), expected);
          }
        });
      }
      for (auto& thread : readers) thread.join();
    }
    std::filesystem::remove_all(dir);
  }
  EXPECT_EQ(StorageConfig{}.sqlite_sync, SqliteSync::kFull);
}

// Concurrent writes of different kinds share commits (group commit). Each caller that got an
// answer finds its write stored, ids are distinct, and a write that fails in a shared
// transaction (an unknown owner; a patch of a missing note) fails alone, leaving no trace.
TEST(SqliteDurability, ConcurrentWritesAreCommittedTogetherAndFailAlone) {
  auto dir = std::filesystem::temp_directory_path() / ("transnotes_group_" + unique_suffix());
  {
    StorageConfig config;
    config.database_url = "sqlite://" + (dir / "db.sqlite3").string();
    config.pool_size = 4;
    auto store = open_store(config);
    store->migrate();
    const Note shared = store->create_note(kOpenModeOwner, fields("shared", "v0"));
    constexpr int kThreads = 16;
    constexpr int kRounds = 20;
    std::mutex mutex;
    std::set<std::int64_t> ids;
    std::atomic<int> patches{0};
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ++ready;
        while (ready < kThreads) std::this_thread::yield();
        for (int round = 0; round < kRounds; ++round) {
          const std::string title =
              std::string("t").append(std::to_string(t)).append("r").append(std::to_string(round));
          try {
            switch ((t + round) % 4) {
              case 0:
                store->create_note(UserId{999'999}, fields(title, "orphan"));
                ADD_FAILURE() << "a note for an unknown owner was created";
                break;
              case 1: {
                NoteFields change;
                change.title = title;
                EXPECT_FALSE(store->update_note(kOpenModeOwner, 999'999, change));
                NoteFields patch;
                patch.original_text = title;
                ASSERT_TRUE(store->update_note(kOpenModeOwner, shared.id, patch));
                ++patches;
                break;
              }
              default: {
                Note note = store->create_note(kOpenModeOwner, fields(title, "body"));
                EXPECT_EQ(note.title, title);
                std::lock_guard lock(mutex);
                EXPECT_TRUE(ids.insert(note.id).second) << "id " << note.id << " given twice";
              }
            }
          } catch (const UnknownUser&) {
            EXPECT_EQ((t + round) % 4, 0) << "a valid write failed along with a bad one";
          } catch (const std::exception& e) {
            ADD_FAILURE() << e.what();
          }
        }
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(ids.size(), std::size_t{kThreads * kRounds / 2});
    auto listed = store->list_notes(kOpenModeOwner, {10'000, 0});
    EXPECT_EQ(listed.size(), ids.size() + 1);
    for (const Note& note : listed) {
      EXPECT_TRUE(note.id == shared.id || ids.count(note.id) == 1) << note.id;
      EXPECT_NE(note.original_text, "orphan");
    }
    EXPECT_EQ(store->get_note(kOpenModeOwner, shared.id)->version, 1 + patches.load());
    EXPECT_EQ(store->stats(kOpenModeOwner).total_notes, static_cast<std::int64_t>(ids.size() + 1));
  }
  std::filesystem::remove_all(dir);
}

TEST(PostgresFailure, UnreachableServerThrowsUnavailableAndKeepsWorking) {
  StorageConfig config;
  config.database_url = "postgresql://postgres@127.0.0.1:1/transnotes";  // nothing listens there
  config.connect_timeout = 1s;
  auto store = open_store(config);
  for (int i = 0; i < 3; ++i) {
    try {
      store->get_note(kOpenModeOwner, 1);
      ADD_FAILURE() << "expected Unavailable";
    } catch (const Unavailable& e) {
      EXPECT_NE(std::string(e.what()).find("database unavailable"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(store->migrate(), Unavailable);
  EXPECT_THROW(store->create_note(kOpenModeOwner, fields("a", "b")), Unavailable);
}

TEST(PostgresFailure, ReconnectsAfterConnectionsAreKilled) {
  if (test_postgres_url() == nullptr) GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL is unset";
  const std::string schema = "tn_test_" + unique_suffix();
  const std::string app = "tn_kill_" + unique_suffix();
  std::string url = test_postgres_url();
  url += (url.find('?') == std::string::npos ? "?" : "&") + ("schema=" + schema) +
         "&application_name=" + app;
  StorageConfig config;
  config.database_url = url;
  config.pool_size = 2;
  auto store = open_store(config);
  store->migrate();
  Note note = store->create_note(kOpenModeOwner, fields("survives", "x"));
  postgres_admin(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app +
      "'");
  // The first call on a killed connection may fail with Unavailable; later calls reconnect.
  std::optional<Note> fetched;
  for (int i = 0; i < 4 && !fetched; ++i) {
    try {
      fetched = store->get_note(kOpenModeOwner, note.id);
    } catch (const Unavailable&) {
    }
  }
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->title, "survives");
  EXPECT_TRUE(store->create_note(kOpenModeOwner, fields("after", "reconnect")).id > note.id);
  store.reset();
  postgres_admin("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
}

}  // namespace
}  // namespace transnotes::storage
