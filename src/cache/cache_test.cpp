// open_cache(): the settings pick the backend, and the metrics come with the cache they describe.
#include "cache/cache.h"

#include <gtest/gtest.h>

#include "redis/redis_test_support.h"

namespace transnotes::cache {
namespace {

// A note of the open-mode owner.
NoteKey note(std::int64_t id) { return NoteKey{kOpenModeOwner, id}; }

TEST(OpenCache, WithoutRedisItIsTheInProcessCacheWithNoMetricsOfItsOwn) {
  CacheSettings settings;
  settings.memory.capacity = 64;
  auto opened = open_cache(settings);
  ASSERT_NE(opened.cache, nullptr);
  opened.cache->put(note(7), 1, "seven");
  EXPECT_EQ(opened.cache->get(note(7)), "seven");
  ASSERT_TRUE(opened.metrics);
  EXPECT_EQ(opened.metrics(), "");
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
}

}  // namespace
}  // namespace transnotes::cache
