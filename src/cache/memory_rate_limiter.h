// In-process RateLimiter: token buckets (token_bucket.h) in this process's memory, for a single
// API process (no Redis). Limits are per process: with several processes use RedisRateLimiter.
//
// Bounded memory: at most `max_keys` buckets, split evenly over `shards` shards, each with its
// own mutex, LRU list and hash map. When a new key finds its shard full, the shard first drops
// every bucket that has refilled to full (forgetting one changes no answer), and if that frees
// less than an eighth of the shard, the least recently used buckets until an eighth is free
// (those clients get a full bucket back early: the price of the bound). Freeing an eighth at a
// time keeps the scan for full buckets to one per eighth of a shard's inserts.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "domain/ports.h"

namespace transnotes::cache {

struct MemoryRateLimiterOptions {
  std::size_t max_keys = 100000;  // buckets across all shards (at least 1 per shard)
  std::size_t shards = 16;
  // The clock buckets refill on: tests pass a clock they move, to check exact answers.
  std::chrono::steady_clock::time_point (*now)() = &std::chrono::steady_clock::now;
};

class MemoryRateLimiter final : public RateLimiter {
 public:
  explicit MemoryRateLimiter(MemoryRateLimiterOptions options = {});

  std::optional<std::chrono::seconds> acquire(std::string_view key, const RateLimit& limit,
                                              int cost = 1) override;

  // Buckets held (for tests and metrics).
  std::size_t size() const;

 private:
  struct Bucket {
    std::string key;
    double full_at_micros = 0;  // token_bucket.h; <= now: full, so it may be dropped
  };
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept {
      return std::hash<std::string_view>{}(key);
    }
  };
  struct Shard {
    mutable std::mutex mutex;
    std::list<Bucket> lru;  // most recently used first
    std::unordered_map<std::string, std::list<Bucket>::iterator, KeyHash, std::equal_to<>> index;
  };

  Shard& shard_for(std::string_view key);
  double now_micros() const;
  // Frees room for one more bucket in a full shard. The shard's mutex must be held.
  void make_room_locked(Shard& shard, double now_micros);

  std::size_t shard_capacity_;
  std::chrono::steady_clock::time_point (*now_)();
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace transnotes::cache
