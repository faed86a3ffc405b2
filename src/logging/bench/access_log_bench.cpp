// Cost of AccessLog::record() on the request thread (Google Benchmark), writing to /dev/null:
//   build/release/src/logging/access_log_bench
// The background writer's work is not on the request path and is not counted per line.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <memory>

#include "logging/access_log.h"
#include "logging/logging.h"

namespace transnotes::logging {
namespace {

AccessEntry typical_entry() {
  AccessEntry entry;
  entry.method = "GET";
  entry.route = "/api/v1/notes/{id}/";
  entry.status = 200;
  entry.duration = std::chrono::microseconds(42);
  entry.bytes = 224;
  entry.request_id = "0123456789abcdef0123456789abcdef";
  entry.user_id = "17";
  entry.remote_address = "127.0.0.1";
  return entry;
}

AccessLog& shared_log(LogFormat format) {
  static const int null_fd = ::open("/dev/null", O_WRONLY);
  static AccessLog* logs[2] = {};
  auto& log = logs[format == LogFormat::json ? 1 : 0];
  if (!log) {
    AccessLogOptions options;
    options.fd = null_fd;
    options.format = format;
    // Millions of lines a second (far beyond a server's rate) would otherwise fill the default
    // bound between two writer rounds on a busy machine, and dropping is cheaper than recording.
    options.max_buffer_bytes = 256u << 20;
    log = new AccessLog(options);
  }
  return *log;
}

void record(benchmark::State& state, LogFormat format) {
  static AccessLog& json = shared_log(LogFormat::json);
  static AccessLog& text = shared_log(LogFormat::text);
  AccessLog& log = format == LogFormat::json ? json : text;
  const auto entry = typical_entry();
  for (auto _ : state) log.record(entry);
  state.SetItemsProcessed(state.iterations());
  state.counters["dropped_total"] = static_cast<double>(log.dropped_lines());
}

void BM_RecordJson(benchmark::State& state) { record(state, LogFormat::json); }
void BM_RecordText(benchmark::State& state) { record(state, LogFormat::text); }
BENCHMARK(BM_RecordJson)->Threads(1)->Threads(4);
BENCHMARK(BM_RecordText)->Threads(1)->Threads(4);

}  // namespace
}  // namespace transnotes::logging

BENCHMARK_MAIN();
