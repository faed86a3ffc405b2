// Background translation workers: take job ids from the JobBus (or poll the database when the
// bus is quiet or down), claim each job with a lease, keep the lease alive while translating,
// and commit the result, the note's translated_* fields and the job status in one transaction.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "domain/ports.h"

namespace transnotes {

struct WorkerOptions {
  int threads = 2;                                  // concurrent translations
  std::chrono::milliseconds lease{30'000};          // a claim lapses after this without renewal
  std::chrono::milliseconds poll_interval{1'000};   // how often an idle worker checks the database
  std::chrono::milliseconds retry_base{1'000};      // first retry delay; doubles per attempt
  std::chrono::milliseconds retry_max{60'000};      // cap on the retry delay
  std::chrono::milliseconds sweep_interval{5'000};  // re-publishes runnable jobs to the bus
  std::string name = "worker";                      // prefix of worker ids (host, pid added)
};

struct WorkerCounters {
  std::atomic<std::uint64_t> succeeded{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> retried{0};
  std::atomic<std::uint64_t> lost_leases{0};
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
  void stop();
  const WorkerCounters& counters() const { return counters_; }

 private:
  void run_worker(int index);
  void process(const ClaimedJob& claimed, const std::string& worker_id);
  void run_lease_keeper();
  void run_sweeper();
  std::chrono::milliseconds retry_delay(int attempts);

  Store& store_;
  JobBus& bus_;
  Translator& translator_;
  NoteCache& cache_;
  WorkerOptions options_;
  WorkerCounters counters_;
  std::string id_prefix_;

  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::int64_t, std::string> held_;  // job id -> worker id, for lease renewal
};

}  // namespace transnotes
