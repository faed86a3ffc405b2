// HttpMetrics: the request counter and duration histogram move with observe() (per method, route
// template and code), exactly also when many threads record at once, and the callback families
// are read at scrape time.
#include "metrics/http_metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace transnotes::metrics {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kRoutes = {"/api/v1/notes/", "/api/v1/notes/{id}/", "/metrics"};

bool contains(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(HttpMetrics, FreshRegistryHasTheFamiliesWithHelpAndType) {
  MetricsRegistry registry;
  HttpMetrics http(registry, kRoutes);
  const std::string text = registry.render();
  for (const auto& [name, type] : std::vector<std::pair<std::string, std::string>>{
           {"http_requests_total", "counter"},
           {"http_request_duration_seconds", "histogram"},
           {"http_requests_in_flight", "gauge"}}) {
    EXPECT_TRUE(contains(text, "# HELP " + name + " ")) << name << "\n" << text;
    EXPECT_TRUE(contains(text, "# TYPE " + name + " " + type + "\n")) << name << "\n" << text;
  }
}

TEST(HttpMetrics, ObserveCountsByMethodRouteAndCodeAndFillsTheHistogram) {
  MetricsRegistry registry;
  HttpMetrics http(registry, kRoutes);
  const auto note = http.route_id("/api/v1/notes/{id}/");
  http.observe("GET", note, 200, 3ms);
  http.observe("GET", note, 200, 7ms);
  http.observe("GET", note, 404, 20s);
  http.observe("POST", "/api/v1/notes/", 201, 60ms);
  const std::string text = registry.render();
  EXPECT_TRUE(contains(
      text, "http_requests_total{code=\"200\",method=\"GET\",route=\"/api/v1/notes/{id}/\"} 2\n"))
      << text;
  EXPECT_TRUE(contains(
      text, "http_requests_total{code=\"404\",method=\"GET\",route=\"/api/v1/notes/{id}/\"} 1\n"));
  EXPECT_TRUE(contains(
      text, "http_requests_total{code=\"201\",method=\"POST\",route=\"/api/v1/notes/\"} 1\n"));
  const std::string get_note = "{method=\"GET\",route=\"/api/v1/notes/{id}/\"";
  EXPECT_TRUE(contains(text, "http_request_duration_seconds_count" + get_note + "} 3\n")) << text;
  EXPECT_TRUE(contains(text, "http_request_duration_seconds_sum" + get_note + "} 20.01\n"));
  EXPECT_TRUE(
      contains(text, "http_request_duration_seconds_bucket" + get_note + ",le=\"0.005\"} 1\n"));
  EXPECT_TRUE(
      contains(text, "http_request_duration_seconds_bucket" + get_note + ",le=\"0.01\"} 2\n"));
  EXPECT_TRUE(
      contains(text, "http_request_duration_seconds_bucket" + get_note + ",le=\"10\"} 2\n"));
  EXPECT_TRUE(
      contains(text, "http_request_duration_seconds_bucket" + get_note + ",le=\"+Inf\"} 3\n"));
  EXPECT_TRUE(contains(text,
                       "http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/"
                       "notes/\",le=\"0.05\"} 0\n"));
  EXPECT_TRUE(contains(text,
                       "http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/"
                       "notes/\",le=\"0.1\"} 1\n"));
  // Counted again: the second scrape sees the requests in between.
  http.observe("GET", note, 200, 1ms);
  EXPECT_TRUE(contains(
      registry.render(),
      "http_requests_total{code=\"200\",method=\"GET\",route=\"/api/v1/notes/{id}/\"} 3\n"));
}

TEST(HttpMetrics, UnknownRoutesAndMethodsHaveOneLabelEach) {
  MetricsRegistry registry;
  HttpMetrics http(registry, kRoutes);
  EXPECT_EQ(http.route_id("/api/v1/notes/123/"), HttpMetrics::kUnmatched);
  http.observe("GET", "/api/v1/notes/123/", 404, 1ms);
  http.observe("GET", "/wp-admin/", 404, 1ms);
  http.observe("BREW", "/metrics", 405, 1ms);
  http.observe("GET", HttpMetrics::RouteId{999}, 404, 1ms);  // an id this instance never gave
  const std::string text = registry.render();
  EXPECT_TRUE(
      contains(text, "http_requests_total{code=\"404\",method=\"GET\",route=\"unmatched\"} 3\n"))
      << text;
  EXPECT_TRUE(
      contains(text, "http_requests_total{code=\"405\",method=\"other\",route=\"/metrics\"} 1\n"));
  EXPECT_FALSE(contains(text, "123")) << text;
  EXPECT_FALSE(contains(text, "BREW")) << text;
}

TEST(HttpMetrics, ManyDistinctStatusCodesAreAllCounted) {
  MetricsRegistry registry;
  HttpMetrics http(registry, kRoutes);
  // More distinct codes than there are lock-free slots: the rest take the slow path, still exact.
  for (int code = 200; code < 240; ++code)
    for (int i = 0; i < code - 199; ++i) http.observe("GET", "/metrics", code, 1ms);
  http.observe("GET", "/metrics", 42, 1ms);  // not an HTTP status, still counted
  const std::string text = registry.render();
  for (int code = 200; code < 240; ++code) {
    EXPECT_TRUE(contains(text, "http_requests_total{code=\"" + std::to_string(code) +
                                   "\",method=\"GET\",route=\"/metrics\"} " +
                                   std::to_string(code - 199) + "\n"))
        << code << "\n"
        << text;
  }
  EXPECT_TRUE(
      contains(text, "http_requests_total{code=\"42\",method=\"GET\",route=\"/metrics\"} 1\n"));
  EXPECT_TRUE(contains(
      text, "http_request_duration_seconds_count{method=\"GET\",route=\"/metrics\"} 821\n"))
      << text;
}

TEST(HttpMetrics, ConcurrentObserversLoseNoCount) {
  MetricsRegistry registry;
  HttpMetrics http(registry, kRoutes);
  const auto note = http.route_id("/api/v1/notes/{id}/");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        http.request_started();
        http.observe("GET", note, t % 2 == 0 ? 200 : 304, 2ms);
        http.request_finished();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const std::string text = registry.render();
  const int half = kThreads / 2 * kPerThread;
  EXPECT_TRUE(contains(
      text, "http_requests_total{code=\"200\",method=\"GET\",route=\"/api/v1/notes/{id}/\"} " +
                std::to_string(half) + "\n"))
      << text;
  EXPECT_TRUE(contains(
      text, "http_requests_total{code=\"304\",method=\"GET\",route=\"/api/v1/notes/{id}/\"} " +
                std::to_string(half) + "\n"));
  EXPECT_TRUE(contains(text,
                       "http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/notes/"
                       "{id}/\"} " +
                           std::to_string(kThreads * kPerThread) + "\n"));
  EXPECT_TRUE(contains(text, "http_requests_in_flight 0\n")) << text;
}

TEST(HttpMetrics, InFlightFollowsStartAndFinishOnDifferentThreads) {
  MetricsRegistry registry;
  HttpMetrics http(registry, kRoutes);
  http.request_started();
  http.request_started();
  EXPECT_TRUE(contains(registry.render(), "http_requests_in_flight 2\n"));
  std::thread([&] { http.request_finished(); }).join();
  EXPECT_TRUE(contains(registry.render(), "http_requests_in_flight 1\n"));
}

TEST(HttpMetrics, ConnectionAndApiFiguresAreReadAtScrape) {
  MetricsRegistry registry;
  HttpMetrics http(registry, kRoutes);
  ConnectionFigures connections{5, 2, 4, 3};
  ApiFigures api{7, 1, 2, 3};
  http.watch_connections([&] { return connections; });
  http.watch_api([&] { return api; });
  std::string text = registry.render();
  EXPECT_TRUE(contains(text, "# TYPE http_open_connections gauge\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE http_rejected_connections_total counter\n"));
  EXPECT_TRUE(contains(text, "# TYPE transnotes_translations_requested_total counter\n"));
  EXPECT_TRUE(contains(text, "# TYPE transnotes_throttled_requests_total counter\n"));
  EXPECT_TRUE(contains(text, "http_open_connections 5\n"));
  EXPECT_TRUE(contains(text, "http_requests_in_flight 4\n"));
  EXPECT_TRUE(contains(text, "http_rejected_connections_total 2\n"));
  EXPECT_TRUE(contains(text, "# TYPE transnotes_event_streams_open gauge\n")) << text;
  EXPECT_TRUE(contains(text, "transnotes_event_streams_open 3\n"));
  EXPECT_TRUE(contains(text, "transnotes_translations_requested_total 7\n"));
  EXPECT_TRUE(contains(text, "transnotes_throttled_requests_total{scope=\"translate\"} 1\n"));
  EXPECT_TRUE(contains(text, "transnotes_throttled_requests_total{scope=\"auth\"} 2\n"));
  EXPECT_TRUE(contains(text, "transnotes_throttled_requests_total{scope=\"failed_login\"} 3\n"));
  connections.open_connections = 1;
  EXPECT_TRUE(contains(registry.render(), "http_open_connections 1\n"));
}

}  // namespace
}  // namespace transnotes::metrics
