// Background translation workers: take job notices from the JobBus (or poll the database when the
// bus is quiet or down), claim each job with a lease, keep the lease alive while translating,
// and commit the result, the note's translated_* fields and the job status in one transaction.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "domain/ports.h"
#include "domain/user_events.h"

namespace transnotes::queue {

// How one attempt at a job ended (JobObserver::attempt_finished).
struct AttemptReport {
  // "succeeded", "retry" (failed, queued again), "failed" (for good), "cancelled" (an
  // administrator stopped it), "abandoned" (given up at shutdown, queued again), "lost_lease"
  // (nothing of this attempt was stored: another worker holds the job, or the store could not
  // be reached and the lease will lapse).
  std::string outcome;
  // The engine that translated ("marian", "pivot:apertium+marian"); when the attempt produced
  // no translation, the engine recorded on the job when it was asked for.
  std::string engine;
  std::chrono::nanoseconds duration{0};  // wall time of the translate call
  std::size_t source_characters = 0;     // the note text's Unicode code points
};

// Watches every attempt (metrics, per-job log context). Must be thread-safe: each worker thread
// calls it for its own attempts.
class JobObserver {
 public:
  virtual ~JobObserver() = default;
  // On the worker thread, after the claim, before translating.
  virtual void attempt_started(const TranslationJob& /*job*/) {}
  // On the same thread, after the outcome is stored.
  virtual void attempt_finished(const TranslationJob& /*job*/, const AttemptReport& /*report*/) {}
};

struct WorkerOptions {
  int threads = 2;                                  // concurrent translations
  std::chrono::milliseconds lease{30'000};          // a claim lapses after this without renewal
  std::chrono::milliseconds poll_interval{1'000};   // how often an idle worker checks the database
  std::chrono::milliseconds retry_base{1'000};      // first retry delay; doubles per attempt
  std::chrono::milliseconds retry_max{60'000};      // cap on the retry delay
  std::chrono::milliseconds sweep_interval{5'000};  // re-publishes runnable jobs to the bus
  std::string name = "worker";                      // prefix of worker ids (host, pid added)
  // Source of the backoff jitter factor, a value in [0.5, 1]. Unset: uniformly random, so the
  // retries of many jobs that failed together do not stampede. Tests pin it to check timing.
  std::function<double()> jitter;
  // Called by stop(grace) when the grace runs out with translations still running: makes the
  // engines give up their in-flight work (EngineRegistry::abandon) so the worker threads return.
  std::function<void()> abandon_translations;
  // Told about every attempt; may be null. Must outlive the pool.
  JobObserver* observer = nullptr;
  // A running job's cancel_requested flag is read from the store at most this often, when the
  // translator asks between batches: a cancelled job stops within about this long plus one batch.
  std::chrono::milliseconds cancel_check_interval{300};
  // Told each status a job takes here (running, then succeeded, failed, cancelled or queued
  // again) and the note a translation lands in; may be null. Must outlive the pool.
  UserEventPublisher* events = nullptr;
};

// Delay before the attempt after `attempts` failed ones: retry_base * 2^(attempts-1), at most
// retry_max, scaled by `jitter` (clamped to [0.5, 1]).
std::chrono::milliseconds retry_backoff(int attempts, std::chrono::milliseconds retry_base,
                                        std::chrono::milliseconds retry_max, double jitter);

struct WorkerCounters {
  std::atomic<std::uint64_t> succeeded{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> retried{0};
  std::atomic<std::uint64_t> lost_leases{0};
  std::atomic<std::uint64_t> abandoned{0};  // tries given up at shutdown, their jobs re-queued
  std::atomic<std::uint64_t> cancelled{0};  // running jobs stopped by an administrator
};

class WorkerPool {
 public:
  // All references must outlive the pool.
  WorkerPool(Store& store, JobBus& bus, Translator& translator, NoteCache& cache,
             WorkerOptions options);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void start();
  // Stops taking jobs and waits for running translations to finish (their results are kept).
  // Leases stay renewed until every worker has stopped.
  void stop();
  // Like stop(), but waits at most `grace` for running translations. Tries still running then
  // are abandoned: their jobs go back to queued, due at once, for the next worker; results they
  // produce later are discarded; abandon_translations is called. Returns true when every
  // translation finished within the grace. Threads still inside an engine are joined by stop()
  // or the destructor.
  bool stop(std::chrono::milliseconds grace);
  const WorkerCounters& counters() const { return counters_; }

 private:
  void run_worker(int index);
  void process(const ClaimedJob& claimed, const std::string& worker_id);
  // Tells the owner's stream the job as stored after an attempt (and, when it succeeded, the
  // note it updated).
  void publish_outcome(const TranslationJob& job, const std::string& outcome);
  // Stores the attempt's outcome; returns AttemptReport::outcome.
  std::string run_attempt(const ClaimedJob& claimed, const std::string& worker_id,
                          AttemptReport& report);
  std::string record_failure(const TranslationJob& job, const std::string& worker_id,
                             const std::string& error, bool retryable);
  std::string finish_cancelled(const TranslationJob& job, const std::string& worker_id);
  void run_lease_keeper();
  void run_sweeper();
  std::chrono::milliseconds retry_delay(int attempts);
  void begin_stopping();
  void abandon_running_tries();
  void requeue_abandoned(std::int64_t job_id, const std::string& worker_id);
  void stop_service_threads();
  void join_workers();
  bool abandoned(std::int64_t job_id);

  Store& store_;
  JobBus& bus_;
  Translator& translator_;
  NoteCache& cache_;
  WorkerOptions options_;
  WorkerCounters counters_;
  std::string id_prefix_;

  struct Held {
    std::string worker_id;
    bool abandoned = false;  // released at shutdown: no renewal, and the result is discarded
  };

  std::atomic<bool> stopping_{false};          // workers take no more jobs
  std::atomic<bool> service_stopping_{false};  // lease keeper and sweeper end
  std::vector<std::thread> workers_;
  std::vector<std::thread> service_threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable worker_exited_;
  int running_workers_ = 0;
  bool abandoning_ = false;  // stop(grace) ran out: tries still running or starting are released
  std::map<std::int64_t, Held> held_;  // job id -> holder, for lease renewal
};

}  // namespace transnotes::queue
