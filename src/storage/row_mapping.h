// Private to src/storage: maps a result row to the domain types. Both stores select note and
// job (and user) columns in the order read here, so one mapping serves both; a row type needs
// int64(i), text(i), optional_text(i) and optional_int64(i).
#pragma once

#include <string>

#include "domain/model.h"

namespace transnotes::storage {

template <typename Row>
Note read_note(const Row& row) {
  Note note;
  note.id = row.int64(0);
  note.title = row.text(1);
  note.original_text = row.text(2);
  note.original_language = row.text(3);
  note.translated_text = row.optional_text(4);
  note.translated_language = row.optional_text(5);
  note.created_at = row.int64(6);
  note.updated_at = row.int64(7);
  note.version = row.int64(8);
  note.owner_id = row.int64(9);
  return note;
}

template <typename Row>
TranslationJob read_job(const Row& row) {
  TranslationJob job;
  job.id = row.int64(0);
  job.note_id = row.int64(1);
  job.source_language = row.text(2);
  job.target_language = row.text(3);
  job.status = job_status_from_string(row.text(4)).value_or(JobStatus::kFailed);
  job.text = row.optional_text(5);
  job.error = row.optional_text(6);
  job.engine = row.text(7);
  job.attempts = static_cast<int>(row.int64(8));
  job.max_attempts = static_cast<int>(row.int64(9));
  job.created_at = row.int64(10);
  job.started_at = row.optional_int64(11);
  job.finished_at = row.optional_int64(12);
  job.owner_id = row.int64(13);
  job.request_id = row.text(14);
  job.cancel_requested = row.int64(15) != 0;
  return job;
}

template <typename Row>
User read_user(const Row& row) {
  User user;
  user.id = row.int64(0);
  user.username = row.text(1);
  user.email = row.text(2);
  user.password_hash = row.text(3);
  user.is_active = row.int64(4) != 0;
  user.date_joined = row.int64(5);
  user.is_staff = row.int64(6) != 0;
  return user;
}

// Columns: fingerprint, status, body, location, created_at.
template <typename Row>
IdempotentResponse read_idempotent_response(const Row& row) {
  IdempotentResponse response;
  response.fingerprint = row.text(0);
  response.status = static_cast<int>(row.int64(1));
  response.body = row.text(2);
  response.location = row.text(3);
  response.created_at = row.int64(4);
  return response;
}

// Every status with a zero count, for job_summary to fill in.
inline JobSummary empty_job_summary() {
  JobSummary summary;
  for (JobStatus status : {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kSucceeded,
                           JobStatus::kFailed, JobStatus::kCancelled}) {
    summary.by_status[status] = 0;
  }
  return summary;
}

// The Conflict messages of the job administration, worded the same by both stores.
inline std::string retry_refused_message(const std::string& status) {
  return "Only failed or cancelled translations can be retried; this one is " + status + ".";
}
inline std::string cancel_refused_message(const std::string& status) {
  return "Only queued or running translations can be cancelled; this one has already ended as " +
         status + ".";
}

}  // namespace transnotes::storage
