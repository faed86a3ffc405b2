// RedisRateLimiter against a real Redis: buckets shared by limiters of separate clients (as two
// API processes), refill on Redis's clock, key expiry, and letting requests through while Redis
// is down or answers errors.
#include "cache/redis_rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache.h"
#include "domain/errors.h"
#include "redis/redis_test_support.h"

namespace transnotes::cache {
namespace {

using redis::testing::eventually;
using redis::testing::ThrowawayRedis;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

const std::optional<seconds> kAllowed = std::nullopt;

class RedisRateLimiterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = redis::testing::shared_test_redis_url();
    if (!url) GTEST_FAIL() << "TRANSNOTES_TEST_REDIS_URL is not set (run scripts/services.sh)";
    config_ = redis::parse_redis_url(*url);
    options_.key_prefix = redis::testing::unique_test_prefix("ratelimit");
  }
  // Each limiter has its own client (its own connections), like a limiter in another process.
  std::unique_ptr<RedisRateLimiter> make_limiter() {
    return std::make_unique<RedisRateLimiter>(std::make_shared<redis::RedisClient>(config_),
                                              options_);
  }
  redis::Reply raw(const std::vector<std::string_view>& args) {
    return redis::RedisClient(config_).command(args);
  }
  redis::RedisConfig config_;
  RedisRateLimiterOptions options_;
};

TEST_F(RedisRateLimiterTest, TwoLimitersShareOneBucket) {
  auto first = make_limiter();
  auto second = make_limiter();
  const RateLimit five_a_minute{5, seconds(60)};  // a token every 12 s
  for (int i = 0; i < 3; ++i) EXPECT_EQ(first->acquire("user:1", five_a_minute), kAllowed);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(second->acquire("user:1", five_a_minute), kAllowed);
  for (auto* limiter : {first.get(), second.get()}) {
    const auto refused = limiter->acquire("user:1", five_a_minute);
    ASSERT_TRUE(refused.has_value());
    // 12 s after the first take, less the time this test has run (far under a second).
    EXPECT_GE(*refused, seconds(11));
    EXPECT_LE(*refused, seconds(12));
  }
  EXPECT_EQ(second->acquire("user:2", five_a_minute), kAllowed);  // another key, another bucket
  EXPECT_EQ(first->stats().allowed, 3u);
  EXPECT_EQ(first->stats().refused, 1u);
  EXPECT_EQ(first->stats().errors + second->stats().errors, 0u);
}

TEST_F(RedisRateLimiterTest, ConcurrentCallersInTwoLimitersNeverTakeMoreThanTheBurst) {
  auto first = make_limiter();
  auto second = make_limiter();
  const RateLimit forty_an_hour{40, seconds(3600)};  // no refill while the test runs
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      RedisRateLimiter& limiter = t % 2 == 0 ? *first : *second;
      for (int i = 0; i < 20; ++i) {
        if (!limiter.acquire("shared", forty_an_hour)) ++allowed;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(allowed.load(), 40);
  EXPECT_EQ(first->stats().errors + second->stats().errors, 0u);
}

TEST_F(RedisRateLimiterTest, RecoversAsTheBucketRefills) {
  auto limiter = make_limiter();
  const RateLimit two_a_second{2, seconds(1)};  // a token every 500 ms
  const auto began = Clock::now();
  EXPECT_EQ(limiter->acquire("k", two_a_second), kAllowed);
  EXPECT_EQ(limiter->acquire("k", two_a_second), kAllowed);
  EXPECT_EQ(limiter->acquire("k", two_a_second), seconds(1));
  // Waits for the event (a token back), checking with cost 0 so that the polling takes nothing.
  ASSERT_TRUE(eventually([&] { return !limiter->acquire("k", two_a_second, 0); }));
  EXPECT_GE(Clock::now() - began, milliseconds(500));  // never before the refill
  EXPECT_EQ(limiter->acquire("k", two_a_second), kAllowed);
}

TEST_F(RedisRateLimiterTest, CostZeroTakesNothingAndWritesNothing) {
  auto limiter = make_limiter();
  const RateLimit one_a_minute{1, seconds(60)};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter->acquire("k", one_a_minute, 0), kAllowed);
  EXPECT_EQ(raw({"EXISTS", limiter->key_for("k")}).integer, 0);
  EXPECT_EQ(limiter->acquire("k", one_a_minute), kAllowed);
  EXPECT_EQ(limiter->acquire("k", one_a_minute, 0), seconds(60));
  EXPECT_EQ(limiter->acquire("k", one_a_minute, 2), seconds(60));  // above the burst
}

TEST_F(RedisRateLimiterTest, BucketKeyExpiresWhenTheBucketIsFullAgain) {
  auto limiter = make_limiter();
  EXPECT_EQ(limiter->key_for("translate:user:7"), options_.key_prefix + "translate:user:7");
  EXPECT_EQ(limiter->acquire("translate:user:7", RateLimit{10, seconds(100)}, 3), kAllowed);
  const long long ttl = raw({"PTTL", limiter->key_for("translate:user:7")}).integer;
  EXPECT_GT(ttl, 29000);  // 3 tokens of 10 s each
  EXPECT_LE(ttl, 30000);
}

TEST_F(RedisRateLimiterTest, RedisErrorLetsTheRequestThroughAndIsCounted) {
  auto limiter = make_limiter();
  // A key of the wrong type makes the script fail: an error reply, not an outage.
  raw({"HSET", limiter->key_for("k"), "field", "value"});
  const RateLimit one_a_minute{1, seconds(60)};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter->acquire("k", one_a_minute), kAllowed);
  EXPECT_EQ(limiter->stats().errors, 3u);
  raw({"DEL", limiter->key_for("k")});
}

TEST_F(RedisRateLimiterTest, OpenRateLimiterPicksTheBackend) {
  RateLimiterSettings settings;
  settings.redis_options = options_;
  auto shared = open_rate_limiter(std::make_shared<redis::RedisClient>(config_), settings);
  auto other = make_limiter();
  const RateLimit one_a_minute{1, seconds(60)};
  EXPECT_EQ(shared->acquire("k", one_a_minute), kAllowed);
  EXPECT_EQ(other->acquire("k", one_a_minute), seconds(60));  // the same bucket, in Redis
  EXPECT_NE(rate_limiter_metrics(*shared).find(
                "transnotes_rate_limiter_decisions_total{decision=\"allowed\"} 1"),
            std::string::npos)
      << rate_limiter_metrics(*shared);

  auto local = open_rate_limiter(nullptr);
  EXPECT_EQ(local->acquire("k", one_a_minute), kAllowed);  // its own bucket, in this process
  EXPECT_EQ(local->acquire("k", one_a_minute), seconds(60));
  EXPECT_EQ(rate_limiter_metrics(*local), "");
  EXPECT_TRUE(rate_limiter_families(*local).empty());
  const auto families = rate_limiter_families(*shared);
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].name, "transnotes_rate_limiter_decisions_total");
}

std::shared_ptr<redis::RedisClient> throwaway_client(const ThrowawayRedis& server) {
  auto config = redis::parse_redis_url(server.url());
  config.reconnect_backoff = milliseconds(20);
  config.command_timeout = milliseconds(300);
  return std::make_shared<redis::RedisClient>(config);
}

TEST(RedisRateLimiterOutage, LetsRequestsThroughWhileRedisIsDownThenLimitsAgain) {
  ThrowawayRedis server;
  auto client = throwaway_client(server);
  RedisRateLimiter limiter(client);
  const RateLimit one_a_minute{1, seconds(60)};
  EXPECT_EQ(limiter.acquire("k", one_a_minute), kAllowed);
  EXPECT_EQ(limiter.acquire("k", one_a_minute), seconds(60));
  server.stop();
  for (int i = 0; i < 5; ++i) {
    std::optional<seconds> answer = seconds(0);
    EXPECT_NO_THROW(answer = limiter.acquire("k", one_a_minute));
    EXPECT_EQ(answer, kAllowed);
  }
  EXPECT_EQ(limiter.stats().errors, 5u);
  server.start();  // empty: every bucket starts full again
  ASSERT_TRUE(eventually([&] {
    const auto errors = limiter.stats().errors;
    return !limiter.acquire("k", one_a_minute) && limiter.stats().errors == errors;
  }));
  EXPECT_EQ(limiter.acquire("k", one_a_minute), seconds(60));
}

// EVALSHA of a script the server does not have (restarted, SCRIPT FLUSH) falls back to EVAL.
TEST(RedisRateLimiterOutage, ScriptFlushedFromTheServerIsLoadedAgain) {
  ThrowawayRedis server;
  auto client = throwaway_client(server);
  RedisRateLimiter limiter(client);
  const RateLimit two_a_minute{2, seconds(60)};
  EXPECT_EQ(limiter.acquire("k", two_a_minute), kAllowed);
  ASSERT_EQ(client->command({"SCRIPT", "FLUSH"}).str, "OK");
  EXPECT_EQ(limiter.acquire("k", two_a_minute), kAllowed);
  EXPECT_EQ(limiter.acquire("k", two_a_minute), seconds(30));
  EXPECT_EQ(limiter.stats().errors, 0u);
}

}  // namespace
}  // namespace transnotes::cache
