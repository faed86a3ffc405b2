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

class NoteService {
 public:
  // Renders a note as the API's JSON body; what the cache holds.
  using Renderer = std::function<std::string(const Note&)>;

  // The service keeps references: every argument must outlive it.
  NoteService(Store& store, NoteCache& cache, JobBus& bus, Translator& translator, Renderer render,
              int max_attempts);

  // The rendered note, from the cache when present (cache-aside). Throws NotFound.
  std::string get_rendered(std::int64_t id);
  // The rendered note if the cache holds it; never touches the database.
  std::optional<std::string> cached_rendered(std::int64_t id) { return cache_.get(id); }
  // The same without blocking, when the cache supports it (see NoteCache::get_async).
  bool cached_rendered_async(std::int64_t id, NoteCache::GetCallback done) {
    return cache_.get_async(id, std::move(done));
  }
  Note create(NoteFields fields);
  // PUT (partial=false) or PATCH (partial=true); returns the updated note rendered, the body
  // the cache now holds. Throws NotFound, ValidationError.
  std::string update_rendered(std::int64_t id, NoteFields fields, bool partial);
  void remove(std::int64_t id);
  std::vector<Note> list(const ListQuery& query);
  Stats stats();

  // Queues a translation of the note into `target_language`; the caller answers 202.
  // Throws NotFound, ValidationError (missing target, same language, unsupported pair).
  TranslationJob request_translation(std::int64_t note_id, const std::string& target_language);
  TranslationJob job(std::int64_t id);
  std::vector<TranslationJob> jobs_for_note(std::int64_t note_id);
  std::vector<SupportedPair> languages() const;

 private:
  Store& store_;
  NoteCache& cache_;
  JobBus& bus_;
  Translator& translator_;
  Renderer render_;
  int max_attempts_;
};

}  // namespace transnotes
