// In-process JobBus: the embedded default when no Redis is configured. Delivers each published
// job notice to exactly one next() caller, in publish order.
//
// Thread safety: all methods may be called from any thread. close() wakes every waiter; after it,
// next() returns nullopt immediately and publish() is a no-op.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include "domain/ports.h"

namespace transnotes::queue {

class MemoryJobBus final : public JobBus {
 public:
  // `max_pending` bounds memory if nobody consumes: the oldest notices are dropped (the database
  // sweeper re-dispatches lost wake-ups).
  explicit MemoryJobBus(std::size_t max_pending = 100000);

  void publish(const JobNotice& notice) override;
  std::optional<JobNotice> next(std::chrono::milliseconds timeout) override;
  void close() override;

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<JobNotice> pending_;
  std::size_t max_pending_;
  bool closed_ = false;
};

}  // namespace transnotes::queue
