// Group commit for concurrent writers: callers that arrive while other batches are running wait
// in a queue, and the next free caller becomes a leader that runs everything queued (up to
// max_batch) as one batch on behalf of all of them. With durable commits (fsync) this turns N
// commits into one; a caller that finds a free leader slot runs at once, so an idle system adds
// no latency.
//
// Thread safety: submit() may be called from any number of threads. `run` is called without
// the lock held, by at most max_leaders threads at once.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

namespace transnotes::storage {

template <class Input, class Output>
class Batcher {
 public:
  // One caller's request in a batch. `run` must set `output` or `error` on every slot it gets.
  struct Slot {
    const Input* input = nullptr;
    std::optional<Output> output;
    std::exception_ptr error;
  };

  Batcher(std::size_t max_batch, int max_leaders)
      : max_batch_(max_batch < 1 ? 1 : max_batch),
        max_leaders_(max_leaders < 1 ? 1 : max_leaders) {}

  // Returns this caller's output once a batch containing it has run, or rethrows its error.
  // `run(std::span<Slot*>)` executes one batch; an exception escaping it fails the whole batch.
  template <class Run>
  Output submit(const Input& input, Run&& run) {
    Entry entry;
    entry.slot.input = &input;
    std::unique_lock lock(mutex_);
    queue_.push_back(&entry);
    while (!entry.done) {
      if (entry.taken || leaders_ >= max_leaders_) {
        entry.wake.wait(lock);
        continue;
      }
      // Lead one batch: the oldest waiters first (ours may not be among them yet; then loop).
      ++leaders_;
      std::vector<Entry*> batch;
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
        batch.back()->taken = true;
      }
      wake_next_leader();
      lock.unlock();
      execute(batch, run);
      lock.lock();
      --leaders_;
      // Each waiter sleeps on its own condition variable, so a finished batch wakes exactly its
      // members and, for the freed leader slot, the oldest queued caller. A shared one woken
      // with notify_all made every waiting thread take the mutex per batch: with 16 writers
      // that was ~11 futex calls per create, each a context switch. A waiter returns (and its
      // Entry dies) only after taking the lock, so notifying under the lock is safe.
      for (Entry* e : batch) {
        e->done = true;
        if (e != &entry) e->wake.notify_one();
      }
      wake_next_leader();
    }
    if (entry.slot.error) std::rethrow_exception(entry.slot.error);
    return std::move(*entry.slot.output);
  }

  // Callers waiting for a leader to take their request (for tests and metrics).
  std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  struct Entry {
    Slot slot;
    bool taken = false;
    bool done = false;
    std::condition_variable wake;  // done, or a leader slot to take (guarded by mutex_)
  };

  // With the lock held: a free leader slot goes to the oldest caller still queued.
  void wake_next_leader() {
    if (leaders_ < max_leaders_ && !queue_.empty()) queue_.front()->wake.notify_one();
  }

  template <class Run>
  static void execute(const std::vector<Entry*>& batch, Run& run) {
    std::vector<Slot*> slots;
    slots.reserve(batch.size());
    for (Entry* e : batch) slots.push_back(&e->slot);
    try {
      run(std::span<Slot*>(slots));
    } catch (...) {
      for (Slot* s : slots) s->error = std::current_exception();
      return;
    }
    for (Slot* s : slots) {
      if (!s->output && !s->error) {
        s->error = std::make_exception_ptr(std::logic_error("batch left a request unanswered"));
      }
    }
  }

  const std::size_t max_batch_;
  const int max_leaders_;
  mutable std::mutex mutex_;
  std::deque<Entry*> queue_;
  int leaders_ = 0;
};

}  // namespace transnotes::storage
