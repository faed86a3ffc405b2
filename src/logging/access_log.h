// One log line per HTTP request, cheap enough for every request of a busy server: record() formats
// the line into a buffer of the calling thread and returns; a background thread writes the
// buffers out in large writes at least every flush_interval, and everything left at destruction.
//
// When the writer cannot keep up (stderr is a pipe nobody drains fast enough), request threads
// never wait for it: a thread's buffer grows to max_buffer_bytes, and lines beyond that are
// dropped and counted; the writer then logs a warning with the count.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "logging/logging.h"

namespace transnotes::logging {

class LogOutput;

// What one answered request leaves in the log. Views are read during record() only. Never put
// tokens, passwords, bodies or query strings here: the line carries exactly these fields.
struct AccessEntry {
  std::string_view method;
  std::string_view route;  // the route template ("/api/v1/notes/{id}/"), "" when none matched
  int status = 0;
  std::chrono::microseconds duration{0};
  std::uint64_t bytes = 0;  // response body bytes
  std::string_view request_id;
  std::string_view user_id;  // omitted from the line when empty
  std::string_view remote_address;
};

struct AccessLogOptions {
  // nullopt: the format configure_logging() installed.
  std::optional<LogFormat> format;
  // -1: the log configure_logging() installed (sharing its lock, so lines never interleave);
  // otherwise an fd the AccessLog writes to but does not own.
  int fd = -1;
  std::chrono::milliseconds flush_interval{100};
  // A thread's buffer wakes the writer early from this size on ...
  std::size_t flush_threshold_bytes = 256 * 1024;
  // ... and drops lines beyond this size.
  std::size_t max_buffer_bytes = 4 * 1024 * 1024;
};

class AccessLog {
 public:
  explicit AccessLog(AccessLogOptions options = {});
  // Writes every line recorded before it (no record() may run concurrently with it).
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // One "request" line at level info; nothing when the default logger's level is above info.
  // Thread-safe; no system call in the common case.
  void record(const AccessEntry& entry);
  // Writes out what is buffered now, on the calling thread.
  void flush();
  // Lines dropped so far because the writer did not keep up.
  std::uint64_t dropped_lines() const;

  struct ThreadBuffer;

 private:
  ThreadBuffer& buffer_of_this_thread();
  void run_writer();
  void write_out();

  AccessLogOptions options_;
  LogFormat format_;
  std::shared_ptr<LogOutput> output_;
  const std::uint64_t id_;  // tells this instance's thread buffers from an earlier one's

  std::mutex registry_mutex_;
  std::vector<std::unique_ptr<ThreadBuffer>> buffers_;

  std::mutex write_mutex_;  // one write_out() at a time
  std::atomic<std::uint64_t> dropped_total_{0};

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<bool> wake_requested_{false};
  std::thread writer_;
};

}  // namespace transnotes::logging
