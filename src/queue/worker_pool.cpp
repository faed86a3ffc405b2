#include "queue/worker_pool.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <utility>

#include "domain/errors.h"

namespace transnotes::queue {

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "host";
  return buf;
}

// UTF-8: every byte but continuation bytes (10xxxxxx) starts a code point.
std::size_t count_code_points(const std::string& text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// The translator's "has this job been cancelled?", asked between batches. The store is read at
// most once per interval, so a translation of thousands of short batches does not become
// thousands of queries; a cancel is seen within the interval plus one batch.
class CancelWatch {
 public:
  CancelWatch(Store& store, std::int64_t job_id, const std::string& worker_id,
              std::chrono::milliseconds interval)
      : store_(store),
        job_id_(job_id),
        worker_id_(worker_id),
        interval_(interval),
        next_read_(std::chrono::steady_clock::now() + interval) {}

  bool asked() {
    if (requested_) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_read_) return false;
    next_read_ = now + interval_;
    return ask_store();
  }

  bool ask_store() {
    if (requested_) return true;
    try {
      requested_ = store_.cancel_requested(job_id_);
    } catch (const std::exception& e) {
      // Translating on is the safe side: the cancel is seen at a later batch or at the end.
      spdlog::warn("{}: cannot read whether job {} was cancelled: {}", worker_id_, job_id_,
                   e.what());
    }
    return requested_;
  }

 private:
  Store& store_;
  const std::int64_t job_id_;
  const std::string& worker_id_;
  const std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point next_read_;
  bool requested_ = false;
};

// An observer's failure must not end the worker thread (std::terminate) nor the attempt.
void notify_started(JobObserver* observer, const TranslationJob& job) {
  if (observer == nullptr) return;
  try {
    observer->attempt_started(job);
  } catch (const std::exception& e) {
    spdlog::error("job observer: {}", e.what());
  }
}

void notify_finished(JobObserver* observer, const TranslationJob& job,
                     const AttemptReport& report) {
  if (observer == nullptr) return;
  try {
    observer->attempt_finished(job, report);
  } catch (const std::exception& e) {
    spdlog::error("job observer: {}", e.what());
  }
}

}  // namespace

WorkerPool::WorkerPool(Store& store, JobBus& bus, Translator& translator, NoteCache& cache,
                       WorkerOptions options)
    : store_(store),
      bus_(bus),
      translator_(translator),
      cache_(cache),
      options_(std::move(options)),
      id_prefix_(options_.name + "@" + host_name() + ":" + std::to_string(getpid()) + ":" +
                 std::to_string(now_micros() % 1'000'000)) {}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::start() {
  {
    std::lock_guard lock(mutex_);
    running_workers_ = options_.threads;
  }
  for (int i = 0; i < options_.threads; ++i) {
    workers_.emplace_back([this, i] { run_worker(i); });
  }
  service_threads_.emplace_back([this] { run_lease_keeper(); });
  service_threads_.emplace_back([this] { run_sweeper(); });
}

void WorkerPool::begin_stopping() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  bus_.close();
}

void WorkerPool::stop_service_threads() {
  {
    std::lock_guard lock(mutex_);
    service_stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : service_threads_) t.join();
  service_threads_.clear();
}

void WorkerPool::join_workers() {
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void WorkerPool::stop() {
  if (workers_.empty() && service_threads_.empty()) return;
  begin_stopping();
  // Workers first: a translation that outlives its lease must still hold the job when it ends.
  join_workers();
  stop_service_threads();
}

bool WorkerPool::stop(std::chrono::milliseconds grace) {
  if (workers_.empty() && service_threads_.empty()) return true;
  begin_stopping();
  bool finished = false;
  {
    std::unique_lock lock(mutex_);
    finished = worker_exited_.wait_for(lock, grace, [this] { return running_workers_ == 0; });
  }
  if (!finished) {
    abandon_running_tries();
    if (options_.abandon_translations) options_.abandon_translations();
  }
  stop_service_threads();
  if (finished) join_workers();
  return finished;
}

void WorkerPool::abandon_running_tries() {
  std::vector<std::pair<std::int64_t, std::string>> released;
  {
    std::lock_guard lock(mutex_);
    abandoning_ = true;  // a claim still in flight is released by process() itself
    for (auto& [job_id, held] : held_) {
      if (held.abandoned) continue;
      held.abandoned = true;
      released.emplace_back(job_id, held.worker_id);
    }
  }
  for (const auto& [job_id, worker_id] : released) requeue_abandoned(job_id, worker_id);
}

void WorkerPool::requeue_abandoned(std::int64_t job_id, const std::string& worker_id) {
  try {
    // Due at once, and the try does not count: the next worker (here or in another process)
    // takes it without waiting for the lease to lapse, with the attempts it had.
    if (store_.release_job(job_id, worker_id)) counters_.abandoned.fetch_add(1);
    spdlog::warn("{}: job {} abandoned at shutdown; queued again", worker_id, job_id);
  } catch (const std::exception& e) {
    // Its lease is no longer renewed, so it lapses and the job is taken over anyway.
    spdlog::error("{}: cannot re-queue job {}: {}", worker_id, job_id, e.what());
  }
}

bool WorkerPool::abandoned(std::int64_t job_id) {
  std::lock_guard lock(mutex_);
  const auto found = held_.find(job_id);
  return found != held_.end() && found->second.abandoned;
}

std::chrono::milliseconds retry_backoff(int attempts, std::chrono::milliseconds retry_base,
                                        std::chrono::milliseconds retry_max, double jitter) {
  double delay = static_cast<double>(retry_base.count()) *
                 static_cast<double>(1LL << std::clamp(attempts - 1, 0, 20));
  delay = std::min(delay, static_cast<double>(retry_max.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(delay * std::clamp(jitter, 0.5, 1.0)));
}

std::chrono::milliseconds WorkerPool::retry_delay(int attempts) {
  double jitter = 1.0;
  if (options_.jitter) {
    jitter = options_.jitter();
  } else {
    thread_local std::mt19937 rng{std::random_device{}()};
    jitter = std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  }
  return retry_backoff(attempts, options_.retry_base, options_.retry_max, jitter);
}

void WorkerPool::run_worker(int index) {
  const std::string worker_id = id_prefix_ + "/" + std::to_string(index);
  struct ExitNotice {
    WorkerPool* pool;
    ~ExitNotice() {
      {
        std::lock_guard lock(pool->mutex_);
        --pool->running_workers_;
      }
      pool->worker_exited_.notify_all();
    }
  } exit_notice{this};
  while (!stopping_) {
    // Only the job id matters here: the claimed row says whose job it is.
    std::optional<std::int64_t> hint;
    try {
      if (auto notice = bus_.next(options_.poll_interval)) hint = notice->job_id;
    } catch (const std::exception& e) {
      spdlog::warn("{}: job bus: {}", worker_id, e.what());
    }
    if (stopping_) break;
    // Drain: after a wake-up (or a quiet poll interval), keep claiming until nothing is due.
    bool first = true;
    while (!stopping_) {
      std::optional<ClaimedJob> claimed;
      try {
        claimed = store_.claim_job(worker_id, options_.lease, first ? hint : std::nullopt);
        if (!claimed && first && hint)
          claimed = store_.claim_job(worker_id, options_.lease, std::nullopt);
      } catch (const std::exception& e) {
        spdlog::warn("{}: cannot claim jobs: {}", worker_id, e.what());
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, options_.poll_interval, [this] { return stopping_.load(); });
        break;
      }
      first = false;
      if (!claimed) break;
      process(*claimed, worker_id);
    }
  }
}

void WorkerPool::process(const ClaimedJob& claimed, const std::string& worker_id) {
  const auto& job = claimed.job;
  AttemptReport report;
  report.engine = job.engine;
  report.source_characters = count_code_points(claimed.note_text);
  {
    bool too_late = false;
    {
      std::lock_guard lock(mutex_);
      too_late = abandoning_;
      held_[job.id] = Held{worker_id, too_late};
    }
    struct Release {
      WorkerPool* pool;
      std::int64_t id;
      ~Release() {
        std::lock_guard lock(pool->mutex_);
        pool->held_.erase(id);
      }
    } release{this, job.id};
    notify_started(options_.observer, job);
    if (options_.events && !too_late) options_.events->job_changed(job);
    if (too_late) {  // claimed while stop(grace) gave up on running tries: do not start this one
      requeue_abandoned(job.id, worker_id);
      report.outcome = "abandoned";
    } else {
      report.outcome = run_attempt(claimed, worker_id, report);
    }
  }
  publish_outcome(job, report.outcome);
  notify_finished(options_.observer, job, report);
}

void WorkerPool::publish_outcome(const TranslationJob& job, const std::string& outcome) {
  // A lost lease stored nothing: whoever holds the job now tells its changes.
  if (!options_.events || outcome == "lost_lease") return;
  try {
    // Read back rather than pieced together, so the event shows exactly what the API would
    // (finished_at, error and text as the store wrote them).
    if (auto stored = store_.get_job(job.owner_id, job.id)) options_.events->job_changed(*stored);
    if (outcome == "succeeded") {
      if (auto note = store_.get_note(job.owner_id, job.note_id)) {
        options_.events->note_updated(*note);
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("job {}: its status could not be told to the owner's event stream: {}", job.id,
                 e.what());
  }
}

std::string WorkerPool::run_attempt(const ClaimedJob& claimed, const std::string& worker_id,
                                    AttemptReport& report) {
  const auto& job = claimed.job;
  spdlog::info("{}: job {} note {} {}->{} attempt {}/{}", worker_id, job.id, job.note_id,
               claimed.note_language, job.target_language, job.attempts, job.max_attempts);
  CancelWatch cancel_watch(store_, job.id, worker_id, options_.cancel_check_interval);
  const std::function<bool()> cancelled = [&cancel_watch] { return cancel_watch.asked(); };
  const auto began = std::chrono::steady_clock::now();
  std::string error;
  bool retryable = true;
  try {
    auto output = translator_.translate(claimed.note_language, job.target_language,
                                        claimed.note_text, cancelled);
    report.duration = std::chrono::steady_clock::now() - began;
    report.engine = output.engine;
    if (abandoned(job.id)) {
      spdlog::info("{}: job {} finished after it was abandoned; result discarded", worker_id,
                   job.id);
      return "abandoned";
    }
    // A cancel that landed during the last batch still wins: the administrator was told the job
    // stops, and nothing has been stored yet.
    if (cancel_watch.asked()) return finish_cancelled(job, worker_id);
    auto result = store_.complete_job(job.id, worker_id, output.text, output.engine);
    if (!result.applied) {
      counters_.lost_leases.fetch_add(1);
      spdlog::warn("{}: job {} lease was lost; result discarded", worker_id, job.id);
      return "lost_lease";
    }
    if (result.note_version) {
      cache_.invalidate(NoteKey{job.owner_id, job.note_id}, *result.note_version);
    }
    counters_.succeeded.fetch_add(1);
    return "succeeded";
  } catch (const TranslationCancelled&) {
    report.duration = std::chrono::steady_clock::now() - began;
    if (abandoned(job.id)) return "abandoned";
    return finish_cancelled(job, worker_id);
  } catch (const BadRequest& e) {
    // The note's language changed to one no engine can translate from: retrying cannot help.
    error = e.what();
    retryable = false;
  } catch (const std::exception& e) {
    error = e.what();
  }
  report.duration = std::chrono::steady_clock::now() - began;
  if (abandoned(job.id)) return "abandoned";  // already queued again; the failure is its doing
  // A cancelled job is never retried, even when its last batch failed: ask the store now rather
  // than trust a flag up to an interval old (failures are rare; one query is nothing next to it).
  if (cancel_watch.ask_store()) return finish_cancelled(job, worker_id);
  return record_failure(job, worker_id, error, retryable);
}

std::string WorkerPool::record_failure(const TranslationJob& job, const std::string& worker_id,
                                       const std::string& error, bool retryable) {
  try {
    const bool final = !retryable || job.attempts >= job.max_attempts;
    std::optional<std::chrono::milliseconds> retry;
    if (!final) retry = retry_delay(job.attempts);
    if (!store_.fail_job(job.id, worker_id, error, retry)) {
      counters_.lost_leases.fetch_add(1);
      spdlog::warn("{}: job {} lease was lost; its failure is not recorded: {}", worker_id, job.id,
                   error);
      return "lost_lease";
    }
    if (final) {
      counters_.failed.fetch_add(1);
      spdlog::error("{}: job {} failed: {}", worker_id, job.id, error);
      return "failed";
    }
    counters_.retried.fetch_add(1);
    spdlog::warn("{}: job {} attempt {} failed, retrying in {} ms: {}", worker_id, job.id,
                 job.attempts, retry->count(), error);
    return "retry";
  } catch (const std::exception& e) {
    // The lease will lapse and another attempt will be made: the job is not lost.
    spdlog::error("{}: cannot record failure of job {}: {}", worker_id, job.id, e.what());
    return "lost_lease";
  }
}

std::string WorkerPool::finish_cancelled(const TranslationJob& job, const std::string& worker_id) {
  try {
    if (!store_.finish_cancelled(job.id, worker_id)) {
      counters_.lost_leases.fetch_add(1);
      spdlog::warn("{}: job {} was cancelled but its lease was lost", worker_id, job.id);
      return "lost_lease";
    }
  } catch (const std::exception& e) {
    // The lease lapses; whoever claims the job next finds it cancel-requested.
    spdlog::error("{}: cannot record the cancellation of job {}: {}", worker_id, job.id, e.what());
    return "lost_lease";
  }
  counters_.cancelled.fetch_add(1);
  spdlog::info("{}: job {} cancelled", worker_id, job.id);
  return "cancelled";
}

void WorkerPool::run_lease_keeper() {
  auto period = std::max(options_.lease / 3, std::chrono::milliseconds(10));
  std::unique_lock lock(mutex_);
  while (!service_stopping_) {
    wake_.wait_for(lock, period, [this] { return service_stopping_.load(); });
    std::vector<std::pair<std::int64_t, std::string>> held;
    for (const auto& [job_id, holder] : held_) {
      if (!holder.abandoned) held.emplace_back(job_id, holder.worker_id);
    }
    lock.unlock();
    for (const auto& [job_id, worker_id] : held) {
      try {
        if (!store_.renew_lease(job_id, worker_id, options_.lease)) {
          spdlog::warn("{}: lost the lease on job {}", worker_id, job_id);
        }
      } catch (const std::exception& e) {
        spdlog::warn("{}: cannot renew lease on job {}: {}", worker_id, job_id, e.what());
      }
    }
    lock.lock();
  }
}

void WorkerPool::run_sweeper() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, options_.sweep_interval, [this] { return stopping_.load(); });
    if (stopping_) break;
    lock.unlock();
    try {
      for (const JobNotice& notice : store_.runnable_jobs(100)) bus_.publish(notice);
    } catch (const std::exception& e) {
      spdlog::warn("sweeper: {}", e.what());
    }
    lock.lock();
  }
}

}  // namespace transnotes::queue
