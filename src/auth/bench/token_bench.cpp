// How long the per-request token check takes (it runs on the HTTP event loop), and issuing.
#include <benchmark/benchmark.h>

#include <string>

#include "auth/tokens.h"

namespace {

using transnotes::auth::TokenCodec;
using transnotes::auth::TokenType;

const std::string kKey = "benchmark-signing-key-0123456789abcdef0123456789";

void DecodeAccessToken(benchmark::State& state) {
  TokenCodec codec(kKey);
  const std::string token = codec.issue(12345, TokenType::kAccess);
  for (auto _ : state) {
    auto result = codec.decode(token, TokenType::kAccess);
    benchmark::DoNotOptimize(result);
    if (!result.ok()) state.SkipWithError("token refused");
  }
}
BENCHMARK(DecodeAccessToken);

void DecodeForgedToken(benchmark::State& state) {
  TokenCodec codec(kKey);
  std::string token = codec.issue(12345, TokenType::kAccess);
  token.back() = token.back() == 'A' ? 'B' : 'A';
  for (auto _ : state) {
    auto result = codec.decode(token, TokenType::kAccess);
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(DecodeForgedToken);

void IssuePair(benchmark::State& state) {
  TokenCodec codec(kKey);
  for (auto _ : state) {
    auto pair = codec.issue_pair(12345);
    benchmark::DoNotOptimize(pair);
  }
}
BENCHMARK(IssuePair);

}  // namespace

BENCHMARK_MAIN();
