#include "translation/batching_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <iterator>

#include "domain/errors.h"

namespace transnotes::translation {

namespace {

BatchingOptions checked(BatchingOptions options) {
  options.max_segments = std::max<std::size_t>(options.max_segments, 1);
  options.max_running_batches = std::max(options.max_running_batches, 1);
  options.wait = std::max(options.wait, std::chrono::microseconds::zero());
  return options;
}

TranslationFailed abandoned_error() {
  return TranslationFailed("translation abandoned: the engine is shutting down");
}

}  // namespace

// One translate_batch call, on its caller's stack. Once `taken` it belongs to a running batch and
// its caller must wait for `done` (the leader writes into it), even after abandon().
struct BatchingEngine::Request {
  const std::vector<std::string>* segments = nullptr;
  std::chrono::steady_clock::time_point arrived;
  std::condition_variable wake;  // done, its turn to lead, or abandoned
  bool taken = false;
  bool done = false;
  std::vector<std::string> results;
  std::exception_ptr error;
};

struct BatchingEngine::PairQueue {
  PairQueue(std::string source_code, std::string target_code)
      : source(std::move(source_code)), target(std::move(target_code)) {}
  const std::string source;
  const std::string target;
  std::deque<Request*> pending;  // arrival order
  std::size_t pending_segments = 0;
  int running = 0;                  // batches of this pair in the inner engine
  std::condition_variable company;  // a leader waiting for company is told of each arrival
};

BatchingEngine::BatchingEngine(std::shared_ptr<Engine> inner, BatchingOptions options)
    : inner_(std::move(inner)), options_(checked(options)) {}

BatchingEngine::~BatchingEngine() = default;

bool BatchingEngine::is_abandoned() const {
  std::lock_guard lock(mutex_);
  return abandoned_;
}

BatchingStats BatchingEngine::stats() const {
  BatchingStats out;
  out.inner_calls = inner_calls_.load();
  out.batched_calls = batched_calls_.load();
  out.segments = segments_.load();
  out.failed_batches = failed_batches_.load();
  return out;
}

std::size_t BatchingEngine::queued_calls(const std::string& source,
                                         const std::string& target) const {
  std::lock_guard lock(mutex_);
  const auto found = queues_.find({source, target});
  return found == queues_.end() ? 0 : found->second->pending.size();
}

std::vector<std::string> BatchingEngine::translate_batch(const std::string& source,
                                                         const std::string& target,
                                                         const std::vector<std::string>& segments) {
  if (segments.empty()) return {};
  Request request;
  request.segments = &segments;
  request.arrived = std::chrono::steady_clock::now();

  std::unique_lock lock(mutex_);
  if (abandoned_) throw abandoned_error();
  auto& slot = queues_[{source, target}];
  if (!slot) slot = std::make_unique<PairQueue>(source, target);
  PairQueue& queue = *slot;
  queue.pending.push_back(&request);
  queue.pending_segments += segments.size();
  queue.company.notify_one();

  while (!request.done) {
    if (abandoned_ && !request.taken) {
      queue.pending.erase(std::find(queue.pending.begin(), queue.pending.end(), &request));
      queue.pending_segments -= segments.size();
      throw abandoned_error();
    }
    const bool leads = !request.taken && queue.running < options_.max_running_batches &&
                       queue.pending.front() == &request;
    if (!leads) {
      request.wake.wait(lock);
      continue;
    }
    // Waiting counts from this call's arrival: one that queued behind a running batch has
    // usually waited long enough already and goes at once.
    const auto deadline = request.arrived + options_.wait;
    while (!abandoned_ && queue.pending_segments < options_.max_segments &&
           std::chrono::steady_clock::now() < deadline) {
      queue.company.wait_until(lock, deadline);
    }
    if (abandoned_) continue;
    std::vector<Request*> batch;
    batch.reserve(queue.pending.size());  // nothing below may throw once calls are taken
    std::size_t batch_segments = 0;
    while (!queue.pending.empty()) {
      Request* next = queue.pending.front();
      const std::size_t size = next->segments->size();
      if (!batch.empty() && batch_segments + size > options_.max_segments) break;
      queue.pending.pop_front();
      queue.pending_segments -= size;
      next->taken = true;
      batch.push_back(next);
      batch_segments += size;
    }
    ++queue.running;
    if (!queue.pending.empty() && queue.running < options_.max_running_batches)
      queue.pending.front()->wake.notify_one();  // it may lead a batch of its own at once
    lock.unlock();
    spdlog::debug("batching {}-{}: {} calls, {} segments in one batch", queue.source, queue.target,
                  batch.size(), batch_segments);
    run_batch(queue, batch);
    lock.lock();
    --queue.running;
    for (Request* served : batch) {
      served->done = true;
      // Under mutex_: a caller cannot leave (and destroy its Request) before this returns.
      if (served != &request) served->wake.notify_one();
    }
    if (!queue.pending.empty()) queue.pending.front()->wake.notify_one();  // the next leader
  }
  lock.unlock();
  if (request.error) std::rethrow_exception(request.error);
  return std::move(request.results);
}

void BatchingEngine::run_alone(const PairQueue& queue, Request& request) {
  inner_calls_.fetch_add(1, std::memory_order_relaxed);
  try {
    request.results = inner_->translate_batch(queue.source, queue.target, *request.segments);
  } catch (...) {
    request.error = std::current_exception();
  }
}

void BatchingEngine::run_batch(const PairQueue& queue, const std::vector<Request*>& batch) {
  std::size_t total = 0;
  for (const Request* request : batch) total += request->segments->size();
  batched_calls_.fetch_add(batch.size(), std::memory_order_relaxed);
  segments_.fetch_add(total, std::memory_order_relaxed);
  if (batch.size() == 1) {
    run_alone(queue, *batch.front());
    return;
  }
  inner_calls_.fetch_add(1, std::memory_order_relaxed);
  try {
    std::vector<std::string> combined;
    combined.reserve(total);
    for (const Request* request : batch)
      combined.insert(combined.end(), request->segments->begin(), request->segments->end());
    auto outputs = inner_->translate_batch(queue.source, queue.target, combined);
    if (outputs.size() == combined.size()) {
      auto from = outputs.begin();
      for (Request* request : batch) {
        const auto count = static_cast<std::ptrdiff_t>(request->segments->size());
        request->results.assign(std::make_move_iterator(from),
                                std::make_move_iterator(from + count));
        from += count;
      }
      return;
    }
    // A result count that does not match cannot be sliced: each call alone shows whose it is.
  } catch (...) {
    // Whose segments made it fail is unknown: each call is retried alone below.
  }
  failed_batches_.fetch_add(1, std::memory_order_relaxed);
  if (is_abandoned()) {
    // A shutdown, not a bad segment: retrying would only delay it.
    for (Request* request : batch) request->error = std::make_exception_ptr(abandoned_error());
    return;
  }
  for (Request* request : batch) run_alone(queue, *request);
}

void BatchingEngine::abandon() {
  {
    std::lock_guard lock(mutex_);
    abandoned_ = true;
    for (auto& [pair, queue] : queues_) {
      queue->company.notify_all();
      for (Request* request : queue->pending) request->wake.notify_one();
    }
  }
  inner_->abandon();
}

}  // namespace transnotes::translation
