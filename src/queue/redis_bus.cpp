#include "queue/redis_bus.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <utility>

#include "domain/errors.h"

namespace transnotes::queue {
namespace {

std::string default_consumer_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host[0] != '\0' ? host : "worker") + "-" + std::to_string(::getpid());
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string format_notice(const JobNotice& notice) {
  return std::to_string(notice.owner) + ":" + std::to_string(notice.job_id);
}

// "<owner>:<job id>"; nullopt for anything else, so a stray or foreign entry cannot name a job.
std::optional<JobNotice> parse_notice(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto owner = parse_integer(text.substr(0, colon));
  const auto job_id = parse_integer(text.substr(colon + 1));
  if (!owner || !job_id || *owner < 0 || *job_id <= 0) return std::nullopt;
  return JobNotice{*job_id, *owner};
}

}  // namespace

RedisJobBus::RedisJobBus(std::shared_ptr<redis::RedisClient> client, RedisJobBusOptions options)
    : client_(std::move(client)),
      options_(std::move(options)),
      max_length_(std::to_string(std::max<std::size_t>(1, options_.max_length))) {
  if (options_.consumer.empty()) options_.consumer = default_consumer_name();
  try {
    create_group("$");
  } catch (const Unavailable& error) {
    record_error("job bus: cannot create consumer group yet", error.what());
  }
}

void RedisJobBus::record_error(std::string_view what, std::string_view detail) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  log_.warn(what, detail);
}

void RedisJobBus::create_group(const char* start_id) {
  redis::Reply reply =
      client_->command({"XGROUP", "CREATE", options_.stream, options_.group, start_id, "MKSTREAM"});
  if (reply.is_error() && !reply.is_error_code("BUSYGROUP")) {
    throw Unavailable("job bus: XGROUP CREATE failed: " + reply.str);
  }
  group_ready_.store(true, std::memory_order_release);
}

void RedisJobBus::publish(const JobNotice& notice) {
  try {
    const std::string message = format_notice(notice);
    redis::Reply reply = client_->command(
        {"XADD", options_.stream, "MAXLEN", "~", max_length_, "*", "job", message});
    if (reply.is_error()) {
      record_error("job bus: XADD failed, wake-up dropped", reply.str);
      return;
    }
    published_.fetch_add(1, std::memory_order_relaxed);
  } catch (const Unavailable& error) {
    record_error("job bus unavailable, wake-up dropped (the sweeper re-dispatches)", error.what());
  }
}

RedisJobBus::ReadResult RedisJobBus::read_once(std::chrono::milliseconds block,
                                               std::optional<JobNotice>& notice) {
  std::string block_ms = std::to_string(block.count());
  std::vector<std::string_view> args{"XREADGROUP", "GROUP", options_.group, options_.consumer};
  if (block.count() > 0) {
    args.push_back("BLOCK");
    args.push_back(block_ms);
  }
  for (std::string_view arg : {"COUNT", "1", "STREAMS"}) args.push_back(arg);
  args.push_back(options_.stream);
  args.push_back(">");
  auto read_timeout = block + client_->config().command_timeout + std::chrono::seconds(1);
  redis::Reply reply = client_->blocking_command(args, read_timeout);
  if (reply.is_error_code("NOGROUP")) return ReadResult::NoGroup;
  if (reply.is_error()) throw Unavailable("job bus: XREADGROUP failed: " + reply.str);
  if (reply.type != redis::Reply::Type::Array || reply.elements.empty()) return ReadResult::Empty;
  // [[stream, [[entry_id, [field, value, ...]], ...]]]
  const redis::Reply& stream = reply.elements[0];
  if (stream.elements.size() < 2 || stream.elements[1].elements.empty()) return ReadResult::Empty;
  const redis::Reply& entry = stream.elements[1].elements[0];
  if (entry.elements.empty()) return ReadResult::Empty;
  const std::string& entry_id = entry.elements[0].str;
  try {
    client_->command({"XACK", options_.stream, options_.group, entry_id});
  } catch (const Unavailable& error) {
    // The entry stays in the group's pending list; harmless, it is never re-read.
    record_error("job bus: XACK failed", error.what());
  }
  if (entry.elements.size() >= 2) {
    const auto& fields = entry.elements[1].elements;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == "job") notice = parse_notice(fields[i + 1].str);
    }
  }
  if (!notice) {
    record_error("job bus: ignoring malformed stream entry", entry_id);
    return ReadResult::Empty;
  }
  received_.fetch_add(1, std::memory_order_relaxed);
  return ReadResult::Message;
}

std::optional<JobNotice> RedisJobBus::next(std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::max(timeout, std::chrono::milliseconds(0));
  while (!closed_.load(std::memory_order_acquire)) {
    auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    auto block = std::clamp(remaining, std::chrono::milliseconds(0), options_.max_block);
    try {
      if (!group_ready_.load(std::memory_order_acquire)) create_group("0");
      std::optional<JobNotice> notice;
      switch (read_once(block, notice)) {
        case ReadResult::Message:
          return notice;
        case ReadResult::NoGroup:
          // Redis restarted (or the stream was deleted): recreate and read again at once.
          group_ready_.store(false, std::memory_order_release);
          continue;
        case ReadResult::Empty:
          break;
      }
    } catch (const Unavailable& error) {
      record_error("job bus unavailable (workers fall back to polling)", error.what());
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      sleep_unless_closed(std::clamp(left, std::chrono::milliseconds(0), options_.outage_sleep));
      return std::nullopt;
    }
    if (Clock::now() >= deadline) break;
  }
  return std::nullopt;
}

void RedisJobBus::sleep_unless_closed(std::chrono::milliseconds duration) {
  std::unique_lock lock(close_mutex_);
  closed_cv_.wait_for(lock, duration, [&] { return closed_.load(std::memory_order_acquire); });
}

void RedisJobBus::close() {
  {
    std::lock_guard lock(close_mutex_);
    closed_.store(true, std::memory_order_release);
  }
  closed_cv_.notify_all();
}

RedisJobBusStats RedisJobBus::stats() const {
  return {published_.load(std::memory_order_relaxed), received_.load(std::memory_order_relaxed),
          errors_.load(std::memory_order_relaxed)};
}

}  // namespace transnotes::queue
