#include "app/job_commands.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <map>
#include <ostream>
#include <stdexcept>
#include <vector>

#include "api/api.h"
#include "app/application.h"
#include "domain/errors.h"
#include "domain/job_admin.h"
#include "domain/user_events.h"
#include "queue/bus.h"
#include "redis/redis_client.h"

namespace transnotes::app {

namespace {

constexpr std::size_t kErrorColumnCharacters = 60;
constexpr std::int64_t kMaxListLimit = 10'000;

// A usage mistake: exit 2 with this line.
class Usage : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A whole decimal number in [1, max]; Usage naming `what` otherwise.
std::int64_t parse_positive(const std::string& text, const char* what,
                            std::int64_t max = INT64_MAX) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end || value < 1 || value > max) {
    throw Usage(std::string(what) + " must be a whole number from 1 to " + std::to_string(max) +
                ", not '" + text + "'");
  }
  return value;
}

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::size_t count_code_points(const std::string& text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return !is_continuation_byte(c); }));
}

// The first `limit` code points of an error on one line: stored errors may hold newlines (an
// engine's stderr) that would break the table.
std::string error_excerpt(const std::string& error) {
  std::string line;
  std::size_t characters = 0;
  for (char c : error) {
    if (!is_continuation_byte(c) && ++characters > kErrorColumnCharacters) break;
    const bool control = static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    line += control ? ' ' : c;
  }
  return line;
}

// "2026-11-29T17:08:07.123456Z" -> "2026-11-29T17:08:07Z": seconds are enough to read a queue.
std::string short_timestamp(Timestamp t) {
  std::string text = format_timestamp(t);
  const auto dot = text.find('.');
  if (dot != std::string::npos) text = text.substr(0, dot) + "Z";
  return text;
}

std::string status_text(const TranslationJob& job) {
  std::string text = to_string(job.status);
  if (job.cancel_requested && job.status == JobStatus::kRunning) text += " (cancelling)";
  return text;
}

// Usernames of the jobs' owners, each looked up once.
class OwnerNames {
 public:
  explicit OwnerNames(Store& store) : store_(store) {}
  std::string operator()(UserId id) {
    if (id == kOpenModeOwner) return "(open)";
    auto found = names_.find(id);
    if (found == names_.end()) {
      const auto user = store_.get_user(id);
      std::string name = "#";  // its user is gone (or never was): the id is all there is
      name += std::to_string(id);
      found = names_.emplace(id, user ? user->username : name).first;
    }
    return found->second;
  }

 private:
  Store& store_;
  std::map<UserId, std::string> names_;
};

void print_table(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], count_code_points(row[i]));
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - count_code_points(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();  // an empty last column
    out << line << "\n";
  }
}

int list_jobs(Store& store, JobAdmin& admin, const JobCommand& command, std::ostream& out) {
  JobFilter filter;
  if (!command.state.empty()) {
    filter.status = job_status_from_string(command.state);
    if (!filter.status) {
      throw Usage("--state must be queued, running, succeeded, failed or cancelled, not '" +
                  command.state + "'");
    }
  }
  if (!command.note.empty()) filter.note_id = parse_positive(command.note, "--note");
  if (!command.limit.empty())
    filter.limit = parse_positive(command.limit, "--limit", kMaxListLimit);
  if (!command.before.empty()) filter.before_id = parse_positive(command.before, "--before");

  const std::vector<TranslationJob> jobs = admin.list(filter);
  if (jobs.empty()) {
    out << "no jobs\n";
    return 0;
  }
  OwnerNames owner_name(store);
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "NOTE", "OWNER", "PAIR", "STATUS", "ATTEMPTS", "ENGINE", "CREATED",
                  "FINISHED", "ERROR"});
  for (const TranslationJob& job : jobs) {
    rows.push_back({std::to_string(job.id), std::to_string(job.note_id), owner_name(job.owner_id),
                    job.source_language + "->" + job.target_language, status_text(job),
                    std::to_string(job.attempts) + "/" + std::to_string(job.max_attempts),
                    job.engine.empty() ? "-" : job.engine, short_timestamp(job.created_at),
                    job.finished_at ? short_timestamp(*job.finished_at) : "-",
                    job.error ? error_excerpt(*job.error) : ""});
  }
  print_table(rows, out);
  if (static_cast<std::int64_t>(jobs.size()) == filter.limit) {
    out << "(more: --before " << jobs.back().id << ")\n";
  }
  return 0;
}

int retry_jobs(JobAdmin& admin, const JobCommand& command, std::ostream& out) {
  if (command.all_failed == !command.job_id.empty()) {
    throw Usage("jobs retry takes a job ID or --all-failed");
  }
  if (command.all_failed) {
    const std::int64_t count = admin.retry_all_failed();
    out << count << " failed job" << (count == 1 ? "" : "s") << " queued again\n";
    return 0;
  }
  const TranslationJob job = admin.retry(parse_positive(command.job_id, "the job ID"));
  out << "job " << job.id << " queued again\n";
  return 0;
}

int cancel_job(JobAdmin& admin, const JobCommand& command, std::ostream& out) {
  if (command.job_id.empty()) throw Usage("jobs cancel takes a job ID");
  const TranslationJob job = admin.cancel(parse_positive(command.job_id, "the job ID"));
  if (job.status == JobStatus::kCancelled) {
    out << "job " << job.id << " cancelled\n";
  } else {
    out << "job " << job.id << " is running; it stops at its next segment\n";
  }
  return 0;
}

int purge_jobs(JobAdmin& admin, const JobCommand& command, std::ostream& out) {
  if (command.finished_before.empty()) {
    throw Usage("jobs purge needs --finished-before DURATION (30s, 15m, 12h, 7d)");
  }
  const auto age = parse_age(command.finished_before);
  if (!age) {
    throw Usage("--finished-before takes a whole number and a unit (30s, 15m, 12h, 7d), not '" +
                command.finished_before + "'");
  }
  const std::int64_t count = admin.purge(*age);
  out << "purged " << count << " job" << (count == 1 ? "" : "s") << " that ended more than "
      << command.finished_before << " ago\n";
  return 0;
}

}  // namespace

std::optional<std::chrono::seconds> parse_age(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  static constexpr std::array<std::pair<char, std::int64_t>, 4> kUnits{
      {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}}};
  const auto unit = std::find_if(kUnits.begin(), kUnits.end(),
                                 [&text](const auto& u) { return u.first == text.back(); });
  if (unit == kUnits.end()) return std::nullopt;
  const std::string_view digits = text.substr(0, text.size() - 1);
  std::int64_t count = 0;
  const char* end = digits.data() + digits.size();
  const auto [stop, error] = std::from_chars(digits.data(), end, count);
  if (error != std::errc() || stop != end || count < 0 || count > INT64_MAX / unit->second) {
    return std::nullopt;
  }
  return std::chrono::seconds(count * unit->second);
}

int run_jobs(Store& store, JobBus& bus, const JobCommand& command, std::ostream& out,
             std::ostream& err, UserEventPublisher* events) {
  JobAdmin admin(store, bus, events);
  try {
    if (command.action == "list") return list_jobs(store, admin, command, out);
    if (command.action == "retry") return retry_jobs(admin, command, out);
    if (command.action == "cancel") return cancel_job(admin, command, out);
    if (command.action == "purge") return purge_jobs(admin, command, out);
    throw Usage("unknown jobs command '" + command.action + "'");
  } catch (const Usage& e) {
    err << "transnotes: " << e.what() << "\n";
    return 2;
  } catch (const NotFound&) {
    err << "transnotes: no job " << command.job_id << "\n";
    return 1;
  } catch (const Conflict& e) {
    err << "transnotes: job " << command.job_id << ": " << e.what() << "\n";
    return 1;
  } catch (const BadRequest& e) {
    err << "transnotes: " << e.what() << "\n";
    return 2;
  }
}

int run_jobs(const Config& config, const JobCommand& command, std::ostream& out,
             std::ostream& err) {
  auto store = open_and_migrate(config);
  std::shared_ptr<redis::RedisClient> redis;
  // Only retry and cancel announce anything (to workers, and to the owner's event streams); the
  // others need no Redis round trip, nor Redis up.
  if (config.uses_redis() && (command.action == "retry" || command.action == "cancel")) {
    redis::RedisConfig settings;
    try {
      settings = redis::parse_redis_url(config.redis_url);
    } catch (const std::exception& e) {
      throw ConfigError(std::string("bad REDIS_URL: ") + e.what());
    }
    redis = std::make_shared<redis::RedisClient>(settings);
  }
  // Without Redis the serving process's streams are out of this process's reach; its workers
  // still tell them about a retried job once they run it.
  std::unique_ptr<UserEvents> events;
  std::unique_ptr<UserEventPublisher> publisher;
  if (redis) {
    events = queue::open_user_events(redis);
    publisher = std::make_unique<UserEventPublisher>(*events, api::render_note, api::render_job);
  }
  auto bus = queue::open_bus(std::move(redis));
  return run_jobs(*store, *bus, command, out, err, publisher.get());
}

}  // namespace transnotes::app
