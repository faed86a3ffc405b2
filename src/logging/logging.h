// The process's log: one line per event on stderr (stdout carries command output), as text for a
// person at a terminal or as one JSON object per line for a log collector, and per-thread context
// fields (request_id, job_id, ...) that every line logged on the thread carries while in scope.
//
// Code keeps logging through spdlog (spdlog::info(...)); configure_logging() installs the default
// logger that renders those lines.
#pragma once

#include <spdlog/common.h>
#include <unistd.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace transnotes::logging {

enum class LogFormat { text, json };

// "text" or "json"; nullopt for anything else.
std::optional<LogFormat> parse_log_format(std::string_view name);
std::string_view to_string(LogFormat format);
// json when stderr (where the log goes) is not a terminal, text when a person is watching.
LogFormat default_log_format();

// Makes the default spdlog logger ("transnotes") write `format` lines at `level` and above to
// `fd` (not owned; stderr unless a test captures the log). Lines are written whole, one write
// each, under a lock shared with AccessLog, so lines of the two never interleave. Call before
// other threads log; calling again replaces the logger.
void configure_logging(LogFormat format, spdlog::level::level_enum level, int fd = STDERR_FILENO);

// The format and name the last configure_logging() installed (text and "transnotes" before).
LogFormat configured_log_format();

using LogField = std::pair<std::string, std::string>;
using LogFields = std::vector<LogField>;

// While alive, every line this thread logs carries these fields after its message; inner scopes
// come after outer ones, and an inner field replaces an outer one of the same key. Create and
// destroy on the same thread, innermost first (as automatic variables are).
class ScopedLogContext {
 public:
  // Borrows key and value: both must outlive the scope (a request's id held by the request).
  ScopedLogContext(std::string_view key, std::string_view value);
  // Owns its fields.
  explicit ScopedLogContext(LogFields fields);
  ~ScopedLogContext();
  ScopedLogContext(const ScopedLogContext&) = delete;
  ScopedLogContext& operator=(const ScopedLogContext&) = delete;

 private:
  LogFields owned_;
  std::size_t restore_size_;
};

using LogFieldView = std::pair<std::string_view, std::string_view>;

// The context fields in force on this thread, outermost first (to carry them to another thread:
// copy them into a LogFields there).
const std::vector<LogFieldView>& current_log_context();

// Logs one line with extra fields of its own, after the context's.
void log_with_fields(spdlog::level::level_enum level, std::string_view message,
                     std::initializer_list<LogFieldView> fields);

}  // namespace transnotes::logging
