// WorkerMetrics: attempts count by engine, pair and outcome; succeeded ones feed the duration
// histogram and the characters; the job table is read at every scrape, and a failing read
// leaves only the job families out.
#include "metrics/worker_metrics.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace transnotes::metrics {
namespace {

using namespace std::chrono_literals;

bool contains(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(WorkerMetrics, AttemptsCountByOutcomeAndSucceededOnesFeedDurationAndCharacters) {
  MetricsRegistry registry;
  WorkerMetrics worker(registry);
  worker.attempt("marian", "en-es", "succeeded", 300ms, 120);
  worker.attempt("marian", "en-es", "succeeded", 2s, 30);
  worker.attempt("marian", "en-es", "retry", 1ms, 999);
  worker.attempt("marian", "en-de", "failed", 1ms, 999);
  const std::string text = registry.render();
  EXPECT_TRUE(contains(text, "# TYPE transnotes_translation_attempts_total counter\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE transnotes_translation_duration_seconds histogram\n"));
  EXPECT_TRUE(contains(text, "# TYPE transnotes_translated_characters_total counter\n"));
  EXPECT_TRUE(contains(text,
                       "transnotes_translation_attempts_total{engine=\"marian\",outcome="
                       "\"succeeded\",pair=\"en-es\"} 2\n"))
      << text;
  EXPECT_TRUE(contains(text,
                       "transnotes_translation_attempts_total{engine=\"marian\",outcome=\"retry\","
                       "pair=\"en-es\"} 1\n"));
  EXPECT_TRUE(contains(text,
                       "transnotes_translation_attempts_total{engine=\"marian\",outcome=\"failed\","
                       "pair=\"en-de\"} 1\n"));
  EXPECT_TRUE(contains(
      text, "transnotes_translation_duration_seconds_count{engine=\"marian\",pair=\"en-es\"} 2\n"));
  EXPECT_TRUE(contains(text,
                       "transnotes_translation_duration_seconds_bucket{engine=\"marian\",pair=\"en-"
                       "es\",le=\"0.5\"} 1\n"));
  EXPECT_TRUE(contains(text,
                       "transnotes_translation_duration_seconds_bucket{engine=\"marian\",pair=\"en-"
                       "es\",le=\"2.5\"} 2\n"));
  EXPECT_TRUE(contains(text,
                       "transnotes_translation_duration_seconds_bucket{engine=\"marian\",pair=\"en-"
                       "es\",le=\"120\"} 2\n"));
  EXPECT_TRUE(contains(
      text, "transnotes_translated_characters_total{engine=\"marian\",pair=\"en-es\"} 150\n"));
  EXPECT_FALSE(contains(text, "pair=\"en-de\",le=")) << text;  // no duration for a failure
}

TEST(WorkerMetrics, QueueFiguresAreReadFromTheSummaryAtEachScrape) {
  MetricsRegistry registry;
  WorkerMetrics worker(registry);
  JobSummary summary;
  summary.by_status = {{JobStatus::kQueued, 3},
                       {JobStatus::kRunning, 1},
                       {JobStatus::kSucceeded, 10},
                       {JobStatus::kFailed, 2}};
  summary.oldest_queued_created_at = now_micros() - 90'000'000;  // 90 s ago
  int reads = 0;
  worker.watch_queue([&] {
    ++reads;
    return summary;
  });
  EXPECT_EQ(reads, 0);
  std::string text = registry.render();
  EXPECT_EQ(reads, 1);
  EXPECT_TRUE(contains(text, "# TYPE transnotes_jobs gauge\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE transnotes_queue_depth gauge\n"));
  EXPECT_TRUE(contains(text, "# TYPE transnotes_queue_oldest_age_seconds gauge\n"));
  EXPECT_TRUE(contains(text, "transnotes_jobs{state=\"queued\"} 3\n"));
  EXPECT_TRUE(contains(text, "transnotes_jobs{state=\"running\"} 1\n"));
  EXPECT_TRUE(contains(text, "transnotes_jobs{state=\"succeeded\"} 10\n"));
  EXPECT_TRUE(contains(text, "transnotes_jobs{state=\"failed\"} 2\n"));
  EXPECT_TRUE(contains(text, "transnotes_jobs{state=\"cancelled\"} 0\n"));
  EXPECT_TRUE(contains(text, "transnotes_queue_depth 3\n"));
  const std::string age_line = "\ntransnotes_queue_oldest_age_seconds ";
  const auto at = text.find(age_line);
  ASSERT_NE(at, std::string::npos) << text;
  const double age = std::stod(text.substr(at + age_line.size()));
  EXPECT_GE(age, 90.0);
  EXPECT_LT(age, 90.0 + 600.0);  // however slow this machine is, not ten minutes slow

  summary.by_status[JobStatus::kQueued] = 0;
  summary.oldest_queued_created_at.reset();
  text = registry.render();
  EXPECT_EQ(reads, 2);
  EXPECT_TRUE(contains(text, "transnotes_queue_depth 0\n")) << text;
  EXPECT_TRUE(contains(text, "transnotes_queue_oldest_age_seconds 0\n"));
}

TEST(WorkerMetrics, AFailingSummaryLeavesTheJobFamiliesOutAndTheRestIn) {
  MetricsRegistry registry;
  WorkerMetrics worker(registry);
  worker.watch_queue([]() -> JobSummary { throw std::runtime_error("database down"); });
  std::uint64_t tokens = 41;
  worker.watch_tokens("marian", [&] { return tokens; });
  const std::string text = registry.render();
  EXPECT_FALSE(contains(text, "transnotes_jobs")) << text;
  EXPECT_FALSE(contains(text, "transnotes_queue_depth")) << text;
  EXPECT_TRUE(contains(text, "transnotes_translated_tokens_total{engine=\"marian\"} 41\n")) << text;
}

TEST(WorkerMetrics, EngineFigures) {
  MetricsRegistry registry;
  WorkerMetrics worker(registry);
  std::uint64_t tokens = 0;
  worker.engine_loaded("marian", std::chrono::milliseconds(1500), 298'000'000);
  worker.watch_tokens("marian", [&] { return tokens; });
  tokens = 1234;
  const std::string text = registry.render();
  EXPECT_TRUE(contains(text, "# TYPE transnotes_engine_load_seconds gauge\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE transnotes_engine_model_bytes gauge\n"));
  EXPECT_TRUE(contains(text, "# TYPE transnotes_translated_tokens_total counter\n"));
  EXPECT_TRUE(contains(text, "transnotes_engine_load_seconds{engine=\"marian\"} 1.5\n"));
  EXPECT_TRUE(contains(text, "transnotes_engine_model_bytes{engine=\"marian\"} 298000000\n"));
  EXPECT_TRUE(contains(text, "transnotes_translated_tokens_total{engine=\"marian\"} 1234\n"));
}

}  // namespace
}  // namespace transnotes::metrics
