#include "app/telemetry.h"

#include <spdlog/spdlog.h>

#include <optional>

#include "logging/logging.h"

namespace transnotes::app {

HttpTelemetry::HttpTelemetry(metrics::MetricsRegistry& registry,
                             const std::vector<std::string>& routes, bool access_log)
    : metrics_(registry, routes) {
  if (access_log) access_log_ = std::make_unique<logging::AccessLog>();
}

void HttpTelemetry::on_response(const http::CompletedExchange& exchange) {
  metrics_.observe(exchange.method, exchange.route, exchange.status, exchange.duration);
  if (access_log_) {
    access_log_->record(logging::AccessEntry{
        exchange.method, exchange.route, exchange.status, exchange.duration, exchange.body_bytes,
        exchange.request_id, exchange.user, exchange.remote_address});
  }
}

namespace {

// The context of the job a worker thread is running: set by attempt_started, dropped by
// attempt_finished on the same thread.
thread_local std::optional<logging::ScopedLogContext> job_log_context;

std::string pair_label(const TranslationJob& job) {
  return job.source_language + "-" + job.target_language;
}

}  // namespace

JobTelemetry::JobTelemetry(metrics::MetricsRegistry& registry, Store& store,
                           const std::vector<LoadedEngine>& engines)
    : metrics_(registry) {
  metrics_.watch_queue([&store] { return store.job_summary(); });
  for (const auto& engine : engines) {
    metrics_.engine_loaded(engine.name, engine.load_time, engine.model_bytes);
    if (engine.tokens) metrics_.watch_tokens(engine.name, engine.tokens);
  }
}

void JobTelemetry::attempt_started(const TranslationJob& job) {
  job_log_context.reset();
  logging::LogFields fields{{"job_id", std::to_string(job.id)}};
  if (!job.request_id.empty()) fields.emplace_back("request_id", job.request_id);
  job_log_context.emplace(std::move(fields));
  spdlog::debug("job {} started ({} -> {}, attempt {})", job.id, job.source_language,
                job.target_language, job.attempts);
}

void JobTelemetry::attempt_finished(const TranslationJob& job, const queue::AttemptReport& report) {
  metrics_.attempt(report.engine.empty() ? std::string_view("none") : report.engine,
                   pair_label(job), report.outcome, report.duration, report.source_characters);
  spdlog::info("job {} {} ({} -> {}, engine {}, {:.3f} s)", job.id, report.outcome,
               job.source_language, job.target_language,
               report.engine.empty() ? "none" : report.engine,
               std::chrono::duration<double>(report.duration).count());
  job_log_context.reset();
}

std::unique_ptr<http::Server> start_worker_metrics_server(const Config& config,
                                                          metrics::MetricsRegistry& registry,
                                                          ReadinessChecks readiness) {
  http::ServerOptions options;
  options.host = config.metrics_host;
  options.port = static_cast<std::uint16_t>(config.metrics_port);
  options.threads = 1;
  options.max_connections = 64;
  auto handler = [&registry, readiness = std::move(readiness)](const http::Request& request) {
    const std::string_view path =
        std::string_view(request.target).substr(0, request.target.find('?'));
    if (request.method != "GET" && request.method != "HEAD") {
      http::Response refused{405, "{\"detail\":\"Method not allowed.\"}", "application/json", {}};
      refused.headers.emplace_back("Allow", "GET, HEAD");
      return refused;
    }
    if (path == "/metrics") {
      return http::Response{200, registry.render(), metrics::MetricsRegistry::kContentType, {}};
    }
    if (path == "/healthz")
      return http::Response{200, "{\"status\":\"ok\"}", "application/json", {}};
    if (path == "/readyz") return api::readiness_response(readiness());
    return http::Response{404, "{\"detail\":\"Not found.\"}", "application/json", {}};
  };
  auto server = std::make_unique<http::Server>(options, std::move(handler));
  server->start();
  spdlog::info("worker metrics on http://{}:{}/metrics", config.metrics_host, server->port());
  return server;
}

}  // namespace transnotes::app
