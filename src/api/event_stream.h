// GET /api/v1/events/: a user's live events as Server-Sent Events over a streamed answer.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "domain/ports.h"
#include "http/server.h"

namespace transnotes::api {

struct EventStreamOptions {
  // A ": keep-alive" comment goes out whenever nothing else did for this long.
  std::chrono::milliseconds keepalive{15'000};
  // Events that arrive before the header is out (the replay after Last-Event-ID) are held up to
  // this many bytes; beyond it the client gets a reset instead, and reloads.
  std::size_t max_replay_bytes = 512 * 1024;
};

// One event in the text/event-stream format: "id: N\nevent: KIND\ndata: JSON\n\n".
std::string format_event(const UserEvent& event);

// The streamed answer for `owner`, resuming after the request's Last-Event-ID when it has one (a
// value that is not a decimal id counts as one from nowhere: a reset). The subscription lives as
// long as the stream. Throws Unavailable when the events cannot be reached.
http::Response event_stream(UserEvents& events, UserId owner, const http::Request& request,
                            const EventStreamOptions& options);

}  // namespace transnotes::api
