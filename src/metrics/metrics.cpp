#include "metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <iterator>
#include <utility>

#include "metrics/process_metrics.h"

namespace transnotes::metrics {

namespace {

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type,
                                std::vector<Sample> samples) {
  prometheus::MetricFamily out;
  out.name = std::move(name);
  out.help = std::move(help);
  out.type = type;
  out.metric.reserve(samples.size());
  for (auto& sample : samples) {
    prometheus::ClientMetric metric;
    for (auto& [label, value] : sample.labels) metric.label.push_back({label, value});
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = sample.value;
    } else {
      metric.gauge.value = sample.value;
    }
    out.metric.push_back(std::move(metric));
  }
  return out;
}

}  // namespace

prometheus::MetricFamily counter_family(std::string name, std::string help,
                                        std::vector<Sample> samples) {
  return family(std::move(name), std::move(help), prometheus::MetricType::Counter,
                std::move(samples));
}

prometheus::MetricFamily gauge_family(std::string name, std::string help,
                                      std::vector<Sample> samples) {
  return family(std::move(name), std::move(help), prometheus::MetricType::Gauge,
                std::move(samples));
}

MetricsRegistry::MetricsRegistry() : registry_(std::make_shared<prometheus::Registry>()) {
  add(make_process_collectable());
}

MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::add(std::shared_ptr<const prometheus::Collectable> collectable) {
  std::lock_guard lock(mutex_);
  collectables_.push_back(std::move(collectable));
}

void MetricsRegistry::add(Collector collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

void MetricsRegistry::add_gauge(std::string name, std::string help, std::function<double()> read) {
  add([name = std::move(name), help = std::move(help), read = std::move(read)] {
    return std::vector{gauge_family(name, help, {{{}, read()}})};
  });
}

void MetricsRegistry::add_counter(std::string name, std::string help,
                                  std::function<double()> read) {
  add([name = std::move(name), help = std::move(help), read = std::move(read)] {
    return std::vector{counter_family(name, help, {{{}, read()}})};
  });
}

std::vector<prometheus::MetricFamily> MetricsRegistry::collect() const {
  auto families = registry_->Collect();
  std::lock_guard lock(mutex_);
  for (const auto& collectable : collectables_) {
    auto more = collectable->Collect();
    std::move(more.begin(), more.end(), std::back_inserter(families));
  }
  for (const auto& collector : collectors_) {
    try {
      auto more = collector();
      std::move(more.begin(), more.end(), std::back_inserter(families));
    } catch (const std::exception&) {
      // Its families are left out of this scrape; absent() alerts notice, the rest still shows.
    }
  }
  return families;
}

std::string MetricsRegistry::render() const {
  return prometheus::TextSerializer().Serialize(collect());
}

void add_pool_metrics(MetricsRegistry& registry, std::function<PoolStats()> read) {
  registry.add([read = std::move(read)] {
    const PoolStats pool = read();
    return std::vector{
        gauge_family("transnotes_db_pool_connections",
                     "Database connections of this process's pool, open and leased to a caller.",
                     {{{{"state", "open"}}, static_cast<double>(pool.size)},
                      {{{"state", "in_use"}}, static_cast<double>(pool.in_use)}}),
        gauge_family("transnotes_db_pool_waiting",
                     "Callers waiting for a database connection from the pool.",
                     {{{}, static_cast<double>(pool.waiting)}}),
        gauge_family("transnotes_db_pool_capacity", "Most database connections the pool opens.",
                     {{{}, static_cast<double>(pool.capacity)}}),
    };
  });
}

}  // namespace transnotes::metrics
