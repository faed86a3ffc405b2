#include "domain/model.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace transnotes {

Timestamp now_micros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string format_timestamp(Timestamp t) {
  std::int64_t seconds = t / 1'000'000;
  std::int64_t micros = t % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    seconds -= 1;
  }
  std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros));
  return buf;
}

const char* to_string(JobStatus s) {
  switch (s) {
    case JobStatus::kQueued:
      return "queued";
    case JobStatus::kRunning:
      return "running";
    case JobStatus::kSucceeded:
      return "succeeded";
    case JobStatus::kFailed:
      return "failed";
  }
  return "queued";
}

std::optional<JobStatus> job_status_from_string(const std::string& s) {
  if (s == "queued") return JobStatus::kQueued;
  if (s == "running") return JobStatus::kRunning;
  if (s == "succeeded") return JobStatus::kSucceeded;
  if (s == "failed") return JobStatus::kFailed;
  return std::nullopt;
}

}  // namespace transnotes
