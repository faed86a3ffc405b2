#include "metrics/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "metrics/metrics.h"

namespace transnotes::metrics {

namespace {

std::optional<double> boot_time_seconds() {
  std::ifstream stat("/proc/stat");
  std::string key;
  while (stat >> key) {
    if (key == "btime") {
      double seconds = 0;
      if (stat >> seconds) return seconds;
      return std::nullopt;
    }
    stat.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

std::uint64_t count_open_fds() {
  std::error_code ec;
  std::uint64_t count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++count;
  // The listing includes the descriptor the listing itself holds open.
  return count > 0 ? count - 1 : 0;
}

class ProcessCollectable final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    if (const auto figures = read_process_figures()) {
      out.push_back(counter_family("process_cpu_seconds_total",
                                   "Total user and system CPU time spent in seconds.",
                                   {{{}, figures->cpu_seconds}}));
      out.push_back(gauge_family("process_resident_memory_bytes", "Resident memory size in bytes.",
                                 {{{}, static_cast<double>(figures->resident_bytes)}}));
      out.push_back(gauge_family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                 {{{}, static_cast<double>(figures->virtual_bytes)}}));
      out.push_back(gauge_family("process_open_fds", "Number of open file descriptors.",
                                 {{{}, static_cast<double>(figures->open_fds)}}));
      out.push_back(gauge_family("process_max_fds", "Maximum number of open file descriptors.",
                                 {{{}, static_cast<double>(figures->max_fds)}}));
      out.push_back(gauge_family("process_start_time_seconds",
                                 "Start time of the process since unix epoch in seconds.",
                                 {{{}, figures->start_time_seconds}}));
    }
    out.push_back(gauge_family("transnotes_build_info",
                               "The version and commit this transnotes binary was built from.",
                               {{{{"version", build_version()}, {"commit", build_commit()}}, 1}}));
    return out;
  }
};

}  // namespace

std::optional<ProcessFigures> read_process_figures() {
  std::ifstream stat_file("/proc/self/stat");
  std::string stat;
  if (!std::getline(stat_file, stat)) return std::nullopt;
  // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
  const auto name_end = stat.rfind(')');
  if (name_end == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(name_end + 1));
  std::vector<std::string> fields;  // fields[0] is field 3 of proc(5), the state
  for (std::string field; rest >> field;) fields.push_back(field);
  if (fields.size() < 22) return std::nullopt;
  const auto field = [&fields](int number) { return std::stod(fields[number - 3]); };

  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page_bytes = static_cast<double>(sysconf(_SC_PAGESIZE));
  ProcessFigures figures;
  figures.cpu_seconds = (field(14) + field(15)) / ticks;  // utime + stime
  figures.virtual_bytes = static_cast<std::uint64_t>(field(23));
  figures.resident_bytes = static_cast<std::uint64_t>(field(24) * page_bytes);
  const auto boot = boot_time_seconds();
  if (!boot) return std::nullopt;
  figures.start_time_seconds = *boot + field(22) / ticks;  // starttime: ticks after boot
  figures.open_fds = count_open_fds();
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) figures.max_fds = limit.rlim_cur;
  return figures;
}

std::shared_ptr<const prometheus::Collectable> make_process_collectable() {
  return std::make_shared<ProcessCollectable>();
}

}  // namespace transnotes::metrics
