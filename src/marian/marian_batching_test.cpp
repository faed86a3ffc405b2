// Cross-job batching with the real MarianEngine on the tiny-en-es fixture: the sentences of
// several calls translated in one padded batch come out exactly as each call alone gives them.
#include <gtest/gtest.h>

#include <thread>

#include "marian/marian_engine.h"
#include "marian/tiny_fixture_test_support.h"
#include "translation/batching_engine.h"

namespace transnotes::marian {
namespace {

using translation::BatchingEngine;
using translation::BatchingOptions;
using Segments = std::vector<std::string>;

// Calls of different sizes and sentence lengths (so the batch pads short rows), with a blank
// segment and a text longer than most.
std::vector<Segments> calls() {
  std::vector<Segments> out;
  Segments current;
  std::size_t size = 1;
  for (const auto& item : tiny_fixture::expected().at("cases").as_array()) {
    current.emplace_back(item.as_object().at("src").as_string());
    if (current.size() == size) {
      out.push_back(std::move(current));
      current.clear();
      size = size % 4 + 1;
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

void expect_batched_equals_alone(int beams, bool int8) {
  ASSERT_TRUE(std::filesystem::is_regular_file(tiny_fixture::dir() / "model.safetensors"))
      << "MarianMT fixture not found at " << tiny_fixture::dir();
  MarianEngineOptions options;
  options.num_threads = 1;
  options.num_beams = beams;
  options.max_length = 64;
  options.int8 = int8;
  auto engine = std::make_shared<MarianEngine>(
      std::vector<MarianModelDir>{{tiny_fixture::dir(), LanguagePair{"en", "es"}}}, options);
  const auto inputs = calls();
  ASSERT_GE(inputs.size(), 6u);

  std::vector<Segments> alone;
  std::size_t total = 0;
  for (const auto& input : inputs) {
    alone.push_back(engine->translate_batch("en", "es", input));
    total += input.size();
  }

  // Waits until every call has arrived (the segment budget is then exactly full), so all of
  // them share one inner call whatever the threads' timing.
  BatchingOptions batching;
  batching.wait = std::chrono::hours(1);
  batching.max_segments = total;
  BatchingEngine batcher(engine, batching);
  std::vector<Segments> batched(inputs.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    threads.emplace_back([&, i] { batched[i] = batcher.translate_batch("en", "es", inputs[i]); });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(batcher.stats().inner_calls, 1u);
  for (std::size_t i = 0; i < inputs.size(); ++i) EXPECT_EQ(batched[i], alone[i]) << "call " << i;
  // Sanity: the fixture really translates (the oracle's own greedy output for this sentence).
  if (beams == 1) {
    EXPECT_EQ(alone[0][0], "El gato está en la mesa.");
  }
}

TEST(MarianBatching, BatchedCallsMatchEachCallAloneGreedy) {
  expect_batched_equals_alone(1, false);
}

TEST(MarianBatching, BatchedCallsMatchEachCallAloneBeam) { expect_batched_equals_alone(4, false); }

TEST(MarianBatching, BatchedCallsMatchEachCallAloneInt8Beam) {
  expect_batched_equals_alone(4, true);
}

}  // namespace
}  // namespace transnotes::marian
