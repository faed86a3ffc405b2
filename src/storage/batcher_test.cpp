#include "storage/batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace transnotes::storage {
namespace {

using IntBatcher = Batcher<int, int>;

TEST(Batcher, LoneCallerRunsItsOwnBatchAtOnce) {
  IntBatcher batcher(8, 1);
  std::vector<std::size_t> sizes;
  int out = batcher.submit(21, [&](std::span<IntBatcher::Slot*> slots) {
    sizes.push_back(slots.size());
    for (auto* s : slots) s->output = *s->input * 2;
  });
  EXPECT_EQ(out, 42);
  EXPECT_EQ(sizes, std::vector<std::size_t>{1});
}

// While the only leader is blocked, later callers queue up; the next leader takes them together
// (at most max_batch per batch) and every caller gets the output for its own input.
TEST(Batcher, CallersArrivingDuringABatchAreCommittedTogether) {
  IntBatcher batcher(4, 1);
  std::atomic<bool> release{false};
  std::atomic<bool> first_running{false};
  std::mutex sizes_mutex;
  std::vector<std::size_t> sizes;
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  auto run = [&](std::span<IntBatcher::Slot*> slots) {
    int now = ++running;
    int seen = max_running.load();
    while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
    }
    {
      std::lock_guard lock(sizes_mutex);
      sizes.push_back(slots.size());
    }
    if (!first_running.exchange(true)) {
      while (!release) std::this_thread::yield();
    }
    for (auto* s : slots) s->output = *s->input + 1000;
    --running;
  };
  std::vector<int> results(10, -1);
  std::vector<std::thread> threads;
  threads.emplace_back([&] { results[0] = batcher.submit(0, run); });
  while (!first_running) std::this_thread::yield();
  for (int i = 1; i < 10; ++i) {
    threads.emplace_back([&, i] { results[i] = batcher.submit(i, run); });
  }
  while (batcher.queued() < 9) std::this_thread::yield();
  release = true;
  for (auto& t : threads) t.join();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(results[i], i + 1000);
  EXPECT_EQ(max_running.load(), 1);
  // 1 (the blocked leader), then the 9 queued callers in batches of at most 4.
  EXPECT_EQ(sizes, (std::vector<std::size_t>{1, 4, 4, 1}));
}

TEST(Batcher, AnErrorOfTheWholeBatchReachesEveryCallerInIt) {
  IntBatcher batcher(8, 1);
  EXPECT_THROW(batcher.submit(1,
                              [](std::span<IntBatcher::Slot*>) -> void {
                                throw std::runtime_error("database down");
                              }),
               std::runtime_error);
}

TEST(Batcher, PerCallerErrorsStayWithTheirCaller) {
  IntBatcher batcher(8, 2);
  auto run = [](std::span<IntBatcher::Slot*> slots) {
    for (auto* s : slots) {
      if (*s->input < 0) {
        s->error = std::make_exception_ptr(std::invalid_argument("negative"));
      } else {
        s->output = *s->input;
      }
    }
  };
  EXPECT_EQ(batcher.submit(5, run), 5);
  EXPECT_THROW(batcher.submit(-5, run), std::invalid_argument);
}

TEST(Batcher, ASlotLeftUnansweredIsAnErrorNotAHang) {
  IntBatcher batcher(8, 1);
  EXPECT_THROW(batcher.submit(1, [](std::span<IntBatcher::Slot*>) {}), std::logic_error);
}

TEST(Batcher, ManyThreadsEachGetTheirOwnAnswer) {
  IntBatcher batcher(16, 2);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const int in = t * 100000 + i;
        int out = batcher.submit(in, [](std::span<IntBatcher::Slot*> slots) {
          for (auto* s : slots) s->output = -*s->input;
        });
        if (out != -in) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(batcher.queued(), 0u);
}

// Leader slots are handed on one by one (each waiter sleeps on its own condition variable, so a
// lost hand-off would hang here): with batches of one and two leaders, both slots stay busy while
// callers queue, and every queued caller is eventually led.
TEST(Batcher, FreedLeaderSlotsAreHandedToQueuedCallers) {
  IntBatcher batcher(1, 2);
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  std::atomic<bool> release{false};
  auto run = [&](std::span<IntBatcher::Slot*> slots) {
    int now = ++running;
    int seen = max_running.load();
    while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
    }
    while (!release) std::this_thread::yield();
    for (auto* s : slots) s->output = *s->input * 3;
    --running;
  };
  constexpr int kCallers = 12;
  std::vector<int> results(kCallers, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] { results[i] = batcher.submit(i, run); });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((max_running.load() < 2 || batcher.queued() < kCallers - 2) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(max_running.load(), 2);
  EXPECT_EQ(batcher.queued(), static_cast<std::size_t>(kCallers - 2));
  release = true;
  for (auto& t : threads) t.join();
  for (int i = 0; i < kCallers; ++i) EXPECT_EQ(results[i], i * 3);
  EXPECT_EQ(max_running.load(), 2);
}

}  // namespace
}  // namespace transnotes::storage
