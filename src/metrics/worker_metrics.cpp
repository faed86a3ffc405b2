#include "metrics/worker_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <algorithm>
#include <iterator>
#include <mutex>
#include <utility>
#include <vector>

namespace transnotes::metrics {

struct WorkerMetrics::Families {
  explicit Families(prometheus::Registry& registry)
      : attempts(prometheus::BuildCounter()
                     .Name("transnotes_translation_attempts_total")
                     .Help("Translation job attempts that ended, by engine, language pair and "
                           "outcome.")
                     .Register(registry)),
        durations(prometheus::BuildHistogram()
                      .Name("transnotes_translation_duration_seconds")
                      .Help("Time a succeeded translation attempt took, by engine and language "
                            "pair.")
                      .Register(registry)),
        characters(prometheus::BuildCounter()
                       .Name("transnotes_translated_characters_total")
                       .Help("Source characters of succeeded translations, by engine and language "
                             "pair.")
                       .Register(registry)),
        load_seconds(prometheus::BuildGauge()
                         .Name("transnotes_engine_load_seconds")
                         .Help("Time the engine took to load its models.")
                         .Register(registry)),
        model_bytes(prometheus::BuildGauge()
                        .Name("transnotes_engine_model_bytes")
                        .Help("Bytes of model weights the engine loaded.")
                        .Register(registry)) {}

  prometheus::Family<prometheus::Counter>& attempts;
  prometheus::Family<prometheus::Histogram>& durations;
  prometheus::Family<prometheus::Counter>& characters;
  prometheus::Family<prometheus::Gauge>& load_seconds;
  prometheus::Family<prometheus::Gauge>& model_bytes;

  std::mutex watch_mutex;  // guards what the scrape reads below
  std::vector<std::pair<std::string, std::function<std::uint64_t()>>> token_sources;
  std::function<JobSummary()> queue;

  std::vector<prometheus::MetricFamily> collect();
};

namespace {

const prometheus::Histogram::BucketBoundaries& duration_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return buckets;
}

std::vector<prometheus::MetricFamily> queue_families(const JobSummary& summary) {
  std::vector<Sample> by_state;
  for (const JobStatus status : {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kSucceeded,
                                 JobStatus::kFailed, JobStatus::kCancelled}) {
    const auto it = summary.by_status.find(status);
    by_state.push_back({{{"state", to_string(status)}},
                        it == summary.by_status.end() ? 0.0 : static_cast<double>(it->second)});
  }
  const auto queued = summary.by_status.find(JobStatus::kQueued);
  double oldest_age = 0;
  if (summary.oldest_queued_created_at) {
    oldest_age =
        std::max(0.0, static_cast<double>(now_micros() - *summary.oldest_queued_created_at) / 1e6);
  }
  return {
      gauge_family("transnotes_jobs", "Translation jobs in the database, by state.",
                   std::move(by_state)),
      gauge_family(
          "transnotes_queue_depth", "Translation jobs waiting for a worker.",
          {{{}, queued == summary.by_status.end() ? 0.0 : static_cast<double>(queued->second)}}),
      gauge_family("transnotes_queue_oldest_age_seconds",
                   "Age of the oldest job waiting for a worker; 0 when none waits.",
                   {{{}, oldest_age}}),
  };
}

}  // namespace

std::vector<prometheus::MetricFamily> WorkerMetrics::Families::collect() {
  std::vector<Sample> tokens;
  std::function<JobSummary()> read_queue;
  {
    std::lock_guard lock(watch_mutex);
    for (const auto& [engine, read] : token_sources)
      tokens.push_back({{{"engine", engine}}, static_cast<double>(read())});
    read_queue = queue;
  }
  std::vector<prometheus::MetricFamily> out;
  if (!tokens.empty()) {
    out.push_back(counter_family(
        "transnotes_translated_tokens_total",
        "Subword tokens the engine read and generated (source plus output), by engine.",
        std::move(tokens)));
  }
  if (read_queue) {
    try {
      auto more = queue_families(read_queue());
      std::move(more.begin(), more.end(), std::back_inserter(out));
    } catch (const std::exception&) {
      // The database did not answer: the job figures are absent from this scrape, the rest stays.
    }
  }
  return out;
}

WorkerMetrics::WorkerMetrics(MetricsRegistry& registry)
    : families_(std::make_shared<Families>(registry.prometheus())) {
  registry.add([families = families_] { return families->collect(); });
}

WorkerMetrics::~WorkerMetrics() = default;

void WorkerMetrics::attempt(std::string_view engine, std::string_view pair,
                            std::string_view outcome, std::chrono::nanoseconds duration,
                            std::uint64_t source_characters) {
  const std::string engine_label(engine);
  const std::string pair_label(pair);
  families_->attempts
      .Add({{"engine", engine_label}, {"pair", pair_label}, {"outcome", std::string(outcome)}})
      .Increment();
  if (outcome != "succeeded") return;
  families_->durations.Add({{"engine", engine_label}, {"pair", pair_label}}, duration_buckets())
      .Observe(std::chrono::duration<double>(duration).count());
  families_->characters.Add({{"engine", engine_label}, {"pair", pair_label}})
      .Increment(static_cast<double>(source_characters));
}

void WorkerMetrics::watch_queue(std::function<JobSummary()> read) {
  std::lock_guard lock(families_->watch_mutex);
  families_->queue = std::move(read);
}

void WorkerMetrics::engine_loaded(std::string_view engine, std::chrono::duration<double> load_time,
                                  std::uint64_t model_bytes) {
  const prometheus::Labels labels{{"engine", std::string(engine)}};
  families_->load_seconds.Add(labels).Set(load_time.count());
  families_->model_bytes.Add(labels).Set(static_cast<double>(model_bytes));
}

void WorkerMetrics::watch_tokens(std::string engine, std::function<std::uint64_t()> read) {
  std::lock_guard lock(families_->watch_mutex);
  families_->token_sources.emplace_back(std::move(engine), std::move(read));
}

}  // namespace transnotes::metrics
