#include "api/router.h"

#include <boost/json.hpp>
#include <charconv>
#include <utility>

#include "api/error_mapping.h"
#include "domain/errors.h"
#include "domain/text.h"

namespace transnotes::api {

namespace {

constexpr std::string_view kIdPlaceholder = "{id}";

std::string_view without_trailing_slash(std::string_view path) {
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  return path;
}

// Compares `path` with `route_path` segment by segment. On a match, `id_segment` holds what the
// `{id}` placeholder covered (empty when the template has none).
bool matches(std::string_view route_path, std::string_view path, std::string_view& id_segment) {
  std::string_view expected = without_trailing_slash(route_path);
  std::string_view actual = without_trailing_slash(path);
  id_segment = {};
  while (!expected.empty() && !actual.empty()) {
    if (expected.front() != '/' || actual.front() != '/') return false;
    expected.remove_prefix(1);
    actual.remove_prefix(1);
    const std::string_view want = expected.substr(0, expected.find('/'));
    const std::string_view got = actual.substr(0, actual.find('/'));
    if (want == kIdPlaceholder) {
      if (got.empty()) return false;
      id_segment = got;
    } else if (want != got) {
      return false;
    }
    expected.remove_prefix(want.size());
    actual.remove_prefix(got.size());
  }
  return expected.empty() && actual.empty();
}

std::string allow_header(const Route& route) {
  std::string allow;
  bool has_get = false;
  for (const auto& handler : route.methods) {
    if (!allow.empty()) allow += ", ";
    allow += handler.method;
    has_get = has_get || handler.method == "GET";
  }
  if (has_get) allow += ", HEAD";
  if (!allow.empty()) allow += ", ";
  return allow + "OPTIONS";
}

http::Response options_response(const Route& route, const std::string& allow) {
  http::Response response{200, "", "", {}};
  if (!route.name.empty()) {
    namespace json = boost::json;
    response = json_response(
        200, json::object{
                 {"name", route.name},
                 {"renders", json::array{"application/json"}},
                 {"parses", json::array{"application/json", "application/x-www-form-urlencoded"}}});
  }
  response.headers.emplace_back("Allow", allow);
  return response;
}

}  // namespace

bool parse_id(std::string_view segment, std::int64_t& id) {
  if (segment.empty()) return false;
  for (char c : segment) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, error] = std::from_chars(segment.data(), segment.data() + segment.size(), id);
  return error == std::errc() && end == segment.data() + segment.size();
}

Router::Router(std::vector<Route> routes) {
  entries_.reserve(routes.size());
  for (auto& route : routes) {
    std::string allow = allow_header(route);
    entries_.push_back(Entry{std::move(route), std::move(allow)});
  }
}

const Router::Entry* Router::match(std::string_view path, PathParams& params) const {
  for (const auto& entry : entries_) {
    std::string_view id_segment;
    if (!matches(entry.route.path, path, id_segment)) continue;
    // Literal segments tell routes apart, so a bad id can match nothing else either.
    if (!id_segment.empty() && !parse_id(id_segment, params.id)) throw NotFound();
    return &entry;
  }
  return nullptr;
}

http::Response Router::dispatch(const http::Request& request, std::string_view path,
                                std::string_view* matched) const {
  PathParams params;
  const Entry* entry = match(path, params);
  if (entry == nullptr) throw NotFound();
  if (matched) *matched = entry->route.path;
  if (request.method == "OPTIONS") return options_response(entry->route, entry->allow);
  const std::string_view method =
      request.method == "HEAD" ? std::string_view("GET") : std::string_view(request.method);
  for (const auto& handler : entry->route.methods) {
    if (handler.method == method) return handler.handler(request, params);
  }
  // The method is echoed into the JSON answer: it must be UTF-8 (the HTTP server lets only token
  // characters through, but the router does not rely on that).
  throw MethodNotAllowed(replace_invalid_utf8(request.method), entry->allow);
}

std::string Router::allow_for(std::string_view path) const {
  PathParams params;
  try {
    const Entry* entry = match(path, params);
    return entry ? entry->allow : std::string();
  } catch (const NotFound&) {
    return {};
  }
}

std::vector<std::string> Router::templates() const {
  std::vector<std::string> all;
  all.reserve(entries_.size());
  for (const auto& entry : entries_) all.emplace_back(entry.route.path);
  return all;
}

}  // namespace transnotes::api
