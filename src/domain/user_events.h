// What each use case tells a user's live stream (see UserEvents in ports.h): the event kinds and
// the JSON they carry, rendered exactly as the API renders the same note or job.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "domain/model.h"
#include "domain/ports.h"

namespace transnotes {

// Publishes note and job changes to their owner's stream. Never throws: an event that cannot be
// published is counted and dropped, and the change that caused it stands. Thread-safe.
class UserEventPublisher {
 public:
  using NoteRenderer = std::function<std::string(const Note&)>;
  using JobRenderer = std::function<std::string(const TranslationJob&)>;

  // Keeps a reference to `events`, which must outlive it.
  UserEventPublisher(UserEvents& events, NoteRenderer render_note, JobRenderer render_job);

  // {"action":"created"|"updated","note":<the note>} on the note's owner's stream.
  void note_created(const Note& note);
  void note_updated(const Note& note);
  // The same with a note the caller already rendered.
  void note_updated(UserId owner, std::string_view rendered_note);
  // {"action":"deleted","note":{"id":N}}
  void note_deleted(UserId owner, std::int64_t note_id);
  // The job as the API renders it, on every change of its status.
  void job_changed(const TranslationJob& job);

  // Events that could not be published (rendering or the transport failed).
  std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  void note_event(UserId owner, std::string_view action, std::string_view rendered_note);
  void publish(UserId owner, std::string_view kind, std::string_view data);

  UserEvents& events_;
  NoteRenderer render_note_;
  JobRenderer render_job_;
  std::atomic<std::uint64_t> failures_{0};
};

}  // namespace transnotes
