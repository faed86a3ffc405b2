// One contract suite for every Store implementation: each test runs against SQLite (a fresh file)
// and PostgreSQL (a fresh schema in $TRANSNOTES_TEST_DATABASE_URL; skipped when unset).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
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
    return store_->create_note(fields(title, "Text of " + title, language));
  }

  // Runs SQL directly on this test's database (outside the store), failing the test on error.
  // Postgres: in a separate session whose search_path is this test's schema.
  void exec_direct(const std::string& sql) {
    if (GetParam() == "sqlite") {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(url_.substr(std::string("sqlite://").size()).c_str(), &db), SQLITE_OK);
      char* error = nullptr;
      int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
      std::string message = error != nullptr ? error : "";
      sqlite3_free(error);
      sqlite3_close(db);
      ASSERT_EQ(rc, SQLITE_OK) << message << "\n" << sql;
      return;
    }
    PGconn* conn = PQconnectdb(test_postgres_url());
    ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    const std::string full =
        "SET client_min_messages = warning; SET search_path TO " + pg_schemas_.front() + "; " + sql;
    PGresult* result = PQexec(conn, full.c_str());
    const ExecStatusType status = PQresultStatus(result);
    const std::string message = PQresultErrorMessage(result);
    PQclear(result);
    PQfinish(conn);
    ASSERT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) << message << "\n" << sql;
  }

  // Stats recomputed from every note (the definition stats() must match).
  Stats recount() {
    std::map<std::string, std::int64_t> per_language;
    Stats stats;
    for (const Note& note : store_->list_notes({1'000'000, 0})) {
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
    auto job = store_->create_job(note_id, "en", target, "apertium", 3);
    ASSERT_TRUE(job);
    ASSERT_TRUE(store_->claim_job("translator", 30s, job->id));
    auto done = store_->complete_job(job->id, "translator", text, "apertium");
    ASSERT_TRUE(done.applied);
    ASSERT_TRUE(done.note_version.has_value());
  }

  std::unique_ptr<Store> store_;
  std::string url_;
  std::vector<std::filesystem::path> sqlite_dirs_;
  std::vector<std::string> pg_schemas_;
};

TEST_P(StoreContract, CreateAndGetRoundTrip) {
  Note created = store_->create_note(fields("Hello", "Hello world", "en"));
  EXPECT_GT(created.id, 0);
  EXPECT_EQ(created.title, "Hello");
  EXPECT_EQ(created.original_text, "Hello world");
  EXPECT_EQ(created.original_language, "en");
  EXPECT_FALSE(created.translated_text.has_value());
  EXPECT_FALSE(created.translated_language.has_value());
  EXPECT_EQ(created.version, 1);
  EXPECT_GT(created.created_at, 0);
  EXPECT_EQ(created.created_at, created.updated_at);

  auto fetched = store_->get_note(created.id);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->id, created.id);
  EXPECT_EQ(fetched->title, created.title);
  EXPECT_EQ(fetched->original_text, created.original_text);
  EXPECT_EQ(fetched->created_at, created.created_at);
  EXPECT_EQ(fetched->updated_at, created.updated_at);
  EXPECT_EQ(fetched->version, 1);
}

TEST_P(StoreContract, MissingNoteIsReportedNotThrown) {
  EXPECT_FALSE(store_->get_note(987654).has_value());
  EXPECT_FALSE(store_->update_note(987654, fields("a", "b")).has_value());
  EXPECT_FALSE(store_->delete_note(987654));
  EXPECT_FALSE(store_->get_job(987654).has_value());
  EXPECT_TRUE(store_->latest_jobs_for_note(987654).empty());
}

TEST_P(StoreContract, ListIsNewestFirstWithLimitAndOffset) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(make_note(std::string("n").append(std::to_string(i))).id);
  auto all = store_->list_notes({100, 0});
  ASSERT_EQ(all.size(), 5u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].id, ids[4 - i]);
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i - 1].created_at, all[i].created_at);

  auto page = store_->list_notes({2, 1});
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, ids[3]);
  EXPECT_EQ(page[1].id, ids[2]);
  EXPECT_TRUE(store_->list_notes({10, 5}).empty());
  EXPECT_TRUE(store_->list_notes({0, 0}).empty());
}

TEST_P(StoreContract, UpdateWritesOnlyGivenFieldsAndBumpsVersion) {
  Note note = store_->create_note(fields("Old title", "Old text", "en"));
  NoteFields patch;
  patch.title = "New title";
  auto updated = store_->update_note(note.id, patch);
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->title, "New title");
  EXPECT_EQ(updated->original_text, "Old text");
  EXPECT_EQ(updated->original_language, "en");
  EXPECT_EQ(updated->version, 2);
  EXPECT_EQ(updated->created_at, note.created_at);
  EXPECT_GT(updated->updated_at, note.updated_at);

  NoteFields language_only;
  language_only.original_language = "es";
  auto again = store_->update_note(note.id, language_only);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->title, "New title");
  EXPECT_EQ(again->original_language, "es");
  EXPECT_EQ(again->version, 3);
  EXPECT_GT(again->updated_at, updated->updated_at);

  auto empty_patch = store_->update_note(note.id, NoteFields{});
  ASSERT_TRUE(empty_patch.has_value());
  EXPECT_EQ(empty_patch->version, 4);
  EXPECT_EQ(store_->get_note(note.id)->version, 4);
}

TEST_P(StoreContract, DeleteCascadesJobs) {
  Note note = make_note();
  auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job.has_value());
  EXPECT_TRUE(store_->delete_note(note.id));
  EXPECT_FALSE(store_->get_note(note.id).has_value());
  EXPECT_FALSE(store_->get_job(job->id).has_value());
  EXPECT_FALSE(store_->delete_note(note.id));
  EXPECT_TRUE(store_->runnable_job_ids(10).empty());
}

TEST_P(StoreContract, StatsCountsAndOrdersLanguages) {
  Stats empty = store_->stats();
  EXPECT_EQ(empty.total_notes, 0);
  EXPECT_EQ(empty.total_translations, 0);
  EXPECT_TRUE(empty.language_breakdown.empty());

  make_note("a", "fr");
  make_note("b", "es");
  make_note("c", "en");
  make_note("d", "es");
  make_note("e", "de");
  Note translated = make_note("f", "en");
  auto job = store_->create_job(translated.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, job->id));
  ASSERT_TRUE(store_->complete_job(job->id, "w", "texto", "apertium").applied);

  Stats stats = store_->stats();
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
  EXPECT_EQ(describe(store_->stats()), "notes=3 translated=1 [en:2 fr:1 ]");

  ASSERT_TRUE(store_->delete_note(translated.id));  // a translated note takes its count along
  EXPECT_EQ(describe(store_->stats()), "notes=2 translated=0 [en:1 fr:1 ]");

  NoteFields to_german;
  to_german.original_language = "de";
  ASSERT_TRUE(store_->update_note(fr.id, to_german));  // fr drops to 0 and leaves the breakdown
  EXPECT_EQ(describe(store_->stats()), "notes=2 translated=0 [de:1 en:1 ]");

  NoteFields title_only;
  title_only.title = "renamed";
  ASSERT_TRUE(store_->update_note(en.id, title_only));
  ASSERT_TRUE(store_->update_note(fr.id, to_german));  // same language again: no change
  EXPECT_EQ(describe(store_->stats()), "notes=2 translated=0 [de:1 en:1 ]");

  translate(fr.id, "en", "translated");
  NoteFields back_to_english;
  back_to_english.original_language = "en";
  ASSERT_TRUE(store_->update_note(fr.id, back_to_english));  // moves its translation along
  EXPECT_EQ(describe(store_->stats()), "notes=2 translated=1 [en:2 ]");

  ASSERT_TRUE(store_->delete_note(en.id));
  ASSERT_TRUE(store_->delete_note(fr.id));
  EXPECT_EQ(describe(store_->stats()), "notes=0 translated=0 []");
  Note again = make_note("fr again", "fr");
  EXPECT_EQ(describe(store_->stats()), "notes=1 translated=0 [fr:1 ]");
  EXPECT_EQ(describe(store_->stats()), describe(recount()));
  EXPECT_GT(again.id, 0);
}

TEST_P(StoreContract, StatsCountATranslatedNoteOnceWhateverItsJobs) {
  Note note = make_note("multi", "en");
  make_note("plain", "en");
  translate(note.id, "es", "hola");
  translate(note.id, "fr", "bonjour");  // translated_text was already set: still one
  EXPECT_EQ(describe(store_->stats()), "notes=2 translated=1 [en:2 ]");

  // A job completed after its note was deleted changes nothing.
  Note doomed = make_note("doomed", "ca");
  auto job = store_->create_job(doomed.id, "ca", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, job->id));
  ASSERT_TRUE(store_->delete_note(doomed.id));
  EXPECT_FALSE(store_->complete_job(job->id, "w", "late", "apertium").note_version);
  EXPECT_EQ(describe(store_->stats()), "notes=2 translated=1 [en:2 ]");
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
            auto job = store_->create_job(note.id, note.original_language, "en", "apertium", 3);
            if (!job || !store_->claim_job(worker, 30s, job->id) ||
                !store_->complete_job(job->id, worker, "x", "apertium").applied) {
              throw std::runtime_error("translation path failed");
            }
          }
          if (i % 5 == 1) {  // language changes in both directions contend on counter rows
            NoteFields change;
            change.original_language = pick();
            if (!store_->update_note(note.id, change)) throw std::runtime_error("update failed");
          }
          if (i % 3 == 2 && !store_->delete_note(note.id)) throw std::runtime_error("delete");
          if (i % 7 == 0) store_->stats();
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++errors;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(errors.load(), 0);
  Stats stats = store_->stats();
  EXPECT_EQ(stats.total_notes, 200 - 8 * 8);  // i % 3 == 2 for 8 of each thread's 25
  EXPECT_EQ(describe(stats), describe(recount()));
}

TEST_P(StoreContract, StatsMigrationBackfillsExistingNotes) {
  make_note("a", "es");
  make_note("b", "en");
  Note translated = make_note("c", "es");
  translate(translated.id, "en", "translated");
  make_note("d", "fr");
  // Turn the database back into one from before the stats migration (notes, no counters), then
  // migrate again: the migration must count the notes already there.
  if (GetParam() == "sqlite") {
    exec_direct(
        "DROP TRIGGER note_stats_after_insert; DROP TRIGGER note_stats_after_delete; "
        "DROP TRIGGER note_stats_after_update; DROP TABLE note_stats; "
        "DELETE FROM schema_migrations WHERE version = 2");
  } else {
    exec_direct(
        "DROP FUNCTION note_stats_track() CASCADE; DROP TABLE note_stats; "
        "DELETE FROM schema_migrations WHERE version = 2");
  }
  exec_direct(
      "INSERT INTO notes (title, original_text, original_language, created_at, updated_at) "
      "VALUES ('old', 'written before the migration', 'de', " +
      std::string(GetParam() == "sqlite" ? "1, 1" : "now(), now()") + ")");
  auto migrator = open_url(url_);
  migrator->migrate();
  EXPECT_EQ(describe(store_->stats()), "notes=5 translated=1 [es:2 de:1 en:1 fr:1 ]");
  EXPECT_EQ(describe(store_->stats()), describe(recount()));

  make_note("e", "fr");  // and counting goes on after the backfill
  EXPECT_EQ(describe(migrator->stats()), "notes=6 translated=1 [es:2 fr:2 de:1 en:1 ]");
  EXPECT_EQ(describe(store_->stats()), describe(recount()));
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
    const std::string sql = "INSERT INTO " + pg_schemas_.front() +
                            ".notes (title, original_text, original_language, created_at, "
                            "updated_at) VALUES ('t', 'x', 'it', now(), now())";
    PGresult* result = PQexec(conn, sql.c_str());
    EXPECT_EQ(PQresultStatus(result), PGRES_COMMAND_OK) << PQresultErrorMessage(result);
    PQclear(result);
    PQfinish(conn);
    EXPECT_EQ(describe(store_->stats()), "notes=2 translated=1 [it:2 ]");
  } else {
    EXPECT_EQ(describe(store_->stats()), "notes=1 translated=1 [it:1 ]");
  }
  EXPECT_EQ(describe(store_->stats()), describe(recount()));
}

TEST_P(StoreContract, CreateJobOnMissingNoteReturnsNullopt) {
  EXPECT_FALSE(store_->create_job(424242, "en", "es", "apertium", 3).has_value());
  EXPECT_TRUE(store_->runnable_job_ids(10).empty());
}

TEST_P(StoreContract, CreateJobStartsQueued) {
  Note note = make_note();
  auto job = store_->create_job(note.id, "en", "es", "apertium", 5);
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
  auto fetched = store_->get_job(job->id);
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->created_at, job->created_at);
  EXPECT_EQ(fetched->status, JobStatus::kQueued);
}

TEST_P(StoreContract, LatestJobsArePerTargetLanguageNewestFirst) {
  Note note = make_note();
  Note other = make_note("other");
  auto es1 = store_->create_job(note.id, "en", "es", "apertium", 3);
  auto fr1 = store_->create_job(note.id, "en", "fr", "apertium", 3);
  auto es2 = store_->create_job(note.id, "en", "es", "marian", 3);
  store_->create_job(other.id, "en", "de", "apertium", 3);
  ASSERT_TRUE(es1 && fr1 && es2);
  auto latest = store_->latest_jobs_for_note(note.id);
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].id, es2->id);
  EXPECT_EQ(latest[0].engine, "marian");
  EXPECT_EQ(latest[1].id, fr1->id);
}

TEST_P(StoreContract, ClaimSetsLeaseAndReturnsCurrentNoteText) {
  Note note = store_->create_note(fields("T", "before", "en"));
  auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  NoteFields patch;
  patch.original_text = "after";
  patch.original_language = "ca";
  ASSERT_TRUE(store_->update_note(note.id, patch));

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
  EXPECT_TRUE(store_->runnable_job_ids(10).empty());
  EXPECT_EQ(store_->get_job(job->id)->status, JobStatus::kRunning);
}

TEST_P(StoreContract, ClaimPreferredIdConsidersOnlyThatJob) {
  Note note = make_note();
  auto first = store_->create_job(note.id, "en", "es", "apertium", 3);
  auto second = store_->create_job(note.id, "en", "fr", "apertium", 3);
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
    auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
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
  auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
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
  EXPECT_FALSE(store_->get_note(note.id)->translated_text.has_value());

  auto done = store_->complete_job(job->id, "rescuer", "fresh", "apertium");
  EXPECT_TRUE(done.applied);
  EXPECT_EQ(store_->get_note(note.id)->translated_text, "fresh");
}

TEST_P(StoreContract, ExpiredLeaseWithoutAttemptsLeftFails) {
  Note note = make_note();
  auto job = store_->create_job(note.id, "en", "es", "apertium", 1);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("crashed", 20ms, std::nullopt));
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(store_->runnable_job_ids(10).empty());
  EXPECT_FALSE(store_->claim_job("rescuer", 30s, std::nullopt).has_value());
  auto after = store_->get_job(job->id);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, JobStatus::kFailed);
  EXPECT_TRUE(after->error.has_value());
  EXPECT_TRUE(after->finished_at.has_value());
}

TEST_P(StoreContract, RenewLeaseKeepsTheJob) {
  Note note = make_note();
  auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w1", 30s, std::nullopt));
  EXPECT_TRUE(store_->renew_lease(job->id, "w1", 60s));
  EXPECT_FALSE(store_->renew_lease(job->id, "w2", 60s));
  EXPECT_FALSE(store_->claim_job("w2", 30s, std::nullopt).has_value());
}

TEST_P(StoreContract, CompleteSetsTranslationWithoutOverwritingConcurrentEdit) {
  Note note = store_->create_note(fields("Title", "Hello", "en"));
  auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  auto claimed = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->note_text, "Hello");

  NoteFields edit;
  edit.title = "Edited while translating";
  edit.original_text = "Edited text";
  auto edited = store_->update_note(note.id, edit);
  ASSERT_TRUE(edited);
  EXPECT_EQ(edited->version, 2);

  auto result = store_->complete_job(job->id, "w", "Hola", "apertium");
  EXPECT_TRUE(result.applied);
  ASSERT_TRUE(result.note_version.has_value());
  EXPECT_EQ(*result.note_version, 3);

  auto after = store_->get_note(note.id);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->title, "Edited while translating");
  EXPECT_EQ(after->original_text, "Edited text");
  EXPECT_EQ(after->translated_text, "Hola");
  EXPECT_EQ(after->translated_language, "es");
  EXPECT_EQ(after->version, 3);
  EXPECT_GE(after->updated_at, edited->updated_at);

  auto finished = store_->get_job(job->id);
  ASSERT_TRUE(finished);
  EXPECT_EQ(finished->status, JobStatus::kSucceeded);
  EXPECT_EQ(finished->text, "Hola");
  EXPECT_TRUE(finished->finished_at.has_value());
  EXPECT_FALSE(store_->complete_job(job->id, "w", "again", "apertium").applied);
}

TEST_P(StoreContract, CompleteAfterNoteDeletedDoesNotResurrectIt) {
  Note note = make_note();
  auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, std::nullopt));
  ASSERT_TRUE(store_->delete_note(note.id));
  auto result = store_->complete_job(job->id, "w", "Hola", "apertium");
  EXPECT_FALSE(result.note_version.has_value());
  EXPECT_FALSE(store_->get_note(note.id).has_value());
  EXPECT_EQ(store_->stats().total_notes, 0);
  EXPECT_TRUE(store_->list_notes({10, 0}).empty());
}

TEST_P(StoreContract, FailJobRetriesThenFailsFinally) {
  Note note = make_note();
  auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, std::nullopt));
  EXPECT_FALSE(store_->fail_job(job->id, "intruder", "nope", std::nullopt));

  // Retry far in the future: queued but neither runnable nor claimable.
  EXPECT_TRUE(store_->fail_job(job->id, "w", "engine crashed", std::chrono::hours(1)));
  auto queued = store_->get_job(job->id);
  ASSERT_TRUE(queued);
  EXPECT_EQ(queued->status, JobStatus::kQueued);
  EXPECT_EQ(queued->error, "engine crashed");
  EXPECT_EQ(queued->attempts, 1);
  EXPECT_TRUE(store_->runnable_job_ids(10).empty());
  EXPECT_FALSE(store_->claim_job("w", 30s, std::nullopt).has_value());

  // A second job retried immediately is runnable again and counts attempts.
  auto job2 = store_->create_job(note.id, "en", "fr", "apertium", 3);
  ASSERT_TRUE(job2);
  ASSERT_TRUE(store_->claim_job("w", 30s, job2->id));
  EXPECT_TRUE(store_->fail_job(job2->id, "w", "flaky", 0ms));
  EXPECT_EQ(store_->runnable_job_ids(10), std::vector<std::int64_t>{job2->id});
  auto again = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job.id, job2->id);
  EXPECT_EQ(again->job.attempts, 2);

  EXPECT_TRUE(store_->fail_job(job2->id, "w", "gave up", std::nullopt));
  auto failed = store_->get_job(job2->id);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, JobStatus::kFailed);
  EXPECT_EQ(failed->error, "gave up");
  EXPECT_TRUE(failed->finished_at.has_value());
  EXPECT_FALSE(store_->fail_job(job2->id, "w", "twice", std::nullopt));
  EXPECT_FALSE(store_->claim_job("w", 30s, job2->id).has_value());
}

TEST_P(StoreContract, RunnableIdsOldestFirst) {
  EXPECT_TRUE(store_->runnable_job_ids(10).empty());
  Note note = make_note();
  auto a = store_->create_job(note.id, "en", "es", "apertium", 3);
  auto b = store_->create_job(note.id, "en", "fr", "apertium", 3);
  auto c = store_->create_job(note.id, "en", "de", "apertium", 3);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(store_->runnable_job_ids(10), (std::vector<std::int64_t>{a->id, b->id, c->id}));
  EXPECT_EQ(store_->runnable_job_ids(2), (std::vector<std::int64_t>{a->id, b->id}));
}

TEST_P(StoreContract, ReleasedJobIsQueuedAgainWithoutCountingTheTry) {
  Note note = make_note();
  auto job = store_->create_job(note.id, "en", "es", "apertium", 3);
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->claim_job("w", 30s, std::nullopt));
  EXPECT_EQ(store_->get_job(job->id)->attempts, 1);
  EXPECT_FALSE(store_->release_job(job->id, "intruder"));
  EXPECT_TRUE(store_->release_job(job->id, "w"));
  auto released = store_->get_job(job->id);
  ASSERT_TRUE(released);
  EXPECT_EQ(released->status, JobStatus::kQueued);
  EXPECT_EQ(released->attempts, 0);
  EXPECT_EQ(store_->runnable_job_ids(10), (std::vector<std::int64_t>{job->id}));
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
  EXPECT_TRUE(store_->get_note(note.id).has_value());
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
  Note note = stores[0]->create_note(fields("after migrate", "x"));
  EXPECT_TRUE(stores[3]->get_note(note.id).has_value());
}

TEST_P(StoreContract, ConcurrentCreatesGetDistinctIds) {
  std::mutex mutex;
  std::set<std::int64_t> ids;
  std::vector<std::thread> threads;
  for (int t = 0; t < 10; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        try {
          Note note =
              store_->create_note(fields(std::string("t").append(std::to_string(t)), "body"));
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
  EXPECT_EQ(store_->stats().total_notes, 50);
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
          Note note = store_->create_note(fields(title, bad ? invalid : "body"));
          EXPECT_EQ(note.title, title);
          EXPECT_EQ(note.original_text, bad ? invalid : "body");
          auto fetched = store_->get_note(note.id);
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
  EXPECT_EQ(store_->stats().total_notes, created.load());
  EXPECT_EQ(store_->list_notes({1000, 0}).size(), static_cast<std::size_t>(created.load()));
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
          store_->create_note(fields(std::string("s").append(std::to_string(t)), "body"));
          ++finished_creates;
          const int at_least = finished_creates.load();
          const Stats stats = store_->stats();
          EXPECT_GE(stats.total_notes, at_least);
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(store_->stats().total_notes, 8 * 15);
}

TEST_P(StoreContract, UnicodeAndLargeTextRoundTrip) {
  std::string unicode =
      "Ünïcödé — 日本語テキスト 🚀 \"quotes\" 'single' \\backslash; DROP TABLE notes;";
  std::string large;
  while (large.size() < 2'000'000) large += unicode + "\n";
  Note note = store_->create_note(fields(unicode, large, "ja"));
  auto fetched = store_->get_note(note.id);
  ASSERT_TRUE(fetched);
  EXPECT_EQ(fetched->title, unicode);
  EXPECT_EQ(fetched->original_text.size(), large.size());
  EXPECT_TRUE(fetched->original_text == large);

  auto job = store_->create_job(note.id, "ja", "en", "marian", 3);
  ASSERT_TRUE(job);
  auto claimed = store_->claim_job("w", 30s, std::nullopt);
  ASSERT_TRUE(claimed);
  EXPECT_TRUE(claimed->note_text == large);
  ASSERT_TRUE(store_->complete_job(job->id, "w", large, "marian").applied);
  EXPECT_TRUE(store_->get_note(note.id)->translated_text == large);
  EXPECT_TRUE(store_->get_job(job->id)->text == large);
}

TEST_P(StoreContract, InvalidUtf8EitherRoundTripsOrIsRejectedCleanly) {
  const std::string invalid = std::string("bad \xff\xfe bytes \xc3", 13);
  try {
    Note note = store_->create_note(fields("t", invalid));
    EXPECT_EQ(store_->get_note(note.id)->original_text, invalid);
  } catch (const InvalidValue&) {
    SUCCEED() << "rejected as InvalidValue";  // PostgreSQL text columns only hold valid UTF-8
  }
  EXPECT_EQ(store_->list_notes({10, 0}).size(), store_->stats().total_notes + 0u);
  make_note("still works");
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
    store->create_note(fields("a", "b"));
  }
  std::filesystem::current_path(old);
  EXPECT_TRUE(std::filesystem::exists(dir / "sub" / "rel.db"));
  std::filesystem::remove_all(dir);
}

TEST(PostgresFailure, UnreachableServerThrowsUnavailableAndKeepsWorking) {
  StorageConfig config;
  config.database_url = "postgresql://postgres@127.0.0.1:1/transnotes";  // nothing listens there
  config.connect_timeout = 1s;
  auto store = open_store(config);
  for (int i = 0; i < 3; ++i) {
    try {
      store->get_note(1);
      ADD_FAILURE() << "expected Unavailable";
    } catch (const Unavailable& e) {
      EXPECT_NE(std::string(e.what()).find("database unavailable"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(store->migrate(), Unavailable);
  EXPECT_THROW(store->create_note(fields("a", "b")), Unavailable);
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
  Note note = store->create_note(fields("survives", "x"));
  postgres_admin(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app +
      "'");
  // The first call on a killed connection may fail with Unavailable; later calls reconnect.
  std::optional<Note> fetched;
  for (int i = 0; i < 4 && !fetched; ++i) {
    try {
      fetched = store->get_note(note.id);
    } catch (const Unavailable&) {
    }
  }
  ASSERT_TRUE(fetched.has_value());
  EXPECT_EQ(fetched->title, "survives");
  EXPECT_TRUE(store->create_note(fields("after", "reconnect")).id > note.id);
  store.reset();
  postgres_admin("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
}

}  // namespace
}  // namespace transnotes::storage
