// The whole exposition, with every family this project exports populated, passes
// `promtool check metrics` (Prometheus's own parser and linter). promtool comes from Debian's
// prometheus package (scripts/install-deps.sh); without it these tests fail, they do not skip.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "cache/memory_cache.h"
#include "cache/redis_cache.h"
#include "cache/redis_rate_limiter.h"
#include "metrics/http_metrics.h"
#include "metrics/metrics.h"
#include "metrics/worker_metrics.h"

namespace transnotes::metrics {
namespace {

using namespace std::chrono_literals;

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

PromtoolResult promtool_check_metrics(const std::string& text) {
  std::string path = ::testing::TempDir() + "metrics-XXXXXX";
  const int fd = ::mkstemp(path.data());
  EXPECT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << text;
  const std::string command =
      std::string("'") + TRANSNOTES_PROMTOOL + "' check metrics < '" + path + "' 2>&1";
  PromtoolResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  while (const auto n = std::fread(buffer.data(), 1, buffer.size(), pipe))
    result.output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::remove(path.c_str());
  return result;
}

TEST(Promtool, AcceptsTheExpositionWithEveryFamilyPopulated) {
  MetricsRegistry registry;

  HttpMetrics http(registry, {"/api/v1/notes/", "/api/v1/notes/{id}/", "/metrics"});
  http.observe("GET", "/api/v1/notes/{id}/", 200, 2ms);
  http.observe("POST", "/api/v1/notes/", 201, 40ms);
  http.observe("GET", "/nope", 404, 1ms);
  http.request_started();
  http.watch_connections([] { return ConnectionFigures{4, 1}; });
  http.watch_api([] { return ApiFigures{3, 1, 1, 1}; });

  add_pool_metrics(registry, [] { return PoolStats{2, 1, 0, 8}; });

  WorkerMetrics worker(registry);
  for (const char* outcome :
       {"succeeded", "retry", "failed", "cancelled", "abandoned", "lost_lease"})
    worker.attempt("marian", "en-es", outcome, 800ms, 100);
  worker.engine_loaded("marian", 2s, 300'000'000);
  worker.watch_tokens("marian", [] { return std::uint64_t{5000}; });
  worker.watch_queue([] {
    JobSummary summary;
    summary.by_status = {{JobStatus::kQueued, 2}, {JobStatus::kRunning, 1}};
    summary.oldest_queued_created_at = now_micros() - 5'000'000;
    return summary;
  });

  registry.add([] { return cache::metric_families(cache::RedisNoteCacheStats{5, 2, 1, 0, 6, 1}); });
  registry.add([] { return cache::metric_families(cache::RedisRateLimiterStats{10, 2, 0}); });

  const std::string text = registry.render();
  for (const char* name : {"http_requests_total",
                           "http_request_duration_seconds_bucket",
                           "http_requests_in_flight",
                           "http_open_connections",
                           "http_rejected_connections_total",
                           "transnotes_event_streams_open",
                           "transnotes_throttled_requests_total",
                           "transnotes_translations_requested_total",
                           "transnotes_cache_lookups_total",
                           "transnotes_cache_errors_total",
                           "transnotes_rate_limiter_decisions_total",
                           "transnotes_rate_limiter_errors_total",
                           "transnotes_db_pool_connections",
                           "transnotes_db_pool_waiting",
                           "transnotes_db_pool_capacity",
                           "transnotes_jobs",
                           "transnotes_queue_depth",
                           "transnotes_queue_oldest_age_seconds",
                           "transnotes_translation_attempts_total",
                           "transnotes_translation_duration_seconds_bucket",
                           "transnotes_translated_characters_total",
                           "transnotes_translated_tokens_total",
                           "transnotes_engine_load_seconds",
                           "transnotes_engine_model_bytes",
                           "process_cpu_seconds_total",
                           "process_resident_memory_bytes",
                           "process_virtual_memory_bytes",
                           "process_open_fds",
                           "process_max_fds",
                           "process_start_time_seconds",
                           "transnotes_build_info"}) {
    const std::string line_start = std::string("\n") + name;
    EXPECT_TRUE(text.find(line_start + "{") != std::string::npos ||
                text.find(line_start + " ") != std::string::npos)
        << name << " has no sample";
  }
  const auto checked = promtool_check_metrics(text);
  EXPECT_EQ(checked.exit_code, 0) << checked.output << "\n" << text;
}

// The in-process cache's families, which take the Redis cache's place in the embedded default.
TEST(Promtool, AcceptsTheInProcessCacheFamilies) {
  MetricsRegistry registry;
  registry.add([] { return cache::metric_families(cache::MemoryNoteCacheStats{7, 3, 4, 900}); });
  const std::string text = registry.render();
  EXPECT_NE(text.find("\ntransnotes_cache_entries 4\n"), std::string::npos) << text;
  const auto checked = promtool_check_metrics(text);
  EXPECT_EQ(checked.exit_code, 0) << checked.output << "\n" << text;
}

// The check above would pass vacuously if promtool's verdict were lost on the way.
TEST(Promtool, RejectsABrokenExposition) {
  const auto checked = promtool_check_metrics(
      "# HELP broken_total Broken.\n# TYPE broken_total counter\nbroken_total{a=\"1\"} "
      "notanumber\n");
  EXPECT_NE(checked.exit_code, 0) << checked.output;
}

}  // namespace
}  // namespace transnotes::metrics
