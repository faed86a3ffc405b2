// open_cache(): the NoteCache the settings ask for — Redis when a client is given (shared by
// every API and worker process), else the in-process LRU — like open_store() for the database.
// open_rate_limiter(): likewise for the RateLimiter. The app needs nothing backend-specific
// beyond what these return.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cache/memory_cache.h"
#include "cache/memory_rate_limiter.h"
#include "cache/redis_cache.h"
#include "cache/redis_rate_limiter.h"
#include "domain/ports.h"
#include "metrics/metrics.h"

namespace transnotes::cache {

struct CacheSettings {
  std::shared_ptr<redis::RedisClient> redis;  // null: the in-process cache
  MemoryNoteCacheOptions memory;
  RedisNoteCacheOptions redis_options;
};

struct OpenedCache {
  std::unique_ptr<NoteCache> cache;
  // The cache's own figures, for MetricsRegistry::add; valid while `cache` lives.
  metrics::Collector families;
  // The same in Prometheus text format.
  std::function<std::string()> metrics;
};

OpenedCache open_cache(const CacheSettings& settings);

struct RateLimiterSettings {
  MemoryRateLimiterOptions memory;
  RedisRateLimiterOptions redis_options;
};

// RedisRateLimiter over `redis` (buckets shared by every process using that Redis), or a
// MemoryRateLimiter (this process only) when `redis` is null.
std::unique_ptr<RateLimiter> open_rate_limiter(std::shared_ptr<redis::RedisClient> redis,
                                               const RateLimiterSettings& settings = {});

// The limiter's own figures: the Redis limiter's decisions and failures, none for the
// in-process one; rate_limiter_metrics is the same in Prometheus text format ("" for none).
std::vector<prometheus::MetricFamily> rate_limiter_families(const RateLimiter& limiter);
std::string rate_limiter_metrics(const RateLimiter& limiter);

}  // namespace transnotes::cache
