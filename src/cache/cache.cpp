#include "cache/cache.h"

namespace transnotes::cache {

OpenedCache open_cache(const CacheSettings& settings) {
  OpenedCache opened;
  if (settings.redis) {
    auto redis = std::make_unique<RedisNoteCache>(settings.redis, settings.redis_options);
    opened.metrics = [stats_of = redis.get()] { return render_prometheus(stats_of->stats()); };
    opened.cache = std::move(redis);
  } else {
    opened.cache = std::make_unique<MemoryNoteCache>(settings.memory);
    opened.metrics = [] { return std::string(); };
  }
  return opened;
}

}  // namespace transnotes::cache
