// Fuzzes what the API reads from a request line and headers before any handler runs: the Host
// check, the target's origin form, route matching with `{id}` parsing, 405 / HEAD / OPTIONS from
// the route table (api/router.h), and the note list's limit/offset with its `Link` header
// (api/pagination.h).
//
// Api's own table is private to it and Api needs a whole NoteService, so the Router here is built
// with the same path templates and methods (make_router in src/api/api.cpp) and handlers that
// only report what they were given.
//
// Input, as text: "METHOD TARGET\n", then "Name: value\n" header lines. A first byte of '!'
// (skipped) makes the API trust X-Forwarded-Host / X-Forwarded-Proto.
#include <boost/url/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/pagination.h"
#include "api/router.h"
#include "domain/errors.h"
#include "http/server.h"

namespace {

using namespace transnotes;

// What a handler saw: the router calls at most one per request.
struct Seen {
  bool called = false;
  std::int64_t id = -1;
};
Seen seen;

api::RouteHandler reporter() {
  return [](const http::Request&, const api::PathParams& params) {
    seen.called = true;
    seen.id = params.id;
    return http::Response{};
  };
}

const api::Router& router() {
  static const api::Router table(std::vector<api::Route>{
      {"/health/", "", {{"GET", reporter()}}},
      {"/ready/", "", {{"GET", reporter()}}},
      {"/metrics", "", {{"GET", reporter()}}},
      {"/api/v1/auth/register/", "Register", {{"POST", reporter()}}},
      {"/api/v1/auth/token/", "Token Obtain Pair", {{"POST", reporter()}}},
      {"/api/v1/auth/token/refresh/", "Token Refresh", {{"POST", reporter()}}},
      {"/api/v1/auth/token/verify/", "Token Verify", {{"POST", reporter()}}},
      {"/api/v1/auth/token/blacklist/", "Token Blacklist", {{"POST", reporter()}}},
      {"/api/v1/notes/", "Note List", {{"GET", reporter()}, {"POST", reporter()}}},
      {"/api/v1/notes/{id}/",
       "Note Instance",
       {{"GET", reporter()}, {"PUT", reporter()}, {"PATCH", reporter()}, {"DELETE", reporter()}}},
      {"/api/v1/notes/{id}/translate/", "Translate Note", {{"POST", reporter()}}},
      {"/api/v1/notes/{id}/translations/", "Note Translations", {{"GET", reporter()}}},
      {"/api/v1/translations/{id}/", "Translation Instance", {{"GET", reporter()}}},
      {"/api/v1/stats/", "Stats", {{"GET", reporter()}}},
      {"/api/v1/languages/", "Languages", {{"GET", reporter()}}},
  });
  return table;
}

// Django's int converter, written the slow obvious way: digits only, and at most INT64_MAX.
bool reference_parse_id(std::string_view segment, std::int64_t& id) {
  if (segment.empty()) return false;
  for (char c : segment)
    if (c < '0' || c > '9') return false;
  while (segment.size() > 1 && segment.front() == '0') segment.remove_prefix(1);
  constexpr std::string_view kMax = "9223372036854775807";
  if (segment.size() > kMax.size() || (segment.size() == kMax.size() && segment > kMax))
    return false;
  id = 0;
  for (char c : segment) id = id * 10 + (c - '0');
  return true;
}

// A header value the HTTP layer can send: visible ASCII and spaces, nothing that ends a line.
bool is_sendable_header_value(std::string_view value) {
  for (char c : value)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

http::Request request_from(std::string_view text) {
  http::Request request;
  const auto line_end = std::min(text.find('\n'), text.size());
  const std::string_view line = text.substr(0, line_end);
  const auto space = std::min(line.find(' '), line.size());
  request.method = line.substr(0, space);
  request.target = line.substr(std::min(space + 1, line.size()));
  text.remove_prefix(std::min(line_end + 1, text.size()));
  while (!text.empty()) {
    const auto end = std::min(text.find('\n'), text.size());
    const std::string_view header = text.substr(0, end);
    const auto colon = header.find(':');
    if (colon != std::string_view::npos) {
      std::string_view value = header.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      request.headers.emplace_back(header.substr(0, colon), value);
    }
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return request;
}

void check_routing(const http::Request& request, std::string_view path) {
  seen = Seen{};
  try {
    const http::Response response = router().dispatch(request, path);
    if (request.method == "OPTIONS") {
      if (seen.called || response.headers.empty() || response.headers[0].first != "Allow")
        __builtin_trap();
    } else if (!seen.called) {
      __builtin_trap();
    }
    if (seen.called && seen.id < 0) __builtin_trap();
  } catch (const MethodNotAllowed&) {
    if (seen.called || router().allow_for(path).empty()) __builtin_trap();
  } catch (const NotFound&) {
    if (seen.called) __builtin_trap();
  }
  // Every segment the router could take for an id is read as Django reads it.
  std::string_view rest = path;
  while (!rest.empty()) {
    const auto slash = std::min(rest.find('/'), rest.size());
    std::int64_t id = -1, expected = -1;
    const std::string_view segment = rest.substr(0, slash);
    if (api::parse_id(segment, id) != reference_parse_id(segment, expected) || id != expected)
      __builtin_trap();
    rest.remove_prefix(std::min(slash + 1, rest.size()));
  }
}

void check_list_query(const http::Request& request, const boost::urls::url_view& url,
                      bool trust_proxy) {
  const ListQuery query = api::list_query_from(url.params());
  if (query.limit < 1 || query.limit > api::kMaxPageLimit || query.offset < 0) __builtin_trap();
  const std::string base = api::base_url(request, trust_proxy);
  if (!is_sendable_header_value(base)) __builtin_trap();
  // As the API calls it: a full page, and more rows after it only when the store has them, so
  // offset + returned is below a row count a database can hold.
  const std::int64_t returned = query.limit;
  const bool more_after = query.offset < (std::int64_t{1} << 62);
  const std::string links = api::page_links(base + "/api/v1/notes/", query, returned, more_after);
  if (!is_sendable_header_value(links)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool trust_proxy = !text.empty() && text.front() == '!';
  if (trust_proxy) text.remove_prefix(1);
  const http::Request request = request_from(text);
  try {
    // In the order Api::route takes them.
    api::checked_host(request, trust_proxy);
    auto url = boost::urls::parse_origin_form(request.target);
    if (!url) return 0;  // 404
    check_routing(request, url->encoded_path());
    check_list_query(request, *url, trust_proxy);
  } catch (const BadRequest&) {
    // "Invalid Host header.": only for a host that is not valid.
    std::string_view host = request.header("Host");
    if (trust_proxy && !request.header("X-Forwarded-Host").empty()) return 0;
    if (host.empty() || api::is_valid_host(host)) __builtin_trap();
  }
  return 0;
}
