// The REST API of transnotes under /api/v1/, contract-compatible with the Django REST Framework
// original: routing, request parsing, JSON rendering, and the one place where errors become
// HTTP responses.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "domain/model.h"
#include "domain/note_service.h"
#include "http/server.h"

namespace transnotes::api {

struct ApiOptions {
  std::size_t max_body_bytes = 1 << 20;  // mentioned in 413 answers (the server enforces it)
  // Answers /health/ and /ready/: returns an empty string when healthy, else the problem.
  std::function<std::string()> readiness_check;
  // Appended to /metrics: more metric families in Prometheus text format (e.g. the cache's).
  std::function<std::string()> extra_metrics;
};

// Renders a note exactly as the original's NoteSerializer did.
std::string render_note(const Note& note);

class Api {
 public:
  // `notes` must outlive the Api.
  Api(NoteService& notes, ApiOptions options);
  // Never throws: every failure becomes a JSON error response.
  http::Response handle(const http::Request& request);
  // Answers a note retrieve from the cache without touching the database; nullopt for
  // everything else (see http::FastHandler).
  std::optional<http::Response> try_cached(const http::Request& request);
  // The same as an http::AsyncFastHandler: answers a note retrieve from a cache that can be
  // read without blocking; false when the request is not such a read or the cache declines.
  bool try_cached_async(const http::Request& request, http::AsyncDone done);

  // Counters for /metrics.
  struct Counters {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> responses_2xx{0};
    std::atomic<std::uint64_t> responses_4xx{0};
    std::atomic<std::uint64_t> responses_5xx{0};
    std::atomic<std::uint64_t> translations_requested{0};
  };
  const Counters& counters() const { return counters_; }

 private:
  http::Response route(const http::Request& request);
  NoteService& notes_;
  ApiOptions options_;
  Counters counters_;
};

}  // namespace transnotes::api
