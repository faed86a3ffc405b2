// Internal to the logging layer: the pieces a log line is built from, and the shared output.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "logging/logging.h"

namespace transnotes::logging {

// Appends `value` as a JSON string, quotes included: quotes, backslashes and control characters
// escaped, valid UTF-8 kept as is, and each byte that is not part of valid UTF-8 replaced with
// U+FFFD, so that any bytes give valid JSON.
void append_json_string(std::string& out, std::string_view value);

// Appends a text-format field value: bare when it is printable ASCII without spaces, quotes,
// backslashes or '=', else quoted and escaped as in JSON (so a value cannot forge a field).
void append_text_value(std::string& out, std::string_view value);

// Appends a text-format message: as is, except control characters (a newline would forge a
// line) and invalid UTF-8, escaped as in JSON but without quotes.
void append_text_message(std::string& out, std::string_view message);

// "2026-12-01T06:00:00.123456Z".
void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point when);
// "2026-12-01 07:00:00.123", local time, as the text format has always shown it.
void append_local_timestamp(std::string& out, std::chrono::system_clock::time_point when);

// ANSI colour for a level name in a terminal; "" for none.
std::string_view level_colour(spdlog::level::level_enum level);
inline constexpr std::string_view kColourReset = "\033[m";

// Where log lines go: an fd (not owned) and the lock that keeps lines whole.
class LogOutput {
 public:
  explicit LogOutput(int fd);
  // Writes all of `bytes` (retrying short writes); drops them if the fd fails.
  void write(std::string_view bytes);
  // As write(), for several pieces under one lock (each write is as large as the piece).
  template <class Pieces>
  void write_all(const Pieces& pieces) {
    std::lock_guard lock(mutex_);
    for (std::string_view piece : pieces) write_locked(piece);
  }
  int fd() const { return fd_; }
  bool is_terminal() const { return is_terminal_; }

 private:
  void write_locked(std::string_view bytes);
  int fd_;
  bool is_terminal_;
  std::mutex mutex_;
};

// The output configure_logging() installed (stderr before).
std::shared_ptr<LogOutput> configured_output();
// The logger name lines carry ("transnotes").
std::string_view configured_logger_name();

}  // namespace transnotes::logging
