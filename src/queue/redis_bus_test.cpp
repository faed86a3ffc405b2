#include "queue/redis_bus.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "domain/errors.h"
#include "redis/redis_test_support.h"

namespace transnotes::queue {
namespace {

// A notice for job `job_id` of an owner other than the open-mode one, so the owner travels too.
JobNotice notice(std::int64_t job_id, UserId owner = 3) { return JobNotice{job_id, owner}; }

using redis::testing::eventually;
using redis::testing::ThrowawayRedis;
using redis::testing::unique_test_prefix;
using std::chrono::milliseconds;
using std::chrono::seconds;

class RedisJobBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = redis::testing::shared_test_redis_url();
    if (!url) GTEST_FAIL() << "TRANSNOTES_TEST_REDIS_URL is not set (run scripts/services.sh)";
    client_ = std::make_shared<redis::RedisClient>(redis::parse_redis_url(*url));
    options_.stream = unique_test_prefix("bus") + "jobs";
    options_.max_block = milliseconds(100);
  }
  void TearDown() override {
    if (client_) client_->command({"DEL", options_.stream});
  }
  std::unique_ptr<RedisJobBus> make_bus(std::string consumer = "") {
    RedisJobBusOptions options = options_;
    options.consumer = std::move(consumer);
    return std::make_unique<RedisJobBus>(client_, options);
  }
  std::shared_ptr<redis::RedisClient> client_;
  RedisJobBusOptions options_;
};

TEST_F(RedisJobBusTest, PublishThenNext) {
  auto bus = make_bus();
  bus->publish(notice(11));
  bus->publish(notice(12));
  EXPECT_EQ(bus->next(seconds(5)), notice(11));
  EXPECT_EQ(bus->next(seconds(5)), notice(12));
  EXPECT_EQ(bus->next(milliseconds(0)), std::nullopt);
  auto stats = bus->stats();
  EXPECT_EQ(stats.published, 2u);
  EXPECT_EQ(stats.received, 2u);
  EXPECT_EQ(stats.errors, 0u);
  // Read entries are acknowledged at once: nothing stays pending in the group.
  redis::Reply pending = client_->command({"XPENDING", options_.stream, options_.group});
  ASSERT_EQ(pending.type, redis::Reply::Type::Array);
  EXPECT_EQ(pending.elements.at(0).integer, 0);
}

// The wire format other processes (and older or newer versions) read: "<owner>:<job id>".
TEST_F(RedisJobBusTest, MessageCarriesOwnerAndJobId) {
  auto bus = make_bus();
  bus->publish(notice(11, 7));
  bus->publish(notice(12, kOpenModeOwner));
  redis::Reply entries = client_->command({"XRANGE", options_.stream, "-", "+"});
  ASSERT_EQ(entries.type, redis::Reply::Type::Array);
  ASSERT_EQ(entries.elements.size(), 2u);
  const auto& fields = entries.elements[0].elements.at(1).elements;
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0].str, "job");
  EXPECT_EQ(fields[1].str, "7:11");
  EXPECT_EQ(bus->next(seconds(5)), notice(11, 7));
  EXPECT_EQ(bus->next(seconds(5)), notice(12, kOpenModeOwner));
}

// Entries not written by this version's publish() (a bare job id from an older version, junk,
// out-of-range numbers, no job field) are acknowledged, counted and skipped; the next good
// notice still arrives and next() never throws.
TEST_F(RedisJobBusTest, MalformedEntriesAreDroppedAndTheNextNoticeArrives) {
  auto bus = make_bus();
  const std::vector<std::string> malformed = {"5",
                                              "abc",
                                              "7:",
                                              ":5",
                                              "-1:5",
                                              "7:0",
                                              "7:-3",
                                              "1:2:3",
                                              "7:5x",
                                              " 7:5",
                                              "+7:5",
                                              "99999999999999999999:1",
                                              "1:99999999999999999999",
                                              ""};
  for (const std::string& value : malformed) {
    client_->command({"XADD", options_.stream, "*", "job", value});
  }
  client_->command({"XADD", options_.stream, "*", "other", "7:5"});
  bus->publish(notice(41, 9));
  std::optional<JobNotice> got;
  EXPECT_NO_THROW(got = bus->next(seconds(10)));
  EXPECT_EQ(got, notice(41, 9));
  EXPECT_EQ(bus->stats().errors, malformed.size() + 1);
  EXPECT_EQ(bus->stats().received, 1u);
  redis::Reply pending = client_->command({"XPENDING", options_.stream, options_.group});
  ASSERT_EQ(pending.type, redis::Reply::Type::Array);
  EXPECT_EQ(pending.elements.at(0).integer, 0);
  EXPECT_EQ(bus->next(milliseconds(0)), std::nullopt);
}

TEST_F(RedisJobBusTest, NextTimesOutWhenEmpty) {
  auto bus = make_bus();
  EXPECT_EQ(bus->next(milliseconds(250)), std::nullopt);  // spans several BLOCK slices
  EXPECT_EQ(bus->next(milliseconds(0)), std::nullopt);
}

TEST_F(RedisJobBusTest, BlockedWaiterWakesOnPublishFromAnotherBus) {
  auto consumer = make_bus("c1");
  auto producer = make_bus("producer");
  std::optional<JobNotice> got;
  std::thread waiter([&] { got = consumer->next(seconds(30)); });
  std::this_thread::sleep_for(milliseconds(50));
  producer->publish(notice(42));
  waiter.join();
  EXPECT_EQ(got, notice(42));
}

TEST_F(RedisJobBusTest, CloseWakesWaiters) {
  auto bus = make_bus();
  std::atomic<int> woke{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      if (!bus->next(seconds(120))) ++woke;
    });
  }
  std::this_thread::sleep_for(milliseconds(50));
  bus->close();
  for (auto& waiter : waiters) waiter.join();
  EXPECT_EQ(woke, 3);
  bus->publish(notice(5));  // other processes may still consume
  EXPECT_EQ(bus->next(seconds(1)), std::nullopt);
}

TEST_F(RedisJobBusTest, ConsumersAcrossBusesGetDistinctIds) {
  constexpr int kJobs = 300;
  std::vector<std::unique_ptr<RedisJobBus>> buses;
  for (int i = 0; i < 3; ++i) buses.push_back(make_bus("consumer-" + std::to_string(i)));
  std::mutex mutex;
  std::vector<JobNotice> received;
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      RedisJobBus& bus = *buses[i % 3];
      while (auto id = bus.next(milliseconds(1000))) {
        std::lock_guard lock(mutex);
        received.push_back(*id);
      }
    });
  }
  auto producer = make_bus("producer");
  for (int id = 1; id <= kJobs; ++id) producer->publish(notice(id, id % 7));
  for (auto& thread : threads) thread.join();
  std::sort(received.begin(), received.end(),
            [](const JobNotice& a, const JobNotice& b) { return a.job_id < b.job_id; });
  ASSERT_EQ(received.size(), static_cast<std::size_t>(kJobs));
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(received[i], notice(i + 1, (i + 1) % 7));
}

TEST_F(RedisJobBusTest, RecreatesGroupWhenStreamIsDeleted) {
  auto bus = make_bus();
  client_->command({"DEL", options_.stream});  // same effect as a Redis restart
  bus->publish(notice(77));                    // recreates the stream, but without the group
  EXPECT_EQ(bus->next(seconds(5)), notice(77));
}

// True when some client of `server` is blocked in XREADGROUP (CLIENT LIST: flags=b, cmd=...).
bool blocked_in_xreadgroup(const ThrowawayRedis& server) {
  try {
    redis::RedisConfig config;
    config.port = server.port();
    const auto clients = redis::RedisConnection::open(config)->command({"CLIENT", "LIST"}).str;
    std::istringstream lines(clients);
    for (std::string line; std::getline(lines, line);) {
      const std::string padded = " " + line + " ";
      if (padded.find(" cmd=xreadgroup ") != std::string::npos &&
          padded.find(" flags=b ") != std::string::npos) {
        return true;
      }
    }
  } catch (const std::exception&) {
  }
  return false;
}

TEST(RedisJobBusOutage, SurvivesRedisRestart) {
  ThrowawayRedis server;
  auto config = redis::parse_redis_url(server.url());
  config.reconnect_backoff = milliseconds(20);
  auto client = std::make_shared<redis::RedisClient>(config);
  RedisJobBusOptions options;
  options.max_block = milliseconds(100);
  options.outage_sleep = milliseconds(50);
  RedisJobBus bus(client, options);
  bus.publish(notice(1));
  EXPECT_EQ(bus.next(seconds(5)), notice(1));

  // A waiter blocked while the server dies returns nullopt instead of throwing, and at once
  // rather than at its timeout. The server dies only once the waiter is certainly blocked in
  // XREADGROUP.
  std::optional<JobNotice> during_outage = notice(123);
  const auto errors_before = bus.stats().errors;
  std::thread waiter([&] { during_outage = bus.next(seconds(120)); });
  ASSERT_TRUE(eventually([&] { return blocked_in_xreadgroup(server); }))
      << "the waiter never blocked in XREADGROUP";
  const auto stopped_at = std::chrono::steady_clock::now();
  server.stop();
  waiter.join();
  EXPECT_EQ(during_outage, std::nullopt);
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, seconds(60));
  EXPECT_GT(bus.stats().errors, errors_before);  // it saw the outage, not a timeout

  EXPECT_NO_THROW(bus.publish(notice(2)));  // dropped
  EXPECT_EQ(bus.next(milliseconds(100)), std::nullopt);
  EXPECT_GE(bus.stats().errors, 2u);

  server.start();  // empty: stream and group are gone
  std::optional<JobNotice> got;
  EXPECT_TRUE(eventually([&] {
    bus.publish(notice(3));
    got = bus.next(milliseconds(200));
    return got.has_value();
  }));
  EXPECT_EQ(got, notice(3));
}

TEST(RedisJobBusOutage, UnreachableAtConstructionThenAvailable) {
  auto port = redis::testing::free_loopback_port();
  redis::RedisConfig config;
  config.port = port;
  config.reconnect_backoff = milliseconds(20);
  auto client = std::make_shared<redis::RedisClient>(config);
  RedisJobBusOptions options;
  options.outage_sleep = milliseconds(20);
  RedisJobBus bus(client, options);  // must not throw
  EXPECT_NO_THROW(bus.publish(notice(1)));
  EXPECT_EQ(bus.next(milliseconds(50)), std::nullopt);
}

}  // namespace
}  // namespace transnotes::queue
