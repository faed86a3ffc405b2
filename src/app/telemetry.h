// What a process tells its operator: Prometheus metrics (one registry per process), the access
// log, and the log context that ties a translation job's lines to the request that asked for it.
// The pieces live in src/metrics and src/logging; this wires them to the HTTP server, the API and
// the workers.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/api.h"
#include "app/config.h"
#include "domain/ports.h"
#include "http/server.h"
#include "logging/access_log.h"
#include "metrics/http_metrics.h"
#include "metrics/metrics.h"
#include "metrics/worker_metrics.h"
#include "queue/worker_pool.h"

namespace transnotes::app {

// The process's readiness checks (see api::ReadinessResults).
using ReadinessChecks = std::function<api::ReadinessResults()>;

// An engine as the process loaded it, for transnotes_engine_* metrics.
struct LoadedEngine {
  std::string name;
  std::chrono::duration<double> load_time{0};
  std::uint64_t model_bytes = 0;
  // The engine's running total of subword tokens (Marian), unset for engines without tokens.
  std::function<std::uint64_t()> tokens;
};

// The HTTP side of `serve`: http_* metrics and the access log, fed by the server's on_response.
class HttpTelemetry {
 public:
  // `routes`: the API's route templates. Without `access_log` no request line is written.
  HttpTelemetry(metrics::MetricsRegistry& registry, const std::vector<std::string>& routes,
                bool access_log);
  // For ServerOptions::on_response (runs on the event loop).
  void on_response(const http::CompletedExchange& exchange);
  metrics::HttpMetrics& metrics() { return metrics_; }

 private:
  metrics::HttpMetrics metrics_;
  std::unique_ptr<logging::AccessLog> access_log_;
};

// The worker side: transnotes_translation_* metrics per attempt, and while a job runs every line
// its worker thread logs carries the job's id and the request id of the translate request.
class JobTelemetry : public queue::JobObserver {
 public:
  // The queue gauges read `store` at every scrape.
  JobTelemetry(metrics::MetricsRegistry& registry, Store& store,
               const std::vector<LoadedEngine>& engines);
  void attempt_started(const TranslationJob& job) override;
  void attempt_finished(const TranslationJob& job, const queue::AttemptReport& report) override;

 private:
  metrics::WorkerMetrics metrics_;
};

// `worker --metrics-port`: /metrics, /healthz and /readyz on their own small HTTP server.
std::unique_ptr<http::Server> start_worker_metrics_server(const Config& config,
                                                          metrics::MetricsRegistry& registry,
                                                          ReadinessChecks readiness);

}  // namespace transnotes::app
