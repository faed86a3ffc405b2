// Both UserEvents implementations against one contract: order, ids, resume, reset, isolation.
#include <gtest/gtest.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "queue/memory_events.h"
#include "queue/redis_events.h"
#include "redis/redis_test_support.h"

namespace transnotes::queue {
namespace {

using namespace std::chrono_literals;

// Collects what a subscription delivers and waits for it.
class Received {
 public:
  UserEvents::Listener listener() {
    return [this](const UserEvent& event) {
      std::lock_guard lock(mutex_);
      events_.push_back(event);
      arrived_.notify_all();
    };
  }
  // The first `n` events, once they arrived (fewer after 10 s).
  std::vector<UserEvent> wait_for(std::size_t n, std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(mutex_);
    arrived_.wait_for(lock, limit, [&] { return events_.size() >= n; });
    return events_;
  }
  std::vector<UserEvent> now() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<UserEvent> events_;
};

std::vector<std::string> data_of(const std::vector<UserEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.data);
  return out;
}

class UserEventsTest : public ::testing::TestWithParam<std::string> {
 protected:
  // A fresh instance over the same backing store (two "processes" when Redis), keeping at most
  // `history` events per user.
  std::unique_ptr<UserEvents> make(std::size_t history = 256) {
    if (GetParam() == "memory") {
      if (!memory_) {
        UserEventHistory bounds;
        bounds.max_events = history;
        memory_ = std::make_shared<MemoryUserEvents>(bounds);
      }
      // One process holds one instance: hand out views of the same one.
      struct View final : UserEvents {
        std::shared_ptr<MemoryUserEvents> target;
        void publish(UserId owner, std::string_view kind, std::string_view data) override {
          target->publish(owner, kind, data);
        }
        std::unique_ptr<Subscription> subscribe(UserId owner, std::optional<std::uint64_t> after,
                                                Listener listener) override {
          return target->subscribe(owner, after, std::move(listener));
        }
      };
      auto view = std::make_unique<View>();
      view->target = memory_;
      return view;
    }
    auto url = redis::testing::shared_test_redis_url();
    if (!url) throw std::runtime_error("TRANSNOTES_TEST_REDIS_URL is not set");
    if (!client_) {
      client_ = std::make_shared<redis::RedisClient>(redis::parse_redis_url(*url));
      prefix_ = redis::testing::unique_test_prefix("events");
    }
    RedisUserEventsOptions options;
    options.key_prefix = prefix_;
    options.max_events = history;
    options.block = 50ms;
    return std::make_unique<RedisUserEvents>(client_, options);
  }
  void TearDown() override {
    if (client_) {
      for (UserId owner : {1, 2}) client_->command({"DEL", prefix_ + std::to_string(owner)});
    }
  }

  std::shared_ptr<MemoryUserEvents> memory_;
  std::shared_ptr<redis::RedisClient> client_;
  std::string prefix_;
};

TEST_P(UserEventsTest, NewEventsArriveInOrderWithIncreasingIds) {
  auto events = make();
  Received got;
  auto subscription = events->subscribe(1, std::nullopt, got.listener());
  for (int i = 0; i < 5; ++i) events->publish(1, "job", "{\"n\":" + std::to_string(i) + "}");
  auto seen = got.wait_for(5);
  ASSERT_EQ(seen.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(seen[i].kind, "job");
    EXPECT_EQ(seen[i].data, "{\"n\":" + std::to_string(i) + "}");
    if (i > 0) {
      EXPECT_GT(seen[i].id, seen[i - 1].id);
    }
  }
}

TEST_P(UserEventsTest, WithoutALastIdOnlyNewEventsArrive) {
  auto events = make();
  events->publish(1, "note", "old");
  Received got;
  auto subscription = events->subscribe(1, std::nullopt, got.listener());
  events->publish(1, "note", "new");
  EXPECT_EQ(data_of(got.wait_for(1)), std::vector<std::string>{"new"});
}

TEST_P(UserEventsTest, ResumingAfterAnIdDeliversWhatWasMissedThenNewOnes) {
  auto publisher = make();
  Received first;
  auto subscription = publisher->subscribe(1, std::nullopt, first.listener());
  publisher->publish(1, "note", "a");
  const auto seen = first.wait_for(1);
  ASSERT_EQ(seen.size(), 1u);
  subscription.reset();
  publisher->publish(1, "note", "b");
  publisher->publish(1, "job", "c");
  // Another process (with Redis) picks up from the id the client saw.
  auto other = make();
  Received resumed;
  auto again = other->subscribe(1, seen[0].id, resumed.listener());
  publisher->publish(1, "note", "d");
  auto got = resumed.wait_for(3);
  EXPECT_EQ(data_of(got), (std::vector<std::string>{"b", "c", "d"}));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].kind, "job");
  EXPECT_GT(got[0].id, seen[0].id);
}

TEST_P(UserEventsTest, AnIdOlderThanTheHistoryGetsAReset) {
  auto events = make(/*history=*/10);
  Received first;
  auto subscription = events->subscribe(1, std::nullopt, first.listener());
  events->publish(1, "note", "first");
  const auto seen = first.wait_for(1);
  ASSERT_EQ(seen.size(), 1u);
  // Redis trims whole nodes of 100 entries ("MAXLEN ~"): go well past one. In steps the live
  // reader keeps up with: a burst of 300 on a loaded machine outran it, and what it had not read
  // yet was trimmed away (this test is about an id older than the history, not that race).
  for (int i = 0; i < 300; ++i) {
    events->publish(1, "note", std::to_string(i));
    if (i % 25 == 24) {
      ASSERT_EQ(first.wait_for(static_cast<std::size_t>(i) + 2).size(), i + 2u);
    }
  }
  auto last = first.wait_for(301);
  ASSERT_EQ(last.size(), 301u);
  Received late;
  auto again = events->subscribe(1, seen[0].id, late.listener());
  events->publish(1, "note", "after");
  auto got = late.wait_for(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, "reset");
  EXPECT_EQ(got[0].data, "{}");
  EXPECT_EQ(got[0].id, last.back().id) << "a reset resumes from the newest id";
  EXPECT_EQ(got[1].data, "after");
}

TEST_P(UserEventsTest, AnIdFromNowhereGetsAReset) {
  auto events = make();
  events->publish(1, "note", "x");
  Received got;
  auto subscription =
      events->subscribe(1, std::uint64_t{18'000'000'000'000'000'000u}, got.listener());
  auto seen = got.wait_for(1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, "reset");
}

TEST_P(UserEventsTest, AUserNeverReceivesAnotherUsersEvents) {
  auto events = make();
  Received one;
  Received two;
  auto first = events->subscribe(1, std::nullopt, one.listener());
  auto second = events->subscribe(2, std::nullopt, two.listener());
  events->publish(1, "note", "for one");
  events->publish(2, "note", "for two");
  EXPECT_EQ(data_of(one.wait_for(1)), std::vector<std::string>{"for one"});
  EXPECT_EQ(data_of(two.wait_for(1)), std::vector<std::string>{"for two"});
  events->publish(2, "note", "again for two");
  two.wait_for(2);
  EXPECT_EQ(data_of(one.now()), std::vector<std::string>{"for one"});
}

TEST_P(UserEventsTest, NothingArrivesAfterTheSubscriptionIsGone) {
  auto events = make();
  Received got;
  auto subscription = events->subscribe(1, std::nullopt, got.listener());
  events->publish(1, "note", "one");
  got.wait_for(1);
  subscription.reset();
  events->publish(1, "note", "two");
  // A second subscriber that does see "two" shows it was delivered meanwhile.
  Received witness;
  auto other = events->subscribe(1, std::nullopt, witness.listener());
  events->publish(1, "note", "three");
  witness.wait_for(1);
  EXPECT_EQ(data_of(got.now()), std::vector<std::string>{"one"});
}

INSTANTIATE_TEST_SUITE_P(Backends, UserEventsTest, ::testing::Values("memory", "redis"));

TEST(MemoryUserEvents, IdsOfANewStreamStartPastThoseOfAnEarlierProcess) {
  std::uint64_t earlier = 0;
  {
    MemoryUserEvents before_restart;
    Received got;
    auto subscription = before_restart.subscribe(1, std::nullopt, got.listener());
    before_restart.publish(1, "note", "x");
    earlier = got.wait_for(1).at(0).id;
  }
  MemoryUserEvents after_restart;
  Received got;
  auto subscription = after_restart.subscribe(1, earlier, got.listener());
  auto seen = got.wait_for(1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, "reset");
  EXPECT_GT(seen[0].id, earlier);
}

TEST(RedisUserEvents, IdsStaySafeForJavaScriptWhenAMillisecondFillsUp) {
  auto url = redis::testing::shared_test_redis_url();
  ASSERT_TRUE(url) << "TRANSNOTES_TEST_REDIS_URL is not set";
  auto client = std::make_shared<redis::RedisClient>(redis::parse_redis_url(*url));
  RedisUserEventsOptions options;
  options.key_prefix = redis::testing::unique_test_prefix("events-ms");
  options.block = 50ms;
  RedisUserEvents events(client, options);
  // A stream whose newest entry is the 999th of a millisecond ahead of the clock: the next
  // appends fall in that same millisecond.
  const std::uint64_t ms = static_cast<std::uint64_t>(now_micros() / 1000) + 600'000;
  const std::string key = options.key_prefix + "1";
  client->command({"XADD", key, std::to_string(ms) + "-998", "kind", "note", "data", "seed"});
  Received got;
  auto subscription = events.subscribe(1, std::nullopt, got.listener());
  for (const char* data : {"a", "b", "c"}) events.publish(1, "note", data);
  auto seen = got.wait_for(3);
  client->command({"DEL", key});
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].id, ms * 1000 + 999);
  EXPECT_EQ(seen[1].id, (ms + 1) * 1000);
  EXPECT_EQ(seen[2].id, (ms + 1) * 1000 + 1);
  EXPECT_EQ(data_of(seen), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_LT(seen[2].id, std::uint64_t{1} << 53);
}

}  // namespace
}  // namespace transnotes::queue
