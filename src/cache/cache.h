// open_cache(): the NoteCache the settings ask for — Redis when a client is given (shared by
// every API and worker process), else the in-process LRU — like open_store() for the database.
// The app needs nothing backend-specific beyond what this returns.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cache/memory_cache.h"
#include "cache/redis_cache.h"
#include "domain/ports.h"

namespace transnotes::cache {

struct CacheSettings {
  std::shared_ptr<redis::RedisClient> redis;  // null: the in-process cache
  MemoryNoteCacheOptions memory;
  RedisNoteCacheOptions redis_options;
};

struct OpenedCache {
  std::unique_ptr<NoteCache> cache;
  // The cache's own figures in Prometheus text format ("" when it has none); valid while
  // `cache` lives.
  std::function<std::string()> metrics;
};

OpenedCache open_cache(const CacheSettings& settings);

}  // namespace transnotes::cache
