// The token bucket both rate limiters implement (memory_rate_limiter, and redis_rate_limiter's
// Lua script, which mirrors this code line by line).
//
// A bucket holds at most `burst` tokens and gains one every interval = period / burst. Instead
// of a token count and the time of the last refill it keeps one number, the time at which it
// will be full again (GCRA's "theoretical arrival time"):
//   tokens(now) = burst - max(0, full_at - now) / interval.
// Taking n tokens moves full_at to max(full_at, now) + n * interval, allowed while that lies at
// most one period ahead of now. A bucket whose full_at has passed is the same as no bucket, so
// it can be forgotten (memory) or expire (Redis: TTL = full_at - now) without changing any
// answer.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "domain/ports.h"

namespace transnotes::cache::token_bucket {

// Rounding of floating-point times (microseconds since an epoch are ~1e15, whose doubles are
// 0.25 us apart) must never refuse the last token of a burst: a microsecond of grace.
inline constexpr double kSlackMicros = 1.0;

// A limit no bucket can enforce (no tokens, no period) limits nothing: a limiter must never
// fail a request, and refusing everything would.
inline bool enforceable(const RateLimit& limit) {
  return limit.burst >= 1 && limit.period.count() > 0;
}

inline double period_micros(const RateLimit& limit) {
  return static_cast<double>(limit.period.count()) * 1e6;
}

// Whole seconds until a refused request could succeed: ceil(wait), at least 1 s.
inline std::chrono::seconds retry_after(double wait_micros) {
  const double seconds = std::ceil((wait_micros - kSlackMicros) / 1e6);
  return std::chrono::seconds(static_cast<std::chrono::seconds::rep>(std::max(1.0, seconds)));
}

// A cost above the burst can never be met (the bucket never holds that many): it is refused
// with the time a whole bucket takes to refill.
inline std::chrono::seconds never_enough(const RateLimit& limit) {
  return std::max(std::chrono::seconds(1), limit.period);
}

struct Decision {
  // nullopt: allowed. Else how long until it would be.
  std::optional<std::chrono::seconds> retry_after;
  // The bucket's new full_at; only changed when tokens were taken (allowed with cost > 0).
  double full_at_micros = 0;
};

// `full_at_micros` of a bucket never used: anything <= now. Requires enforceable(limit) and
// 0 <= cost <= burst.
inline Decision decide(double full_at_micros, double now_micros, const RateLimit& limit, int cost) {
  const double period = period_micros(limit);
  const double interval = period / static_cast<double>(limit.burst);
  const double start = std::max(full_at_micros, now_micros);
  // cost 0 asks whether one token is there, without taking it.
  const double needed_full_at = start + static_cast<double>(std::max(cost, 1)) * interval;
  const double wait = needed_full_at - period - now_micros;
  if (wait > kSlackMicros) return Decision{retry_after(wait), full_at_micros};
  return Decision{std::nullopt, cost > 0 ? needed_full_at : full_at_micros};
}

}  // namespace transnotes::cache::token_bucket
