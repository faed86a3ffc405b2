// The API process's HTTP figures: http_requests_total{method, route, code},
// http_request_duration_seconds{method, route} (histogram), http_requests_in_flight, and through
// callbacks http_open_connections, http_rejected_connections_total, transnotes_event_streams_open,
// transnotes_translations_requested_total and transnotes_throttled_requests_total{scope}.
//
// observe() runs on the event loop for every request (cached retrieves at ~100k/s), so it takes
// no lock and looks nothing up in a label map: the route is an index resolved once (route_id),
// and every (method, route) has per-thread-shard atomic counters that a scrape adds up.
// prometheus-cpp renders them (HttpMetrics registers as a prometheus::Collectable); its own
// Histogram takes a mutex per Observe and its Family a mutex and a map lookup per Add, which is
// what this avoids (numbers in src/metrics/bench/http_metrics_bench.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/metrics.h"

namespace transnotes::metrics {

// The connection figures of an http::Server (its ServerStats), read at scrape time.
struct ConnectionFigures {
  std::int64_t open_connections = 0;
  std::uint64_t rejected_connections = 0;  // accept errors and connections refused at the cap
  // Requests the server has read and not answered yet. http_requests_in_flight is this plus
  // the request_started() not yet finished: count in-flight requests one way or the other.
  std::int64_t in_flight = 0;
  // Streamed answers being written (live event streams): transnotes_event_streams_open.
  std::int64_t open_streams = 0;
};

// The API's own counters, read at scrape time.
struct ApiFigures {
  std::uint64_t translations_requested = 0;
  // transnotes_throttled_requests_total{scope="translate|auth|failed_login"}
  std::uint64_t throttled_translate = 0;
  std::uint64_t throttled_auth = 0;
  std::uint64_t throttled_failed_login = 0;
};

class HttpMetrics {
 public:
  // An index into the route templates given at construction; kUnmatched for "unmatched".
  using RouteId = std::uint32_t;
  static constexpr RouteId kUnmatched = 0;

  // `route_templates`: every route the router knows ("/api/v1/notes/{id}/"); anything else is
  // counted as route="unmatched". Registers with `registry`, which keeps the counters alive.
  HttpMetrics(MetricsRegistry& registry, const std::vector<std::string>& route_templates);
  ~HttpMetrics();
  HttpMetrics(const HttpMetrics&) = delete;
  HttpMetrics& operator=(const HttpMetrics&) = delete;

  // Resolve once (when the router is built) and keep the id for observe(). Thread-safe.
  RouteId route_id(std::string_view route_template) const;

  // One finished request. Lock-free; any thread. Methods other than GET, HEAD, POST, PUT, PATCH,
  // DELETE and OPTIONS count as method="other".
  void observe(std::string_view method, RouteId route, int status,
               std::chrono::nanoseconds duration);
  // The same with the template's text (a hash lookup in a table fixed at construction).
  void observe(std::string_view method, std::string_view route_template, int status,
               std::chrono::nanoseconds duration) {
    observe(method, route_id(route_template), status, duration);
  }

  // http_requests_in_flight, for callers whose server does not count it (ConnectionFigures):
  // started when a request is complete and handed to the API, finished when its response is
  // handed back. Lock-free; any thread (start and finish may differ).
  void request_started();
  void request_finished();

  // Read at every scrape; what they read must stay valid while the registry may render.
  void watch_connections(std::function<ConnectionFigures()> read);
  void watch_api(std::function<ApiFigures()> read);

  struct Counters;  // defined in http_metrics.cpp

 private:
  std::shared_ptr<Counters> counters_;
};

}  // namespace transnotes::metrics
