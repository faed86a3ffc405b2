#include "cache/cache.h"

#include <prometheus/text_serializer.h>

namespace transnotes::cache {

OpenedCache open_cache(const CacheSettings& settings) {
  OpenedCache opened;
  if (settings.redis) {
    auto redis = std::make_unique<RedisNoteCache>(settings.redis, settings.redis_options);
    opened.families = [stats_of = redis.get()] { return metric_families(stats_of->stats()); };
    opened.metrics = [stats_of = redis.get()] { return render_prometheus(stats_of->stats()); };
    opened.cache = std::move(redis);
  } else {
    auto memory = std::make_unique<MemoryNoteCache>(settings.memory);
    opened.families = [stats_of = memory.get()] { return metric_families(stats_of->stats()); };
    opened.metrics = [stats_of = memory.get()] {
      return prometheus::TextSerializer().Serialize(metric_families(stats_of->stats()));
    };
    opened.cache = std::move(memory);
  }
  return opened;
}

std::unique_ptr<RateLimiter> open_rate_limiter(std::shared_ptr<redis::RedisClient> redis,
                                               const RateLimiterSettings& settings) {
  if (redis) return std::make_unique<RedisRateLimiter>(std::move(redis), settings.redis_options);
  return std::make_unique<MemoryRateLimiter>(settings.memory);
}

std::vector<prometheus::MetricFamily> rate_limiter_families(const RateLimiter& limiter) {
  if (const auto* shared = dynamic_cast<const RedisRateLimiter*>(&limiter)) {
    return metric_families(shared->stats());
  }
  return {};
}

std::string rate_limiter_metrics(const RateLimiter& limiter) {
  if (const auto* shared = dynamic_cast<const RedisRateLimiter*>(&limiter)) {
    return render_prometheus(shared->stats());
  }
  return std::string();
}

}  // namespace transnotes::cache
