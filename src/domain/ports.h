// The interfaces the domain needs from the outside world. Adapters live in their own layers:
// storage/ (SQLite, PostgreSQL), cache/ (memory, Redis), queue/ (in-process, Redis),
// translation/ (Apertium, Marian). All implementations must be safe to call from many threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/model.h"

namespace transnotes {

// "Job N of owner U is ready", as carried to workers.
struct JobNotice {
  std::int64_t job_id = 0;
  UserId owner = kOpenModeOwner;
  friend bool operator==(const JobNotice&, const JobNotice&) = default;
};

// The system of record. Throws Unavailable when the database cannot be reached.
class Store {
 public:
  virtual ~Store() = default;

  // Applies pending schema migrations. Safe to call from several processes at once.
  virtual void migrate() = 0;

  // --- Notes and jobs: every call is scoped to one owner. Another owner's note or job is
  // reported exactly like one that does not exist.

  // Inserts a note owned by `owner`; all fields of `fields` are set and valid. Returns the
  // stored row. Throws UnknownUser when `owner` names no user (deleted while a token lived).
  virtual Note create_note(UserId owner, const NoteFields& fields) = 0;
  virtual std::optional<Note> get_note(UserId owner, std::int64_t id) = 0;
  // Newest first (created_at desc, id desc).
  virtual std::vector<Note> list_notes(UserId owner, const ListQuery& query) = 0;
  // A number that grows with every committed change to the owner's notes, whoever writes them
  // (any process: create, update, delete, a translation landing, reassign_notes, delete_user):
  // equal numbers read at two times mean the owner's notes did not change in between. Kept by
  // the database itself (a trigger in the writing transaction), so a page rendered from a list
  // that was read after the number may be served for as long as the number stays the same.
  // nullopt: this store cannot tell (callers must not cache).
  virtual std::optional<std::int64_t> notes_version(UserId /*owner*/) { return std::nullopt; }
  // Writes only the fields that are set, bumps updated_at and version. nullopt if no such note.
  virtual std::optional<Note> update_note(UserId owner, std::int64_t id,
                                          const NoteFields& fields) = 0;
  // Deletes the note and its translation jobs. False if no such note.
  virtual bool delete_note(UserId owner, std::int64_t id) = 0;
  virtual Stats stats(UserId owner) = 0;

  // In one transaction: checks the note exists for the owner; returns the queued or running job
  // for the same note and target whose source_digest (text.h) matches the note's current text
  // and language, if any; refuses when the owner has max_active_per_owner queued + running jobs;
  // else inserts a queued job (owner_id = owner, source_digest of the note's text, request_id).
  // A running job with cancel_requested counts as neither: a request after a cancel makes a
  // new job.
  virtual JobRequestResult request_job(const JobRequest& request) = 0;
  virtual std::optional<TranslationJob> get_job(UserId owner, std::int64_t id) = 0;
  // The newest job per target language of a note, newest first.
  virtual std::vector<TranslationJob> latest_jobs_for_note(UserId owner, std::int64_t note_id) = 0;

  // Claims one runnable job for `worker_id`: queued and due, or running with an expired lease
  // (and not cancel_requested: such a job whose worker died ends cancelled instead).
  // If `preferred_id` is set, only that job is considered. The claim sets status running,
  // increments attempts, sets started_at and a lease until now + lease. Idempotent under
  // concurrent callers: a job is claimed by at most one worker at a time.
  virtual std::optional<ClaimedJob> claim_job(const std::string& worker_id,
                                              std::chrono::milliseconds lease,
                                              std::optional<std::int64_t> preferred_id) = 0;
  // Extends the lease of a job this worker holds. False if the worker lost it.
  virtual bool renew_lease(std::int64_t job_id, const std::string& worker_id,
                           std::chrono::milliseconds lease) = 0;
  // In one transaction: marks the job succeeded with `text` (also when cancel_requested: the
  // result arrived, so it is kept) and, if the note still exists and still belongs to the job's
  // owner, sets its translated_text/translated_language and bumps its version. Only if this
  // worker still holds the job. Returns the note's new version if the note was updated.
  struct CompleteResult {
    bool applied = false;                      // false: the worker no longer held the job
    std::optional<std::int64_t> note_version;  // set when the note was updated
  };
  virtual CompleteResult complete_job(std::int64_t job_id, const std::string& worker_id,
                                      const std::string& text, const std::string& engine) = 0;
  // Records a failed attempt. With `retry_after`, the job goes back to queued, due after the
  // delay; without, it becomes failed. A cancel_requested job becomes cancelled either way
  // (error kept). Only if this worker still holds the job.
  virtual bool fail_job(std::int64_t job_id, const std::string& worker_id, const std::string& error,
                        std::optional<std::chrono::milliseconds> retry_after) = 0;
  // Gives a claimed job back unfinished (its worker is shutting down): queued, due now, and the
  // attempt it was on is not counted, since the engine never got to answer. Only if this worker
  // still holds the job. A cancel_requested job becomes cancelled instead.
  virtual bool release_job(std::int64_t job_id, const std::string& worker_id) = 0;
  // Jobs that are runnable now (queued and due, or lease expired), oldest first.
  virtual std::vector<JobNotice> runnable_jobs(int limit) = 0;

  // --- Job administration (every owner's jobs; see JobAdmin in domain/job_admin.h).

  virtual std::vector<TranslationJob> list_jobs(const JobFilter& filter) = 0;
  // A failed or cancelled job goes back to queued, due now, with attempts 0 and no error, text,
  // started_at or finished_at. No per-owner cap applies (an administrator asks).
  // nullopt: no such job. Throws Conflict (message fit for clients) when the job is queued,
  // running or succeeded.
  virtual std::optional<TranslationJob> retry_job(std::int64_t job_id) = 0;
  // retry_job for every failed job; returns the notices to publish.
  virtual std::vector<JobNotice> retry_failed_jobs() = 0;
  // A queued job becomes cancelled at once (finished_at now); a running one gets
  // cancel_requested, and its worker ends it with finish_cancelled at its next segment (asking
  // again is harmless). Atomic against claim_job: a job is either cancelled before any worker
  // claims it, or its claimer is asked to stop. Returns the job as it is now.
  // nullopt: no such job. Throws Conflict (message fit for clients) when it has already ended.
  virtual std::optional<TranslationJob> cancel_job(std::int64_t job_id) = 0;
  // True when the running job this worker holds has been asked to stop (cancel_job). One
  // primary-key read: cheap enough to ask between segments.
  virtual bool cancel_requested(std::int64_t job_id) = 0;
  // The worker holding a cancel-requested job ends it: cancelled, finished_at now. False if the
  // worker no longer holds it.
  virtual bool finish_cancelled(std::int64_t job_id, const std::string& worker_id) = 0;
  // Deletes succeeded, failed and cancelled jobs that finished before `finished_before`.
  // Returns how many. Notes keep their translated_* fields.
  virtual std::int64_t purge_jobs(Timestamp finished_before) = 0;
  virtual JobSummary job_summary() = 0;
  virtual PoolStats pool_stats() = 0;

  // --- Users. kOpenModeOwner is a reserved row: never returned by these, never deleted.

  // Inserts an active user. nullopt when the username is taken, compared case-insensitively
  // (Unicode simple case folding is not needed: usernames are ASCII, see auth/).
  virtual std::optional<User> create_user(const std::string& username, const std::string& email,
                                          const std::string& password_hash) = 0;
  // Grants or takes away is_staff. False if no such user.
  virtual bool set_staff(UserId id, bool is_staff) = 0;
  // Case-insensitive lookup, so "Alice" logs in as the "alice" who registered.
  virtual std::optional<User> find_user(const std::string& username) = 0;
  virtual std::optional<User> get_user(UserId id) = 0;
  // Ordered by id.
  virtual std::vector<User> list_users() = 0;
  // Deletes the user with all their notes, jobs, idempotency keys and blacklisted tokens.
  // False if no such user.
  virtual bool delete_user(UserId id) = 0;
  virtual bool set_password_hash(UserId id, const std::string& password_hash) = 0;
  // In one transaction: gives every note of `from` and their translation jobs to `to`, keeping
  // ids, versions and timestamps (e.g. hands the notes kept for kOpenModeOwner before users
  // existed to a real account). Per-owner stats follow exactly; idempotency keys stay with
  // `from`. A note `from` creates meanwhile is either moved or stays with `from`, whole.
  // Returns the number of notes moved; 0 when from == to. Throws UnknownUser when `to` is no
  // users row (kOpenModeOwner is one). Cached copies keyed by `from` are the caller's to drop.
  virtual std::int64_t reassign_notes(UserId from, UserId to) = 0;

  // --- Refresh-token blacklist (log out, rotation).

  // Records the token id as revoked until `expires_at` (its own expiry; later rows may be
  // purged). Idempotent.
  virtual void blacklist_token(const std::string& jti, UserId user, Timestamp expires_at) = 0;
  virtual bool is_token_blacklisted(const std::string& jti) = 0;

  // --- Idempotency keys (per owner; a key older than `expire_before` counts as absent).

  // Reserves `key` for the request described by `fingerprint`: nullopt when it was free (the
  // caller runs the request, then calls finish_ or release_idempotency_key), else the record of
  // the first request with the key (status 0 while that one still runs).
  virtual std::optional<IdempotentResponse> reserve_idempotency_key(UserId owner,
                                                                    const std::string& key,
                                                                    const std::string& fingerprint,
                                                                    Timestamp expire_before) = 0;
  // Stores the answer of the request that reserved `key`.
  virtual void finish_idempotency_key(UserId owner, const std::string& key, int status,
                                      const std::string& body, const std::string& location) = 0;
  // Frees a reserved key whose request failed, so that a retry runs it again.
  virtual void release_idempotency_key(UserId owner, const std::string& key) = 0;
};

// Which cached note: the owner is part of the key, so one user's cached note can never answer
// another user's request for the same id.
struct NoteKey {
  UserId owner = kOpenModeOwner;
  std::int64_t id = 0;
  friend bool operator==(const NoteKey&, const NoteKey&) = default;
};

// Cache-aside storage of a note's serialized JSON. Failures are swallowed (logged, counted):
// a cache must never fail a request.
class NoteCache {
 public:
  virtual ~NoteCache() = default;
  virtual std::optional<std::string> get(const NoteKey& key) = 0;
  // get() for callers that must not block (HTTP event-loop threads). False: this cache cannot
  // answer without blocking right now (use get() where blocking is fine). True: `done` will be
  // called exactly once, from any thread, with what get() would have returned.
  using GetCallback = std::function<void(std::optional<std::string>)>;
  virtual bool get_async(const NoteKey& /*key*/, GetCallback /*done*/) { return false; }
  // Stores `body` for the note unless an invalidation or a put with a higher version came first.
  virtual void put(const NoteKey& key, std::int64_t version, std::string_view body) = 0;
  // Drops the entry; later puts with version < min_version are ignored (closes the
  // reader/writer race of cache-aside). Deletion uses INT64_MAX.
  virtual void invalidate(const NoteKey& key, std::int64_t min_version) = 0;
  // After a write: caches `body` as version `version`, keeping the guarantees of
  // invalidate(key, version) (older versions are never served or stored again), so the next
  // read needs no database round trip. When the body cannot be stored, it still invalidates.
  virtual void refresh(const NoteKey& key, std::int64_t version, std::string_view body) {
    invalidate(key, version);
    put(key, version, body);
  }
};

// Carries job notices to workers for low latency. The database stays the source of truth:
// a lost message only delays a job until the sweeper or a polling worker finds it.
class JobBus {
 public:
  virtual ~JobBus() = default;
  virtual void publish(const JobNotice& notice) = 0;
  // Waits up to `timeout` for a notice. nullopt on timeout or shutdown.
  virtual std::optional<JobNotice> next(std::chrono::milliseconds timeout) = 0;
  // Wakes every waiter; `next` returns nullopt from then on.
  virtual void close() = 0;
};

// One event of a user's live stream (GET /api/v1/events/).
struct UserEvent {
  // Increases along one user's stream; what a client sends back as Last-Event-ID to resume.
  std::uint64_t id = 0;
  std::string kind;  // "job", "note", or "reset" (the history no longer reaches the client's id)
  std::string data;  // one line of JSON
};

// Carries each user's events from whoever causes them (the API, workers in any process) to the
// streams open for that user, and keeps a bounded history so that a client that reconnects gets
// what it missed. Delivery is best effort: failures are logged and counted, never thrown, since
// an event must never fail the request or job that caused it.
class UserEvents {
 public:
  virtual ~UserEvents() = default;
  virtual void publish(UserId owner, std::string_view kind, std::string_view data) = 0;

  // Stops delivery when destroyed: once its destructor returned the listener is not called
  // again. Must not be destroyed from inside the listener.
  class Subscription {
   public:
    virtual ~Subscription() = default;
  };
  // Called in order, from the implementation's threads: must not block nor call back into it.
  using Listener = std::function<void(const UserEvent&)>;
  // Delivers `owner`'s events to `listener`: first those after `last_event_id` still held (or,
  // when the history no longer reaches back to it, one "reset" event whose id to resume from),
  // then each new one as it is published. Without `last_event_id` only new ones. Throws
  // Unavailable when the events cannot be reached.
  virtual std::unique_ptr<Subscription> subscribe(UserId owner,
                                                  std::optional<std::uint64_t> last_event_id,
                                                  Listener listener) = 0;
};

// A token bucket: holds at most `burst` tokens, refilled at `burst` per `period`.
struct RateLimit {
  int burst = 60;
  std::chrono::seconds period{60};
};

// Token buckets by key (e.g. "translate:user:7", "token:ip:10.0.0.1"), shared by every process
// that uses the same backing service. Failures of that service let requests through (logged,
// counted): a limiter must never fail a request.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Takes `cost` tokens from the bucket `key` if it holds that many. Returns nullopt when taken,
  // else how long until it would hold them (at least 1 s). A cost of 0 takes nothing and only
  // asks whether one token is there.
  virtual std::optional<std::chrono::seconds> acquire(std::string_view key, const RateLimit& limit,
                                                      int cost = 1) = 0;
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
  // Translates the whole text, keeping paragraph breaks, asking `cancelled` (when set) between
  // segments: once it answers true the translation stops and throws TranslationCancelled (an
  // administrator cancelled the job). Throws TranslationFailed; throws BadRequest if the pair is
  // not supported.
  virtual TranslationOutput translate(const std::string& source, const std::string& target,
                                      const std::string& text,
                                      const std::function<bool()>& cancelled) = 0;
  // The same, never cancelled. (Implementations override the one above only; they bring this one
  // back into their scope with `using Translator::translate;`.)
  TranslationOutput translate(const std::string& source, const std::string& target,
                              const std::string& text) {
    return translate(source, target, text, {});
  }
};

}  // namespace transnotes
