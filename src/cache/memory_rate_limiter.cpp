#include "cache/memory_rate_limiter.h"

#include <algorithm>
#include <iterator>

#include "cache/token_bucket.h"

namespace transnotes::cache {

MemoryRateLimiter::MemoryRateLimiter(MemoryRateLimiterOptions options)
    : now_(options.now ? options.now : &std::chrono::steady_clock::now) {
  const std::size_t shards = std::max<std::size_t>(1, options.shards);
  shard_capacity_ = std::max<std::size_t>(1, (options.max_keys + shards - 1) / shards);
  shards_.reserve(shards);
  for (std::size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

MemoryRateLimiter::Shard& MemoryRateLimiter::shard_for(std::string_view key) {
  return *shards_[KeyHash{}(key) % shards_.size()];
}

double MemoryRateLimiter::now_micros() const {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::microseconds>(now_().time_since_epoch()).count());
}

std::optional<std::chrono::seconds> MemoryRateLimiter::acquire(std::string_view key,
                                                               const RateLimit& limit, int cost) {
  if (!token_bucket::enforceable(limit)) return std::nullopt;
  cost = std::max(cost, 0);
  if (cost > limit.burst) return token_bucket::never_enough(limit);
  const double now = now_micros();
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  auto found = shard.index.find(key);
  const double full_at = found != shard.index.end() ? found->second->full_at_micros : now;
  const token_bucket::Decision decision = token_bucket::decide(full_at, now, limit, cost);
  if (found != shard.index.end()) {
    Bucket& bucket = *found->second;
    bucket.full_at_micros = decision.full_at_micros;
    shard.lru.splice(shard.lru.begin(), shard.lru, found->second);
  } else if (decision.full_at_micros > now) {  // a new bucket that is no longer full
    if (shard.lru.size() >= shard_capacity_) make_room_locked(shard, now);
    shard.lru.push_front(Bucket{std::string(key), decision.full_at_micros});
    shard.index.emplace(shard.lru.front().key, shard.lru.begin());
  }
  return decision.retry_after;
}

void MemoryRateLimiter::make_room_locked(Shard& shard, double now_micros) {
  for (auto bucket = shard.lru.begin(); bucket != shard.lru.end();) {
    if (bucket->full_at_micros <= now_micros) {
      shard.index.erase(bucket->key);
      bucket = shard.lru.erase(bucket);
    } else {
      ++bucket;
    }
  }
  const std::size_t keep = shard_capacity_ - std::max<std::size_t>(1, shard_capacity_ / 8);
  while (shard.lru.size() > keep) {
    shard.index.erase(shard.lru.back().key);
    shard.lru.pop_back();
  }
}

std::size_t MemoryRateLimiter::size() const {
  std::size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    total += shard->lru.size();
  }
  return total;
}

}  // namespace transnotes::cache
