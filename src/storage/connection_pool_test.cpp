// The pool policy both stores share, on a stand-in connection type (the stores' own tests cover
// real SQLite and PostgreSQL connections through it).
#include "storage/connection_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace transnotes::storage {
namespace {

using namespace std::chrono_literals;

struct FakeConnection {
  int serial = 0;
  bool usable = true;
};

struct Counters {
  std::atomic<int> opened{0};
  std::atomic<bool> fail_next_open{false};
};

ConnectionPool<FakeConnection> make_pool(Counters& counters, int max_size,
                                         std::chrono::milliseconds wait) {
  return ConnectionPool<FakeConnection>(
      {.max_size = max_size, .wait = wait},
      [&counters] {
        if (counters.fail_next_open.exchange(false)) throw Unavailable("cannot connect");
        auto conn = std::make_unique<FakeConnection>();
        conn->serial = ++counters.opened;
        return conn;
      },
      [](const FakeConnection& conn) { return conn.usable; });
}

TEST(ConnectionPool, ReusesAReturnedConnection) {
  Counters counters;
  auto pool = make_pool(counters, 2, 1s);
  int first = 0;
  {
    auto lease = pool.acquire();
    first = lease->serial;
  }
  auto again = pool.acquire();
  EXPECT_EQ(again->serial, first);
  EXPECT_EQ(counters.opened, 1);
}

TEST(ConnectionPool, AnExhaustedPoolFailsWithUnavailableAfterTheWait) {
  Counters counters;
  auto pool = make_pool(counters, 1, 50ms);
  auto held = pool.acquire();
  EXPECT_THROW(pool.acquire(), Unavailable);
  EXPECT_EQ(pool.open_count(), 1);
}

TEST(ConnectionPool, AWaiterGetsTheConnectionReleasedWhileItWaits) {
  Counters counters;
  auto pool = make_pool(counters, 1, 30s);
  std::promise<void> waiting;
  std::unique_ptr<ConnectionPool<FakeConnection>::Lease> lease(new auto(pool.acquire()));
  auto waiter = std::async(std::launch::async, [&] {
    waiting.set_value();
    return pool.acquire()->serial;
  });
  waiting.get_future().wait();
  lease.reset();
  EXPECT_EQ(waiter.get(), 1);
  EXPECT_EQ(counters.opened, 1);
}

TEST(ConnectionPool, BrokenOrUnusableConnectionsAreClosedNotReturned) {
  Counters counters;
  auto pool = make_pool(counters, 2, 1s);
  {
    auto lease = pool.acquire();
    lease.mark_broken();
  }
  EXPECT_EQ(pool.open_count(), 0);
  {
    auto lease = pool.acquire();
    lease->usable = false;  // e.g. a transaction left open, or the server hung up
  }
  EXPECT_EQ(pool.open_count(), 0);
  auto fresh = pool.acquire();
  EXPECT_EQ(fresh->serial, 3);
}

TEST(ConnectionPool, AFailedOpenFreesItsSlot) {
  Counters counters;
  auto pool = make_pool(counters, 1, 50ms);
  counters.fail_next_open = true;
  EXPECT_THROW(pool.acquire(), Unavailable);
  EXPECT_EQ(pool.open_count(), 0);
  EXPECT_NO_THROW(pool.acquire());
}

TEST(ConnectionPool, StatsCountOpenLeasedAndWaitingCallers) {
  Counters counters;
  auto pool = make_pool(counters, 1, 30s);
  EXPECT_EQ(pool.stats().open, 0);
  EXPECT_EQ(pool.stats().max_size, 1);
  std::future<int> waiter;
  {
    auto held = pool.acquire();
    EXPECT_EQ(pool.stats().open, 1);
    EXPECT_EQ(pool.stats().leased, 1);
    EXPECT_EQ(pool.stats().waiting, 0);
    waiter = std::async(std::launch::async, [&] { return pool.acquire()->serial; });
    while (pool.stats().waiting == 0) std::this_thread::yield();  // the waiter is blocked now
    EXPECT_EQ(pool.stats().waiting, 1);
  }
  EXPECT_EQ(waiter.get(), 1);
  const auto after = pool.stats();
  EXPECT_EQ(after.waiting, 0);
  EXPECT_EQ(after.leased, 0);
  EXPECT_EQ(after.open, 1);
}

}  // namespace
}  // namespace transnotes::storage
