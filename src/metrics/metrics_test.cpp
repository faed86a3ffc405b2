// MetricsRegistry: families from prometheus-cpp, collectables and scrape-time collectors all end
// up in one text, each with # HELP and # TYPE; collectors are read at every scrape, not before.
#include "metrics/metrics.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>

#include <atomic>
#include <stdexcept>

namespace transnotes::metrics {
namespace {

bool has_family(const std::string& text, const std::string& name, const std::string& type) {
  return text.find("# HELP " + name + " ") != std::string::npos &&
         text.find("# TYPE " + name + " " + type + "\n") != std::string::npos;
}

TEST(MetricsRegistry, RendersPrometheusCppFamiliesWithHelpAndType) {
  MetricsRegistry registry;
  auto& family = prometheus::BuildCounter()
                     .Name("example_total")
                     .Help("An example.")
                     .Register(registry.prometheus());
  family.Add({{"kind", "a"}}).Increment(3);
  const std::string text = registry.render();
  EXPECT_TRUE(has_family(text, "example_total", "counter")) << text;
  EXPECT_NE(text.find("example_total{kind=\"a\"} 3\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, CallbackFiguresAreReadAtEachScrapeAndOnlyThen) {
  MetricsRegistry registry;
  std::atomic<int> reads{0};
  double value = 1;
  registry.add_gauge("example_gauge", "An example gauge.", [&] {
    ++reads;
    return value;
  });
  registry.add_counter("example_events_total", "An example counter.", [&] { return value * 10; });
  EXPECT_EQ(reads.load(), 0);
  std::string text = registry.render();
  EXPECT_EQ(reads.load(), 1);
  EXPECT_TRUE(has_family(text, "example_gauge", "gauge")) << text;
  EXPECT_TRUE(has_family(text, "example_events_total", "counter")) << text;
  EXPECT_NE(text.find("example_gauge 1\n"), std::string::npos) << text;
  value = 2;
  text = registry.render();
  EXPECT_EQ(reads.load(), 2);
  EXPECT_NE(text.find("example_gauge 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("example_events_total 20\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, ACollectorThatThrowsLeavesOnlyItsOwnFamiliesOut) {
  MetricsRegistry registry;
  registry.add(
      []() -> std::vector<prometheus::MetricFamily> { throw std::runtime_error("database down"); });
  registry.add_gauge("still_here", "Read after the failing collector.", [] { return 5.0; });
  const std::string text = registry.render();
  EXPECT_NE(text.find("still_here 5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("process_cpu_seconds_total"), std::string::npos) << text;
}

TEST(MetricsRegistry, LabelledFamiliesFromCollectors) {
  MetricsRegistry registry;
  registry.add([] {
    return std::vector{counter_family("example_lookups_total", "Lookups by result.",
                                      {{{{"result", "hit"}}, 4}, {{{"result", "miss"}}, 1}})};
  });
  const std::string text = registry.render();
  EXPECT_TRUE(has_family(text, "example_lookups_total", "counter")) << text;
  EXPECT_NE(text.find("example_lookups_total{result=\"hit\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("example_lookups_total{result=\"miss\"} 1\n"), std::string::npos) << text;
}

TEST(PoolMetrics, ReadThePoolAtScrapeTime) {
  MetricsRegistry registry;
  PoolStats pool{3, 2, 1, 8};
  add_pool_metrics(registry, [&] { return pool; });
  std::string text = registry.render();
  EXPECT_TRUE(has_family(text, "transnotes_db_pool_connections", "gauge")) << text;
  EXPECT_TRUE(has_family(text, "transnotes_db_pool_waiting", "gauge")) << text;
  EXPECT_TRUE(has_family(text, "transnotes_db_pool_capacity", "gauge")) << text;
  EXPECT_NE(text.find("transnotes_db_pool_connections{state=\"open\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("transnotes_db_pool_connections{state=\"in_use\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("transnotes_db_pool_waiting 1\n"), std::string::npos);
  EXPECT_NE(text.find("transnotes_db_pool_capacity 8\n"), std::string::npos);
  pool.in_use = 0;
  text = registry.render();
  EXPECT_NE(text.find("transnotes_db_pool_connections{state=\"in_use\"} 0\n"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace transnotes::metrics
