// MemoryRateLimiter's exact answers, on a clock the tests move by hand.
#include "cache/memory_rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace transnotes::cache {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::chrono::steady_clock::time_point fake_now_value{std::chrono::hours(1000)};
std::chrono::steady_clock::time_point fake_now() { return fake_now_value; }
void advance(std::chrono::steady_clock::duration by) { fake_now_value += by; }

MemoryRateLimiter limiter_on_fake_clock(std::size_t max_keys = 1000, std::size_t shards = 16) {
  return MemoryRateLimiter({.max_keys = max_keys, .shards = shards, .now = &fake_now});
}

const std::optional<seconds> kAllowed = std::nullopt;

TEST(MemoryRateLimiter, BurstThenOneTokenPerIntervalWithExactRetryAfter) {
  auto limiter = limiter_on_fake_clock();
  const RateLimit three_per_3s{3, seconds(3)};  // one token a second
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.acquire("k", three_per_3s), kAllowed) << i;
  EXPECT_EQ(limiter.acquire("k", three_per_3s), seconds(1));
  advance(milliseconds(500));
  EXPECT_EQ(limiter.acquire("k", three_per_3s), seconds(1));  // 0.5 s left, rounded up
  advance(milliseconds(499));
  EXPECT_EQ(limiter.acquire("k", three_per_3s), seconds(1));  // 1 ms left
  advance(milliseconds(1));
  EXPECT_EQ(limiter.acquire("k", three_per_3s), kAllowed);
  EXPECT_EQ(limiter.acquire("k", three_per_3s), seconds(1));
}

TEST(MemoryRateLimiter, RetryAfterIsTheTimeUntilCostTokensRoundedUp) {
  auto limiter = limiter_on_fake_clock();
  const RateLimit ten_per_20s{10, seconds(20)};  // one token every 2 s
  EXPECT_EQ(limiter.acquire("k", ten_per_20s, 10), kAllowed);
  EXPECT_EQ(limiter.acquire("k", ten_per_20s, 4), seconds(8));
  advance(milliseconds(2500));                                  // 1.25 tokens back
  EXPECT_EQ(limiter.acquire("k", ten_per_20s, 4), seconds(6));  // 5.5 s, rounded up
  EXPECT_EQ(limiter.acquire("k", ten_per_20s, 1), kAllowed);    // a refusal took nothing
  EXPECT_EQ(limiter.acquire("k", ten_per_20s, 1), seconds(2));  // 0.25 tokens: 1.5 s
}

TEST(MemoryRateLimiter, RetryAfterIsAtLeastOneSecond) {
  auto limiter = limiter_on_fake_clock();
  const RateLimit thousand_a_second{1000, seconds(1)};
  EXPECT_EQ(limiter.acquire("k", thousand_a_second, 1000), kAllowed);
  EXPECT_EQ(limiter.acquire("k", thousand_a_second), seconds(1));  // really 1 ms
  advance(milliseconds(1));
  EXPECT_EQ(limiter.acquire("k", thousand_a_second), kAllowed);
}

TEST(MemoryRateLimiter, RefillStopsAtTheBurst) {
  auto limiter = limiter_on_fake_clock();
  const RateLimit five_a_minute{5, seconds(60)};
  EXPECT_EQ(limiter.acquire("k", five_a_minute, 5), kAllowed);
  advance(std::chrono::hours(24));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.acquire("k", five_a_minute), kAllowed) << i;
  EXPECT_EQ(limiter.acquire("k", five_a_minute), seconds(12));
}

TEST(MemoryRateLimiter, CostZeroOnlyChecksForOneTokenAndTakesNothing) {
  auto limiter = limiter_on_fake_clock();
  const RateLimit two_per_10s{2, seconds(10)};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(limiter.acquire("k", two_per_10s, 0), kAllowed) << i;
  EXPECT_EQ(limiter.size(), 0u);  // a check of an unused key keeps no bucket
  EXPECT_EQ(limiter.acquire("k", two_per_10s), kAllowed);
  EXPECT_EQ(limiter.acquire("k", two_per_10s, 0), kAllowed);  // one token left
  EXPECT_EQ(limiter.acquire("k", two_per_10s), kAllowed);
  EXPECT_EQ(limiter.acquire("k", two_per_10s, 0), seconds(5));
  advance(seconds(4));
  EXPECT_EQ(limiter.acquire("k", two_per_10s, 0), seconds(1));
  advance(seconds(1));
  EXPECT_EQ(limiter.acquire("k", two_per_10s, 0), kAllowed);
  EXPECT_EQ(limiter.acquire("k", two_per_10s, 0), kAllowed);  // still there: nothing taken
  EXPECT_EQ(limiter.acquire("k", two_per_10s), kAllowed);
  EXPECT_EQ(limiter.acquire("k", two_per_10s), seconds(5));
}

TEST(MemoryRateLimiter, KeysHaveTheirOwnBuckets) {
  auto limiter = limiter_on_fake_clock();
  const RateLimit one_a_minute{1, seconds(60)};
  EXPECT_EQ(limiter.acquire("translate:user:1", one_a_minute), kAllowed);
  EXPECT_EQ(limiter.acquire("translate:user:1", one_a_minute), seconds(60));
  EXPECT_EQ(limiter.acquire("translate:user:2", one_a_minute), kAllowed);
  EXPECT_EQ(limiter.acquire("auth:address:10.0.0.1", one_a_minute), kAllowed);
}

TEST(MemoryRateLimiter, CostAboveTheBurstIsNeverTaken) {
  auto limiter = limiter_on_fake_clock();
  const RateLimit three_a_minute{3, seconds(60)};
  EXPECT_EQ(limiter.acquire("k", three_a_minute, 4), seconds(60));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.acquire("k", three_a_minute), kAllowed) << i;
}

TEST(MemoryRateLimiter, UnenforceableLimitsLimitNothing) {
  auto limiter = limiter_on_fake_clock();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(limiter.acquire("k", RateLimit{0, seconds(60)}), kAllowed);
    EXPECT_EQ(limiter.acquire("k", RateLimit{5, seconds(0)}), kAllowed);
  }
  EXPECT_EQ(limiter.size(), 0u);
}

// One shard of four buckets. A new key first displaces the buckets that have refilled to full
// (nothing is lost with them); only when there are none does it displace the least recently
// used one.
TEST(MemoryRateLimiter, BoundedKeysDropFullBucketsFirstThenTheLeastRecentlyUsed) {
  auto limiter = limiter_on_fake_clock(/*max_keys=*/4, /*shards=*/1);
  const RateLimit fast{1, seconds(1)};
  const RateLimit slow{2, seconds(200)};  // one token every 100 s
  for (const char* key : {"slow-a", "slow-b", "slow-c"}) {
    EXPECT_EQ(limiter.acquire(key, slow, 2), kAllowed) << key;
  }
  EXPECT_EQ(limiter.acquire("fast", fast), kAllowed);
  EXPECT_EQ(limiter.size(), 4u);
  advance(seconds(2));  // "fast" (used last) is full again; "slow-a" is the least recently used
  EXPECT_EQ(limiter.acquire("new-1", slow), kAllowed);
  EXPECT_EQ(limiter.size(), 4u);
  for (const char* key : {"slow-a", "slow-b", "slow-c"}) {
    EXPECT_EQ(limiter.acquire(key, slow), seconds(98)) << key << " was forgotten";
  }
  // Nothing is full now: "new-1", used least recently, goes.
  EXPECT_EQ(limiter.acquire("new-2", slow), kAllowed);
  EXPECT_EQ(limiter.size(), 4u);
  EXPECT_EQ(limiter.acquire("new-1", slow, 2), kAllowed);  // a fresh bucket (displacing slow-a)
  for (const char* key : {"slow-b", "slow-c"}) {
    EXPECT_EQ(limiter.acquire(key, slow), seconds(98)) << key << " was forgotten";
  }
}

TEST(MemoryRateLimiter, HoldsAtMostMaxKeysBuckets) {
  auto limiter = limiter_on_fake_clock(/*max_keys=*/160);
  const RateLimit one_an_hour{1, seconds(3600)};
  for (int i = 0; i < 5000; ++i) {
    limiter.acquire("address:" + std::to_string(i), one_an_hour);
    ASSERT_LE(limiter.size(), 160u) << "after key " << i;
  }
  EXPECT_GT(limiter.size(), 100u);  // the bound is used, not just respected
}

TEST(MemoryRateLimiter, ConcurrentCallersNeverTakeMoreThanTheBurst) {
  auto limiter = limiter_on_fake_clock();  // the clock stands still: no refill
  const RateLimit hundred{100, seconds(60)};
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (!limiter.acquire("shared", hundred)) ++allowed;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(allowed.load(), 100);
}

}  // namespace
}  // namespace transnotes::cache
