// open_cache(): the settings pick the backend, and the metrics come with the cache they describe.
#include "cache/cache.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "redis/redis_test_support.h"

namespace transnotes::cache {
namespace {

// A note of the open-mode owner.
NoteKey note(std::int64_t id) { return NoteKey{kOpenModeOwner, id}; }

// The in-process cache reports its lookups under the Redis cache's name, so that a dashboard's
// hit ratio works for the embedded default too.
TEST(OpenCache, WithoutRedisItIsTheInProcessCacheAndReportsItsLookups) {
  CacheSettings settings;
  settings.memory.capacity = 64;
  auto opened = open_cache(settings);
  ASSERT_NE(opened.cache, nullptr);
  opened.cache->put(note(7), 1, "seven");
  EXPECT_EQ(opened.cache->get(note(7)), "seven");
  EXPECT_EQ(opened.cache->get(note(8)), std::nullopt);
  EXPECT_EQ(opened.cache->get(note(7)), "seven");
  ASSERT_TRUE(opened.metrics);
  const std::string text = opened.metrics();
  for (const char* line :
       {"# HELP transnotes_cache_lookups_total ", "# TYPE transnotes_cache_lookups_total counter\n",
        "transnotes_cache_lookups_total{result=\"hit\"} 2\n",
        "transnotes_cache_lookups_total{result=\"miss\"} 1\n",
        "# TYPE transnotes_cache_entries gauge\n", "transnotes_cache_entries 1\n",
        "# TYPE transnotes_cache_bytes gauge\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << text;
  }
  ASSERT_TRUE(opened.families);
  EXPECT_EQ(opened.families().size(), 3u);
}

// Every family says what it counts (# HELP) and what it is (# TYPE), as promtool requires; the
// names and values are those /metrics always had.
TEST(CacheMetrics, RedisCacheAndLimiterFiguresHaveHelpAndType) {
  const std::string cache_text = render_prometheus(RedisNoteCacheStats{5, 2, 1, 3, 6, 4});
  for (const auto& [name, type] : std::vector<std::pair<std::string, std::string>>{
           {"transnotes_cache_lookups_total", "counter"},
           {"transnotes_cache_errors_total", "counter"},
           {"transnotes_cache_pending_invalidations", "gauge"},
           {"transnotes_cache_async_reads_total", "counter"}}) {
    EXPECT_NE(cache_text.find("# HELP " + name + " "), std::string::npos) << name << cache_text;
    EXPECT_NE(cache_text.find("# TYPE " + name + " " + type + "\n"), std::string::npos) << name;
  }
  for (const char* line :
       {"transnotes_cache_lookups_total{result=\"hit\"} 5\n",
        "transnotes_cache_lookups_total{result=\"miss\"} 2\n", "transnotes_cache_errors_total 1\n",
        "transnotes_cache_pending_invalidations 3\n",
        "transnotes_cache_async_reads_total{outcome=\"sent\"} 6\n",
        "transnotes_cache_async_reads_total{outcome=\"declined\"} 4\n"}) {
    EXPECT_NE(cache_text.find(line), std::string::npos) << line << cache_text;
  }

  const std::string limiter_text = render_prometheus(RedisRateLimiterStats{10, 2, 1});
  for (const char* name :
       {"transnotes_rate_limiter_decisions_total", "transnotes_rate_limiter_errors_total"}) {
    EXPECT_NE(limiter_text.find(std::string("# HELP ") + name + " "), std::string::npos)
        << limiter_text;
    EXPECT_NE(limiter_text.find(std::string("# TYPE ") + name + " counter\n"), std::string::npos);
  }
  for (const char* line : {"transnotes_rate_limiter_decisions_total{decision=\"allowed\"} 10\n",
                           "transnotes_rate_limiter_decisions_total{decision=\"refused\"} 2\n",
                           "transnotes_rate_limiter_errors_total 1\n"}) {
    EXPECT_NE(limiter_text.find(line), std::string::npos) << line << limiter_text;
  }
}

TEST(OpenCache, WithRedisItIsSharedAndReportsItsLookups) {
  auto url = redis::testing::shared_test_redis_url();
  if (!url) GTEST_FAIL() << "TRANSNOTES_TEST_REDIS_URL is not set (run scripts/services.sh)";
  CacheSettings settings;
  settings.redis = std::make_shared<redis::RedisClient>(redis::parse_redis_url(*url));
  settings.redis_options.key_prefix = redis::testing::unique_test_prefix("open-cache");
  auto opened = open_cache(settings);
  opened.cache->put(note(7), 1, "seven");
  // A second cache over the same Redis sees the entry: it is not process-local.
  auto other = open_cache(settings);
  EXPECT_EQ(other.cache->get(note(7)), "seven");
  EXPECT_NE(other.metrics().find("transnotes_cache_lookups_total{result=\"hit\"} 1"),
            std::string::npos)
      << other.metrics();
  const auto families = other.families();
  ASSERT_FALSE(families.empty());
  EXPECT_EQ(families.front().name, "transnotes_cache_lookups_total");
  EXPECT_EQ(families.front().metric.at(0).counter.value, 1.0);
}

}  // namespace
}  // namespace transnotes::cache
