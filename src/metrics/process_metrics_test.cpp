// The process figures come from /proc at scrape time: plausible values, and the descriptor count
// follows a file being opened and closed.
#include "metrics/process_metrics.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "metrics/metrics.h"

namespace transnotes::metrics {
namespace {

TEST(ProcessMetrics, FiguresArePlausible) {
  const auto figures = read_process_figures();
  ASSERT_TRUE(figures.has_value());
  EXPECT_GE(figures->cpu_seconds, 0.0);
  EXPECT_GT(figures->resident_bytes, 1u << 20);  // a running test binary holds over a MiB
  EXPECT_GE(figures->virtual_bytes, figures->resident_bytes);
  EXPECT_GE(figures->open_fds, 3u);  // stdin, stdout, stderr
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(figures->max_fds, limit.rlim_cur);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(figures->start_time_seconds, now + 1);     // /proc's tick resolution
  EXPECT_GT(figures->start_time_seconds, now - 3600);  // this test binary started recently
}

TEST(ProcessMetrics, CpuTimeGrowsWithWork) {
  const double before = read_process_figures()->cpu_seconds;
  volatile std::uint64_t sink = 0;
  while (read_process_figures()->cpu_seconds <= before) {
    for (int i = 0; i < 1'000'000; ++i) sink = sink + static_cast<std::uint64_t>(i);
  }
  SUCCEED();  // the loop ends only when the counter moved
}

TEST(ProcessMetrics, OpenDescriptorsFollowAFileOpenedAndClosed) {
  const auto before = read_process_figures()->open_fds;
  const int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(read_process_figures()->open_fds, before + 1);
  ::close(fd);
  EXPECT_EQ(read_process_figures()->open_fds, before);
}

TEST(ProcessMetrics, EveryRegistryRendersThemAndTheBuildInfo) {
  MetricsRegistry registry;
  const std::string text = registry.render();
  for (const auto& [name, type] :
       std::vector<std::pair<std::string, std::string>>{{"process_cpu_seconds_total", "counter"},
                                                        {"process_resident_memory_bytes", "gauge"},
                                                        {"process_virtual_memory_bytes", "gauge"},
                                                        {"process_open_fds", "gauge"},
                                                        {"process_max_fds", "gauge"},
                                                        {"process_start_time_seconds", "gauge"},
                                                        {"transnotes_build_info", "gauge"}}) {
    EXPECT_NE(text.find("# HELP " + name + " "), std::string::npos) << name << "\n" << text;
    EXPECT_NE(text.find("# TYPE " + name + " " + type + "\n"), std::string::npos) << name;
  }
  const std::string line = std::string("transnotes_build_info{commit=\"") + build_commit() +
                           "\",version=\"" + build_version() + "\"} 1\n";
  EXPECT_NE(text.find(line), std::string::npos) << line << text;
}

// The version is the CMake project's; the commit one of this checkout's (taken when the build was
// configured, so HEAD may have moved on since), or "unknown" where git cannot name one.
TEST(ProcessMetrics, BuildInfoNamesTheProjectVersionAndTheCheckoutsCommit) {
  std::ifstream cmake(std::string(TRANSNOTES_SOURCE_DIR) + "/CMakeLists.txt");
  const std::string top((std::istreambuf_iterator<char>(cmake)), std::istreambuf_iterator<char>());
  const std::string marker = "project(transnotes VERSION ";
  const auto at = top.find(marker);
  ASSERT_NE(at, std::string::npos);
  const auto start = at + marker.size();
  EXPECT_EQ(build_version(), top.substr(start, top.find_first_of(" )", start) - start));

  const std::string git = std::string("git -C '") + TRANSNOTES_SOURCE_DIR + "' ";
  if (std::string(build_commit()) == "unknown") {
    EXPECT_NE(std::system((git + "rev-parse --short HEAD >/dev/null 2>&1").c_str()), 0)
        << "git names a commit here, yet the build says unknown";
  } else {
    const std::string commit = build_commit();
    EXPECT_TRUE(commit.size() >= 4 &&
                commit.find_first_not_of("0123456789abcdef") == std::string::npos)
        << commit;
    EXPECT_EQ(
        std::system((git + "cat-file -e " + build_commit() + "^{commit} 2>/dev/null").c_str()), 0)
        << build_commit() << " is not a commit of " << TRANSNOTES_SOURCE_DIR;
  }
}

}  // namespace
}  // namespace transnotes::metrics
