// open_bus(): the settings pick the backend; a job published reaches a waiter either way.
#include "queue/bus.h"

#include <gtest/gtest.h>

#include "redis/redis_test_support.h"

namespace transnotes::queue {
namespace {

// A notice for job `job_id` of an owner other than the open-mode one, so the owner travels too.
JobNotice notice(std::int64_t job_id, UserId owner = 3) { return JobNotice{job_id, owner}; }

using namespace std::chrono_literals;

TEST(OpenBus, WithoutRedisJobsGoThroughTheProcess) {
  auto bus = open_bus(nullptr);
  ASSERT_NE(bus, nullptr);
  bus->publish(notice(42));
  EXPECT_EQ(bus->next(5s), notice(42));
}

TEST(OpenBus, WithRedisJobsReachAnotherBusOnTheSameServer) {
  auto url = redis::testing::shared_test_redis_url();
  if (!url) GTEST_FAIL() << "TRANSNOTES_TEST_REDIS_URL is not set (run scripts/services.sh)";
  auto client = std::make_shared<redis::RedisClient>(redis::parse_redis_url(*url));
  auto consumer = open_bus(client);
  auto producer = open_bus(client);
  producer->publish(notice(4242));
  // The stream is shared with other tests' buses: wait for this job among whatever arrives.
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    auto job = consumer->next(1s);
    seen = job == notice(4242);
  }
  EXPECT_TRUE(seen);
  consumer->close();
  producer->close();
}

}  // namespace
}  // namespace transnotes::queue
