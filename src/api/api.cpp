#include "api/api.h"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <stdexcept>

#include "api/error_mapping.h"
#include "api/event_stream.h"
#include "api/json_io.h"
#include "api/list_page_cache.h"
#include "api/pagination.h"
#include "api/router.h"
#include "apidocs/apidocs.h"
#include "auth/account_service.h"
#include "domain/text.h"
#include "webapp/webapp.h"

namespace transnotes::api {

namespace json = boost::json;

namespace {

constexpr std::string_view kPrefix = "/api/v1";
constexpr std::string_view kNotesPath = "/api/v1/notes/";
// The template the cached-retrieve fast paths answer for (the route table's literal).
constexpr std::string_view kNoteRoute = "/api/v1/notes/{id}/";

// Where the user a request acts for is noted while handle() routes it, for the access log:
// handle() runs a request from start to end on one thread.
thread_local std::optional<UserId>* current_caller = nullptr;

class CallerCapture {
 public:
  explicit CallerCapture(std::optional<UserId>& caller)
      : outer_(std::exchange(current_caller, &caller)) {}
  ~CallerCapture() { current_caller = outer_; }
  CallerCapture(const CallerCapture&) = delete;
  CallerCapture& operator=(const CallerCapture&) = delete;

 private:
  std::optional<UserId>* outer_;
};

// The access log's user: the account's id; nothing in open mode, where there are no accounts.
std::string user_label(UserId user) {
  return user == kOpenModeOwner ? std::string() : std::to_string(user);
}

http::Response with_header(http::Response response, std::string name, std::string value) {
  response.headers.emplace_back(std::move(name), std::move(value));
  return response;
}

// The note id of a plain `GET /api/v1/notes/{id}/` (the only cacheable request), else nullopt.
// Agrees with the route table; kept apart because it runs on the event loop for every request
// and must not allocate.
std::optional<std::int64_t> cacheable_note_id(const http::Request& request) {
  if (request.method != "GET") return std::nullopt;
  std::string_view target = request.target;
  if (!target.starts_with(kNotesPath)) return std::nullopt;
  target.remove_prefix(kNotesPath.size());
  if (target.ends_with('/')) target.remove_suffix(1);
  std::int64_t id = 0;
  // Digits only: no query string and no further segment.
  if (!parse_id(target, id)) return std::nullopt;
  return id;
}

}  // namespace

std::string render_note(const Note& note) { return render_note_json(note); }

std::string render_job(const TranslationJob& job) { return json::serialize(job_to_json(job)); }

http::Response readiness_response(const ReadinessResults& results) {
  json::object checks;
  bool ready = true;
  for (const auto& [name, problem] : results) {
    checks[name] = problem.empty() ? std::string("ok") : problem;
    ready = ready && problem.empty();
  }
  auto response = json_response(
      ready ? 200 : 503,
      json::object{{"status", ready ? "ok" : "unavailable"}, {"checks", std::move(checks)}});
  if (!ready) response.headers.emplace_back("Retry-After", "1");
  return response;
}

// The API's resources. Routing, 405 with `Allow`, HEAD and OPTIONS all come from this table
// (tests/openapi_check.sh reads it to compare with docs/openapi.yaml: keep one route a line).
std::unique_ptr<Router> Api::make_router(Api& api) {
  // Anyone may call these.
  const auto open = [&api](http::Response (Api::*handler)(const http::Request&, const Params&)) {
    return [&api, handler](const http::Request& request, const Params& params) {
      return (api.*handler)(request, params);
    };
  };
  // Only for the authenticated caller, whose notes they touch.
  const auto user =
      [&api](http::Response (Api::*handler)(const http::Request&, const Params&, UserId)) {
        return [&api, handler](const http::Request& request, const Params& params) {
          const UserId caller = api.caller(request);
          if (current_caller) *current_caller = caller;
          return (api.*handler)(request, params, caller);
        };
      };
  // clang-format off
  return std::make_unique<Router>(std::vector<Route>{
      {"/health/", "", {{"GET", open(&Api::health)}}},
      {"/ready/", "", {{"GET", open(&Api::health)}}},
      {"/healthz", "", {{"GET", open(&Api::healthz)}}},
      {"/readyz", "", {{"GET", open(&Api::readyz)}}},
      {"/metrics", "", {{"GET", open(&Api::metrics)}}},
      {"/api/v1/auth/register/", "Register", {{"POST", open(&Api::register_user)}}},
      {"/api/v1/auth/token/", "Token Obtain Pair", {{"POST", open(&Api::obtain_token)}}},
      {"/api/v1/auth/token/refresh/", "Token Refresh", {{"POST", open(&Api::refresh_token)}}},
      {"/api/v1/auth/token/verify/", "Token Verify", {{"POST", open(&Api::verify_token)}}},
      {"/api/v1/auth/token/blacklist/", "Token Blacklist", {{"POST", open(&Api::blacklist_token)}}},
      {"/api/v1/notes/", "Note List", {{"GET", user(&Api::list_notes)}, {"POST", user(&Api::create_note)}}},
      {"/api/v1/notes/{id}/", "Note Instance", {{"GET", user(&Api::retrieve_note)}, {"PUT", user(&Api::replace_note)}, {"PATCH", user(&Api::patch_note)}, {"DELETE", user(&Api::delete_note)}}},
      {"/api/v1/notes/{id}/translate/", "Translate Note", {{"POST", user(&Api::translate_note)}}},
      {"/api/v1/notes/{id}/translations/", "Note Translations", {{"GET", user(&Api::note_translations)}}},
      {"/api/v1/translations/{id}/", "Translation Instance", {{"GET", user(&Api::translation)}}},
      {"/api/v1/stats/", "Stats", {{"GET", user(&Api::stats)}}},
      {"/api/v1/languages/", "Languages", {{"GET", user(&Api::languages)}}},
      {"/api/v1/translations/{id}/retry/", "Translation Retry", {{"POST", user(&Api::retry_translation)}}},
      {"/api/v1/translations/{id}/cancel/", "Translation Cancel", {{"POST", user(&Api::cancel_translation)}}},
      {"/api/v1/events/", "Events", {{"GET", user(&Api::events)}}},
      {"/api/v1/openapi.json", "", {{"GET", open(&Api::openapi_json)}}},
      {"/api/v1/openapi.yaml", "", {{"GET", open(&Api::openapi_yaml)}}},
      {"/api/v1/docs/", "", {{"GET", open(&Api::docs_page)}}},
  });
  // clang-format on
}

Api::Api(ApiServices services, ApiOptions options)
    : services_(services),
      notes_(services.notes),
      options_(std::move(options)),
      router_(make_router(*this)),
      list_pages_(options_.list_cache_bytes > 0
                      ? std::make_unique<ListPageCache>(options_.list_cache_bytes)
                      : nullptr) {
  if (options_.auth_mode == AuthMode::kJwt && !services_.accounts) {
    throw std::invalid_argument("Api: JWT authentication needs an AccountService");
  }
}

Api::~Api() = default;

std::vector<std::string> Api::route_templates() const {
  auto templates = router_->templates();
  // The web app is answered before the table (route()), under these two labels.
  templates.emplace_back(webapp::kIndexPath);
  templates.emplace_back(webapp::kStaticPrefix);
  return templates;
}

http::Response Api::handle(const http::Request& request) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  std::optional<UserId> caller;
  CallerCapture capture(caller);
  std::string_view matched_route;
  http::Response response;
  try {
    response = route(request, matched_route);
  } catch (...) {
    response = error_response(request);
  }
  response.route = matched_route;
  if (caller) response.user = user_label(*caller);
  auto& bucket = response.status >= 500   ? counters_.responses_5xx
                 : response.status >= 400 ? counters_.responses_4xx
                                          : counters_.responses_2xx;
  bucket.fetch_add(1, std::memory_order_relaxed);
  return response;
}

bool Api::try_cached_async(const http::Request& request, http::AsyncDone done) {
  auto id = cacheable_note_id(request);
  if (!id) return false;
  try {
    checked_host(request, options_.trust_proxy);
  } catch (const BadRequest&) {
    return false;  // handle() gives the 400
  }
  auto owner = fast_caller(request);
  if (!owner) return false;
  return notes_.cached_rendered_async(
      *owner, *id, [this, owner = *owner, done = std::move(done)](std::optional<std::string> body) {
        if (!body) return done(std::nullopt);
        counters_.requests.fetch_add(1, std::memory_order_relaxed);
        counters_.responses_2xx.fetch_add(1, std::memory_order_relaxed);
        http::Response response{200, std::move(*body), "application/json", {}};
        response.route = kNoteRoute;
        response.user = user_label(owner);
        done(std::move(response));
      });
}

std::optional<http::Response> Api::try_cached(const http::Request& request) {
  auto id = cacheable_note_id(request);
  if (!id) return std::nullopt;
  try {
    checked_host(request, options_.trust_proxy);
  } catch (const BadRequest&) {
    return std::nullopt;  // handle() gives the 400
  }
  auto owner = fast_caller(request);
  if (!owner) return std::nullopt;
  auto body = notes_.cached_rendered(*owner, *id);
  if (!body) return std::nullopt;
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  counters_.responses_2xx.fetch_add(1, std::memory_order_relaxed);
  http::Response response{200, std::move(*body), "application/json", {}};
  response.route = kNoteRoute;
  response.user = user_label(*owner);
  return response;
}

http::Response Api::route(const http::Request& request, std::string_view& matched_route) {
  // Django refuses a bad Host for every request, not only those that print it.
  checked_host(request, options_.trust_proxy);
  auto url = boost::urls::parse_origin_form(request.target);
  if (!url) throw NotFound();
  const std::string_view path = url->encoded_path();
  if (path.starts_with(apidocs::kDocsPath) && path.size() > apidocs::kDocsPath.size()) {
    if (auto asset = docs_asset(request, path)) {
      matched_route = apidocs::kDocsPath;
      return std::move(*asset);
    }
  }
  if (path == webapp::kIndexPath || path.starts_with(webapp::kStaticPrefix)) {
    if (auto asset = webapp_asset(request, path)) {
      matched_route = path == webapp::kIndexPath ? webapp::kIndexPath : webapp::kStaticPrefix;
      return std::move(*asset);
    }
  }
  return router_->dispatch(request, path, &matched_route);
}

http::Response Api::health(const http::Request&, const Params&) {
  std::string problem = options_.readiness_check ? options_.readiness_check() : std::string();
  if (!problem.empty()) {
    return json_response(503, json::object{{"status", "unavailable"}, {"detail", problem}});
  }
  return json_response(200, json::object{{"status", "ok"}});
}

// Liveness: the process answers. Nothing it depends on is asked, so an outage elsewhere never
// gets a live process restarted.
http::Response Api::healthz(const http::Request&, const Params&) {
  return json_response(200, json::object{{"status", "ok"}});
}

// Readiness: whether this process can serve now; a load balancer sends it no traffic while 503.
http::Response Api::readyz(const http::Request&, const Params&) {
  return readiness_response(options_.readiness_checks ? options_.readiness_checks()
                                                      : ReadinessResults{});
}

http::Response Api::metrics(const http::Request&, const Params&) {
  return http::Response{200,
                        options_.metrics_text ? options_.metrics_text() : std::string(),
                        "text/plain; version=0.0.4; charset=utf-8",
                        {}};
}

namespace {

// Files served outside the route table (docs and web app assets) answer GET and HEAD. OPTIONS
// gets what the route table gives plain endpoints, an empty body naming the methods; any other
// method is a 405. nullopt for GET and HEAD.
std::optional<http::Response> file_method_answer(const http::Request& request) {
  constexpr const char* kAllow = "GET, HEAD, OPTIONS";
  if (request.method == "OPTIONS") {
    http::Response response{200, "", "", {}};
    response.headers.emplace_back("Allow", kAllow);
    return response;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    throw MethodNotAllowed(replace_invalid_utf8(request.method), kAllow);
  }
  return std::nullopt;
}

// What every page a browser renders is sent with.
http::Response with_page_headers(http::Response response,
                                 std::string_view content_security_policy) {
  response.headers.emplace_back("Content-Security-Policy", std::string(content_security_policy));
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.headers.emplace_back("Referrer-Policy", "no-referrer");
  return response;
}

http::Response document(std::string_view body, std::string_view content_type) {
  http::Response response{200, std::string(body), std::string(content_type), {}};
  response.headers.emplace_back("Cache-Control", "no-cache");
  return response;
}

}  // namespace

http::Response Api::openapi_json(const http::Request&, const Params&) {
  return document(apidocs::openapi_json(), apidocs::kOpenapiJsonContentType);
}

http::Response Api::openapi_yaml(const http::Request&, const Params&) {
  return document(apidocs::openapi_yaml(), apidocs::kOpenapiYamlContentType);
}

http::Response Api::docs_page(const http::Request& request, const Params&) {
  return *docs_asset(request, apidocs::kDocsPath);
}

std::optional<http::Response> Api::docs_asset(const http::Request& request, std::string_view path) {
  auto asset = apidocs::docs_asset(path);
  if (!asset) return std::nullopt;
  if (auto refused = file_method_answer(request)) return refused;
  return with_page_headers(document(asset->body, asset->content_type),
                           apidocs::docs_content_security_policy());
}

// The web app's page and assets, outside the route table like the docs assets: HEAD and GET
// only, gzip when the client takes it.
std::optional<http::Response> Api::webapp_asset(const http::Request& request,
                                                std::string_view path) {
  const bool gzip_ok = webapp::accepts_gzip(request.header("Accept-Encoding"));
  auto asset = webapp::webapp_asset(path, gzip_ok);
  if (!asset) return std::nullopt;
  if (auto refused = file_method_answer(request)) return refused;
  http::Response response{200, std::string(asset->body), std::string(asset->content_type), {}};
  response.headers.emplace_back("Cache-Control", std::string(asset->cache_control));
  response.headers.emplace_back("Vary", "Accept-Encoding");
  if (asset->gzipped) response.headers.emplace_back("Content-Encoding", "gzip");
  return with_page_headers(std::move(response), webapp::content_security_policy());
}

http::Response Api::list_notes(const http::Request& request, const Params&, UserId owner) {
  auto url = boost::urls::parse_origin_form(request.target);
  const ListQuery query = list_query_from(url->params());
  // The version is read before the rows, each in a snapshot of its own (or the same one): the
  // rows then hold at least the writes the version counts, so a page is never stored under a
  // version newer than its data, and a reader that later reads the same version saw no write
  // since the page's rows were read (versions grow with every committed write).
  const std::optional<std::int64_t> version =
      list_pages_ ? notes_.notes_version(owner) : std::nullopt;
  const ListPageCache::Key key{owner, query.limit, query.offset};
  std::optional<ListPageCache::Page> page;
  if (version) page = list_pages_->get(key, *version);
  if (!page) {
    // One row more than the page tells whether a next page exists.
    ListQuery probe = query;
    probe.limit = query.limit + 1;
    auto notes = notes_.list(owner, probe);
    const bool more_rows = static_cast<std::int64_t>(notes.size()) > query.limit;
    if (more_rows) notes.pop_back();
    std::size_t rendered = 0;
    // The answer's one copy: rendered into one reserved string, whose buffer moves into the
    // shared body (no copy), which the cache and every answer that serves it then share.
    auto body = std::make_shared<const std::string>(
        render_note_page(notes, options_.max_list_bytes, rendered));
    page = ListPageCache::Page{version.value_or(0), std::move(body), rendered,
                               more_rows || rendered < notes.size()};
    if (version) list_pages_->put(key, *page);
  }
  http::Response response{200, {}, "application/json", {}};
  response.shared_body = page->body;
  std::string links = page_links(base_url(request, options_.trust_proxy) + std::string(kNotesPath),
                                 query, static_cast<std::int64_t>(page->notes), page->more_after);
  if (!links.empty()) response.headers.emplace_back("Link", std::move(links));
  return response;
}

http::Response Api::create_note(const http::Request& request, const Params&, UserId owner) {
  return idempotent(request, owner, [&] {
    Note note = notes_.create(owner, read_note_fields(parse_body(request)));
    return with_header(http::Response{201, render_note(note), "application/json", {}}, "Location",
                       std::string(kNotesPath) + std::to_string(note.id) + "/");
  });
}

http::Response Api::retrieve_note(const http::Request&, const Params& params, UserId owner) {
  return http::Response{200, notes_.get_rendered(owner, params.id), "application/json", {}};
}

http::Response Api::replace_note(const http::Request& request, const Params& params, UserId owner) {
  return http::Response{
      200,
      notes_.update_rendered(owner, params.id, read_note_fields(parse_body(request)),
                             /*partial=*/false),
      "application/json",
      {}};
}

http::Response Api::patch_note(const http::Request& request, const Params& params, UserId owner) {
  return http::Response{
      200,
      notes_.update_rendered(owner, params.id, read_note_fields(parse_body(request)),
                             /*partial=*/true),
      "application/json",
      {}};
}

http::Response Api::delete_note(const http::Request&, const Params& params, UserId owner) {
  notes_.remove(owner, params.id);
  return http::Response{204, "", "", {}};
}

http::Response Api::translate_note(const http::Request& request, const Params& params,
                                   UserId owner) {
  if (options_.auth_mode == AuthMode::kJwt) {
    throttle("translate:user:" + std::to_string(owner), options_.throttle.translate_per_user,
             counters_.throttled_translate);
  }
  return idempotent(request, owner, [&] {
    auto body = parse_body(request);
    ValidationError::FieldErrors errors;
    auto target = read_string_field(body, "target_language", errors);
    if (!errors.empty()) throw ValidationError(std::move(errors));
    if (!target) throw ValidationError("target_language", "This field is required.");
    TranslationRequest asked =
        notes_.request_translation(owner, params.id, *target, request.request_id);
    counters_.translations_requested.fetch_add(1, std::memory_order_relaxed);
    std::string location =
        std::string(kPrefix) + "/translations/" + std::to_string(asked.job.id) + "/";
    return with_header(json_response(202, json::object{{"message", "Translation task started."},
                                                       {"status", "Translation in progress"},
                                                       {"translation", job_to_json(asked.job)}}),
                       "Location", std::move(location));
  });
}

http::Response Api::note_translations(const http::Request&, const Params& params, UserId owner) {
  json::array items;
  for (const auto& job : notes_.jobs_for_note(owner, params.id)) items.push_back(job_to_json(job));
  return json_response(200, json::value(std::move(items)));
}

http::Response Api::translation(const http::Request&, const Params& params, UserId owner) {
  return json_response(200, job_to_json(notes_.job(owner, params.id)));
}

http::Response Api::stats(const http::Request&, const Params&, UserId owner) {
  return json_response(200, stats_to_json(notes_.stats(owner)));
}

http::Response Api::languages(const http::Request&, const Params&, UserId) {
  return json_response(200, languages_to_json(notes_.languages()));
}

void Api::require_staff(UserId user) const {
  // Open mode has no accounts, so nobody is an administrator there.
  if (options_.auth_mode == AuthMode::kOpen || !accounts().is_staff(user)) {
    throw PermissionDenied();
  }
}

http::Response Api::retry_translation(const http::Request&, const Params& params, UserId caller) {
  require_staff(caller);
  if (!services_.job_admin) throw NotFound();
  return json_response(200, job_to_json(services_.job_admin->retry(params.id)));
}

http::Response Api::cancel_translation(const http::Request&, const Params& params, UserId caller) {
  require_staff(caller);
  if (!services_.job_admin) throw NotFound();
  return json_response(200, job_to_json(services_.job_admin->cancel(params.id)));
}

http::Response Api::events(const http::Request& request, const Params&, UserId owner) {
  if (!services_.events) throw NotFound();
  EventStreamOptions options;
  options.keepalive = options_.event_keepalive;
  return event_stream(*services_.events, owner, request, options);
}

}  // namespace transnotes::api
