// RateLimiter over Redis (production): the token buckets of token_bucket.h, shared by every API
// process that uses the same Redis, so a client cannot multiply its allowance by spreading its
// requests over processes.
//
// One string key per bucket, `<prefix><key>` (default prefix "transnotes:ratelimit:"), holding
// the time the bucket will be full again, in microseconds of Redis's clock. One Lua script (run
// with EVALSHA, EVAL when Redis answers NOSCRIPT) reads, decides and writes, so concurrent
// acquires from any number of processes are atomic. The key expires when the bucket is full
// again: an idle bucket disappears exactly when forgetting it changes no answer.
//
// Time comes from Redis (TIME inside the script), not from the callers: the processes sharing a
// bucket may run on hosts whose clocks disagree, and a host a few seconds ahead would refill
// every bucket early for everyone (one behind would refuse wrongly). Redis's one clock makes the
// buckets consistent whatever the hosts' clocks; it costs nothing extra (the script runs there
// anyway). Scripts calling TIME before writing need effect replication: the default since
// Redis 5, the only mode since 7; the script asks for it explicitly for older servers.
//
// The client resends a command once when its pooled connection turns out closed by the server
// (redis_client.h); should the first send have run after all, that request took its cost twice:
// rare, and it errs toward limiting.
//
// Failures: never throws and never refuses because of Redis. When Redis is unreachable, times
// out or answers with an error, the request is let through, the failure is counted and logged
// (at most once per 10 s). The client reconnects by itself.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "domain/ports.h"
#include "metrics/metrics.h"
#include "redis/rate_limited_log.h"
#include "redis/redis_client.h"

namespace transnotes::cache {

struct RedisRateLimiterOptions {
  std::string key_prefix = "transnotes:ratelimit:";
};

struct RedisRateLimiterStats {
  std::uint64_t allowed = 0;
  std::uint64_t refused = 0;
  std::uint64_t errors = 0;  // Redis failures; each of those requests was let through
};

// The stats as metric families (counters with their help text), for a metrics::MetricsRegistry
// collector; render_prometheus is the same in the text format.
std::vector<prometheus::MetricFamily> metric_families(const RedisRateLimiterStats& stats);
std::string render_prometheus(const RedisRateLimiterStats& stats);

class RedisRateLimiter final : public RateLimiter {
 public:
  explicit RedisRateLimiter(std::shared_ptr<redis::RedisClient> client,
                            RedisRateLimiterOptions options = {});

  std::optional<std::chrono::seconds> acquire(std::string_view key, const RateLimit& limit,
                                              int cost = 1) override;

  RedisRateLimiterStats stats() const;
  std::string key_for(std::string_view key) const;

 private:
  std::optional<std::chrono::seconds> counted(std::optional<std::chrono::seconds> answer);
  void record_error(std::string_view what, std::string_view detail);

  std::shared_ptr<redis::RedisClient> client_;
  RedisRateLimiterOptions options_;
  std::atomic<std::uint64_t> allowed_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> errors_{0};
  redis::RateLimitedLog log_;
};

}  // namespace transnotes::cache
