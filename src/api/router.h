// Routing by a table of {path template, name, method handlers}: the one description of the
// API's resources from which dispatch, 405 with `Allow`, HEAD and OPTIONS all follow.
// Private to src/api.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "http/server.h"

namespace transnotes::api {

// What a template's placeholders captured. `{id}` is the only placeholder.
struct PathParams {
  std::int64_t id = 0;
};

using RouteHandler = std::function<http::Response(const http::Request&, const PathParams&)>;

struct MethodHandler {
  std::string_view method;  // "GET", "POST", ...
  RouteHandler handler;
};

struct Route {
  // Segments separated by '/', literal or `{id}`; e.g. "/api/v1/notes/{id}/translate/". A
  // request matches with or without the trailing slash, never with extra or empty segments.
  std::string_view path;
  // The view name DRF's OPTIONS metadata shows ("Note List"). Empty for plain endpoints
  // (health, metrics), whose OPTIONS answer is an empty body with `Allow`, as Django's View.
  std::string_view name;
  // In the order `Allow` lists them. HEAD is never listed here: a route with GET answers it.
  std::vector<MethodHandler> methods;
};

class Router {
 public:
  explicit Router(std::vector<Route> routes);

  // Answers `request` whose decoded-path-free target path is `path` (no query string).
  // HEAD runs the GET handler and keeps its body (the HTTP server leaves it out on the wire);
  // OPTIONS answers from the table. Throws NotFound for a path no route matches or an `{id}`
  // that is not an id (digits only, within int64, as Django's int converter), and
  // MethodNotAllowed with the route's `Allow` for other methods. Handlers' exceptions pass.
  // `matched`, when given, receives the template of the route that matched (also when a 405 or
  // a handler's exception follows), and stays as it was when none did.
  http::Response dispatch(const http::Request& request, std::string_view path,
                          std::string_view* matched = nullptr) const;

  // The `Allow` header of the route matching `path` ("" when none matches); for tests.
  std::string allow_for(std::string_view path) const;
  // Every route's template, in table order (the names metrics may give routes).
  std::vector<std::string> templates() const;

 private:
  struct Entry {
    Route route;
    std::string allow;  // computed once: the methods, HEAD when GET is there, OPTIONS
  };
  const Entry* match(std::string_view path, PathParams& params) const;
  std::vector<Entry> entries_;
};

// Django's int path converter: digits only, leading zeros allowed, and an id beyond int64 names
// nothing. Returns false for anything else.
bool parse_id(std::string_view segment, std::int64_t& id);

}  // namespace transnotes::api
