#include "api/api.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <limits>

#include "api/json_io.h"

namespace transnotes::api {

namespace json = boost::json;

namespace {

constexpr std::string_view kPrefix = "/api/v1";
constexpr std::int64_t kDefaultLimit = 100;
constexpr std::int64_t kMaxLimit = 1000;

http::Response json_response(int status, const json::value& body) {
  return http::Response{status, json::serialize(body), "application/json", {}};
}

http::Response detail(int status, std::string message) {
  return json_response(status, json::object{{"detail", std::move(message)}});
}

// Raised by routing for a known path with a method it does not take.
struct MethodNotAllowed {
  std::string method;
  std::string allow;
};

// The one place where errors become HTTP. The client sees a safe message; the log sees more.
http::Response error_response(const http::Request& request) {
  try {
    throw;
  } catch (const ValidationError& e) {
    json::object body;
    for (const auto& [field, messages] : e.errors()) {
      json::array list;
      for (const auto& m : messages) list.push_back(json::value(m));
      body[field] = std::move(list);
    }
    return json_response(400, body);
  } catch (const BadRequest& e) {
    return detail(400, e.what());
  } catch (const NotFound&) {
    return detail(404, "Not found.");
  } catch (const UnsupportedMediaType& e) {
    return detail(415, e.what());
  } catch (const MethodNotAllowed& e) {
    auto res = detail(405, "Method \"" + e.method + "\" not allowed.");
    res.headers.emplace_back("Allow", e.allow);
    return res;
  } catch (const Unavailable& e) {
    spdlog::warn("{} {}: {}", request.method, request.target, e.what());
    auto res = detail(503, "Service temporarily unavailable, try again later.");
    res.headers.emplace_back("Retry-After", "1");
    return res;
  } catch (const std::exception& e) {
    spdlog::error("{} {}: unexpected error: {}", request.method, request.target, e.what());
    return detail(500, "A server error occurred.");
  } catch (...) {
    spdlog::error("{} {}: unexpected non-standard exception", request.method, request.target);
    return detail(500, "A server error occurred.");
  }
}

// Django's int path converter accepts digits only; leading zeros name the same note, and ids
// beyond int64 cannot exist. Anything else is "not found", never an error.
std::optional<std::int64_t> parse_id(std::string_view segment) {
  if (segment.empty()) return std::nullopt;
  for (char c : segment) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(segment.data(), segment.data() + segment.size(), value);
  if (ec != std::errc() || ptr != segment.data() + segment.size()) return std::nullopt;
  return value;
}

std::int64_t id_or_404(std::string_view segment) {
  auto id = parse_id(segment);
  if (!id) throw NotFound();
  return *id;
}

// DRF's LimitOffsetPagination: invalid values fall back to the defaults.
std::int64_t query_int(const boost::urls::params_view& params, const char* key,
                       std::int64_t fallback) {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  auto value = (*it).value;
  std::int64_t parsed = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (ec != std::errc() || ptr != value.data() + value.size() || parsed < 0) return fallback;
  return parsed;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

void require_method(const http::Request& request, std::initializer_list<const char*> allowed) {
  std::string allow;
  for (const char* m : allowed) {
    if (request.method == m) return;
    if (request.method == "HEAD" && std::string_view(m) == "GET") return;
    allow += (allow.empty() ? "" : ", ") + std::string(m);
  }
  if (request.method == "OPTIONS") return;
  throw MethodNotAllowed{request.method, allow + ", HEAD, OPTIONS"};
}

std::string allow_header(std::initializer_list<const char*> allowed) {
  std::string allow;
  for (const char* m : allowed) allow += (allow.empty() ? "" : ", ") + std::string(m);
  return allow + ", HEAD, OPTIONS";
}

http::Response options_response(std::initializer_list<const char*> allowed,
                                const std::string& name) {
  auto res = json_response(
      200, json::object{
               {"name", name},
               {"renders", json::array{"application/json"}},
               {"parses", json::array{"application/json", "application/x-www-form-urlencoded"}}});
  res.headers.emplace_back("Allow", allow_header(allowed));
  return res;
}

std::string base_url(const http::Request& request) {
  std::string_view host = request.header("Host");
  if (host.empty()) host = "localhost";
  std::string_view proto = request.header("X-Forwarded-Proto");
  return std::string(proto == "https" ? "https" : "http") + "://" + std::string(host);
}

}  // namespace

std::string render_note(const Note& note) { return json::serialize(note_to_json(note)); }

Api::Api(NoteService& notes, ApiOptions options) : notes_(notes), options_(std::move(options)) {}

http::Response Api::handle(const http::Request& request) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  http::Response response;
  try {
    response = route(request);
  } catch (...) {
    response = error_response(request);
  }
  if (request.method == "HEAD") response.body.clear();
  auto& bucket = response.status >= 500   ? counters_.responses_5xx
                 : response.status >= 400 ? counters_.responses_4xx
                                          : counters_.responses_2xx;
  bucket.fetch_add(1, std::memory_order_relaxed);
  return response;
}

namespace {

// The note id of a plain `GET /api/v1/notes/{id}/` (the only cacheable request), else nullopt.
std::optional<std::int64_t> cacheable_note_id(const http::Request& request) {
  if (request.method != "GET") return std::nullopt;
  std::string_view target = request.target;
  constexpr std::string_view kNotes = "/api/v1/notes/";
  if (!target.starts_with(kNotes)) return std::nullopt;
  target.remove_prefix(kNotes.size());
  if (target.ends_with('/')) target.remove_suffix(1);
  return parse_id(target);  // rejects anything but digits, so no query string and no subpath
}

}  // namespace

bool Api::try_cached_async(const http::Request& request, http::AsyncDone done) {
  auto id = cacheable_note_id(request);
  if (!id) return false;
  return notes_.cached_rendered_async(
      *id, [this, done = std::move(done)](std::optional<std::string> body) {
        if (!body) return done(std::nullopt);
        counters_.requests.fetch_add(1, std::memory_order_relaxed);
        counters_.responses_2xx.fetch_add(1, std::memory_order_relaxed);
        done(http::Response{200, std::move(*body), "application/json", {}});
      });
}

std::optional<http::Response> Api::try_cached(const http::Request& request) {
  auto id = cacheable_note_id(request);
  if (!id) return std::nullopt;
  auto body = notes_.cached_rendered(*id);
  if (!body) return std::nullopt;
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  counters_.responses_2xx.fetch_add(1, std::memory_order_relaxed);
  return http::Response{200, std::move(*body), "application/json", {}};
}

http::Response Api::route(const http::Request& request) {
  auto url = boost::urls::parse_origin_form(request.target);
  if (!url) throw NotFound();
  std::string_view path = url->encoded_path();
  auto params = url->params();

  if (path == "/health" || path == "/health/" || path == "/ready" || path == "/ready/") {
    require_method(request, {"GET"});
    std::string problem = options_.readiness_check ? options_.readiness_check() : std::string();
    if (!problem.empty()) {
      return json_response(503, json::object{{"status", "unavailable"}, {"detail", problem}});
    }
    return json_response(200, json::object{{"status", "ok"}});
  }
  if (path == "/metrics" || path == "/metrics/") {
    require_method(request, {"GET"});
    std::string body;
    body += "# TYPE transnotes_http_requests_total counter\n";
    body += "transnotes_http_requests_total " + std::to_string(counters_.requests.load()) + "\n";
    body += "# TYPE transnotes_http_responses_total counter\n";
    body += "transnotes_http_responses_total{class=\"2xx\"} " +
            std::to_string(counters_.responses_2xx.load()) + "\n";
    body += "transnotes_http_responses_total{class=\"4xx\"} " +
            std::to_string(counters_.responses_4xx.load()) + "\n";
    body += "transnotes_http_responses_total{class=\"5xx\"} " +
            std::to_string(counters_.responses_5xx.load()) + "\n";
    body += "# TYPE transnotes_translations_requested_total counter\n";
    body += "transnotes_translations_requested_total " +
            std::to_string(counters_.translations_requested.load()) + "\n";
    if (options_.extra_metrics) body += options_.extra_metrics();
    return http::Response{200, std::move(body), "text/plain; version=0.0.4", {}};
  }

  if (!path.starts_with(kPrefix)) throw NotFound();
  auto parts = split_path(path.substr(kPrefix.size()));
  if (parts.empty()) throw NotFound();
  const bool options = request.method == "OPTIONS";

  if (parts[0] == "notes") {
    if (parts.size() == 1) {
      require_method(request, {"GET", "POST"});
      if (options) return options_response({"GET", "POST"}, "Note List");
      if (request.method == "POST") {
        Note note = notes_.create(read_note_fields(parse_body(request)));
        auto res = json_response(201, note_to_json(note));
        res.headers.emplace_back("Location",
                                 std::string(kPrefix) + "/notes/" + std::to_string(note.id) + "/");
        return res;
      }
      ListQuery query;
      query.limit = std::min(query_int(params, "limit", kDefaultLimit), kMaxLimit);
      if (query.limit == 0) query.limit = kDefaultLimit;
      query.offset = query_int(params, "offset", 0);
      // Ask for one more row than the page to learn whether a next page exists.
      ListQuery probe = query;
      probe.limit = query.limit + 1;
      auto notes = notes_.list(probe);
      bool has_next = static_cast<std::int64_t>(notes.size()) > query.limit;
      if (has_next) notes.pop_back();
      json::array items;
      items.reserve(notes.size());
      for (const auto& note : notes) items.push_back(note_to_json(note));
      auto res = json_response(200, json::value(std::move(items)));
      std::string base = base_url(request) + std::string(kPrefix) + "/notes/";
      std::string links;
      if (has_next) {
        links += "<" + base + "?limit=" + std::to_string(query.limit) +
                 "&offset=" + std::to_string(query.offset + query.limit) + ">; rel=\"next\"";
      }
      if (query.offset > 0) {
        if (!links.empty()) links += ", ";
        links += "<" + base + "?limit=" + std::to_string(query.limit) + "&offset=" +
                 std::to_string(std::max<std::int64_t>(0, query.offset - query.limit)) +
                 ">; rel=\"prev\"";
      }
      if (!links.empty()) res.headers.emplace_back("Link", links);
      return res;
    }
    std::int64_t id = id_or_404(parts[1]);
    if (parts.size() == 2) {
      require_method(request, {"GET", "PUT", "PATCH", "DELETE"});
      if (options) return options_response({"GET", "PUT", "PATCH", "DELETE"}, "Note Instance");
      if (request.method == "GET" || request.method == "HEAD") {
        return http::Response{200, notes_.get_rendered(id), "application/json", {}};
      }
      if (request.method == "DELETE") {
        notes_.remove(id);
        return http::Response{204, "", "", {}};
      }
      bool partial = request.method == "PATCH";
      return http::Response{
          200,
          notes_.update_rendered(id, read_note_fields(parse_body(request)), partial),
          "application/json",
          {}};
    }
    if (parts.size() == 3 && parts[2] == "translate") {
      require_method(request, {"POST"});
      if (options) return options_response({"POST"}, "Translate Note");
      auto body = parse_body(request);
      ValidationError::FieldErrors errors;
      auto target = read_string_field(body, "target_language", errors);
      if (!errors.empty()) throw ValidationError(std::move(errors));
      if (!target) throw ValidationError("target_language", "This field is required.");
      TranslationJob job = notes_.request_translation(id, *target);
      counters_.translations_requested.fetch_add(1, std::memory_order_relaxed);
      std::string location = std::string(kPrefix) + "/translations/" + std::to_string(job.id) + "/";
      auto res = json_response(202, json::object{{"message", "Translation task started."},
                                                 {"status", "Translation in progress"},
                                                 {"translation", job_to_json(job)}});
      res.headers.emplace_back("Location", location);
      return res;
    }
    if (parts.size() == 3 && parts[2] == "translations") {
      require_method(request, {"GET"});
      if (options) return options_response({"GET"}, "Note Translations");
      json::array items;
      for (const auto& job : notes_.jobs_for_note(id)) items.push_back(job_to_json(job));
      return json_response(200, json::value(std::move(items)));
    }
    throw NotFound();
  }
  if (parts[0] == "translations" && parts.size() == 2) {
    require_method(request, {"GET"});
    if (options) return options_response({"GET"}, "Translation Instance");
    return json_response(200, job_to_json(notes_.job(id_or_404(parts[1]))));
  }
  if (parts[0] == "stats" && parts.size() == 1) {
    require_method(request, {"GET"});
    if (options) return options_response({"GET"}, "Stats");
    return json_response(200, stats_to_json(notes_.stats()));
  }
  if (parts[0] == "languages" && parts.size() == 1) {
    require_method(request, {"GET"});
    if (options) return options_response({"GET"}, "Languages");
    return json_response(200, languages_to_json(notes_.languages()));
  }
  throw NotFound();
}

}  // namespace transnotes::api
