// The notes use cases: validation, cache-aside reads, writes with cache invalidation, and
// asking for translations. Knows only the ports (Store, NoteCache, JobBus, Translator).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "domain/errors.h"
#include "domain/model.h"
#include "domain/ports.h"
#include "domain/text.h"
#include "domain/user_events.h"

namespace transnotes {

// Checks the writable fields the way the original's serializer did. With `partial` (PATCH)
// absent fields are fine; otherwise title and original_text are required. Returns the field
// errors (empty when valid).
ValidationError::FieldErrors validate_note_fields(const NoteFields& fields, bool partial);

// What create, PUT and PATCH do to the writable fields before they reach the store: trims
// whitespace (as DRF's CharField does), validates (see validate_note_fields), and normalizes
// original_language (see normalize_language). Returns the field errors (empty when valid).
ValidationError::FieldErrors clean_note_fields(NoteFields& fields, bool partial);

// A translation's target language, validated and normalized. Throws ValidationError.
std::string clean_target_language(const std::string& target_language);

struct NoteServiceOptions {
  int max_attempts = 3;  // tries per translation job
  // Longest original_text accepted, in characters (the 400 names the limit); 0: no limit.
  std::size_t max_text_characters = 100'000;
  // Most queued + running translations one owner may have (429 beyond it); 0: no limit.
  int max_active_jobs_per_owner = 100;
};

// What a translate request got: a new job, or the one already queued or running for the same
// note, target and text (the caller answers 202 with it either way).
struct TranslationRequest {
  TranslationJob job;
  bool created = false;
};

// Every use case acts for one owner (see model.h): another owner's notes and jobs are reported
// exactly like ids that do not exist.
class NoteService {
 public:
  // Renders a note as the API's JSON body; what the cache holds.
  using Renderer = std::function<std::string(const Note&)>;

  // The service keeps references: every argument must outlive it. With `events`, each note
  // written and each job queued is told to its owner's live stream.
  NoteService(Store& store, NoteCache& cache, JobBus& bus, Translator& translator, Renderer render,
              NoteServiceOptions options = {}, UserEventPublisher* events = nullptr);

  // The rendered note, from the cache when present (cache-aside). Throws NotFound.
  std::string get_rendered(UserId owner, std::int64_t id);
  // The rendered note if the cache holds it; never touches the database.
  std::optional<std::string> cached_rendered(UserId owner, std::int64_t id) {
    return cache_.get({owner, id});
  }
  // The same without blocking, when the cache supports it (see NoteCache::get_async).
  bool cached_rendered_async(UserId owner, std::int64_t id, NoteCache::GetCallback done) {
    return cache_.get_async({owner, id}, std::move(done));
  }
  // Throws ValidationError, UnknownUser.
  Note create(UserId owner, NoteFields fields);
  // PUT (partial=false) or PATCH (partial=true); returns the updated note rendered, the body
  // the cache now holds. Throws NotFound, ValidationError.
  std::string update_rendered(UserId owner, std::int64_t id, NoteFields fields, bool partial);
  void remove(UserId owner, std::int64_t id);
  std::vector<Note> list(UserId owner, const ListQuery& query);
  // See Store::notes_version; nullopt when the store cannot tell.
  std::optional<std::int64_t> notes_version(UserId owner) { return store_.notes_version(owner); }
  Stats stats(UserId owner);

  // Queues a translation of the note into `target_language`; the caller answers 202. A request
  // repeated while its job is queued or running gets that job back.
  // Throws NotFound, ValidationError (missing target, same language, unsupported pair),
  // Throttled (the owner's queue is full). `request_id` (the request's X-Request-ID) is stored
  // on a new job, so the worker's log lines for it can name the request.
  TranslationRequest request_translation(UserId owner, std::int64_t note_id,
                                         const std::string& target_language,
                                         const std::string& request_id = {});
  TranslationJob job(UserId owner, std::int64_t id);
  std::vector<TranslationJob> jobs_for_note(UserId owner, std::int64_t note_id);
  std::vector<SupportedPair> languages() const;

  const NoteServiceOptions& options() const { return options_; }

 private:
  ValidationError::FieldErrors clean(NoteFields& fields, bool partial) const;

  Store& store_;
  NoteCache& cache_;
  JobBus& bus_;
  Translator& translator_;
  Renderer render_;
  NoteServiceOptions options_;
  UserEventPublisher* events_;
};

}  // namespace transnotes
