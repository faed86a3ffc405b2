#include "domain/model.h"

#include <chrono>

namespace transnotes {

Timestamp now_micros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {

// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days
// algorithm). Plain arithmetic: gmtime_r takes a process-wide lock, and listing 1000 notes
// formats 2000 timestamps.
void civil_from_days(std::int64_t days, int& year, unsigned& month, unsigned& day) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  day = doy - (153 * mp + 2) / 5 + 1;
  month = mp < 10 ? mp + 3 : mp - 9;
  year = static_cast<int>(static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0));
}

void put_digits(char* out, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

}  // namespace

std::string format_timestamp(Timestamp t) {
  std::int64_t seconds = t / 1'000'000;
  std::int64_t micros = t % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    seconds -= 1;
  }
  std::int64_t days = seconds / 86400;
  std::int64_t second_of_day = seconds % 86400;
  if (second_of_day < 0) {
    second_of_day += 86400;
    days -= 1;
  }
  int year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civil_from_days(days, year, month, day);
  if (year < 0 || year > 9999) year = 0;  // outside ISO 8601's four digits; never stored
  // "YYYY-MM-DDTHH:MM:SS.uuuuuuZ"
  std::string out = "0000-00-00T00:00:00.000000Z";
  put_digits(out.data(), static_cast<unsigned>(year), 4);
  put_digits(out.data() + 5, month, 2);
  put_digits(out.data() + 8, day, 2);
  put_digits(out.data() + 11, static_cast<unsigned>(second_of_day / 3600), 2);
  put_digits(out.data() + 14, static_cast<unsigned>(second_of_day / 60 % 60), 2);
  put_digits(out.data() + 17, static_cast<unsigned>(second_of_day % 60), 2);
  put_digits(out.data() + 20, static_cast<unsigned>(micros), 6);
  return out;
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
    case JobStatus::kCancelled:
      return "cancelled";
  }
  return "queued";
}

std::optional<JobStatus> job_status_from_string(const std::string& s) {
  if (s == "queued") return JobStatus::kQueued;
  if (s == "running") return JobStatus::kRunning;
  if (s == "succeeded") return JobStatus::kSucceeded;
  if (s == "failed") return JobStatus::kFailed;
  if (s == "cancelled") return JobStatus::kCancelled;
  return std::nullopt;
}

}  // namespace transnotes
