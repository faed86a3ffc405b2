#include "metrics/http_metrics.h"

#include <array>
#include <atomic>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>

namespace transnotes::metrics {

namespace {

using namespace std::chrono_literals;

// The standard .005 ... 10 s buckets, in the nanoseconds observe() is given.
constexpr std::array<std::chrono::nanoseconds, 11> kBounds = {
    5ms, 10ms, 25ms, 50ms, 100ms, 250ms, 500ms, 1000ms, 2500ms, 5000ms, 10000ms};
constexpr std::size_t kBuckets = kBounds.size() + 1;  // the last one is +Inf

constexpr std::array<const char*, 8> kMethods = {"GET",   "HEAD",   "POST",    "PUT",
                                                 "PATCH", "DELETE", "OPTIONS", "other"};

// Threads pick a shard once, round robin, so the event-loop threads each write their own cache
// lines instead of bouncing one between cores.
constexpr std::size_t kShards = 16;
// Distinct status codes with a counter slot of their own; the rare ones beyond go to a map
// under a mutex.
constexpr std::size_t kCodeSlots = 16;
constexpr int kLowestCode = 100;
constexpr int kHighestCode = 599;

std::atomic<std::size_t> next_shard{0};
thread_local const std::size_t this_thread_shard =
    next_shard.fetch_add(1, std::memory_order_relaxed) % kShards;

std::size_t method_index(std::string_view method) {
  switch (method.size()) {
    case 3:
      if (method == "GET") return 0;
      if (method == "PUT") return 3;
      break;
    case 4:
      if (method == "HEAD") return 1;
      if (method == "POST") return 2;
      break;
    case 5:
      if (method == "PATCH") return 4;
      break;
    case 6:
      if (method == "DELETE") return 5;
      break;
    case 7:
      if (method == "OPTIONS") return 6;
      break;
    default:
      break;
  }
  return kMethods.size() - 1;
}

std::size_t bucket_of(std::chrono::nanoseconds duration) {
  std::size_t bucket = 0;
  while (bucket < kBounds.size() && duration > kBounds[bucket]) ++bucket;
  return bucket;
}

// One (method, route) in one shard: a cache-line-aligned block only that shard's threads write.
struct alignas(64) Cell {
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets{};  // per bucket, not cumulative
  std::atomic<std::uint64_t> sum_ns{0};
  std::array<std::atomic<std::uint64_t>, kCodeSlots> by_code{};
};

struct alignas(64) InFlightShard {
  std::atomic<std::int64_t> value{0};
};

}  // namespace

struct HttpMetrics::Counters final : prometheus::Collectable {
  explicit Counters(const std::vector<std::string>& route_templates) {
    routes.push_back("unmatched");
    for (const auto& route : route_templates) {
      if (route == "unmatched") continue;
      bool seen = false;
      for (const auto& known : routes) seen = seen || known == route;
      if (!seen) routes.push_back(route);
    }
    for (RouteId id = 1; id < routes.size(); ++id) ids.emplace(routes[id], id);
    cells_per_shard = kMethods.size() * routes.size();
    cells = std::make_unique<Cell[]>(kShards * cells_per_shard);
  }

  Cell& cell(std::size_t shard, std::size_t method, RouteId route) {
    return cells[shard * cells_per_shard + method * routes.size() + route];
  }
  const Cell& cell(std::size_t shard, std::size_t method, RouteId route) const {
    return cells[shard * cells_per_shard + method * routes.size() + route];
  }

  // The counter slot of `status`, or -1 when it has none (out of range, or every slot taken).
  int slot_of(int status) {
    if (status < kLowestCode || status > kHighestCode) return -1;
    auto& entry = slot_plus_one[static_cast<std::size_t>(status - kLowestCode)];
    if (const int known = entry.load(std::memory_order_acquire)) return known - 1;
    std::lock_guard lock(slot_mutex);  // once per distinct status code in the process's life
    if (const int known = entry.load(std::memory_order_relaxed)) return known - 1;
    if (next_slot == kCodeSlots) return -1;
    const int slot = static_cast<int>(next_slot++);
    code_of_slot[static_cast<std::size_t>(slot)].store(status, std::memory_order_relaxed);
    entry.store(slot + 1, std::memory_order_release);
    return slot;
  }

  std::vector<prometheus::MetricFamily> Collect() const override;

  std::vector<std::string> routes;                    // [kUnmatched] = "unmatched"
  std::unordered_map<std::string_view, RouteId> ids;  // views into `routes`; fixed after build
  std::size_t cells_per_shard = 0;
  std::unique_ptr<Cell[]> cells;  // [shard][method][route]
  std::array<InFlightShard, kShards> in_flight;

  std::array<std::atomic<int>, kHighestCode - kLowestCode + 1> slot_plus_one{};  // 0: none yet
  std::array<std::atomic<int>, kCodeSlots> code_of_slot{};
  std::mutex slot_mutex;
  std::size_t next_slot = 0;  // guarded by slot_mutex

  mutable std::mutex overflow_mutex;
  std::map<std::tuple<std::size_t, RouteId, int>, std::uint64_t>
      overflow;  // by method, route, code

  mutable std::mutex watch_mutex;
  std::function<ConnectionFigures()> connections;
  std::function<ApiFigures()> api;
};

std::vector<prometheus::MetricFamily> HttpMetrics::Counters::Collect() const {
  prometheus::MetricFamily requests;
  requests.name = "http_requests_total";
  requests.help = "HTTP requests answered, by method, route template and status code.";
  requests.type = prometheus::MetricType::Counter;
  prometheus::MetricFamily durations;
  durations.name = "http_request_duration_seconds";
  durations.help =
      "Time from a complete HTTP request to its response handed to the connection, by method and "
      "route template.";
  durations.type = prometheus::MetricType::Histogram;

  std::array<int, kCodeSlots> codes{};
  for (std::size_t slot = 0; slot < kCodeSlots; ++slot)
    codes[slot] = code_of_slot[slot].load(std::memory_order_acquire);
  std::map<std::tuple<std::size_t, RouteId, int>, std::uint64_t> by_code;
  {
    std::lock_guard lock(overflow_mutex);
    by_code = overflow;
  }
  for (std::size_t method = 0; method < kMethods.size(); ++method) {
    for (RouteId route = 0; route < routes.size(); ++route) {
      std::array<std::uint64_t, kBuckets> buckets{};
      std::uint64_t sum_ns = 0;
      for (std::size_t shard = 0; shard < kShards; ++shard) {
        const Cell& c = cell(shard, method, route);
        for (std::size_t b = 0; b < kBuckets; ++b)
          buckets[b] += c.buckets[b].load(std::memory_order_relaxed);
        sum_ns += c.sum_ns.load(std::memory_order_relaxed);
        for (std::size_t slot = 0; slot < kCodeSlots; ++slot) {
          const auto n = c.by_code[slot].load(std::memory_order_relaxed);
          if (n != 0) by_code[{method, route, codes[slot]}] += n;
        }
      }
      std::uint64_t count = 0;
      for (auto n : buckets) count += n;
      if (count == 0) continue;
      prometheus::ClientMetric metric;
      metric.label = {{"method", kMethods[method]}, {"route", routes[route]}};
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b < kBuckets; ++b) {
        cumulative += buckets[b];
        const double bound = b < kBounds.size() ? std::chrono::duration<double>(kBounds[b]).count()
                                                : std::numeric_limits<double>::infinity();
        metric.histogram.bucket.push_back({cumulative, bound});
      }
      metric.histogram.sample_count = count;
      metric.histogram.sample_sum = static_cast<double>(sum_ns) / 1e9;
      durations.metric.push_back(std::move(metric));
    }
  }
  for (const auto& [key, n] : by_code) {
    const auto& [method, route, code] = key;
    prometheus::ClientMetric metric;
    metric.label = {
        {"code", std::to_string(code)}, {"method", kMethods[method]}, {"route", routes[route]}};
    metric.counter.value = static_cast<double>(n);
    requests.metric.push_back(std::move(metric));
  }

  std::function<ConnectionFigures()> read_connections;
  std::function<ApiFigures()> read_api;
  {
    std::lock_guard lock(watch_mutex);
    read_connections = connections;
    read_api = api;
  }
  std::optional<ConnectionFigures> connection_figures;
  if (read_connections) connection_figures = read_connections();

  std::int64_t in_flight_now = connection_figures ? connection_figures->in_flight : 0;
  for (const auto& shard : in_flight) in_flight_now += shard.value.load(std::memory_order_relaxed);
  std::vector<prometheus::MetricFamily> out{std::move(requests), std::move(durations)};
  out.push_back(gauge_family("http_requests_in_flight", "HTTP requests read and not answered yet.",
                             {{{}, static_cast<double>(in_flight_now)}}));
  if (connection_figures) {
    const auto& figures = *connection_figures;
    out.push_back(gauge_family("http_open_connections", "Open client connections.",
                               {{{}, static_cast<double>(figures.open_connections)}}));
    out.push_back(counter_family(
        "http_rejected_connections_total",
        "Connections not served: failed accepts (e.g. out of file descriptors) and connections "
        "refused at the connection cap.",
        {{{}, static_cast<double>(figures.rejected_connections)}}));
    out.push_back(gauge_family("transnotes_event_streams_open",
                               "Event streams (GET /api/v1/events/) open now.",
                               {{{}, static_cast<double>(figures.open_streams)}}));
  }
  if (read_api) {
    const auto figures = read_api();
    out.push_back(counter_family("transnotes_translations_requested_total",
                                 "Translation jobs requested through the API.",
                                 {{{}, static_cast<double>(figures.translations_requested)}}));
    out.push_back(counter_family(
        "transnotes_throttled_requests_total",
        "Requests refused by a rate limit, by the limit's scope.",
        {{{{"scope", "translate"}}, static_cast<double>(figures.throttled_translate)},
         {{{"scope", "auth"}}, static_cast<double>(figures.throttled_auth)},
         {{{"scope", "failed_login"}}, static_cast<double>(figures.throttled_failed_login)}}));
  }
  return out;
}

HttpMetrics::HttpMetrics(MetricsRegistry& registry, const std::vector<std::string>& route_templates)
    : counters_(std::make_shared<Counters>(route_templates)) {
  registry.add(std::shared_ptr<const prometheus::Collectable>(counters_));
}

HttpMetrics::~HttpMetrics() = default;

HttpMetrics::RouteId HttpMetrics::route_id(std::string_view route_template) const {
  const auto it = counters_->ids.find(route_template);
  return it == counters_->ids.end() ? kUnmatched : it->second;
}

void HttpMetrics::observe(std::string_view method, RouteId route, int status,
                          std::chrono::nanoseconds duration) {
  Counters& counters = *counters_;
  if (route >= counters.routes.size()) route = kUnmatched;
  if (duration.count() < 0) duration = {};
  const std::size_t method_at = method_index(method);
  Cell& cell = counters.cell(this_thread_shard, method_at, route);
  cell.buckets[bucket_of(duration)].fetch_add(1, std::memory_order_relaxed);
  cell.sum_ns.fetch_add(static_cast<std::uint64_t>(duration.count()), std::memory_order_relaxed);
  const int slot = counters.slot_of(status);
  if (slot >= 0) {
    cell.by_code[static_cast<std::size_t>(slot)].fetch_add(1, std::memory_order_relaxed);
  } else {
    std::lock_guard lock(counters.overflow_mutex);
    ++counters.overflow[{method_at, route, status}];
  }
}

void HttpMetrics::request_started() {
  counters_->in_flight[this_thread_shard].value.fetch_add(1, std::memory_order_relaxed);
}

void HttpMetrics::request_finished() {
  counters_->in_flight[this_thread_shard].value.fetch_sub(1, std::memory_order_relaxed);
}

void HttpMetrics::watch_connections(std::function<ConnectionFigures()> read) {
  std::lock_guard lock(counters_->watch_mutex);
  counters_->connections = std::move(read);
}

void HttpMetrics::watch_api(std::function<ApiFigures()> read) {
  std::lock_guard lock(counters_->watch_mutex);
  counters_->api = std::move(read);
}

}  // namespace transnotes::metrics
