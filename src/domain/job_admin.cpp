#include "domain/job_admin.h"

#include "domain/errors.h"

namespace transnotes {

JobAdmin::JobAdmin(Store& store, JobBus& bus, UserEventPublisher* events)
    : store_(store), bus_(bus), events_(events) {}

std::vector<TranslationJob> JobAdmin::list(const JobFilter& filter) {
  return store_.list_jobs(filter);
}

TranslationJob JobAdmin::retry(std::int64_t job_id) {
  auto job = store_.retry_job(job_id);
  if (!job) throw NotFound();
  // Told before a worker can hear of it, so that "queued" precedes "running" on the stream.
  if (events_) events_->job_changed(*job);
  // After the commit: a worker woken earlier would find nothing to claim.
  bus_.publish({job->id, job->owner_id});
  return *job;
}

std::int64_t JobAdmin::retry_all_failed() {
  const std::vector<JobNotice> requeued = store_.retry_failed_jobs();
  for (const JobNotice& notice : requeued) {
    if (events_) {
      if (auto job = store_.get_job(notice.owner, notice.job_id)) events_->job_changed(*job);
    }
    bus_.publish(notice);
  }
  return static_cast<std::int64_t>(requeued.size());
}

TranslationJob JobAdmin::cancel(std::int64_t job_id) {
  auto job = store_.cancel_job(job_id);
  if (!job) throw NotFound();
  // A running job is only asked to stop: its worker tells the stream when it has.
  if (events_ && job->status == JobStatus::kCancelled) events_->job_changed(*job);
  return *job;
}

std::int64_t JobAdmin::purge(std::chrono::seconds older_than) {
  if (older_than.count() < 0) throw BadRequest("The age of the jobs to purge cannot be negative.");
  const Timestamp now = now_micros();
  // Ages beyond the epoch (e.g. a mistyped unit) would overflow the microseconds: nothing ended
  // that long ago.
  if (older_than.count() >= now / 1'000'000) return store_.purge_jobs(0);
  return store_.purge_jobs(
      now - std::chrono::duration_cast<std::chrono::microseconds>(older_than).count());
}

}  // namespace transnotes
