// `transnotes jobs ...` on a real SQLite store and the in-process bus: what the operator reads,
// the exit codes, and that requeued jobs are announced to workers.
#include "app/job_commands.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <sstream>

#include "app/application.h"
#include "queue/bus.h"
#include "queue/memory_bus.h"
#include "redis/redis_test_support.h"
#include "storage/storage.h"

namespace transnotes::app {
namespace {

using std::chrono::milliseconds;

TEST(ParseAge, AcceptsAWholeNumberAndOneUnit) {
  EXPECT_EQ(parse_age("30s"), std::chrono::seconds(30));
  EXPECT_EQ(parse_age("15m"), std::chrono::minutes(15));
  EXPECT_EQ(parse_age("12h"), std::chrono::hours(12));
  EXPECT_EQ(parse_age("7d"), std::chrono::hours(7 * 24));
  EXPECT_EQ(parse_age("0s"), std::chrono::seconds(0));
  for (const char* bad : {"", "7", "d", "7w", "-1d", "1.5h", " 7d", "7d ", "7 d", "7dd", "s7",
                          "99999999999999999999d", "999999999999999999d"}) {
    EXPECT_EQ(parse_age(bad), std::nullopt) << bad;
  }
}

class JobCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device random;
    dir_ =
        std::filesystem::temp_directory_path() /
        ("transnotes_job_commands_" + std::to_string(::getpid()) + "_" + std::to_string(random()));
    storage::StorageConfig config;
    config.database_url = "sqlite://" + (dir_ / "db.sqlite3").string();
    store_ = storage::open_store(config);
    store_->migrate();
    auto user = store_->create_user("ines", "", "not a real hash");
    ASSERT_TRUE(user.has_value());
    owner_ = user->id;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  TranslationJob queue_job(const std::string& target = "es") {
    NoteFields fields;
    fields.title = "t";
    fields.original_text = "Hello world.";
    fields.original_language = "en";
    const Note note = store_->create_note(owner_, fields);
    JobRequest request;
    request.owner = owner_;
    request.note_id = note.id;
    request.source_language = "en";
    request.target_language = target;
    request.engine = "apertium";
    request.max_attempts = 3;
    return *store_->request_job(request).job;
  }

  // A job that ended failed, with `error`.
  TranslationJob failed_job(const std::string& error) {
    const auto job = queue_job();
    EXPECT_TRUE(store_->claim_job("w", milliseconds(60'000), job.id));
    EXPECT_TRUE(store_->fail_job(job.id, "w", error, std::nullopt));
    return *store_->get_job(owner_, job.id);
  }

  struct Ran {
    int code;
    std::string out;
    std::string err;
  };
  Ran jobs(JobCommand command) {
    std::ostringstream out, err;
    const int code = run_jobs(*store_, bus_, command, out, err);
    return {code, out.str(), err.str()};
  }
  static JobCommand command(const std::string& action) {
    JobCommand c;
    c.action = action;
    return c;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  queue::MemoryJobBus bus_;
  UserId owner_ = kOpenModeOwner;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_F(JobCommandsTest, ListIsAnAlignedTableNewestFirstWithTheErrorCutTo60Characters) {
  const auto queued = queue_job("fr");
  // 70 characters, a newline among them, and non-ASCII ones counted as one each.
  const std::string error = "ñ engine said:\n" + std::string(55, 'x');
  const auto failed = failed_job(error);
  const auto ran = jobs(command("list"));
  ASSERT_EQ(ran.code, 0) << ran.err;
  const auto lines = lines_of(ran.out);
  ASSERT_EQ(lines.size(), 3u) << ran.out;
  const std::string& header = lines[0];
  for (const char* column : {"ID", "NOTE", "OWNER", "PAIR", "STATUS", "ATTEMPTS", "ENGINE",
                             "CREATED", "FINISHED", "ERROR"}) {
    EXPECT_NE(header.find(column), std::string::npos) << column;
  }
  // Newest first: the failed job was asked for last.
  EXPECT_EQ(lines[1].rfind(std::to_string(failed.id) + " ", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind(std::to_string(queued.id) + " ", 0), 0u) << lines[2];
  // Each column starts where its heading does.
  const auto column_of = [&header](const char* name) { return header.find(name); };
  EXPECT_EQ(lines[1].find("ines"), column_of("OWNER"));
  EXPECT_EQ(lines[1].find("en->es"), column_of("PAIR"));
  EXPECT_EQ(lines[1].find("failed"), column_of("STATUS"));
  EXPECT_EQ(lines[1].find("1/3"), column_of("ATTEMPTS"));
  EXPECT_EQ(lines[1].find("apertium"), column_of("ENGINE"));
  EXPECT_EQ(lines[2].find("en->fr"), column_of("PAIR"));
  EXPECT_EQ(lines[2].find("queued"), column_of("STATUS"));
  EXPECT_EQ(lines[2].find("0/3"), column_of("ATTEMPTS"));
  // Not ended: no finished time, no error.
  EXPECT_EQ(lines[2].substr(column_of("FINISHED")), "-");
  EXPECT_EQ(lines[1].substr(column_of("ERROR")), "ñ engine said: " + std::string(45, 'x'));
}

TEST_F(JobCommandsTest, ListFiltersByStateAndNoteAndPages) {
  const auto a = failed_job("broken");
  const auto b = queue_job();
  const auto c = queue_job();
  auto by_state = command("list");
  by_state.state = "failed";
  auto ran = jobs(by_state);
  ASSERT_EQ(ran.code, 0);
  ASSERT_EQ(lines_of(ran.out).size(), 2u) << ran.out;
  EXPECT_EQ(lines_of(ran.out)[1].rfind(std::to_string(a.id) + " ", 0), 0u);

  auto by_note = command("list");
  by_note.note = std::to_string(b.note_id);
  ran = jobs(by_note);
  ASSERT_EQ(lines_of(ran.out).size(), 2u) << ran.out;
  EXPECT_EQ(lines_of(ran.out)[1].rfind(std::to_string(b.id) + " ", 0), 0u);

  auto first_page = command("list");
  first_page.limit = "1";
  ran = jobs(first_page);
  auto lines = lines_of(ran.out);
  ASSERT_EQ(lines.size(), 3u) << ran.out;
  EXPECT_EQ(lines[1].rfind(std::to_string(c.id) + " ", 0), 0u);
  EXPECT_EQ(lines[2], "(more: --before " + std::to_string(c.id) + ")");
  auto next_page = first_page;
  next_page.before = std::to_string(c.id);
  ran = jobs(next_page);
  EXPECT_EQ(lines_of(ran.out)[1].rfind(std::to_string(b.id) + " ", 0), 0u) << ran.out;

  auto none = command("list");
  none.state = "cancelled";
  ran = jobs(none);
  EXPECT_EQ(ran.code, 0);
  EXPECT_EQ(ran.out, "no jobs\n");
}

TEST_F(JobCommandsTest, RetryRequeuesAFailedJobAndAnnouncesIt) {
  const auto failed = failed_job("broken");
  auto retry = command("retry");
  retry.job_id = std::to_string(failed.id);
  const auto ran = jobs(retry);
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out, "job " + std::to_string(failed.id) + " queued again\n");
  const auto job = store_->get_job(owner_, failed.id);
  EXPECT_EQ(job->status, JobStatus::kQueued);
  EXPECT_EQ(job->attempts, 0);
  EXPECT_EQ(bus_.next(milliseconds(0)), (JobNotice{failed.id, owner_}));

  // Now queued: retrying it again is refused with the store's reason.
  const auto again = jobs(retry);
  EXPECT_EQ(again.code, 1);
  EXPECT_EQ(again.err, "transnotes: job " + std::to_string(failed.id) +
                           ": Only failed or cancelled translations can be retried; this one is "
                           "queued.\n");
}

TEST_F(JobCommandsTest, RetryAllFailedRequeuesEveryFailedJobOnly) {
  const auto one = failed_job("broken");
  const auto two = failed_job("broken");
  const auto queued = queue_job();
  auto retry = command("retry");
  retry.all_failed = true;
  const auto ran = jobs(retry);
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out, "2 failed jobs queued again\n");
  EXPECT_EQ(store_->get_job(owner_, one.id)->status, JobStatus::kQueued);
  EXPECT_EQ(store_->get_job(owner_, two.id)->status, JobStatus::kQueued);
  EXPECT_TRUE(bus_.next(milliseconds(0)).has_value());
  EXPECT_TRUE(bus_.next(milliseconds(0)).has_value());
  EXPECT_FALSE(bus_.next(milliseconds(0)).has_value());
  EXPECT_EQ(jobs(retry).out, "0 failed jobs queued again\n");
}

TEST_F(JobCommandsTest, CancelEndsAQueuedJobAndAsksARunningOneToStop) {
  const auto queued = queue_job();
  auto cancel = command("cancel");
  cancel.job_id = std::to_string(queued.id);
  auto ran = jobs(cancel);
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out, "job " + std::to_string(queued.id) + " cancelled\n");
  EXPECT_EQ(store_->get_job(owner_, queued.id)->status, JobStatus::kCancelled);

  ran = jobs(cancel);
  EXPECT_EQ(ran.code, 1);
  EXPECT_EQ(ran.err, "transnotes: job " + std::to_string(queued.id) +
                         ": Only queued or running translations can be cancelled; this one has "
                         "already ended as cancelled.\n");

  const auto running = queue_job();
  ASSERT_TRUE(store_->claim_job("w", milliseconds(60'000), running.id));
  cancel.job_id = std::to_string(running.id);
  ran = jobs(cancel);
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out,
            "job " + std::to_string(running.id) + " is running; it stops at its next segment\n");
  EXPECT_TRUE(store_->cancel_requested(running.id));
  auto listed = command("list");
  listed.state = "running";
  EXPECT_NE(jobs(listed).out.find("running (cancelling)"), std::string::npos);
}

TEST_F(JobCommandsTest, PurgeDeletesJobsThatEndedLongerAgoThanTheAge) {
  const auto ended = failed_job("broken");
  const auto queued = queue_job();
  auto purge = command("purge");
  purge.finished_before = "1d";
  auto ran = jobs(purge);
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out, "purged 0 jobs that ended more than 1d ago\n");
  EXPECT_TRUE(store_->get_job(owner_, ended.id).has_value());

  purge.finished_before = "0s";
  ran = jobs(purge);
  ASSERT_EQ(ran.code, 0) << ran.err;
  EXPECT_EQ(ran.out, "purged 1 job that ended more than 0s ago\n");
  EXPECT_FALSE(store_->get_job(owner_, ended.id).has_value());
  EXPECT_TRUE(store_->get_job(owner_, queued.id).has_value());
}

TEST_F(JobCommandsTest, UnknownJobsExitOne) {
  for (const char* action : {"retry", "cancel"}) {
    auto c = command(action);
    c.job_id = "987654";
    const auto ran = jobs(c);
    EXPECT_EQ(ran.code, 1) << action;
    EXPECT_EQ(ran.err, "transnotes: no job 987654\n") << action;
    EXPECT_EQ(ran.out, "") << action;
  }
}

TEST_F(JobCommandsTest, UsageMistakesExitTwoWithOneLine) {
  std::vector<JobCommand> mistakes;
  auto add = [&mistakes](JobCommand c) { mistakes.push_back(std::move(c)); };
  auto c = command("list");
  c.state = "done";
  add(c);
  c = command("list");
  c.note = "12x";
  add(c);
  c = command("list");
  c.limit = "0";
  add(c);
  c = command("list");
  c.before = "-3";
  add(c);
  add(command("retry"));  // neither an ID nor --all-failed
  c = command("retry");
  c.job_id = "1";
  c.all_failed = true;  // both
  add(c);
  c = command("retry");
  c.job_id = "one";
  add(c);
  add(command("cancel"));
  add(command("purge"));
  c = command("purge");
  c.finished_before = "7 days";
  add(c);
  add(command("explode"));
  for (const auto& mistake : mistakes) {
    const auto ran = jobs(mistake);
    EXPECT_EQ(ran.code, 2) << mistake.action << ": " << ran.err;
    EXPECT_EQ(lines_of(ran.err).size(), 1u) << ran.err;
    EXPECT_EQ(ran.err.rfind("transnotes: ", 0), 0u) << ran.err;
    EXPECT_EQ(ran.out, "");
  }
}

// With a Redis URL (production), a requeued job is announced on the Redis job bus, where workers
// in other processes wait: here a consumer of the workers' group on a private redis-server.
TEST(JobCommandsRedis, RetryAnnouncesTheJobOnTheRedisJobBusOfTheUrl) {
  redis::testing::ThrowawayRedis server;
  std::random_device random;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("transnotes_job_commands_redis_" + std::to_string(::getpid()) + "_" +
                    std::to_string(random()));
  Config config;
  config.data_dir = dir.string();
  config.redis_url = server.url();
  JobNotice failed{};
  {
    auto store = open_and_migrate(config);
    const auto owner = store->create_user("ines", "", "not a real hash");
    ASSERT_TRUE(owner.has_value());
    NoteFields fields;
    fields.title = "t";
    fields.original_text = "Hello world.";
    fields.original_language = "en";
    JobRequest request;
    request.owner = owner->id;
    request.note_id = store->create_note(owner->id, fields).id;
    request.source_language = "en";
    request.target_language = "es";
    request.max_attempts = 1;
    const auto job = *store->request_job(request).job;
    ASSERT_TRUE(store->claim_job("w", milliseconds(60'000), job.id));
    ASSERT_TRUE(store->fail_job(job.id, "w", "broken", std::nullopt));
    failed = JobNotice{job.id, owner->id};
  }
  // The workers' consumer group exists before the retry, as it does once workers have started;
  // so does the owner's event stream an API process holds.
  const auto client = std::make_shared<redis::RedisClient>(redis::parse_redis_url(server.url()));
  const auto workers = queue::open_bus(client);
  const auto events = queue::open_user_events(client);
  std::mutex mutex;
  std::condition_variable told;
  std::vector<std::string> job_events;
  const auto subscription =
      events->subscribe(failed.owner, std::nullopt, [&](const UserEvent& event) {
        std::lock_guard lock(mutex);
        if (event.kind == "job") job_events.push_back(event.data);
        told.notify_all();
      });

  JobCommand retry;
  retry.action = "retry";
  retry.job_id = std::to_string(failed.job_id);
  std::ostringstream out, err;
  ASSERT_EQ(run_jobs(config, retry, out, err), 0) << err.str();
  EXPECT_EQ(workers->next(std::chrono::seconds(10)), failed);
  std::unique_lock lock(mutex);
  ASSERT_TRUE(told.wait_for(lock, std::chrono::seconds(10), [&] { return !job_events.empty(); }))
      << "the owner's stream never heard of the retry";
  EXPECT_NE(job_events.front().find("\"status\":\"queued\""), std::string::npos)
      << job_events.front();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace transnotes::app
