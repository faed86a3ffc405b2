#include "logging/access_log.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "logging/line_format.h"

namespace transnotes::logging {

using namespace std::string_view_literals;

// Lines of one recording thread. The thread appends to `lines`; the writer swaps `lines` with the
// emptied `writing` and writes that out, so neither waits for the other's work, and both strings
// keep their capacity (no allocation once warm).
struct AccessLog::ThreadBuffer {
  std::thread::id owner;
  std::mutex mutex;
  std::string lines;          // guarded by mutex
  std::uint64_t dropped = 0;  // guarded by mutex
  bool wake_sent = false;     // guarded by mutex: the writer was woken for this batch already
  std::string writing;        // the writer's alone
};

namespace {

std::atomic<std::uint64_t> next_access_log_id{1};

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, static_cast<std::size_t>(end - digits));
}

void append_milliseconds(std::string& out, std::chrono::microseconds duration) {
  const auto micros = static_cast<std::uint64_t>(std::max<std::int64_t>(0, duration.count()));
  append_number(out, micros / 1000);
  const auto fraction = micros % 1000;
  const char digits[3] = {static_cast<char>('0' + fraction / 100),
                          static_cast<char>('0' + fraction / 10 % 10),
                          static_cast<char>('0' + fraction % 10)};
  out.push_back('.');
  out.append(digits, 3);
}

void render_json(std::string& line, const AccessEntry& e) {
  line.append(R"({"time":")"sv);
  append_utc_timestamp(line, std::chrono::system_clock::now());
  line.append(R"(","level":"info","message":"request","method":)"sv);
  append_json_string(line, e.method);
  line.append(R"(,"route":)"sv);
  append_json_string(line, e.route);
  line.append(R"(,"status":)"sv);
  append_number(line, static_cast<std::uint64_t>(std::max(0, e.status)));
  line.append(R"(,"duration_ms":)"sv);
  append_milliseconds(line, e.duration);
  line.append(R"(,"bytes":)"sv);
  append_number(line, e.bytes);
  line.append(R"(,"request_id":)"sv);
  append_json_string(line, e.request_id);
  if (!e.user_id.empty()) {
    line.append(R"(,"user_id":)"sv);
    append_json_string(line, e.user_id);
  }
  line.append(R"(,"remote_address":)"sv);
  append_json_string(line, e.remote_address);
  line.append("}\n"sv);
}

void render_text(std::string& line, const AccessEntry& e, bool colour) {
  line.push_back('[');
  append_local_timestamp(line, std::chrono::system_clock::now());
  line.append("] ["sv);
  line.append(configured_logger_name());
  line.append("] ["sv);
  if (colour) line.append(level_colour(spdlog::level::info));
  line.append("info"sv);
  if (colour) line.append(kColourReset);
  line.append("] request method="sv);
  append_text_value(line, e.method);
  line.append(" route="sv);
  append_text_value(line, e.route);
  line.append(" status="sv);
  append_number(line, static_cast<std::uint64_t>(std::max(0, e.status)));
  line.append(" duration_ms="sv);
  append_milliseconds(line, e.duration);
  line.append(" bytes="sv);
  append_number(line, e.bytes);
  line.append(" request_id="sv);
  append_text_value(line, e.request_id);
  if (!e.user_id.empty()) {
    line.append(" user_id="sv);
    append_text_value(line, e.user_id);
  }
  line.append(" remote_address="sv);
  append_text_value(line, e.remote_address);
  line.push_back('\n');
}

}  // namespace

AccessLog::AccessLog(AccessLogOptions options)
    : options_(options),
      format_(options.format.value_or(configured_log_format())),
      output_(options.fd >= 0 ? std::make_shared<LogOutput>(options.fd) : configured_output()),
      id_(next_access_log_id.fetch_add(1)) {
  writer_ = std::thread([this] { run_writer(); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
  write_out();  // whatever came in while the writer finished its last round
}

void AccessLog::record(const AccessEntry& entry) {
  if (!spdlog::should_log(spdlog::level::info)) return;
  thread_local std::string line;
  line.clear();
  if (format_ == LogFormat::json) {
    render_json(line, entry);
  } else {
    render_text(line, entry, output_->is_terminal());
  }
  auto& buffer = buffer_of_this_thread();
  bool wake = false;
  {
    std::lock_guard lock(buffer.mutex);
    if (buffer.lines.size() + line.size() > options_.max_buffer_bytes) {
      ++buffer.dropped;
      return;
    }
    buffer.lines.append(line);
    if (!buffer.wake_sent && buffer.lines.size() >= options_.flush_threshold_bytes) {
      buffer.wake_sent = true;
      wake = true;
    }
  }
  if (wake) {
    // Without the wake mutex a wake may be missed; the writer then comes at its next interval.
    wake_requested_.store(true, std::memory_order_relaxed);
    wake_.notify_one();
  }
}

AccessLog::ThreadBuffer& AccessLog::buffer_of_this_thread() {
  struct Cached {
    std::uint64_t log_id = 0;
    ThreadBuffer* buffer = nullptr;
  };
  thread_local Cached cached;
  if (cached.log_id == id_) return *cached.buffer;
  std::lock_guard lock(registry_mutex_);
  const auto me = std::this_thread::get_id();
  auto found = std::find_if(buffers_.begin(), buffers_.end(),
                            [&](const auto& buffer) { return buffer->owner == me; });
  if (found == buffers_.end()) {
    buffers_.push_back(std::make_unique<ThreadBuffer>());
    buffers_.back()->owner = me;
    found = std::prev(buffers_.end());
  }
  cached = {id_, found->get()};
  return **found;
}

void AccessLog::run_writer() {
  std::unique_lock lock(wake_mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, options_.flush_interval,
                   [&] { return stopping_ || wake_requested_.load(std::memory_order_relaxed); });
    wake_requested_.store(false, std::memory_order_relaxed);
    lock.unlock();
    write_out();
    lock.lock();
  }
}

void AccessLog::flush() { write_out(); }

void AccessLog::write_out() {
  std::lock_guard write_lock(write_mutex_);
  thread_local std::vector<ThreadBuffer*> batch;
  batch.clear();
  {
    std::lock_guard lock(registry_mutex_);
    for (const auto& buffer : buffers_) batch.push_back(buffer.get());
  }
  std::uint64_t dropped = 0;
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  for (auto* buffer : batch) {
    {
      std::lock_guard lock(buffer->mutex);
      buffer->lines.swap(buffer->writing);
      dropped += std::exchange(buffer->dropped, 0);
      buffer->wake_sent = false;
    }
    if (!buffer->writing.empty()) pieces.emplace_back(buffer->writing);
  }
  if (!pieces.empty()) output_->write_all(pieces);
  for (auto* buffer : batch) buffer->writing.clear();
  if (dropped > 0) {
    dropped_total_.fetch_add(dropped, std::memory_order_relaxed);
    spdlog::warn("access log: {} lines dropped, the log output did not keep up", dropped);
  }
}

std::uint64_t AccessLog::dropped_lines() const {
  return dropped_total_.load(std::memory_order_relaxed);
}

}  // namespace transnotes::logging
