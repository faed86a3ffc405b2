// The REST API of transnotes under /api/v1/, contract-compatible with the Django REST Framework
// original: routing, request parsing, JSON rendering, and the one place where errors become
// HTTP responses.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/account_service.h"
#include "domain/job_admin.h"
#include "domain/model.h"
#include "domain/note_service.h"
#include "domain/ports.h"
#include "http/server.h"

namespace transnotes::api {

enum class AuthMode {
  kJwt,  // every /api/v1/ route but auth/ needs a Bearer access token; notes are per user
  kOpen  // the original's open API: no accounts, one shared owner (kOpenModeOwner), no limits
};

// Token buckets (see RateLimit) guarding what costs the service or what an attacker would
// repeat. Reads are never throttled. Generous: a test suite registering a few users and
// translating a few dozen notes a minute from one address never meets them.
struct ThrottleRates {
  RateLimit translate_per_user{120, std::chrono::seconds(60)};
  // Register and the token routes, per client address.
  RateLimit auth_per_address{60, std::chrono::seconds(60)};
  // Wrong passwords per username, whatever the address (brute force on one account).
  RateLimit failed_logins_per_username{10, std::chrono::seconds(60)};
};

// Each dependency's name ("database", "redis", "engines") and "" when it answers, else what is
// wrong.
using ReadinessResults = std::vector<std::pair<std::string, std::string>>;

// /readyz's answer for `results`: 200 {"status":"ok","checks":{name:"ok"}} when every check
// passed, else 503 "unavailable" naming each problem, with Retry-After. Also served by worker
// processes on their metrics port.
http::Response readiness_response(const ReadinessResults& results);

struct ApiOptions {
  std::size_t max_body_bytes = 1 << 20;  // mentioned in 413 answers (the server enforces it)
  // A note list page stops before its body would grow past this many bytes; its `next` link
  // then starts after the last note it holds. Bounds the memory one request can take.
  std::size_t max_list_bytes = 8 << 20;
  // Rendered list pages kept per process, in bytes (see ListPageCache); 0: none.
  std::size_t list_cache_bytes = 0;
  // Behind a reverse proxy the service trusts: links name the X-Forwarded-Host and
  // X-Forwarded-Proto the proxy sets. Off: they are ignored, as a client could forge them.
  bool trust_proxy = false;
  // Answers /health/ and /ready/: returns an empty string when healthy, else the problem.
  std::function<std::string()> readiness_check;
  // Answers /readyz: each dependency's name ("database", "redis", "engines") and "" when it
  // answers, else what is wrong. Ready when every check is "".
  std::function<ReadinessResults()> readiness_checks;
  // What /metrics answers: every metric family of the process in the Prometheus text format.
  // Unset: /metrics answers an empty exposition.
  std::function<std::string()> metrics_text;
  AuthMode auth_mode = AuthMode::kJwt;
  ThrottleRates throttle;
  // How long a stored answer to an Idempotency-Key is replayed.
  std::chrono::seconds idempotency_ttl{24 * 3600};
  // GET /api/v1/events/ sends a ": keep-alive" comment whenever it was quiet this long.
  std::chrono::milliseconds event_keepalive{15'000};
};

// What the Api serves with. All must outlive it.
struct ApiServices {
  NoteService& notes;
  // Required with AuthMode::kJwt.
  auth::AccountService* accounts = nullptr;
  // Throttling; none: no limits.
  RateLimiter* limiter = nullptr;
  // Where Idempotency-Key answers are kept; none: the header is ignored.
  Store* idempotency_store = nullptr;
  // The staff-only job routes (retry, cancel); none: they answer 404.
  JobAdmin* job_admin = nullptr;
  // Users' live events for GET /api/v1/events/; none: it answers 404.
  UserEvents* events = nullptr;
};

// Renders a note exactly as the original's NoteSerializer did.
std::string render_note(const Note& note);
// Renders a job exactly as GET /api/v1/translations/{id}/ does (what job events carry).
std::string render_job(const TranslationJob& job);

class Router;
struct PathParams;
class ListPageCache;

class Api {
 public:
  // Throws std::invalid_argument when options.auth_mode is kJwt without services.accounts.
  Api(ApiServices services, ApiOptions options);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;
  // Never throws: every failure becomes a JSON error response.
  http::Response handle(const http::Request& request);
  // The route templates of the table, and the web app's "/" and "/static/": the names metrics
  // give routes.
  std::vector<std::string> route_templates() const;
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
    // Requests refused by a throttle, in all and by the limit that refused them.
    std::atomic<std::uint64_t> throttled{0};
    std::atomic<std::uint64_t> throttled_translate{0};
    std::atomic<std::uint64_t> throttled_auth{0};
    std::atomic<std::uint64_t> throttled_failed_login{0};
  };
  const Counters& counters() const { return counters_; }

 private:
  using Params = PathParams;
  static std::unique_ptr<Router> make_router(Api& api);
  // `matched_route` receives the template of the route that answers (see Router::dispatch).
  http::Response route(const http::Request& request, std::string_view& matched_route);

  // The user a protected request acts for (kOpenModeOwner in open mode). Throws
  // NotAuthenticated or AuthenticationFailed.
  UserId caller(const http::Request& request) const;
  // The same for the event-loop fast path: nullopt when the request is not authenticated
  // (handle() then gives the 401).
  std::optional<UserId> fast_caller(const http::Request& request) const;
  // The client's address for per-address limits: the peer, or with trust_proxy the address the
  // proxy appended to X-Forwarded-For.
  std::string client_address(const http::Request& request) const;
  // Takes `cost` tokens from bucket `key`; throws Throttled when it is empty, counting it in
  // `refused` too.
  void throttle(const std::string& key, const RateLimit& limit, std::atomic<std::uint64_t>& refused,
                int cost = 1);
  // Throws PermissionDenied unless `user` is an active staff account.
  void require_staff(UserId user) const;
  // Runs `handler` once per Idempotency-Key of the owner and replays its answer after that.
  http::Response idempotent(const http::Request& request, UserId owner,
                            const std::function<http::Response()>& handler);
  auth::AccountService& accounts() const;
  // Takes an account route's token from the client address's bucket (throws Throttled).
  void throttle_account_route(const http::Request& request);

  // One per method of each route; see make_router for the table. Handlers taking a UserId
  // need an authenticated caller.
  http::Response health(const http::Request& request, const Params& params);
  http::Response healthz(const http::Request& request, const Params& params);
  http::Response readyz(const http::Request& request, const Params& params);
  http::Response metrics(const http::Request& request, const Params& params);
  http::Response register_user(const http::Request& request, const Params& params);
  http::Response obtain_token(const http::Request& request, const Params& params);
  http::Response refresh_token(const http::Request& request, const Params& params);
  http::Response verify_token(const http::Request& request, const Params& params);
  http::Response blacklist_token(const http::Request& request, const Params& params);
  http::Response list_notes(const http::Request& request, const Params& params, UserId owner);
  http::Response create_note(const http::Request& request, const Params& params, UserId owner);
  http::Response retrieve_note(const http::Request& request, const Params& params, UserId owner);
  http::Response replace_note(const http::Request& request, const Params& params, UserId owner);
  http::Response patch_note(const http::Request& request, const Params& params, UserId owner);
  http::Response delete_note(const http::Request& request, const Params& params, UserId owner);
  http::Response translate_note(const http::Request& request, const Params& params, UserId owner);
  http::Response note_translations(const http::Request& request, const Params& params,
                                   UserId owner);
  http::Response translation(const http::Request& request, const Params& params, UserId owner);
  http::Response stats(const http::Request& request, const Params& params, UserId owner);
  http::Response languages(const http::Request& request, const Params& params, UserId owner);
  http::Response retry_translation(const http::Request& request, const Params& params,
                                   UserId caller);
  http::Response cancel_translation(const http::Request& request, const Params& params,
                                    UserId caller);
  http::Response events(const http::Request& request, const Params& params, UserId owner);
  http::Response openapi_json(const http::Request& request, const Params& params);
  http::Response openapi_yaml(const http::Request& request, const Params& params);
  http::Response docs_page(const http::Request& request, const Params& params);
  // GET/HEAD of an asset under /api/v1/docs/ (the router's `{id}` cannot name them); nullopt
  // for any other request.
  std::optional<http::Response> docs_asset(const http::Request& request, std::string_view path);
  std::optional<http::Response> webapp_asset(const http::Request& request, std::string_view path);

  ApiServices services_;
  NoteService& notes_;
  ApiOptions options_;
  Counters counters_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<ListPageCache> list_pages_;  // null when options_.list_cache_bytes is 0
};

}  // namespace transnotes::api
