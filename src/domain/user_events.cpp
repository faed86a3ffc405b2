#include "domain/user_events.h"

#include <exception>
#include <utility>

namespace transnotes {

UserEventPublisher::UserEventPublisher(UserEvents& events, NoteRenderer render_note,
                                       JobRenderer render_job)
    : events_(events), render_note_(std::move(render_note)), render_job_(std::move(render_job)) {}

void UserEventPublisher::note_created(const Note& note) {
  try {
    note_event(note.owner_id, "created", render_note_(note));
  } catch (const std::exception&) {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
}

void UserEventPublisher::note_updated(const Note& note) {
  try {
    note_event(note.owner_id, "updated", render_note_(note));
  } catch (const std::exception&) {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
}

void UserEventPublisher::note_updated(UserId owner, std::string_view rendered_note) {
  note_event(owner, "updated", rendered_note);
}

void UserEventPublisher::note_deleted(UserId owner, std::int64_t note_id) {
  note_event(owner, "deleted", "{\"id\":" + std::to_string(note_id) + "}");
}

void UserEventPublisher::job_changed(const TranslationJob& job) {
  try {
    publish(job.owner_id, "job", render_job_(job));
  } catch (const std::exception&) {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
}

void UserEventPublisher::note_event(UserId owner, std::string_view action,
                                    std::string_view rendered_note) {
  try {
    // The rendered note is JSON already: splice it in rather than parse it again.
    std::string data;
    data.reserve(rendered_note.size() + 32);
    data.append("{\"action\":\"").append(action).append("\",\"note\":");
    data.append(rendered_note).append("}");
    publish(owner, "note", data);
  } catch (const std::exception&) {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
}

void UserEventPublisher::publish(UserId owner, std::string_view kind, std::string_view data) {
  try {
    events_.publish(owner, kind, data);
  } catch (const std::exception&) {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace transnotes
