// Logs a recurring warning at most once per interval, reporting how many were suppressed, so an
// outage of Redis does not flood the log from every request thread. Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace transnotes::redis {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::milliseconds interval = std::chrono::seconds(10))
      : interval_ticks_(
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval).count()) {}

  void warn(std::string_view what, std::string_view detail) {
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto last = last_logged_.load(std::memory_order_relaxed);
    if (last != 0 && now - last < interval_ticks_) {
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!last_logged_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    auto suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
    if (suppressed > 0) {
      spdlog::warn("{}: {} ({} similar messages suppressed)", what, detail, suppressed);
    } else {
      spdlog::warn("{}: {}", what, detail);
    }
  }

 private:
  std::int64_t interval_ticks_;
  std::atomic<std::int64_t> last_logged_{0};
  std::atomic<std::uint64_t> suppressed_{0};
};

}  // namespace transnotes::redis
