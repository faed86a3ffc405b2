// Figures of the processes that run translation workers (`worker --metrics-port N`, and `serve`
// with in-process workers): job attempts and their outcomes, translation time, characters and
// tokens translated, engine load time and model size, and the job table's state read from the
// database at every scrape.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "domain/model.h"
#include "metrics/metrics.h"

namespace transnotes::metrics {

class WorkerMetrics {
 public:
  // Registers with `registry`, which keeps the families alive.
  explicit WorkerMetrics(MetricsRegistry& registry);
  ~WorkerMetrics();
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // One job attempt ended. `pair` as "en-es"; `outcome` one of succeeded, retry, failed,
  // cancelled, abandoned, lost_lease. Counts transnotes_translation_attempts_total; a succeeded
  // attempt also observes transnotes_translation_duration_seconds and adds `source_characters`
  // to transnotes_translated_characters_total (so that fast failures do not pull the latency
  // figures down). Thread-safe; takes prometheus-cpp's locks, fine at the rate jobs end.
  void attempt(std::string_view engine, std::string_view pair, std::string_view outcome,
               std::chrono::nanoseconds duration, std::uint64_t source_characters);

  // transnotes_jobs{state}, transnotes_queue_depth and transnotes_queue_oldest_age_seconds from
  // one call of `read` per scrape (e.g. a JobStore's job summary). When it throws (the database
  // is down) these three families are left out of that scrape.
  void watch_queue(std::function<JobSummary()> read);

  // transnotes_engine_load_seconds{engine} and transnotes_engine_model_bytes{engine}.
  void engine_loaded(std::string_view engine, std::chrono::duration<double> load_time,
                     std::uint64_t model_bytes);
  // transnotes_translated_tokens_total{engine}: `read` returns the engine's running total
  // (e.g. MarianEngine::translated_tokens), read at every scrape.
  void watch_tokens(std::string engine, std::function<std::uint64_t()> read);

  struct Families;  // defined in worker_metrics.cpp

 private:
  std::shared_ptr<Families> families_;
};

}  // namespace transnotes::metrics
