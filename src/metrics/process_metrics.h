// The figures every process reports (internal to src/metrics; MetricsRegistry adds them).
#pragma once

#include <prometheus/collectable.h>

#include <cstdint>
#include <memory>
#include <optional>

namespace transnotes::metrics {

struct ProcessFigures {
  double cpu_seconds = 0;  // user + system
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;      // the soft RLIMIT_NOFILE
  double start_time_seconds = 0;  // since the Unix epoch
};

// This process's figures from /proc/self (and /proc/stat for the boot time); nullopt when /proc
// cannot be read.
std::optional<ProcessFigures> read_process_figures();

// process_* (from read_process_figures at each scrape) and transnotes_build_info.
std::shared_ptr<const prometheus::Collectable> make_process_collectable();

}  // namespace transnotes::metrics
