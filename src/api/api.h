// The REST API of transnotes under /api/v1/, contract-compatible with the Django REST Framework
// original: routing, request parsing, JSON rendering, and the one place where errors become
// HTTP responses.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "domain/model.h"
#include "domain/note_service.h"
#include "http/server.h"

namespace transnotes::api {

struct ApiOptions {
  std::size_t max_body_bytes = 1 << 20;  // mentioned in 413 answers (the server enforces it)
  // A note list page stops before its body would grow past this many bytes; its `next` link
  // then starts after the last note it holds. Bounds the memory one request can take.
  std::size_t max_list_bytes = 8 << 20;
  // Behind a reverse proxy the service trusts: links name the X-Forwarded-Host and
  // X-Forwarded-Proto the proxy sets. Off: they are ignored, as a client could forge them.
  bool trust_proxy = false;
  // Answers /health/ and /ready/: returns an empty string when healthy, else the problem.
  std::function<std::string()> readiness_check;
  // Appended to /metrics: more metric families in Prometheus text format (e.g. the cache's).
  std::function<std::string()> extra_metrics;
};

// Renders a note exactly as the original's NoteSerializer did.
std::string render_note(const Note& note);

class Router;
struct PathParams;

class Api {
 public:
  // `notes` must outlive the Api.
  Api(NoteService& notes, ApiOptions options);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;
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
  using Params = PathParams;
  static std::unique_ptr<Router> make_router(Api& api);
  http::Response route(const http::Request& request);

  // One per method of each route; see make_router for the table.
  http::Response health(const http::Request& request, const Params& params);
  http::Response metrics(const http::Request& request, const Params& params);
  http::Response list_notes(const http::Request& request, const Params& params);
  http::Response create_note(const http::Request& request, const Params& params);
  http::Response retrieve_note(const http::Request& request, const Params& params);
  http::Response replace_note(const http::Request& request, const Params& params);
  http::Response patch_note(const http::Request& request, const Params& params);
  http::Response delete_note(const http::Request& request, const Params& params);
  http::Response translate_note(const http::Request& request, const Params& params);
  http::Response note_translations(const http::Request& request, const Params& params);
  http::Response translation(const http::Request& request, const Params& params);
  http::Response stats(const http::Request& request, const Params& params);
  http::Response languages(const http::Request& request, const Params& params);

  NoteService& notes_;
  ApiOptions options_;
  Counters counters_;
  std::unique_ptr<Router> router_;
};

}  // namespace transnotes::api
