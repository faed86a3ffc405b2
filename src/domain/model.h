// Core value types of transnotes: notes, translation jobs, statistics.
// Plain data, no I/O; every other layer speaks in these types.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace transnotes {

// Microseconds since the Unix epoch, UTC. Rendered as ISO 8601 with microseconds and `Z`.
using Timestamp = std::int64_t;

Timestamp now_micros();
std::string format_timestamp(Timestamp t);  // "2026-11-29T17:08:07.123456Z"

inline constexpr std::size_t kMaxTitleLength = 200;
inline constexpr std::size_t kMaxLanguageLength = 50;
inline constexpr const char* kDefaultLanguage = "en";

// Who owns a note or a job: a user's id. Every read and write of notes and jobs is scoped to one
// owner, so one user's ids are invisible to another.
using UserId = std::int64_t;
// The owner of everything in `--auth open` mode, and of the notes that existed before users did
// (the migration gives them to it). A reserved account row that cannot log in.
inline constexpr UserId kOpenModeOwner = 0;

inline constexpr std::size_t kMaxUsernameLength = 150;

struct User {
  UserId id = 0;
  std::string username;       // as registered; unique case-insensitively
  std::string email;          // may be empty
  std::string password_hash;  // Argon2id encoded string (crypto_pwhash_str); never logged
  bool is_active = true;
  // May administer every user's translation jobs (`/api/v1/translations/{id}/retry/`, ...).
  bool is_staff = false;
  Timestamp date_joined = 0;
};

struct Note {
  std::int64_t id = 0;
  UserId owner_id = kOpenModeOwner;
  std::string title;
  std::string original_text;
  std::string original_language = kDefaultLanguage;
  std::optional<std::string> translated_text;
  std::optional<std::string> translated_language;
  Timestamp created_at = 0;
  Timestamp updated_at = 0;
  // Bumped by every write to the row (edits and translation results); orders cache fills.
  std::int64_t version = 1;
};

// The writable fields of a note. For a create or PUT all are set (language defaults to "en");
// for a PATCH only the fields the client sent are set.
struct NoteFields {
  std::optional<std::string> title;
  std::optional<std::string> original_text;
  std::optional<std::string> original_language;
};

// kCancelled: an administrator cancelled it (Store::cancel_job); final, like succeeded/failed.
enum class JobStatus { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
const char* to_string(JobStatus s);
std::optional<JobStatus> job_status_from_string(const std::string& s);

struct TranslationJob {
  std::int64_t id = 0;
  std::int64_t note_id = 0;
  UserId owner_id = kOpenModeOwner;  // the note's owner when the job was asked for
  std::string source_language;
  std::string target_language;
  JobStatus status = JobStatus::kQueued;
  std::optional<std::string> text;  // set when succeeded
  std::optional<std::string>
      error;           // set when failed (and the last attempt's error while retrying)
  std::string engine;  // engine chosen for the pair, e.g. "apertium", "marian"
  int attempts = 0;
  int max_attempts = 3;
  Timestamp created_at = 0;
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;
  // The X-Request-ID of the translate request that asked for the job ("" when none): carried
  // into the worker's log lines for the job. Never rendered by the API.
  std::string request_id;
  // A running job an administrator cancelled: its worker stops at the next segment. Only ever
  // true while the job is running; every way a job ends clears it.
  bool cancel_requested = false;
};

// Which jobs an administrator lists (Store::list_jobs), across all owners, newest first.
struct JobFilter {
  std::optional<JobStatus> status;
  std::optional<std::int64_t> note_id;
  std::int64_t limit = 100;
  // Only jobs with a smaller id (the next page after the last one shown); 0: from the newest.
  std::int64_t before_id = 0;
};

// The queue at a glance, for metrics (Store::job_summary).
struct JobSummary {
  std::map<JobStatus, std::int64_t> by_status;  // every status, 0 when none
  // created_at of the oldest queued job, nullopt when none is queued.
  std::optional<Timestamp> oldest_queued_created_at;
};

// A database connection pool's state (Store::pool_stats), for metrics.
struct PoolStats {
  int size = 0;      // connections open now
  int in_use = 0;    // leased to a caller
  int waiting = 0;   // callers waiting for a connection (SQLite: or for its one write lock)
  int capacity = 0;  // most connections it opens
};

// A job a worker has claimed, with the note's text as it is at claim time.
struct ClaimedJob {
  TranslationJob job;
  std::string note_text;
  std::string note_language;
};

struct LanguageCount {
  std::string language;
  std::int64_t count = 0;
};

struct Stats {
  std::int64_t total_notes = 0;
  std::int64_t total_translations = 0;            // notes whose translated_text is not null
  std::vector<LanguageCount> language_breakdown;  // ordered by count desc, then language
};

struct ListQuery {
  std::int64_t limit = 100;
  std::int64_t offset = 0;
};

// What a translate request asks the store for (Store::request_job).
struct JobRequest {
  UserId owner = kOpenModeOwner;
  std::int64_t note_id = 0;
  std::string source_language;
  std::string target_language;
  std::string engine;
  int max_attempts = 3;
  // Most queued + running jobs the owner may have at once; 0: no limit.
  int max_active_per_owner = 0;
  std::string request_id;  // stored on a new job (TranslationJob::request_id)
};

struct JobRequestResult {
  enum class Outcome {
    kCreated,        // a new queued job: publish it
    kExisting,       // the same note, target and text already has a queued or running job
    kNoteNotFound,   // no such note for this owner
    kOwnerQueueFull  // the owner already has max_active_per_owner queued or running jobs
  };
  Outcome outcome = Outcome::kNoteNotFound;
  std::optional<TranslationJob> job;  // set for kCreated and kExisting
};

// A stored answer to a request sent with an Idempotency-Key (Store::reserve_idempotency_key).
struct IdempotentResponse {
  std::string fingerprint;  // method, path and body digest of the first request with the key
  int status = 0;           // 0: the first request is still running
  std::string body;
  std::string location;  // its Location header, "" when none
  Timestamp created_at = 0;
};

// A translation direction between two normalized language codes (normalize_language, text.h).
struct LanguagePair {
  std::string source;  // ISO 639-1 code, e.g. "en"
  std::string target;
};

// A direction the service can translate, and what does it.
struct SupportedPair : LanguagePair {
  std::string engine;  // "apertium", "marian", or "pivot:<a>+<b>"
};

}  // namespace transnotes
