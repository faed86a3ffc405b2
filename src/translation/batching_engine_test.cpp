#include "translation/batching_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "domain/errors.h"

namespace transnotes::translation {
namespace {

using namespace std::chrono_literals;
using Segments = std::vector<std::string>;

// The engine under the batcher: translates "x" to "<target>:x", records every batch it is given
// (pair and segments), fails a batch holding a segment "poison", and can hold one pair's calls
// at the door (after recording them) until released, so tests decide what queues behind a
// running batch.
class RecordingEngine : public Engine {
 public:
  struct Batch {
    std::string target;
    Segments segments;
  };

  std::string name() const override { return "recording"; }
  std::vector<LanguagePair> pairs() const override { return {{"en", "es"}, {"en", "fr"}}; }
  std::vector<std::string> translate_batch(const std::string& /*source*/, const std::string& target,
                                           const Segments& segments) override {
    std::unique_lock lock(mutex_);
    batches_.push_back({target, segments});
    changed_.notify_all();
    changed_.wait(lock, [&] { return held_target_ != target || abandoned_; });
    if (abandoned_) throw TranslationFailed("recording: abandoned");
    if (std::find(segments.begin(), segments.end(), "poison") != segments.end())
      throw TranslationFailed("recording: cannot translate poison");
    Segments out;
    for (const auto& segment : segments) out.push_back(target + ":" + segment);
    return out;
  }
  void abandon() override {
    std::lock_guard lock(mutex_);
    abandoned_ = true;
    changed_.notify_all();
  }

  void hold(const std::string& target) {
    std::lock_guard lock(mutex_);
    held_target_ = target;
  }
  void release() {
    std::lock_guard lock(mutex_);
    held_target_.reset();
    changed_.notify_all();
  }
  void wait_for_batches(std::size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return batches_.size() >= count; });
  }
  std::vector<Batch> batches() {
    std::lock_guard lock(mutex_);
    return batches_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Batch> batches_;
  std::optional<std::string> held_target_;
  bool abandoned_ = false;
};

// One caller on its own thread: its result or the message of what it threw.
struct Caller {
  Segments result;
  std::string error;
  std::thread thread;

  void start(BatchingEngine& engine, std::string target, Segments segments) {
    thread =
        std::thread([this, &engine, target = std::move(target), segments = std::move(segments)] {
          try {
            result = engine.translate_batch("en", target, segments);
          } catch (const TranslationFailed& e) {
            error = e.what();
          }
        });
  }
  void join() { thread.join(); }
};

// Polls until `queued` calls of en->target wait for a batch: the batcher's queue is the only
// place that knows, and polling it leaves the batcher's own timing alone.
void wait_until_queued(const BatchingEngine& engine, const std::string& target,
                       std::size_t queued) {
  while (engine.queued_calls("en", target) < queued) std::this_thread::sleep_for(1ms);
}

BatchingOptions no_wait(std::size_t max_segments = 64) {
  BatchingOptions options;
  options.wait = 0us;
  options.max_segments = max_segments;
  return options;
}

// Starts a call that enters the inner engine and stays there (the pair is held), so that the
// next calls of the pair queue behind it.
void occupy(RecordingEngine& inner, BatchingEngine& engine, Caller& first) {
  inner.hold("es");
  first.start(engine, "es", {"head"});
  inner.wait_for_batches(1);
}

// With `first` holding the pair, queues one call per input in this order (each is in the
// batcher's queue before the next starts), then lets them all run and waits for every caller.
std::vector<Caller> queue_then_release(RecordingEngine& inner, BatchingEngine& engine,
                                       Caller& first, const std::vector<Segments>& inputs) {
  std::vector<Caller> callers(inputs.size());  // never moved: each thread holds its Caller
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    callers[i].start(engine, "es", inputs[i]);
    wait_until_queued(engine, "es", i + 1);
  }
  inner.release();
  first.join();
  for (auto& caller : callers) caller.join();
  return callers;
}

TEST(BatchingEngine, QueuedCallsShareOneInnerCallAndEachGetsItsOwnResultsInOrder) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingEngine engine(inner, no_wait());
  Caller first;
  occupy(*inner, engine, first);
  std::vector<Segments> inputs = {
      {"a1", "a2", "a3"}, {"b1"}, {"c1", "c2"}, {"d1", "d2", "d3", "d4"}};
  std::vector<Caller> callers = queue_then_release(*inner, engine, first, inputs);

  EXPECT_EQ(first.result, Segments{"es:head"});
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Segments want;
    for (const auto& segment : inputs[i]) want.push_back("es:" + segment);
    EXPECT_EQ(callers[i].result, want) << "caller " << i;
    EXPECT_EQ(callers[i].error, "");
  }
  const auto batches = inner->batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[1].segments,
            (Segments{"a1", "a2", "a3", "b1", "c1", "c2", "d1", "d2", "d3", "d4"}));
  const auto stats = engine.stats();
  EXPECT_EQ(stats.inner_calls, 2u);
  EXPECT_EQ(stats.batched_calls, 5u);
  EXPECT_EQ(stats.segments, 11u);
  EXPECT_EQ(stats.failed_batches, 0u);
}

TEST(BatchingEngine, LeaderWaitsForCompanyUntilTheSegmentBudgetIsFull) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingOptions options;
  options.wait = 1h;  // only a full budget can start this batch
  options.max_segments = 5;
  BatchingEngine engine(inner, options);
  std::vector<Caller> callers(3);
  callers[0].start(engine, "es", {"a1", "a2"});
  wait_until_queued(engine, "es", 1);
  callers[1].start(engine, "es", {"b1"});
  wait_until_queued(engine, "es", 2);
  callers[2].start(engine, "es", {"c1", "c2"});
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(callers[0].result, (Segments{"es:a1", "es:a2"}));
  EXPECT_EQ(callers[1].result, Segments{"es:b1"});
  EXPECT_EQ(callers[2].result, (Segments{"es:c1", "es:c2"}));
  const auto batches = inner->batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].segments, (Segments{"a1", "a2", "b1", "c1", "c2"}));
}

TEST(BatchingEngine, DifferentPairsNeverShareABatchNorWaitForEachOther) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingEngine engine(inner, no_wait());
  Caller first;
  occupy(*inner, engine, first);
  Caller spanish;
  spanish.start(engine, "es", {"s1"});
  wait_until_queued(engine, "es", 1);
  // en->fr runs while en->es is held in the engine and another en->es call is queued.
  Caller french;
  french.start(engine, "fr", {"f1", "f2"});
  french.join();
  EXPECT_EQ(french.result, (Segments{"fr:f1", "fr:f2"}));
  inner->release();
  first.join();
  spanish.join();
  EXPECT_EQ(spanish.result, Segments{"es:s1"});
  for (const auto& batch : inner->batches()) {
    for (const auto& segment : batch.segments)
      EXPECT_EQ(segment[0] == 'f', batch.target == "fr") << segment << " went to " << batch.target;
  }
  EXPECT_EQ(inner->batches().size(), 3u);
}

TEST(BatchingEngine, ALoneCallGoesThroughAfterItsWait) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingOptions options;
  options.wait = 30ms;
  BatchingEngine engine(inner, options);
  const auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(engine.translate_batch("en", "es", {"hello", "world"}),
            (Segments{"es:hello", "es:world"}));
  EXPECT_GE(std::chrono::steady_clock::now() - began, 30ms);  // it did wait for company
  // And again, with nobody else around: the queue is left clean for the next call.
  EXPECT_EQ(engine.translate_batch("en", "es", {"again"}), Segments{"es:again"});
  EXPECT_EQ(engine.translate_batch("en", "es", {}), Segments{});
  EXPECT_EQ(inner->batches().size(), 2u);
  EXPECT_EQ(engine.queued_calls("en", "es"), 0u);

  BatchingEngine no_wait_engine(inner, no_wait());
  EXPECT_EQ(no_wait_engine.translate_batch("en", "fr", {"x"}), Segments{"fr:x"});
}

TEST(BatchingEngine, AFailingCombinedBatchFailsOnlyTheCallerWhoseSegmentsFail) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingEngine engine(inner, no_wait());
  Caller first;
  occupy(*inner, engine, first);
  std::vector<Segments> inputs = {{"a1", "a2"}, {"b1", "poison"}, {"c1"}};
  std::vector<Caller> callers = queue_then_release(*inner, engine, first, inputs);
  EXPECT_EQ(callers[0].result, (Segments{"es:a1", "es:a2"}));
  EXPECT_EQ(callers[0].error, "");
  EXPECT_EQ(callers[1].result, Segments{});
  EXPECT_EQ(callers[1].error, "recording: cannot translate poison");
  EXPECT_EQ(callers[2].result, Segments{"es:c1"});
  EXPECT_EQ(callers[2].error, "");
  // first, the combined batch that failed, then each call alone.
  const auto batches = inner->batches();
  ASSERT_EQ(batches.size(), 5u);
  EXPECT_EQ(batches[1].segments, (Segments{"a1", "a2", "b1", "poison", "c1"}));
  EXPECT_EQ(engine.stats().failed_batches, 1u);
}

TEST(BatchingEngine, AbandonReleasesQueuedCallersAndTheRunningBatch) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingEngine engine(inner, no_wait());
  Caller first;
  occupy(*inner, engine, first);
  std::vector<Caller> callers(3);
  for (std::size_t i = 0; i < callers.size(); ++i) {
    callers[i].start(engine, "es", {"q" + std::to_string(i)});
    wait_until_queued(engine, "es", i + 1);
  }
  engine.abandon();  // the held call is released by the inner engine's abandon, never by release()
  first.join();
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(first.error, "recording: abandoned");
  for (const auto& caller : callers) {
    EXPECT_NE(caller.error.find("abandoned"), std::string::npos) << caller.error;
    EXPECT_EQ(caller.result, Segments{});
  }
  EXPECT_EQ(inner->batches().size(), 1u);  // none of the queued calls reached the engine
  EXPECT_THROW(engine.translate_batch("en", "es", {"later"}), TranslationFailed);
}

TEST(BatchingEngine, AbandonReleasesALeaderWaitingForCompany) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingOptions options;
  options.wait = 1h;
  BatchingEngine engine(inner, options);
  Caller waiting;
  waiting.start(engine, "es", {"alone"});
  wait_until_queued(engine, "es", 1);
  engine.abandon();
  waiting.join();
  EXPECT_NE(waiting.error.find("abandoned"), std::string::npos) << waiting.error;
  EXPECT_TRUE(inner->batches().empty());
}

TEST(BatchingEngine, TheSegmentBudgetSplitsQueuedCallsIntoBatchesInArrivalOrder) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingEngine engine(inner, no_wait(/*max_segments=*/4));
  Caller first;
  occupy(*inner, engine, first);
  // 2+2 fill a batch; 3+1 the next; 6 exceeds the budget and goes alone, never split; 1 last.
  std::vector<Segments> inputs = {
      {"a1", "a2"}, {"b1", "b2"}, {"c1", "c2", "c3"}, {"d1"}, {"e1", "e2", "e3", "e4", "e5", "e6"},
      {"f1"}};
  std::vector<Caller> callers = queue_then_release(*inner, engine, first, inputs);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(callers[i].result.size(), inputs[i].size()) << "caller " << i;
    EXPECT_EQ(callers[i].result.back(), "es:" + inputs[i].back()) << "caller " << i;
  }
  std::vector<Segments> sent;
  for (const auto& batch : inner->batches()) sent.push_back(batch.segments);
  EXPECT_EQ(sent, (std::vector<Segments>{{"head"},
                                         {"a1", "a2", "b1", "b2"},
                                         {"c1", "c2", "c3", "d1"},
                                         {"e1", "e2", "e3", "e4", "e5", "e6"},
                                         {"f1"}}));
}

TEST(BatchingEngine, WithTwoRunningBatchesTheNextStartsWhileOneRuns) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingOptions options = no_wait();
  options.max_running_batches = 2;
  BatchingEngine engine(inner, options);
  Caller first;
  occupy(*inner, engine, first);
  Caller second;  // leads a batch of its own although the first is still in the engine
  second.start(engine, "es", {"s1", "s2"});
  inner->wait_for_batches(2);
  std::vector<Caller> queued(2);  // both slots are taken: these wait and then share one batch
  for (std::size_t i = 0; i < queued.size(); ++i) {
    queued[i].start(engine, "es", {"q" + std::to_string(i)});
    wait_until_queued(engine, "es", i + 1);
  }
  inner->release();
  first.join();
  second.join();
  for (auto& caller : queued) caller.join();
  EXPECT_EQ(second.result, (Segments{"es:s1", "es:s2"}));
  EXPECT_EQ(queued[0].result, Segments{"es:q0"});
  EXPECT_EQ(queued[1].result, Segments{"es:q1"});
  std::vector<Segments> sent;
  for (const auto& batch : inner->batches()) sent.push_back(batch.segments);
  EXPECT_EQ(sent, (std::vector<Segments>{{"head"}, {"s1", "s2"}, {"q0", "q1"}}));
}

class ManyCallers : public ::testing::TestWithParam<int> {};

TEST_P(ManyCallers, AllGetTheirOwnResults) {
  auto inner = std::make_shared<RecordingEngine>();
  BatchingOptions options;
  options.wait = 1ms;
  options.max_segments = 16;
  options.max_running_batches = GetParam();
  BatchingEngine engine(inner, options);
  constexpr int kThreads = 16;
  constexpr int kRounds = 50;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        Segments in;
        for (int s = 0; s <= (t + round) % 5; ++s)
          in.push_back(std::to_string(t) + "." + std::to_string(round) + "." + std::to_string(s));
        const std::string target = t % 2 ? "es" : "fr";
        const auto out = engine.translate_batch("en", target, in);
        bool same = out.size() == in.size();
        for (std::size_t i = 0; same && i < in.size(); ++i) same = out[i] == target + ":" + in[i];
        if (!same) ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(engine.stats().batched_calls, std::uint64_t{kThreads} * kRounds);
  for (const auto& batch : inner->batches()) EXPECT_LE(batch.segments.size(), 16u);
}

INSTANTIATE_TEST_SUITE_P(BatchingEngine, ManyCallers, ::testing::Values(1, 2));

}  // namespace
}  // namespace transnotes::translation
