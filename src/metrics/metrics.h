// Prometheus metrics for a transnotes process: one MetricsRegistry per process, rendered by
// /metrics in the Prometheus text format through prometheus-cpp's TextSerializer.
//
// Figures that already live elsewhere (a connection pool, a cache, the job table) are not copied
// into the registry by a background poller: they are read by collectors the registry calls at
// scrape time, so a scrape shows the state of that moment and an idle process does no work.
// Every registry carries the process metrics read from /proc (process_cpu_seconds_total, ...)
// and transnotes_build_info{version, commit}.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "domain/model.h"

namespace transnotes::metrics {

using Labels = std::map<std::string, std::string>;

struct Sample {
  Labels labels;
  double value = 0;
};

// Families assembled at scrape time, e.g. by a cache from its own counters.
prometheus::MetricFamily counter_family(std::string name, std::string help,
                                        std::vector<Sample> samples);
prometheus::MetricFamily gauge_family(std::string name, std::string help,
                                      std::vector<Sample> samples);

// Called at every scrape. May throw: the scrape then goes on without this collector's families
// (a database that does not answer must not take /metrics down with it).
using Collector = std::function<std::vector<prometheus::MetricFamily>()>;

// What the version and commit of transnotes_build_info say (the commit is taken at configure
// time; "unknown" when the source is not a git checkout).
const char* build_version();
const char* build_commit();

class MetricsRegistry {
 public:
  // The content type of render()'s text.
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // For families kept by prometheus-cpp itself (prometheus::BuildCounter()...Register(...)).
  prometheus::Registry& prometheus() { return *registry_; }

  // Kept alive by the registry and collected at every scrape.
  void add(std::shared_ptr<const prometheus::Collectable> collectable);
  // Whatever `collector` reads must stay valid for as long as render() may be called.
  void add(Collector collector);
  // One unlabelled figure read at every scrape.
  void add_gauge(std::string name, std::string help, std::function<double()> read);
  void add_counter(std::string name, std::string help, std::function<double()> read);

  // All families in the Prometheus text format (version 0.0.4).
  std::string render() const;
  std::vector<prometheus::MetricFamily> collect() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mutex_;  // guards the two lists; taken by registration and scrapes only
  std::vector<std::shared_ptr<const prometheus::Collectable>> collectables_;
  std::vector<Collector> collectors_;
};

// transnotes_db_pool_connections{state="open|in_use"}, transnotes_db_pool_waiting and
// transnotes_db_pool_capacity from `read` (e.g. Store::pool_stats) at every scrape.
void add_pool_metrics(MetricsRegistry& registry, std::function<PoolStats()> read);

}  // namespace transnotes::metrics
