#include "domain/note_service.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <limits>
#include <set>
#include <string_view>

#include "domain/text.h"

namespace transnotes {

namespace {

constexpr const char* kNotAString = "Not a valid string.";
constexpr const char* kNotALanguage = "Not a valid language code.";
// A full queue drains at the speed of translation; a few seconds is a fair first wait.
constexpr std::chrono::seconds kQueueFullRetryAfter{5};

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

std::string too_long(std::size_t max_length) {
  return "Ensure this field has no more than " + std::to_string(max_length) + " characters.";
}

void check_text(ValidationError::FieldErrors& errors, const char* field,
                const std::optional<std::string>& value, bool required, std::size_t max_length) {
  if (!value) {
    if (required) errors[field].push_back("This field is required.");
    return;
  }
  // Bytes that are not UTF-8 are no text at all: they must neither be counted as characters
  // nor reach a store (PostgreSQL refuses them, SQLite would keep them and break readers).
  if (!is_valid_utf8(*value)) {
    errors[field].push_back(kNotAString);
    return;
  }
  if (is_blank(*value)) {
    errors[field].push_back("This field may not be blank.");
    return;
  }
  if (max_length && count_characters(*value) > max_length) {
    errors[field].push_back(too_long(max_length));
  }
  // DRF's CharField rejects U+0000 (ProhibitNullCharactersValidator), after the length check.
  // PostgreSQL text cannot hold it either, so it must never reach a store.
  if (value->find('\0') != std::string::npos) {
    errors[field].push_back("Null characters are not allowed.");
  }
}

// DRF's CharField trims surrounding whitespace before validating; so do we.
void trim_fields(NoteFields& fields) {
  for (auto* field : {&fields.title, &fields.original_text, &fields.original_language}) {
    if (*field) **field = trim_whitespace(**field);
  }
}

}  // namespace

ValidationError::FieldErrors validate_note_fields(const NoteFields& fields, bool partial) {
  ValidationError::FieldErrors errors;
  check_text(errors, "title", fields.title, !partial, kMaxTitleLength);
  check_text(errors, "original_text", fields.original_text, !partial, 0);
  check_text(errors, "original_language", fields.original_language, false, kMaxLanguageLength);
  return errors;
}

ValidationError::FieldErrors clean_note_fields(NoteFields& fields, bool partial) {
  trim_fields(fields);
  auto errors = validate_note_fields(fields, partial);
  if (fields.original_language && !errors.contains("original_language")) {
    // Stored normalized, so a note's language compares equal to the codes engines are keyed by.
    std::string code = normalize_language(*fields.original_language);
    if (code.empty()) {
      errors["original_language"].push_back(kNotALanguage);
    } else {
      fields.original_language = std::move(code);
    }
  }
  return errors;
}

std::string clean_target_language(const std::string& target_language) {
  const char* field = "target_language";
  if (!is_valid_utf8(target_language)) throw ValidationError(field, kNotAString);
  const std::string trimmed = trim_whitespace(target_language);
  if (trimmed.empty()) throw ValidationError(field, "This field may not be blank.");
  if (count_characters(trimmed) > kMaxLanguageLength) {
    throw ValidationError(field, too_long(kMaxLanguageLength));
  }
  std::string code = normalize_language(trimmed);
  if (code.empty()) throw ValidationError(field, kNotALanguage);
  return code;
}

NoteService::NoteService(Store& store, NoteCache& cache, JobBus& bus, Translator& translator,
                         Renderer render, NoteServiceOptions options, UserEventPublisher* events)
    : store_(store),
      cache_(cache),
      bus_(bus),
      translator_(translator),
      render_(std::move(render)),
      options_(options),
      events_(events) {}

ValidationError::FieldErrors NoteService::clean(NoteFields& fields, bool partial) const {
  auto errors = clean_note_fields(fields, partial);
  // The operator's limit on note size, checked like the title's max_length (after trimming, in
  // characters, and only on text that is valid).
  if (options_.max_text_characters && fields.original_text && !errors.contains("original_text") &&
      count_characters(*fields.original_text) > options_.max_text_characters) {
    errors["original_text"].push_back(too_long(options_.max_text_characters));
  }
  return errors;
}

std::string NoteService::get_rendered(UserId owner, std::int64_t id) {
  const NoteKey key{owner, id};
  if (auto cached = cache_.get(key)) return std::move(*cached);
  auto note = store_.get_note(owner, id);
  if (!note) throw NotFound();
  std::string body = render_(*note);
  cache_.put(key, note->version, body);
  return body;
}

Note NoteService::create(UserId owner, NoteFields fields) {
  auto errors = clean(fields, /*partial=*/false);
  if (!errors.empty()) throw ValidationError(std::move(errors));
  if (!fields.original_language) fields.original_language = kDefaultLanguage;
  Note note = store_.create_note(owner, fields);
  if (events_) events_->note_created(note);
  return note;
}

std::string NoteService::update_rendered(UserId owner, std::int64_t id, NoteFields fields,
                                         bool partial) {
  auto errors = clean(fields, partial);
  if (!errors.empty()) throw ValidationError(std::move(errors));
  auto note = store_.update_note(owner, id, fields);
  if (!note) throw NotFound();
  // Write-through: readers of this note after the PATCH need not go to the database.
  std::string body = render_(*note);
  cache_.refresh({owner, id}, note->version, body);
  if (events_) events_->note_updated(owner, body);
  return body;
}

void NoteService::remove(UserId owner, std::int64_t id) {
  if (!store_.delete_note(owner, id)) throw NotFound();
  cache_.invalidate({owner, id}, std::numeric_limits<std::int64_t>::max());
  if (events_) events_->note_deleted(owner, id);
}

std::vector<Note> NoteService::list(UserId owner, const ListQuery& query) {
  return store_.list_notes(owner, query);
}

Stats NoteService::stats(UserId owner) { return store_.stats(owner); }

TranslationRequest NoteService::request_translation(UserId owner, std::int64_t note_id,
                                                    const std::string& target_language,
                                                    const std::string& request_id) {
  auto note = store_.get_note(owner, note_id);
  if (!note) throw NotFound();
  const std::string target = clean_target_language(target_language);
  const std::string source = normalize_language(note->original_language);
  if (target == source) {
    throw ValidationError("target_language",
                          "The note is already in '" + source + "'; choose another language.");
  }
  auto engine = translator_.engine_for(source, target);
  if (!engine) {
    std::set<std::string> targets;
    for (const auto& pair : translator_.pairs()) {
      if (pair.source == source) targets.insert(pair.target);
    }
    std::string message = "Cannot translate from '" + source + "' to '" + target + "'.";
    if (targets.empty()) {
      message += " No installed engine translates from '" + source + "'.";
    } else {
      message += " Supported target languages for '" + source + "': ";
      bool first = true;
      for (const auto& t : targets) {
        message += (first ? "" : ", ") + t;
        first = false;
      }
      message += ".";
    }
    throw ValidationError("target_language", message);
  }
  JobRequest request;
  request.owner = owner;
  request.note_id = note_id;
  request.source_language = source;
  request.target_language = target;
  request.engine = *engine;
  request.max_attempts = options_.max_attempts;
  request.max_active_per_owner = options_.max_active_jobs_per_owner;
  request.request_id = request_id;
  auto result = store_.request_job(request);
  using Outcome = JobRequestResult::Outcome;
  switch (result.outcome) {
    case Outcome::kCreated:
      // Told before a worker can hear of it, so that "queued" precedes "running" on the stream.
      if (events_) events_->job_changed(*result.job);
      bus_.publish({result.job->id, owner});
      return {std::move(*result.job), true};
    case Outcome::kExisting:
      return {std::move(*result.job), false};
    case Outcome::kOwnerQueueFull:
      throw Throttled(kQueueFullRetryAfter,
                      "You already have " + std::to_string(options_.max_active_jobs_per_owner) +
                          " translations queued or running. Wait for one to finish, then try "
                          "again.");
    case Outcome::kNoteNotFound:
      break;
  }
  throw NotFound();  // deleted between the read above and the request
}

TranslationJob NoteService::job(UserId owner, std::int64_t id) {
  auto job = store_.get_job(owner, id);
  if (!job) throw NotFound();
  return *job;
}

std::vector<TranslationJob> NoteService::jobs_for_note(UserId owner, std::int64_t note_id) {
  if (!store_.get_note(owner, note_id)) throw NotFound();
  return store_.latest_jobs_for_note(owner, note_id);
}

std::vector<SupportedPair> NoteService::languages() const { return translator_.pairs(); }

}  // namespace transnotes
