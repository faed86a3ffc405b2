// The interfaces the domain needs from the outside world. Adapters live in their own layers:
// storage/ (SQLite, PostgreSQL), cache/ (memory, Redis), queue/ (in-process, Redis),
// translation/ (Apertium, Marian). All implementations must be safe to call from many threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/model.h"

namespace transnotes {

// The system of record. Throws Unavailable when the database cannot be reached.
class Store {
 public:
  virtual ~Store() = default;

  // Applies pending schema migrations. Safe to call from several processes at once.
  virtual void migrate() = 0;

  // Inserts a note; all fields of `fields` are set and valid. Returns the stored row.
  virtual Note create_note(const NoteFields& fields) = 0;
  virtual std::optional<Note> get_note(std::int64_t id) = 0;
  // Newest first (created_at desc, id desc).
  virtual std::vector<Note> list_notes(const ListQuery& query) = 0;
  // Writes only the fields that are set, bumps updated_at and version. nullopt if no such note.
  virtual std::optional<Note> update_note(std::int64_t id, const NoteFields& fields) = 0;
  // Deletes the note and its translation jobs. False if no such note.
  virtual bool delete_note(std::int64_t id) = 0;
  virtual Stats stats() = 0;

  // Inserts a queued job for the note in one transaction with checking the note exists.
  // nullopt if the note does not exist.
  virtual std::optional<TranslationJob> create_job(std::int64_t note_id,
                                                   const std::string& source_language,
                                                   const std::string& target_language,
                                                   const std::string& engine, int max_attempts) = 0;
  virtual std::optional<TranslationJob> get_job(std::int64_t id) = 0;
  // The newest job per target language of a note, newest first.
  virtual std::vector<TranslationJob> latest_jobs_for_note(std::int64_t note_id) = 0;

  // Claims one runnable job for `worker_id`: queued and due, or running with an expired lease.
  // If `preferred_id` is set, only that job is considered. The claim sets status running,
  // increments attempts, sets started_at and a lease until now + lease. Idempotent under
  // concurrent callers: a job is claimed by at most one worker at a time.
  virtual std::optional<ClaimedJob> claim_job(const std::string& worker_id,
                                              std::chrono::milliseconds lease,
                                              std::optional<std::int64_t> preferred_id) = 0;
  // Extends the lease of a job this worker holds. False if the worker lost it.
  virtual bool renew_lease(std::int64_t job_id, const std::string& worker_id,
                           std::chrono::milliseconds lease) = 0;
  // In one transaction: marks the job succeeded with `text` and, if the note still exists,
  // sets its translated_text/translated_language and bumps its version. Only if this worker
  // still holds the job. Returns the note's new version if the note was updated.
  struct CompleteResult {
    bool applied = false;                      // false: the worker no longer held the job
    std::optional<std::int64_t> note_version;  // set when the note was updated
  };
  virtual CompleteResult complete_job(std::int64_t job_id, const std::string& worker_id,
                                      const std::string& text, const std::string& engine) = 0;
  // Records a failed attempt. With `retry_after`, the job goes back to queued, due after the
  // delay; without, it becomes failed. Only if this worker still holds the job.
  virtual bool fail_job(std::int64_t job_id, const std::string& worker_id, const std::string& error,
                        std::optional<std::chrono::milliseconds> retry_after) = 0;
  // Gives a claimed job back unfinished (its worker is shutting down): queued, due now, and the
  // attempt it was on is not counted, since the engine never got to answer. Only if this worker
  // still holds the job.
  virtual bool release_job(std::int64_t job_id, const std::string& worker_id) = 0;
  // Ids of jobs that are runnable now (queued and due, or lease expired), oldest first.
  virtual std::vector<std::int64_t> runnable_job_ids(int limit) = 0;
};

// Cache-aside storage of a note's serialized JSON. Failures are swallowed (logged, counted):
// a cache must never fail a request.
class NoteCache {
 public:
  virtual ~NoteCache() = default;
  virtual std::optional<std::string> get(std::int64_t note_id) = 0;
  // get() for callers that must not block (HTTP event-loop threads). False: this cache cannot
  // answer without blocking right now (use get() where blocking is fine). True: `done` will be
  // called exactly once, from any thread, with what get() would have returned.
  using GetCallback = std::function<void(std::optional<std::string>)>;
  virtual bool get_async(std::int64_t /*note_id*/, GetCallback /*done*/) { return false; }
  // Stores `body` for the note unless an invalidation or a put with a higher version came first.
  virtual void put(std::int64_t note_id, std::int64_t version, std::string_view body) = 0;
  // Drops the entry; later puts with version < min_version are ignored (closes the
  // reader/writer race of cache-aside). Deletion uses INT64_MAX.
  virtual void invalidate(std::int64_t note_id, std::int64_t min_version) = 0;
  // After a write: caches `body` as version `version`, keeping the guarantees of
  // invalidate(note_id, version) (older versions are never served or stored again), so the next
  // read needs no database round trip. When the body cannot be stored, it still invalidates.
  virtual void refresh(std::int64_t note_id, std::int64_t version, std::string_view body) {
    invalidate(note_id, version);
    put(note_id, version, body);
  }
};

// Carries "job N is ready" to workers for low latency. The database stays the source of truth:
// a lost message only delays a job until the sweeper or a polling worker finds it.
class JobBus {
 public:
  virtual ~JobBus() = default;
  virtual void publish(std::int64_t job_id) = 0;
  // Waits up to `timeout` for a job id. nullopt on timeout or shutdown.
  virtual std::optional<std::int64_t> next(std::chrono::milliseconds timeout) = 0;
  // Wakes every waiter; `next` returns nullopt from then on.
  virtual void close() = 0;
};

struct TranslationOutput {
  std::string text;
  std::string engine;
};

// Translates whole texts between languages with whichever installed engine covers the pair.
class Translator {
 public:
  virtual ~Translator() = default;
  virtual std::vector<SupportedPair> pairs() const = 0;
  // The engine that would translate source->target, nullopt if none can.
  virtual std::optional<std::string> engine_for(const std::string& source,
                                                const std::string& target) const = 0;
  // Translates the whole text, keeping paragraph breaks. Throws TranslationFailed; throws
  // BadRequest if the pair is not supported.
  virtual TranslationOutput translate(const std::string& source, const std::string& target,
                                      const std::string& text) = 0;
};

}  // namespace transnotes
