// Job administration: what an operator does to every owner's translation jobs, from the CLI
// (`transnotes jobs ...`) or the staff-only HTTP routes. The checks of what may happen to a job in
// which state live in the Store (they must hold against concurrent workers); this class turns
// its answers into the errors the callers report, and wakes workers for requeued jobs.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "domain/model.h"
#include "domain/ports.h"
#include "domain/user_events.h"

namespace transnotes {

class JobAdmin {
 public:
  // Keeps references: all must outlive it. With `events`, a job requeued or cancelled here is
  // told to its owner's live stream.
  JobAdmin(Store& store, JobBus& bus, UserEventPublisher* events = nullptr);

  // Every owner's jobs matching the filter, newest first (Store::list_jobs).
  std::vector<TranslationJob> list(const JobFilter& filter);
  // Requeues a failed or cancelled job (due now, attempts 0) and wakes a worker for it.
  // Throws NotFound for an unknown id, Conflict for a job that is queued, running or succeeded.
  TranslationJob retry(std::int64_t job_id);
  // retry() for every failed job; returns how many were requeued.
  std::int64_t retry_all_failed();
  // A queued job ends cancelled at once; a running one is asked to stop at its next segment and
  // is returned still running, with cancel_requested. Throws NotFound, or Conflict for a job that
  // has already ended.
  TranslationJob cancel(std::int64_t job_id);
  // Deletes the jobs that ended (succeeded, failed, cancelled) more than `older_than` ago; notes
  // keep their translations. Returns how many. Throws BadRequest for a negative duration.
  std::int64_t purge(std::chrono::seconds older_than);

 private:
  Store& store_;
  JobBus& bus_;
  UserEventPublisher* events_;
};

}  // namespace transnotes
