// BatchingEngine: an Engine decorator that lets concurrent translate_batch calls of the same
// language pair (different jobs on different worker threads) share one call of the engine it
// wraps, so a neural engine runs one forward pass over many jobs' sentences instead of one small
// pass per job. A batched MarianMT pass costs far less per sentence than a one-note pass: the
// weights stream from memory once per decoding step for every row of the batch.
//
// How a call goes: it queues its segments under its pair. When fewer than max_running_batches
// batches of that pair are running (by default: none), the oldest queued call leads: it waits up to
// `wait` (from its own arrival) for company, or less once `max_segments` are queued, then takes
// queued calls in arrival order up to `max_segments` (always at least its own) and runs ONE inner
// translate_batch over their concatenation; every caller gets its own slice. Calls that arrive
// while a batch runs form the next one, and their wait is usually over by then: under load there is
// no added delay, only at the first call after a quiet spell. Different pairs never share a batch
// and never wait for each other.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "translation/engine.h"

namespace transnotes::translation {

struct BatchingOptions {
  // How long the first call after a quiet spell waits for other calls of its pair. 0: none
  // (calls still share a batch when they queue up behind a running one).
  std::chrono::microseconds wait{2'000};
  // Segments per inner call (at least 1). A call with more segments than this runs alone; calls
  // are never split across inner calls.
  std::size_t max_segments = 64;
  // Batches of one pair in the wrapped engine at once (at least 1). 1: a pair's calls queue while
  // its batch runs. 2 lets the next batch start while one runs: on a machine shared with other
  // work, a batch whose thread is descheduled then no longer leaves the cores idle.
  int max_running_batches = 1;
};

// What the batcher has done so far.
struct BatchingStats {
  std::uint64_t inner_calls = 0;     // translate_batch calls on the wrapped engine
  std::uint64_t batched_calls = 0;   // callers served
  std::uint64_t segments = 0;        // segments translated
  std::uint64_t failed_batches = 0;  // combined batches that threw and were retried call by call
};

class BatchingEngine : public Engine {
 public:
  // `inner` must be thread-safe for calls of different pairs (every Engine is).
  explicit BatchingEngine(std::shared_ptr<Engine> inner, BatchingOptions options = {});
  ~BatchingEngine() override;
  BatchingEngine(const BatchingEngine&) = delete;
  BatchingEngine& operator=(const BatchingEngine&) = delete;

  std::string name() const override { return inner_->name(); }
  std::vector<LanguagePair> pairs() const override { return inner_->pairs(); }
  // result[i] is segments[i]'s translation, exactly as the wrapped engine translates it. When a
  // combined batch throws, each of its calls is retried alone, so only a call whose own segments
  // fail gets an error (the wrapped engine's, as it threw it). Throws TranslationFailed after
  // abandon().
  std::vector<std::string> translate_batch(const std::string& source, const std::string& target,
                                           const std::vector<std::string>& segments) override;
  // Calls still queued end at once with TranslationFailed; the running batch ends as promptly as
  // the wrapped engine's abandon() makes it. Irreversible.
  void abandon() override;

  BatchingStats stats() const;
  // Calls of the pair queued for a batch that has not started yet.
  std::size_t queued_calls(const std::string& source, const std::string& target) const;
  const Engine& inner() const { return *inner_; }

 private:
  struct Request;
  struct PairQueue;

  // Runs one gathered batch without holding mutex_ and fills every request's results or error.
  void run_batch(const PairQueue& queue, const std::vector<Request*>& batch);
  void run_alone(const PairQueue& queue, Request& request);
  bool is_abandoned() const;

  const std::shared_ptr<Engine> inner_;
  const BatchingOptions options_;
  mutable std::mutex mutex_;
  bool abandoned_ = false;  // guarded by mutex_
  // One queue per pair, created on first use and kept (an engine serves a handful of pairs).
  std::map<std::pair<std::string, std::string>, std::unique_ptr<PairQueue>> queues_;  // ditto
  std::atomic<std::uint64_t> inner_calls_{0};
  std::atomic<std::uint64_t> batched_calls_{0};
  std::atomic<std::uint64_t> segments_{0};
  std::atomic<std::uint64_t> failed_batches_{0};
};

}  // namespace transnotes::translation
