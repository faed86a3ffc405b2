// `transnotes jobs list|retry|cancel|purge`: the operator's view of every owner's translation
// jobs, through the domain's JobAdmin. Values are checked here rather than by the argument parser,
// so every usage mistake exits 2 with one line.
#pragma once

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "app/config.h"
#include "domain/ports.h"
#include "domain/user_events.h"

namespace transnotes::app {

struct JobCommand {
  std::string action;  // list | retry | cancel | purge
  // list
  std::string state;   // "" or queued|running|succeeded|failed|cancelled
  std::string note;    // "" or a note id
  std::string limit;   // "" (100) or a count of rows
  std::string before;  // "" or a job id: only older jobs (the next page)
  // retry, cancel
  std::string job_id;
  bool all_failed = false;  // retry --all-failed
  // purge
  std::string finished_before;  // "30s", "15m", "12h", "7d"
};

// "30s", "15m", "12h", "7d" (a whole number and one unit). nullopt for anything else.
std::optional<std::chrono::seconds> parse_age(std::string_view text);

// Opens the configured store (migrated) and, for retry and cancel, the bus and the owners' event
// streams — on Redis when config.redis_url is set, so that requeued jobs wake workers and
// streams held by API processes hear of the change — and runs the command. Exit code: 0 done, 1
// unknown job or a state that forbids it, 2 bad usage.
int run_jobs(const Config& config, const JobCommand& command, std::ostream& out, std::ostream& err);
// The same on a store and bus the caller opened; `events`, when given, tells the owners' event
// streams about retried and cancelled jobs.
int run_jobs(Store& store, JobBus& bus, const JobCommand& command, std::ostream& out,
             std::ostream& err, UserEventPublisher* events = nullptr);

}  // namespace transnotes::app
