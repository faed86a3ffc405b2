// WorkerPool against a real SQLite store, the real in-process bus, cache and engine registry. The
// engine is a scripted test engine: it is the pool's collaborator, not the thing under test.
#include "queue/worker_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include "cache/memory_cache.h"
#include "domain/errors.h"
#include "queue/memory_bus.h"
#include "queue/redis_bus.h"
#include "redis/redis_test_support.h"
#include "storage/storage.h"
#include "translation/registry.h"

namespace transnotes::queue {
namespace {

using cache::MemoryNoteCache;
using std::chrono::milliseconds;
using storage::open_store;
using storage::StorageConfig;
using translation::Engine;
using translation::EngineRegistry;
using Clock = std::chrono::steady_clock;

// Runs `behaviour(call_number)` for every batch (call numbers start at 1); the behaviour throws
// to fail a try, or returns the translation of the whole batch's first segment.
class ScriptedEngine : public Engine {
 public:
  explicit ScriptedEngine(std::function<std::string(int)> behaviour)
      : behaviour_(std::move(behaviour)) {}

  std::string name() const override { return "scripted"; }
  std::vector<LanguagePair> pairs() const override { return {{"en", "es"}}; }
  std::vector<std::string> translate_batch(const std::string&, const std::string&,
                                           const std::vector<std::string>& segments) override {
    const int call = ++calls_;
    std::string first = behaviour_(call);
    std::vector<std::string> out(segments.size(), first);
    return out;
  }
  int calls() const { return calls_.load(); }

 private:
  std::function<std::string(int)> behaviour_;
  std::atomic<int> calls_{0};
};

// A gate a stuck engine waits at; the test (or the abandon hook) opens it.
class Gate {
 public:
  void wait_entered() {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(changed_.wait_for(lock, std::chrono::seconds(30), [this] { return entered_; }))
        << "the engine was never called";
  }
  // Called by the engine: blocks until open() and returns whether it was abandoned.
  bool enter_and_wait() {
    std::unique_lock lock(mutex_);
    entered_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
    return abandoned_;
  }
  void open(bool abandoned = false) {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
      abandoned_ = abandoned;
    }
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool entered_ = false;
  bool open_ = false;
  bool abandoned_ = false;
};

// Forwards to the real store and remembers every retry delay the pool asked for.
class RecordingStore final : public Store {
 public:
  explicit RecordingStore(Store& store) : store_(store) {}
  std::vector<milliseconds> retry_delays() {
    std::lock_guard lock(mutex_);
    return retry_delays_;
  }
  int cancel_reads() const { return cancel_reads_.load(); }

  void migrate() override { store_.migrate(); }
  Note create_note(UserId owner, const NoteFields& fields) override {
    return store_.create_note(owner, fields);
  }
  std::optional<Note> get_note(UserId owner, std::int64_t id) override {
    return store_.get_note(owner, id);
  }
  std::vector<Note> list_notes(UserId owner, const ListQuery& query) override {
    return store_.list_notes(owner, query);
  }
  std::optional<Note> update_note(UserId owner, std::int64_t id,
                                  const NoteFields& fields) override {
    return store_.update_note(owner, id, fields);
  }
  bool delete_note(UserId owner, std::int64_t id) override { return store_.delete_note(owner, id); }
  Stats stats(UserId owner) override { return store_.stats(owner); }
  JobRequestResult request_job(const JobRequest& request) override {
    return store_.request_job(request);
  }
  std::optional<TranslationJob> get_job(UserId owner, std::int64_t id) override {
    return store_.get_job(owner, id);
  }
  std::vector<TranslationJob> latest_jobs_for_note(UserId owner, std::int64_t note_id) override {
    return store_.latest_jobs_for_note(owner, note_id);
  }
  std::optional<ClaimedJob> claim_job(const std::string& worker_id, milliseconds lease,
                                      std::optional<std::int64_t> preferred_id) override {
    return store_.claim_job(worker_id, lease, preferred_id);
  }
  bool renew_lease(std::int64_t job_id, const std::string& worker_id, milliseconds lease) override {
    return store_.renew_lease(job_id, worker_id, lease);
  }
  CompleteResult complete_job(std::int64_t job_id, const std::string& worker_id,
                              const std::string& text, const std::string& engine) override {
    return store_.complete_job(job_id, worker_id, text, engine);
  }
  bool fail_job(std::int64_t job_id, const std::string& worker_id, const std::string& error,
                std::optional<milliseconds> retry_after) override {
    if (retry_after) {
      std::lock_guard lock(mutex_);
      retry_delays_.push_back(*retry_after);
    }
    return store_.fail_job(job_id, worker_id, error, retry_after);
  }
  bool release_job(std::int64_t job_id, const std::string& worker_id) override {
    return store_.release_job(job_id, worker_id);
  }
  std::vector<JobNotice> runnable_jobs(int limit) override { return store_.runnable_jobs(limit); }
  std::vector<TranslationJob> list_jobs(const JobFilter& filter) override {
    return store_.list_jobs(filter);
  }
  std::optional<TranslationJob> retry_job(std::int64_t job_id) override {
    return store_.retry_job(job_id);
  }
  std::vector<JobNotice> retry_failed_jobs() override { return store_.retry_failed_jobs(); }
  std::optional<TranslationJob> cancel_job(std::int64_t job_id) override {
    return store_.cancel_job(job_id);
  }
  bool cancel_requested(std::int64_t job_id) override {
    cancel_reads_.fetch_add(1);
    return store_.cancel_requested(job_id);
  }
  bool finish_cancelled(std::int64_t job_id, const std::string& worker_id) override {
    return store_.finish_cancelled(job_id, worker_id);
  }
  std::int64_t purge_jobs(Timestamp finished_before) override {
    return store_.purge_jobs(finished_before);
  }
  JobSummary job_summary() override { return store_.job_summary(); }
  PoolStats pool_stats() override { return store_.pool_stats(); }
  bool set_staff(UserId id, bool is_staff) override { return store_.set_staff(id, is_staff); }
  std::optional<User> create_user(const std::string& username, const std::string& email,
                                  const std::string& password_hash) override {
    return store_.create_user(username, email, password_hash);
  }
  std::optional<User> find_user(const std::string& username) override {
    return store_.find_user(username);
  }
  std::optional<User> get_user(UserId id) override { return store_.get_user(id); }
  std::vector<User> list_users() override { return store_.list_users(); }
  bool delete_user(UserId id) override { return store_.delete_user(id); }
  std::int64_t reassign_notes(UserId from, UserId to) override {
    return store_.reassign_notes(from, to);
  }
  bool set_password_hash(UserId id, const std::string& password_hash) override {
    return store_.set_password_hash(id, password_hash);
  }
  void blacklist_token(const std::string& jti, UserId user, Timestamp expires_at) override {
    store_.blacklist_token(jti, user, expires_at);
  }
  bool is_token_blacklisted(const std::string& jti) override {
    return store_.is_token_blacklisted(jti);
  }
  std::optional<IdempotentResponse> reserve_idempotency_key(UserId owner, const std::string& key,
                                                            const std::string& fingerprint,
                                                            Timestamp expire_before) override {
    return store_.reserve_idempotency_key(owner, key, fingerprint, expire_before);
  }
  void finish_idempotency_key(UserId owner, const std::string& key, int status,
                              const std::string& body, const std::string& location) override {
    store_.finish_idempotency_key(owner, key, status, body, location);
  }
  void release_idempotency_key(UserId owner, const std::string& key) override {
    store_.release_idempotency_key(owner, key);
  }

 private:
  Store& store_;
  std::mutex mutex_;
  std::vector<milliseconds> retry_delays_;
  std::atomic<int> cancel_reads_{0};
};

// Records every observer call in order, as "started <job> <attempt>" and
// "finished <job> <outcome> <engine> <characters>", and the reports themselves.
class RecordingObserver final : public JobObserver {
 public:
  void attempt_started(const TranslationJob& job) override {
    std::lock_guard lock(mutex_);
    calls_.push_back("started " + std::to_string(job.id) + " " + std::to_string(job.attempts));
  }
  void attempt_finished(const TranslationJob& job, const AttemptReport& report) override {
    std::lock_guard lock(mutex_);
    calls_.push_back("finished " + std::to_string(job.id) + " " + report.outcome + " " +
                     report.engine + " " + std::to_string(report.source_characters));
    reports_.push_back(report);
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  std::vector<AttemptReport> reports() {
    std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> calls_;
  std::vector<AttemptReport> reports_;
};

// An in-process bus that also remembers every notice published on it.
class RecordingBus final : public JobBus {
 public:
  void publish(const JobNotice& notice) override {
    {
      std::lock_guard lock(mutex_);
      published_.push_back(notice);
    }
    bus_.publish(notice);
  }
  std::optional<JobNotice> next(milliseconds timeout) override { return bus_.next(timeout); }
  void close() override { bus_.close(); }
  std::vector<JobNotice> published() {
    std::lock_guard lock(mutex_);
    return published_;
  }

 private:
  MemoryJobBus bus_;
  std::mutex mutex_;
  std::vector<JobNotice> published_;
};

class WorkerPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device random;
    dir_ =
        std::filesystem::temp_directory_path() /
        ("transnotes_worker_pool_" + std::to_string(::getpid()) + "_" + std::to_string(random()));
    StorageConfig config;
    config.database_url = "sqlite://" + (dir_ / "db.sqlite3").string();
    store_ = open_store(config);
    store_->migrate();
    // A real user rather than the open-mode owner, so that a lost owner would show.
    auto user = store_->create_user("worker-test-owner", "", "not a real hash");
    ASSERT_TRUE(user.has_value());
    owner_ = user->id;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A note of `owner_` and a queued en->es job for it, announced on `bus` unless told not to.
  TranslationJob queue_job(JobBus& bus, int max_attempts, bool announce = true,
                           const std::string& text = "Hello world.") {
    NoteFields fields;
    fields.title = "t";
    fields.original_text = text;
    fields.original_language = "en";
    const Note note = store_->create_note(owner_, fields);
    JobRequest request;
    request.owner = owner_;
    request.note_id = note.id;
    request.source_language = "en";
    request.target_language = "es";
    request.engine = "scripted";
    request.max_attempts = max_attempts;
    const JobRequestResult result = store_->request_job(request);
    EXPECT_EQ(result.outcome, JobRequestResult::Outcome::kCreated);
    EXPECT_TRUE(result.job.has_value());
    if (announce) bus.publish(JobNotice{result.job->id, owner_});
    return *result.job;
  }

  std::optional<TranslationJob> stored_job(std::int64_t id) { return store_->get_job(owner_, id); }
  std::optional<Note> stored_note(std::int64_t id) { return store_->get_note(owner_, id); }

  // Waits until the job reaches `status` (the event) or 30 s pass (a failure, not a pass).
  TranslationJob wait_for_status(std::int64_t job_id, JobStatus status) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    for (;;) {
      auto job = store_->get_job(owner_, job_id);
      if (job && job->status == status) return *job;
      if (Clock::now() > deadline) {
        ADD_FAILURE() << "job " << job_id << " never became " << to_string(status) << "; it is "
                      << (job ? to_string(job->status) : "missing");
        return job.value_or(TranslationJob{});
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
  }

  static WorkerOptions fast_options() {
    WorkerOptions options;
    options.threads = 1;
    options.poll_interval = milliseconds(20);
    options.retry_base = milliseconds(1);
    options.retry_max = milliseconds(4);
    options.jitter = [] { return 1.0; };
    return options;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  UserId owner_ = kOpenModeOwner;
  MemoryJobBus bus_;
  MemoryNoteCache cache_;
};

std::unique_ptr<EngineRegistry> registry_with(std::shared_ptr<Engine> engine,
                                              std::size_t batch_size = 32) {
  auto registry = std::make_unique<EngineRegistry>(translation::RegistryOptions{batch_size});
  registry->add(std::move(engine));
  return registry;
}

TEST(RetryBackoff, DoublesFromTheBaseUpToTheCapScaledByJitter) {
  const milliseconds base(100), cap(1000);
  EXPECT_EQ(retry_backoff(1, base, cap, 1.0), milliseconds(100));
  EXPECT_EQ(retry_backoff(2, base, cap, 1.0), milliseconds(200));
  EXPECT_EQ(retry_backoff(3, base, cap, 1.0), milliseconds(400));
  EXPECT_EQ(retry_backoff(4, base, cap, 1.0), milliseconds(800));
  EXPECT_EQ(retry_backoff(5, base, cap, 1.0), milliseconds(1000));
  EXPECT_EQ(retry_backoff(60, base, cap, 1.0), milliseconds(1000));
  EXPECT_EQ(retry_backoff(3, base, cap, 0.5), milliseconds(200));
  // Jitter outside [0.5, 1] is clamped: a retry is never immediate nor later than the schedule.
  EXPECT_EQ(retry_backoff(1, base, cap, 0.0), milliseconds(50));
  EXPECT_EQ(retry_backoff(1, base, cap, 7.0), milliseconds(100));
}

TEST_F(WorkerPoolTest, EngineFailingTwiceThenSucceedingSucceedsOnTheThirdAttempt) {
  auto engine = std::make_shared<ScriptedEngine>([](int call) -> std::string {
    if (call <= 2) throw TranslationFailed("engine hiccup " + std::to_string(call));
    return "Hola mundo.";
  });
  auto registry = registry_with(engine);
  const auto job = queue_job(bus_, 3);
  WorkerPool pool(*store_, bus_, *registry, cache_, fast_options());
  pool.start();

  const auto done = wait_for_status(job.id, JobStatus::kSucceeded);
  EXPECT_EQ(done.attempts, 3);
  EXPECT_EQ(done.text, "Hola mundo.");
  EXPECT_EQ(engine->calls(), 3);
  EXPECT_EQ(stored_note(job.note_id)->translated_text, "Hola mundo.");
  pool.stop();
  EXPECT_EQ(pool.counters().retried.load(), 2u);
  EXPECT_EQ(pool.counters().succeeded.load(), 1u);
  EXPECT_EQ(pool.counters().failed.load(), 0u);
}

TEST_F(WorkerPoolTest, AlwaysFailingEngineFailsTheJobAfterExactlyMaxAttempts) {
  auto engine = std::make_shared<ScriptedEngine>(
      [](int call) -> std::string { throw TranslationFailed("broken " + std::to_string(call)); });
  auto registry = registry_with(engine);
  const auto job = queue_job(bus_, 3);
  WorkerPool pool(*store_, bus_, *registry, cache_, fast_options());
  pool.start();

  const auto failed = wait_for_status(job.id, JobStatus::kFailed);
  pool.stop();  // nothing may run after the job failed
  EXPECT_EQ(failed.attempts, 3);
  EXPECT_EQ(engine->calls(), 3);
  EXPECT_EQ(failed.error, "broken 3");
  EXPECT_EQ(stored_note(job.note_id)->translated_text, std::nullopt);
  EXPECT_EQ(pool.counters().failed.load(), 1u);
  EXPECT_EQ(pool.counters().retried.load(), 2u);
}

TEST_F(WorkerPoolTest, SingleAttemptJobFailsWithoutRetry) {
  auto engine = std::make_shared<ScriptedEngine>(
      [](int) -> std::string { throw TranslationFailed("broken"); });
  auto registry = registry_with(engine);
  RecordingStore recording(*store_);
  const auto job = queue_job(bus_, 1);
  WorkerPool pool(recording, bus_, *registry, cache_, fast_options());
  pool.start();

  const auto failed = wait_for_status(job.id, JobStatus::kFailed);
  pool.stop();
  EXPECT_EQ(failed.attempts, 1);
  EXPECT_EQ(engine->calls(), 1);
  EXPECT_TRUE(recording.retry_delays().empty());
}

TEST_F(WorkerPoolTest, RetryDelaysFollowTheBackoffSchedule) {
  auto engine = std::make_shared<ScriptedEngine>(
      [](int) -> std::string { throw TranslationFailed("broken"); });
  auto registry = registry_with(engine);
  RecordingStore recording(*store_);
  const auto job = queue_job(bus_, 5);
  auto options = fast_options();
  options.retry_base = milliseconds(2);
  options.retry_max = milliseconds(6);
  options.jitter = [] { return 0.75; };
  WorkerPool pool(recording, bus_, *registry, cache_, options);
  pool.start();

  wait_for_status(job.id, JobStatus::kFailed);
  pool.stop();
  // 2, 4, 8 -> capped at 6, 16 -> 6; each scaled by the pinned jitter.
  const std::vector<milliseconds> expected = {milliseconds(1), milliseconds(3), milliseconds(4),
                                              milliseconds(4)};
  EXPECT_EQ(recording.retry_delays(), expected);
}

TEST_F(WorkerPoolTest, FailedTryIsNotRetriedBeforeItsBackoff) {
  auto engine = std::make_shared<ScriptedEngine>(
      [](int) -> std::string { throw TranslationFailed("broken"); });
  auto registry = registry_with(engine);
  const auto job = queue_job(bus_, 3);
  auto options = fast_options();
  options.retry_base = std::chrono::minutes(10);
  options.retry_max = std::chrono::minutes(10);
  WorkerPool pool(*store_, bus_, *registry, cache_, options);
  pool.start();

  // The failure is recorded: queued again, with the error and one attempt used.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  std::optional<TranslationJob> queued;
  while (Clock::now() < deadline) {
    queued = stored_job(job.id);
    if (queued && queued->status == JobStatus::kQueued && queued->error) break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_TRUE(queued && queued->error) << "the failed try was never recorded";
  EXPECT_EQ(queued->attempts, 1);
  // Not due for ten minutes: neither the sweeper's query nor a claim may see it.
  EXPECT_TRUE(store_->runnable_jobs(100).empty());
  EXPECT_EQ(store_->claim_job("other", milliseconds(1000), std::nullopt), std::nullopt);
  pool.stop();
  EXPECT_EQ(engine->calls(), 1);
}

TEST_F(WorkerPoolTest, QueuedJobIsClaimedWhateverItsAttemptCount) {
  // A job re-queued after using all its attempts (as an abandoned last try is) still runs.
  const auto job = queue_job(bus_, 1);
  ASSERT_TRUE(store_->claim_job("previous", milliseconds(60000), job.id));
  ASSERT_TRUE(store_->fail_job(job.id, "previous", "abandoned", milliseconds(0)));
  ASSERT_EQ(stored_job(job.id)->attempts, 1);

  auto engine = std::make_shared<ScriptedEngine>([](int) { return std::string("Hola."); });
  auto registry = registry_with(engine);
  WorkerPool pool(*store_, bus_, *registry, cache_, fast_options());
  pool.start();
  const auto done = wait_for_status(job.id, JobStatus::kSucceeded);
  pool.stop();
  EXPECT_EQ(done.text, "Hola.");
  EXPECT_EQ(engine->calls(), 1);
}

TEST_F(WorkerPoolTest, LeaseIsRenewedUntilWorkersStopSoTheResultIsKept) {
  Gate gate;
  auto engine = std::make_shared<ScriptedEngine>([&gate](int) {
    gate.enter_and_wait();
    return std::string("Hola mundo.");
  });
  auto registry = registry_with(engine);
  const auto job = queue_job(bus_, 3);
  auto options = fast_options();
  options.lease = milliseconds(500);
  WorkerPool pool(*store_, bus_, *registry, cache_, options);
  pool.start();
  gate.wait_entered();

  std::thread stopper([&pool] { pool.stop(); });
  // While stop() waits for the translation, the lease must stay fresh: another worker trying to
  // take the job over for several lease periods never gets it.
  bool taken_over = false;
  const auto until = Clock::now() + 4 * options.lease;
  while (Clock::now() < until && !taken_over) {
    taken_over = store_->claim_job("other-worker", options.lease, job.id).has_value();
    std::this_thread::sleep_for(milliseconds(25));
  }
  gate.open();
  stopper.join();

  EXPECT_FALSE(taken_over) << "the lease lapsed while stop() waited for the translation";
  const auto done = stored_job(job.id);
  EXPECT_EQ(done->status, JobStatus::kSucceeded);
  EXPECT_EQ(stored_note(job.note_id)->translated_text, "Hola mundo.");
  EXPECT_EQ(pool.counters().lost_leases.load(), 0u);
}

TEST_F(WorkerPoolTest, StopWithGraceAbandonsAStuckTryAndQueuesItsJobForTheNextWorker) {
  Gate gate;
  auto stuck = std::make_shared<ScriptedEngine>([&gate](int) -> std::string {
    if (gate.enter_and_wait()) throw TranslationFailed("abandoned");
    return "late result";
  });
  auto stuck_registry = registry_with(stuck);
  const auto job = queue_job(bus_, 3);
  auto options = fast_options();
  std::atomic<bool> abandon_called{false};
  options.abandon_translations = [&] {
    abandon_called = true;
    gate.open(/*abandoned=*/true);
  };
  auto pool = std::make_unique<WorkerPool>(*store_, bus_, *stuck_registry, cache_, options);
  pool->start();
  gate.wait_entered();

  const milliseconds grace(200);
  const auto began = Clock::now();
  EXPECT_FALSE(pool->stop(grace));
  const auto took = Clock::now() - began;
  EXPECT_GE(took, grace);
  EXPECT_LT(took, grace + std::chrono::seconds(2));
  EXPECT_TRUE(abandon_called);

  const auto requeued = stored_job(job.id);
  EXPECT_EQ(requeued->status, JobStatus::kQueued);
  EXPECT_EQ(requeued->attempts, 0);  // the abandoned try is not counted
  pool.reset();  // joins the worker the abandon hook released; it must not touch the job
  EXPECT_EQ(stored_job(job.id)->status, JobStatus::kQueued);
  EXPECT_EQ(stuck->calls(), 1);

  MemoryJobBus next_bus;
  auto healthy = std::make_shared<ScriptedEngine>([](int) { return std::string("Hola mundo."); });
  auto healthy_registry = registry_with(healthy);
  WorkerPool next(*store_, next_bus, *healthy_registry, cache_, fast_options());
  next.start();
  const auto done = wait_for_status(job.id, JobStatus::kSucceeded);
  next.stop();
  EXPECT_EQ(done.text, "Hola mundo.");
  EXPECT_EQ(done.attempts, 1);
  EXPECT_EQ(stored_note(job.note_id)->translated_text, "Hola mundo.");
}

TEST_F(WorkerPoolTest, StopWithGraceKeepsResultsThatArriveInTime) {
  Gate gate;
  auto engine = std::make_shared<ScriptedEngine>([&gate](int) {
    gate.enter_and_wait();
    return std::string("Hola.");
  });
  auto registry = registry_with(engine);
  const auto job = queue_job(bus_, 3);
  WorkerPool pool(*store_, bus_, *registry, cache_, fast_options());
  pool.start();
  gate.wait_entered();
  std::thread opener([&gate] { gate.open(); });
  EXPECT_TRUE(pool.stop(std::chrono::seconds(60)));
  opener.join();
  EXPECT_EQ(stored_job(job.id)->status, JobStatus::kSucceeded);
  EXPECT_EQ(pool.counters().abandoned.load(), 0u);
}

// The result bumps the note's version; the cached copy the API keeps under the job owner's key
// is dropped and its old version blocked. Another owner's entry for the same id is not touched.
TEST_F(WorkerPoolTest, ResultInvalidatesTheCachedNoteOfTheJobsOwner) {
  auto engine = std::make_shared<ScriptedEngine>([](int) { return std::string("Hola mundo."); });
  auto registry = registry_with(engine);
  const auto job = queue_job(bus_, 3);
  const Note before = *stored_note(job.note_id);
  const NoteKey owners_key{owner_, job.note_id};
  const NoteKey other_owners_key{owner_ + 1, job.note_id};
  cache_.put(owners_key, before.version, "the note before its translation");
  cache_.put(other_owners_key, before.version, "another user's note with the same id");
  WorkerPool pool(*store_, bus_, *registry, cache_, fast_options());
  pool.start();
  wait_for_status(job.id, JobStatus::kSucceeded);
  pool.stop();  // joins the worker: whatever it does after completing the job is done

  ASSERT_GT(stored_note(job.note_id)->version, before.version);
  EXPECT_EQ(cache_.get(owners_key), std::nullopt);
  cache_.put(owners_key, before.version, "the note before its translation");  // a late reader
  EXPECT_EQ(cache_.get(owners_key), std::nullopt);
  EXPECT_EQ(cache_.get(other_owners_key), "another user's note with the same id");
}

// A job nobody announced (its wake-up was lost) is announced by the sweeper, with its owner, and
// runs: the workers here wait on the bus for an hour between database polls.
TEST_F(WorkerPoolTest, SweeperAnnouncesRunnableJobsWithTheirOwners) {
  auto engine = std::make_shared<ScriptedEngine>([](int) { return std::string("Hola mundo."); });
  auto registry = registry_with(engine);
  RecordingBus bus;
  const auto job = queue_job(bus, 3, /*announce=*/false);
  auto options = fast_options();
  options.poll_interval = std::chrono::hours(1);
  options.sweep_interval = milliseconds(20);
  WorkerPool pool(*store_, bus, *registry, cache_, options);
  pool.start();
  wait_for_status(job.id, JobStatus::kSucceeded);
  pool.stop();
  const auto published = bus.published();
  EXPECT_NE(std::find(published.begin(), published.end(), JobNotice{job.id, owner_}),
            published.end());
}

// Junk on the Redis stream (here a bare job id, as a version without owners wrote, and text) is
// dropped by the bus; the worker keeps going and runs the job of the next well-formed notice.
TEST_F(WorkerPoolTest, MalformedRedisMessagesAreDroppedAndTheWorkerKeepsGoing) {
  auto url = redis::testing::shared_test_redis_url();
  if (!url) GTEST_FAIL() << "TRANSNOTES_TEST_REDIS_URL is not set (run scripts/services.sh)";
  auto client = std::make_shared<redis::RedisClient>(redis::parse_redis_url(*url));
  RedisJobBusOptions bus_options;
  bus_options.stream = redis::testing::unique_test_prefix("worker-bus") + "jobs";
  bus_options.max_block = milliseconds(100);
  RedisJobBus bus(client, bus_options);
  auto engine = std::make_shared<ScriptedEngine>([](int) { return std::string("Hola mundo."); });
  auto registry = registry_with(engine);
  const auto job = queue_job(bus, 3, /*announce=*/false);
  for (std::string junk : {std::to_string(job.id), std::string("junk"), std::string(":")}) {
    client->command({"XADD", bus_options.stream, "*", "job", junk});
  }
  bus.publish(JobNotice{job.id, owner_});
  auto options = fast_options();
  options.poll_interval = std::chrono::hours(1);  // only the bus can wake the worker
  options.sweep_interval = std::chrono::hours(1);
  WorkerPool pool(*store_, bus, *registry, cache_, options);
  pool.start();
  wait_for_status(job.id, JobStatus::kSucceeded);
  pool.stop();
  EXPECT_EQ(bus.stats().errors, 3u);
  client->command({"DEL", bus_options.stream});
}

// `count` one-sentence segments, so a registry with batch size 1 sends `count` batches.
std::string sentences(int count) {
  std::string text;
  for (int i = 0; i < count; ++i) text += "Sentence " + std::to_string(i) + ". ";
  return text;
}

// Waits (the event, not a fixed time) until the engine was called at least `calls` times.
void wait_for_calls(const ScriptedEngine& engine, int calls) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (engine.calls() < calls) {
    ASSERT_LT(Clock::now(), deadline)
        << "the engine was called only " << engine.calls() << " times";
    std::this_thread::sleep_for(milliseconds(2));
  }
}

// A slow translation: 400 batches of 10 ms each, at least 4 s. The cancel lands after a few; the
// worker sees it within its check interval and stops at the next batch boundary.
TEST_F(WorkerPoolTest, RunningJobCancelledStopsAtItsNextSegmentAndIsNeverRetried) {
  constexpr int kSegments = 400;
  constexpr milliseconds kPerBatch(10);
  auto engine = std::make_shared<ScriptedEngine>([kPerBatch](int) {
    std::this_thread::sleep_for(kPerBatch);
    return std::string("Hola.");
  });
  auto registry = registry_with(engine, /*batch_size=*/1);
  RecordingStore recording(*store_);
  RecordingObserver observer;
  const auto job = queue_job(bus_, 3, true, sentences(kSegments));
  auto options = fast_options();
  options.cancel_check_interval = milliseconds(50);
  options.observer = &observer;
  WorkerPool pool(recording, bus_, *registry, cache_, options);
  pool.start();
  wait_for_calls(*engine, 3);

  const auto asked = Clock::now();
  const auto cancelling = store_->cancel_job(job.id);
  ASSERT_TRUE(cancelling.has_value());
  const auto cancelled = wait_for_status(job.id, JobStatus::kCancelled);
  const auto took = Clock::now() - asked;
  const int calls_when_cancelled = engine->calls();
  pool.stop();  // joins the worker: anything it would still do is done

  EXPECT_LT(took, kSegments * kPerBatch / 2) << "the translation ran on after the cancel";
  EXPECT_LT(calls_when_cancelled, kSegments / 2);
  EXPECT_EQ(engine->calls(), calls_when_cancelled) << "a batch ran after the job was cancelled";
  EXPECT_EQ(cancelled.attempts, 1);
  ASSERT_TRUE(cancelled.finished_at.has_value());
  EXPECT_EQ(stored_note(job.note_id)->translated_text, std::nullopt);
  EXPECT_EQ(pool.counters().cancelled.load(), 1u);
  EXPECT_EQ(pool.counters().retried.load(), 0u);
  EXPECT_EQ(pool.counters().failed.load(), 0u);
  EXPECT_TRUE(recording.retry_delays().empty());
  // Nobody may run it again: not due for the sweeper, not claimable.
  EXPECT_TRUE(store_->runnable_jobs(100).empty());
  EXPECT_EQ(store_->claim_job("other", milliseconds(1000), job.id), std::nullopt);
  // The flag was read from the store per check interval, not per batch.
  EXPECT_LT(recording.cancel_reads(), calls_when_cancelled);
  EXPECT_EQ(observer.calls(), (std::vector<std::string>{
                                  "started " + std::to_string(job.id) + " 1",
                                  "finished " + std::to_string(job.id) + " cancelled scripted " +
                                      std::to_string(std::string(sentences(kSegments)).size())}));
}

// The cancel arrives while the engine's batch is failing: the job ends cancelled, not retried.
TEST_F(WorkerPoolTest, CancelledJobWhoseBatchFailsIsNotRetried) {
  Gate gate;
  auto engine = std::make_shared<ScriptedEngine>([&gate](int) -> std::string {
    gate.enter_and_wait();
    throw TranslationFailed("engine hiccup");
  });
  auto registry = registry_with(engine);
  RecordingStore recording(*store_);
  const auto job = queue_job(bus_, 3);
  auto options = fast_options();
  options.cancel_check_interval = std::chrono::hours(1);  // only the failure path asks
  WorkerPool pool(recording, bus_, *registry, cache_, options);
  pool.start();
  gate.wait_entered();
  ASSERT_TRUE(store_->cancel_job(job.id).has_value());
  gate.open();
  wait_for_status(job.id, JobStatus::kCancelled);
  pool.stop();
  EXPECT_EQ(engine->calls(), 1);
  EXPECT_TRUE(recording.retry_delays().empty());
  EXPECT_EQ(pool.counters().cancelled.load(), 1u);
  EXPECT_EQ(pool.counters().retried.load(), 0u);
}

// A job cancelled while queued is never handed to the engine; the next one runs.
TEST_F(WorkerPoolTest, QueuedJobCancelledIsNeverRun) {
  auto engine = std::make_shared<ScriptedEngine>([](int) { return std::string("Hola."); });
  auto registry = registry_with(engine);
  const auto cancelled = queue_job(bus_, 3);
  const auto cancelling = store_->cancel_job(cancelled.id);
  ASSERT_TRUE(cancelling.has_value());
  EXPECT_EQ(cancelling->status, JobStatus::kCancelled);
  const auto next = queue_job(bus_, 3);  // younger: claimed after the cancelled one would be
  RecordingObserver observer;
  auto options = fast_options();
  options.observer = &observer;
  WorkerPool pool(*store_, bus_, *registry, cache_, options);
  pool.start();
  wait_for_status(next.id, JobStatus::kSucceeded);
  pool.stop();
  EXPECT_EQ(engine->calls(), 1);
  EXPECT_EQ(stored_job(cancelled.id)->status, JobStatus::kCancelled);
  EXPECT_EQ(stored_note(cancelled.note_id)->translated_text, std::nullopt);
  EXPECT_EQ(pool.counters().cancelled.load(), 0u);  // the worker never held it
  for (const auto& call : observer.calls()) {
    EXPECT_EQ(call.find(" " + std::to_string(cancelled.id) + " "), std::string::npos) << call;
  }
}

// Every attempt is reported, started then finished, with its outcome, engine and the note's
// characters (code points: "Grüße, 世界." is 10 characters in 16 bytes).
TEST_F(WorkerPoolTest, ObserverSeesEveryAttemptAndItsOutcome) {
  auto engine = std::make_shared<ScriptedEngine>([](int call) -> std::string {
    if (call <= 2) throw TranslationFailed("engine hiccup " + std::to_string(call));
    std::this_thread::sleep_for(milliseconds(5));
    return "Hola.";
  });
  auto registry = registry_with(engine);
  RecordingObserver observer;
  const std::string text = "Grüße, 世界.";
  ASSERT_EQ(text.size(), 16u);
  const auto flaky = queue_job(bus_, 2, true, text);  // fails twice: retry, then failed
  auto options = fast_options();
  options.observer = &observer;
  WorkerPool pool(*store_, bus_, *registry, cache_, options);
  pool.start();
  wait_for_status(flaky.id, JobStatus::kFailed);
  const auto healthy = queue_job(bus_, 2, true, text);  // the third call succeeds
  wait_for_status(healthy.id, JobStatus::kSucceeded);
  pool.stop();

  const std::string f = std::to_string(flaky.id), h = std::to_string(healthy.id);
  EXPECT_EQ(observer.calls(),
            (std::vector<std::string>{
                "started " + f + " 1", "finished " + f + " retry scripted 10",
                "started " + f + " 2", "finished " + f + " failed scripted 10",
                "started " + h + " 1", "finished " + h + " succeeded scripted 10"}));
  const auto reports = observer.reports();
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_GE(reports[2].duration, milliseconds(5));  // the translate call's time, engine included
}

// An observer that throws changes nothing: the job is stored and the worker goes on.
TEST_F(WorkerPoolTest, ThrowingObserverDoesNotStopTheWorker) {
  class Throwing final : public JobObserver {
   public:
    void attempt_started(const TranslationJob&) override { throw std::runtime_error("started"); }
    void attempt_finished(const TranslationJob&, const AttemptReport&) override {
      throw std::runtime_error("finished");
    }
  } observer;
  auto engine = std::make_shared<ScriptedEngine>([](int) { return std::string("Hola."); });
  auto registry = registry_with(engine);
  auto options = fast_options();
  options.observer = &observer;
  const auto first = queue_job(bus_, 3);
  WorkerPool pool(*store_, bus_, *registry, cache_, options);
  pool.start();
  wait_for_status(first.id, JobStatus::kSucceeded);
  const auto second = queue_job(bus_, 3);
  wait_for_status(second.id, JobStatus::kSucceeded);
  pool.stop();
  EXPECT_EQ(pool.counters().succeeded.load(), 2u);
}

// A try abandoned at shutdown is reported as such, on the worker thread once it returns.
TEST_F(WorkerPoolTest, ObserverSeesAnAbandonedAttempt) {
  Gate gate;
  auto stuck = std::make_shared<ScriptedEngine>([&gate](int) -> std::string {
    if (gate.enter_and_wait()) throw TranslationFailed("abandoned");
    return "late result";
  });
  auto registry = registry_with(stuck);
  RecordingObserver observer;
  const auto job = queue_job(bus_, 3);
  auto options = fast_options();
  options.observer = &observer;
  options.abandon_translations = [&gate] { gate.open(/*abandoned=*/true); };
  auto pool = std::make_unique<WorkerPool>(*store_, bus_, *registry, cache_, options);
  pool->start();
  gate.wait_entered();
  EXPECT_FALSE(pool->stop(milliseconds(50)));
  pool.reset();  // joins the worker
  const std::string id = std::to_string(job.id);
  EXPECT_EQ(observer.calls(),
            (std::vector<std::string>{"started " + id + " 1",
                                      "finished " + id + " abandoned scripted 12"}));
}

}  // namespace
}  // namespace transnotes::queue
