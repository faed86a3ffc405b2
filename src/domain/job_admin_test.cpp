// JobAdmin against a real SQLite store and the in-process bus.
#include "domain/job_admin.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "domain/errors.h"
#include "queue/memory_bus.h"
#include "queue/memory_events.h"
#include "storage/storage.h"

namespace transnotes {
namespace {

using namespace std::chrono_literals;

class JobAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("transnotes-job-admin-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(directory_);
    storage::StorageConfig config;
    config.database_url = "sqlite://" + (directory_ / "jobs.db").string();
    store_ = storage::open_store(config);
    store_->migrate();
    admin_ = std::make_unique<JobAdmin>(*store_, bus_);
    note_ = make_note("Hello");
  }
  void TearDown() override {
    admin_.reset();
    store_.reset();
    std::filesystem::remove_all(directory_);
  }

  Note make_note(const std::string& text, UserId owner = kOpenModeOwner) {
    NoteFields fields;
    fields.title = "t";
    fields.original_text = text;
    fields.original_language = "en";
    return store_->create_note(owner, fields);
  }

  TranslationJob queued_job(const std::string& target, UserId owner = kOpenModeOwner,
                            std::optional<std::int64_t> note_id = std::nullopt) {
    JobRequest request;
    request.owner = owner;
    request.note_id = note_id.value_or(note_.id);
    request.source_language = "en";
    request.target_language = target;
    request.engine = "apertium";
    request.max_attempts = 1;
    auto result = store_->request_job(request);
    EXPECT_EQ(result.outcome, JobRequestResult::Outcome::kCreated);
    return *result.job;
  }
  TranslationJob failed_job(const std::string& target, UserId owner = kOpenModeOwner,
                            std::optional<std::int64_t> note_id = std::nullopt) {
    TranslationJob job = queued_job(target, owner, note_id);
    EXPECT_TRUE(store_->claim_job("w", 30s, job.id));
    EXPECT_TRUE(store_->fail_job(job.id, "w", "engine died", std::nullopt));
    return job;
  }
  // The notices published so far, without waiting for more.
  std::vector<JobNotice> published() {
    std::vector<JobNotice> notices;
    while (auto notice = bus_.next(0ms)) notices.push_back(*notice);
    return notices;
  }
  std::string conflict_message(const std::function<void()>& action) {
    try {
      action();
    } catch (const Conflict& e) {
      return e.what();
    }
    return "no Conflict";
  }

  std::filesystem::path directory_;
  std::unique_ptr<Store> store_;
  queue::MemoryJobBus bus_;
  std::unique_ptr<JobAdmin> admin_;
  Note note_;
};

TEST_F(JobAdminTest, ListShowsEveryOwnersJobsThroughTheFilter) {
  auto alice = store_->create_user("alice", "", "h");
  ASSERT_TRUE(alice);
  Note hers = make_note("Hi", alice->id);
  TranslationJob mine = queued_job("es");
  TranslationJob theirs = failed_job("es", alice->id, hers.id);
  auto all = admin_->list({});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, theirs.id);
  EXPECT_EQ(all[1].id, mine.id);
  JobFilter failed;
  failed.status = JobStatus::kFailed;
  auto failed_jobs = admin_->list(failed);
  ASSERT_EQ(failed_jobs.size(), 1u);
  EXPECT_EQ(failed_jobs[0].owner_id, alice->id);
}

TEST_F(JobAdminTest, RetryRequeuesAFailedJobAndWakesAWorker) {
  TranslationJob job = failed_job("es");
  TranslationJob retried = admin_->retry(job.id);
  EXPECT_EQ(retried.id, job.id);
  EXPECT_EQ(retried.status, JobStatus::kQueued);
  EXPECT_EQ(retried.attempts, 0);
  EXPECT_FALSE(retried.error);
  EXPECT_EQ(published(), (std::vector<JobNotice>{{job.id, kOpenModeOwner}}));
  auto claimed = store_->claim_job("w", 30s, job.id);
  ASSERT_TRUE(claimed);
}

TEST_F(JobAdminTest, RetryRefusesUnknownIdsAndJobsThatDidNotEndBadly) {
  EXPECT_THROW(admin_->retry(424242), NotFound);
  TranslationJob job = queued_job("es");
  EXPECT_EQ(conflict_message([&] { admin_->retry(job.id); }),
            "Only failed or cancelled translations can be retried; this one is queued.");
  ASSERT_TRUE(store_->claim_job("w", 30s, job.id));
  EXPECT_EQ(conflict_message([&] { admin_->retry(job.id); }),
            "Only failed or cancelled translations can be retried; this one is running.");
  ASSERT_TRUE(store_->complete_job(job.id, "w", "Hola", "apertium").applied);
  EXPECT_EQ(conflict_message([&] { admin_->retry(job.id); }),
            "Only failed or cancelled translations can be retried; this one is succeeded.");
  EXPECT_TRUE(published().empty());
}

TEST_F(JobAdminTest, RetryAllFailedRequeuesAndPublishesEachFailedJob) {
  TranslationJob first = failed_job("es");
  TranslationJob second = failed_job("fr");
  TranslationJob waiting = queued_job("de");
  EXPECT_EQ(admin_->retry_all_failed(), 2);
  auto notices = published();
  std::sort(notices.begin(), notices.end(),
            [](const JobNotice& a, const JobNotice& b) { return a.job_id < b.job_id; });
  EXPECT_EQ(notices,
            (std::vector<JobNotice>{{first.id, kOpenModeOwner}, {second.id, kOpenModeOwner}}));
  EXPECT_EQ(store_->get_job(kOpenModeOwner, second.id)->status, JobStatus::kQueued);
  EXPECT_EQ(store_->get_job(kOpenModeOwner, waiting.id)->status, JobStatus::kQueued);
  EXPECT_EQ(admin_->retry_all_failed(), 0);
  EXPECT_TRUE(published().empty());
}

TEST_F(JobAdminTest, CancelEndsAQueuedJobAndAsksARunningOneToStop) {
  TranslationJob queued = queued_job("es");
  TranslationJob cancelled = admin_->cancel(queued.id);
  EXPECT_EQ(cancelled.status, JobStatus::kCancelled);
  EXPECT_TRUE(cancelled.finished_at);

  TranslationJob running = queued_job("fr");
  ASSERT_TRUE(store_->claim_job("w", 30s, running.id));
  TranslationJob stopping = admin_->cancel(running.id);
  EXPECT_EQ(stopping.status, JobStatus::kRunning);
  EXPECT_TRUE(stopping.cancel_requested);
  EXPECT_TRUE(store_->cancel_requested(running.id));
  ASSERT_TRUE(store_->finish_cancelled(running.id, "w"));

  // Both can be run again.
  EXPECT_EQ(admin_->retry(queued.id).status, JobStatus::kQueued);
  EXPECT_EQ(admin_->retry(running.id).status, JobStatus::kQueued);
}

TEST_F(JobAdminTest, CancelRefusesUnknownIdsAndEndedJobs) {
  EXPECT_THROW(admin_->cancel(424242), NotFound);
  TranslationJob job = failed_job("es");
  EXPECT_EQ(conflict_message([&] { admin_->cancel(job.id); }),
            "Only queued or running translations can be cancelled; this one has already ended "
            "as failed.");
}

TEST_F(JobAdminTest, PurgeDeletesOnlyJobsThatEndedLongEnoughAgo) {
  TranslationJob ended = failed_job("es");
  TranslationJob waiting = queued_job("fr");
  EXPECT_EQ(admin_->purge(1h), 0);
  EXPECT_EQ(admin_->purge(std::chrono::seconds::max()), 0);
  EXPECT_THROW(admin_->purge(-1s), BadRequest);
  EXPECT_EQ(admin_->purge(0s), 1);
  EXPECT_FALSE(store_->get_job(kOpenModeOwner, ended.id));
  EXPECT_TRUE(store_->get_job(kOpenModeOwner, waiting.id));
  EXPECT_TRUE(store_->get_note(kOpenModeOwner, note_.id));
}

TEST_F(JobAdminTest, RequeuedAndCancelledJobsAreToldToTheOwnersStream) {
  queue::MemoryUserEvents events;
  UserEventPublisher publisher(
      events, [](const Note& note) { return std::to_string(note.id); },
      [](const TranslationJob& job) {
        return std::to_string(job.id) + ":" + to_string(job.status);
      });
  JobAdmin admin(*store_, bus_, &publisher);
  const UserId owner = 0;
  std::vector<std::string> seen;
  auto subscription =
      events.subscribe(owner, std::nullopt, [&](const UserEvent& e) { seen.push_back(e.data); });
  const TranslationJob failed = failed_job("es");
  const TranslationJob queued = queued_job("fr");
  admin.retry(failed.id);
  admin.cancel(queued.id);
  const TranslationJob failed_again = failed_job("de");
  EXPECT_EQ(admin.retry_all_failed(), 1);
  const auto id = [](const TranslationJob& job) { return std::to_string(job.id); };
  EXPECT_EQ(seen, (std::vector<std::string>{id(failed) + ":queued", id(queued) + ":cancelled",
                                            id(failed_again) + ":queued"}));
}

}  // namespace
}  // namespace transnotes
