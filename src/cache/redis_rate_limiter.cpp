#include "cache/redis_rate_limiter.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <utility>

#include "cache/token_bucket.h"
#include "domain/errors.h"

namespace transnotes::cache {
namespace {

// token_bucket::decide() in Lua, on Redis's clock.
// KEYS[1] bucket; ARGV[1] period (us); ARGV[2] burst; ARGV[3] cost (0..burst); ARGV[4] slack
// (us). Returns 0 when allowed (and the cost taken), else the wait in whole microseconds
// (rounded up).
const redis::LuaScript kAcquireScript(R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local interval = period / burst
local stored = redis.call('GET', KEYS[1])
local full_at = now
if stored then full_at = tonumber(stored) or now end
local start = math.max(full_at, now)
local needed_full_at = start + math.max(cost, 1) * interval
local wait = needed_full_at - period - now
if wait > tonumber(ARGV[4]) then return math.ceil(wait) end
if cost > 0 then
  local ttl_ms = math.max(1, math.ceil((needed_full_at - now) / 1000))
  redis.call('SET', KEYS[1], string.format('%.17g', needed_full_at), 'PX', ttl_ms)
end
return 0
)lua");

}  // namespace

RedisRateLimiter::RedisRateLimiter(std::shared_ptr<redis::RedisClient> client,
                                   RedisRateLimiterOptions options)
    : client_(std::move(client)), options_(std::move(options)) {}

std::string RedisRateLimiter::key_for(std::string_view key) const {
  std::string redis_key = options_.key_prefix;
  redis_key += key;
  return redis_key;
}

void RedisRateLimiter::record_error(std::string_view what, std::string_view detail) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  log_.warn(what, detail);
}

std::optional<std::chrono::seconds> RedisRateLimiter::counted(
    std::optional<std::chrono::seconds> answer) {
  (answer ? refused_ : allowed_).fetch_add(1, std::memory_order_relaxed);
  return answer;
}

std::optional<std::chrono::seconds> RedisRateLimiter::acquire(std::string_view key,
                                                              const RateLimit& limit, int cost) {
  if (!token_bucket::enforceable(limit)) return counted(std::nullopt);
  cost = std::max(cost, 0);
  if (cost > limit.burst) return counted(token_bucket::never_enough(limit));
  const std::string redis_key = key_for(key);
  const std::string period = std::to_string(limit.period.count() * 1'000'000LL);
  const std::string burst = std::to_string(limit.burst);
  const std::string cost_text = std::to_string(cost);
  const std::string slack = std::to_string(static_cast<long long>(token_bucket::kSlackMicros));
  try {
    const redis::Reply reply =
        client_->eval(kAcquireScript, {redis_key}, {period, burst, cost_text, slack});
    if (reply.type == redis::Reply::Type::Integer) {
      if (reply.integer <= 0) return counted(std::nullopt);
      return counted(token_bucket::retry_after(static_cast<double>(reply.integer)));
    }
    record_error("rate limiter: unexpected Redis answer, request let through",
                 reply.is_error() ? reply.str : "not an integer");
  } catch (const Unavailable& error) {
    record_error("rate limiter: Redis unavailable, request let through", error.what());
  }
  allowed_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

RedisRateLimiterStats RedisRateLimiter::stats() const {
  return {allowed_.load(std::memory_order_relaxed), refused_.load(std::memory_order_relaxed),
          errors_.load(std::memory_order_relaxed)};
}

std::vector<prometheus::MetricFamily> metric_families(const RedisRateLimiterStats& stats) {
  return {
      metrics::counter_family("transnotes_rate_limiter_decisions_total",
                              "Rate limiter decisions taken in Redis, by decision.",
                              {{{{"decision", "allowed"}}, static_cast<double>(stats.allowed)},
                               {{{"decision", "refused"}}, static_cast<double>(stats.refused)}}),
      metrics::counter_family("transnotes_rate_limiter_errors_total",
                              "Rate limiter calls to Redis that failed; each of those requests "
                              "was let through.",
                              {{{}, static_cast<double>(stats.errors)}}),
  };
}

std::string render_prometheus(const RedisRateLimiterStats& stats) {
  return prometheus::TextSerializer().Serialize(metric_families(stats));
}

}  // namespace transnotes::cache
