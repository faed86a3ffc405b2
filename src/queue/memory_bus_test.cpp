#include "queue/memory_bus.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace transnotes::queue {
namespace {

// A notice for job `job_id` of an owner other than the open-mode one, so the owner travels too.
JobNotice notice(std::int64_t job_id, UserId owner = 3) { return JobNotice{job_id, owner}; }

using std::chrono::milliseconds;

TEST(MemoryJobBus, PublishThenNext) {
  MemoryJobBus bus;
  bus.publish(notice(11));
  bus.publish(notice(12));
  EXPECT_EQ(bus.next(milliseconds(100)), notice(11));
  EXPECT_EQ(bus.next(milliseconds(100)), notice(12));
}

TEST(MemoryJobBus, NextTimesOutWhenEmpty) {
  MemoryJobBus bus;
  EXPECT_EQ(bus.next(milliseconds(20)), std::nullopt);
  EXPECT_EQ(bus.next(milliseconds(0)), std::nullopt);
}

TEST(MemoryJobBus, WaiterWakesOnPublish) {
  MemoryJobBus bus;
  std::optional<JobNotice> got;
  std::thread waiter([&] { got = bus.next(std::chrono::seconds(30)); });
  std::this_thread::sleep_for(milliseconds(20));
  bus.publish(notice(42));
  waiter.join();
  EXPECT_EQ(got, notice(42));
}

TEST(MemoryJobBus, CloseWakesAllWaitersAndStaysClosed) {
  MemoryJobBus bus;
  std::vector<std::thread> waiters;
  std::atomic<int> woke{0};
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      if (!bus.next(std::chrono::seconds(60))) ++woke;
    });
  }
  std::this_thread::sleep_for(milliseconds(20));
  bus.close();
  for (auto& waiter : waiters) waiter.join();
  EXPECT_EQ(woke, 4);
  bus.publish(notice(1));
  EXPECT_EQ(bus.next(milliseconds(10)), std::nullopt);
}

TEST(MemoryJobBus, ConsumersGetDistinctIds) {
  MemoryJobBus bus;
  constexpr int kJobs = 2000;
  std::mutex mutex;
  std::vector<JobNotice> received;
  std::vector<std::thread> consumers;
  for (int i = 0; i < 4; ++i) {
    consumers.emplace_back([&] {
      while (auto id = bus.next(milliseconds(500))) {
        std::lock_guard lock(mutex);
        received.push_back(*id);
      }
    });
  }
  for (int id = 1; id <= kJobs; ++id) bus.publish(notice(id, id % 7));
  for (auto& consumer : consumers) consumer.join();
  std::sort(received.begin(), received.end(),
            [](const JobNotice& a, const JobNotice& b) { return a.job_id < b.job_id; });
  ASSERT_EQ(received.size(), static_cast<std::size_t>(kJobs));
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(received[i], notice(i + 1, (i + 1) % 7));
}

TEST(MemoryJobBus, BoundDropsOldest) {
  MemoryJobBus bus(2);
  bus.publish(notice(1));
  bus.publish(notice(2));
  bus.publish(notice(3));
  EXPECT_EQ(bus.next(milliseconds(10)), notice(2));
  EXPECT_EQ(bus.next(milliseconds(10)), notice(3));
}

}  // namespace
}  // namespace transnotes::queue
