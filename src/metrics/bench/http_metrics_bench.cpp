// Cost of recording one HTTP request, per call: what /metrics did before (two shared atomic
// counters), HttpMetrics::observe, and prometheus-cpp's own Counter and Histogram (children
// resolved once, and looked up per call). Threads(4): all threads record the same route and
// code, the contended case of cached retrieves on four event-loop threads.
#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/http_metrics.h"
#include "metrics/metrics.h"

namespace {

using transnotes::metrics::HttpMetrics;
using transnotes::metrics::MetricsRegistry;

const std::vector<std::string> kRoutes = {"/api/v1/notes/",
                                          "/api/v1/notes/{id}/",
                                          "/api/v1/notes/{id}/translate/",
                                          "/api/v1/translations/",
                                          "/api/v1/translations/{id}/",
                                          "/api/v1/stats/",
                                          "/api/v1/health/",
                                          "/healthz",
                                          "/readyz",
                                          "/metrics",
                                          "/api/v1/auth/token/",
                                          "/api/v1/auth/register/"};
constexpr std::chrono::nanoseconds kDuration{1234};

// The former Api::Counters: requests and the response class.
struct OldCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> responses_2xx{0};
};
OldCounters old_counters;

void BM_OldAtomicCounters(benchmark::State& state) {
  for (auto _ : state) {
    old_counters.requests.fetch_add(1, std::memory_order_relaxed);
    old_counters.responses_2xx.fetch_add(1, std::memory_order_relaxed);
  }
}
BENCHMARK(BM_OldAtomicCounters)->Threads(1)->Threads(4);

MetricsRegistry& registry() {
  static MetricsRegistry instance;
  return instance;
}
HttpMetrics& http_metrics() {
  static HttpMetrics instance(registry(), kRoutes);
  return instance;
}

void BM_ObserveByRouteId(benchmark::State& state) {
  const HttpMetrics::RouteId route = http_metrics().route_id("/api/v1/notes/{id}/");
  for (auto _ : state) http_metrics().observe("GET", route, 200, kDuration);
}
BENCHMARK(BM_ObserveByRouteId)->Threads(1)->Threads(4);

void BM_ObserveByTemplate(benchmark::State& state) {
  const std::string route = "/api/v1/notes/{id}/";
  for (auto _ : state) http_metrics().observe("GET", route, 200, kDuration);
}
BENCHMARK(BM_ObserveByTemplate)->Threads(1)->Threads(4);

void BM_InFlightStartFinish(benchmark::State& state) {
  for (auto _ : state) {
    http_metrics().request_started();
    http_metrics().request_finished();
  }
}
BENCHMARK(BM_InFlightStartFinish)->Threads(1)->Threads(4);

const prometheus::Histogram::BucketBoundaries kBuckets = {.005, .01, .025, .05, .1, .25,
                                                          .5,   1,   2.5,  5,   10};

struct PrometheusCpp {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter().Name("http_requests_total").Help("h").Register(registry);
  prometheus::Family<prometheus::Histogram>& durations = prometheus::BuildHistogram()
                                                             .Name("http_request_duration_seconds")
                                                             .Help("h")
                                                             .Register(registry);
};
PrometheusCpp& prometheus_cpp() {
  static PrometheusCpp instance;
  return instance;
}

void BM_PrometheusCppResolvedChildren(benchmark::State& state) {
  auto& counter = prometheus_cpp().requests.Add(
      {{"method", "GET"}, {"route", "/api/v1/notes/{id}/"}, {"code", "200"}});
  auto& histogram = prometheus_cpp().durations.Add(
      {{"method", "GET"}, {"route", "/api/v1/notes/{id}/"}}, kBuckets);
  for (auto _ : state) {
    counter.Increment();
    histogram.Observe(std::chrono::duration<double>(kDuration).count());
  }
}
BENCHMARK(BM_PrometheusCppResolvedChildren)->Threads(1)->Threads(4);

void BM_PrometheusCppLabelLookupPerCall(benchmark::State& state) {
  for (auto _ : state) {
    prometheus_cpp()
        .requests.Add({{"method", "GET"}, {"route", "/api/v1/notes/{id}/"}, {"code", "200"}})
        .Increment();
    prometheus_cpp()
        .durations.Add({{"method", "GET"}, {"route", "/api/v1/notes/{id}/"}}, kBuckets)
        .Observe(std::chrono::duration<double>(kDuration).count());
  }
}
BENCHMARK(BM_PrometheusCppLabelLookupPerCall)->Threads(1)->Threads(4);

// A scrape of a registry where every route and a few codes have been seen.
void BM_Render(benchmark::State& state) {
  for (const auto& route : kRoutes)
    for (int code : {200, 201, 400, 404, 500})
      for (const char* method : {"GET", "POST", "DELETE"})
        http_metrics().observe(method, route, code, kDuration);
  std::size_t bytes = 0;
  for (auto _ : state) bytes = registry().render().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Render)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
