// JobBus over a Redis Stream with a consumer group (production).
//
//   publish(n): XADD <stream> MAXLEN ~ <max_length> * job <owner>:<job id>
//   next(t):    XREADGROUP GROUP <group> <consumer> [BLOCK ms] COUNT 1 STREAMS <stream> >
//               followed at once by XACK.
// Each message goes to one consumer of the group, so workers in any number of processes get
// distinct notices. An entry whose `job` field is not "<owner>:<job id>" (two decimal integers,
// owner >= 0, job id > 0; e.g. a bare id from a version that did not send owners) is
// acknowledged, logged, counted as an error and skipped: the sweeper re-publishes its job.
// Acknowledging right after reading is deliberate: the database is the source of truth and workers
// claim jobs idempotently with leases, so the bus only carries low-latency wake-ups; a wake-up lost
// to a crash is found again by the database sweeper / polling workers.
//
// The group is created with MKSTREAM at construction (starting at "$"). After a Redis restart the
// stream and group are gone: XREADGROUP then answers NOGROUP and the group is recreated starting
// at "0", so wake-ups published since the restart are not lost.
//
// Failures: never throws. publish() while Redis is down logs (rate-limited) and drops the
// message. next() while Redis is down sleeps briefly (at most `outage_sleep`, bounded by its
// timeout, cut short by close()) and returns nullopt, so workers fall back to polling the
// database. The client reconnects by itself.
//
// close() makes every next() return nullopt; a waiter notices within `max_block` (blocking reads
// are done in slices of at most that long). publish() keeps working after close(): other
// processes may still consume.
//
// Thread safety: all methods may be called from any thread; each blocked next() uses its own
// connection from the client's blocking pool.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "domain/ports.h"
#include "redis/rate_limited_log.h"
#include "redis/redis_client.h"

namespace transnotes::queue {

struct RedisJobBusOptions {
  std::string stream = "transnotes:jobs";
  std::string group = "workers";
  std::string consumer;  // empty: "<hostname>-<pid>"
  std::size_t max_length = 100000;
  std::chrono::milliseconds max_block{500};
  std::chrono::milliseconds outage_sleep{1000};
};

struct RedisJobBusStats {
  std::uint64_t published = 0;
  std::uint64_t received = 0;
  std::uint64_t errors = 0;  // failed publishes (dropped), failed reads, malformed entries
};

class RedisJobBus final : public JobBus {
 public:
  explicit RedisJobBus(std::shared_ptr<redis::RedisClient> client, RedisJobBusOptions options = {});

  void publish(const JobNotice& notice) override;
  std::optional<JobNotice> next(std::chrono::milliseconds timeout) override;
  void close() override;

  RedisJobBusStats stats() const;

 private:
  // XGROUP CREATE ... MKSTREAM; BUSYGROUP counts as success. Throws Unavailable.
  void create_group(const char* start_id);
  enum class ReadResult { Message, Empty, NoGroup };
  // One XREADGROUP (+XACK). Throws Unavailable.
  ReadResult read_once(std::chrono::milliseconds block, std::optional<JobNotice>& notice);
  void record_error(std::string_view what, std::string_view detail);
  void sleep_unless_closed(std::chrono::milliseconds duration);

  std::shared_ptr<redis::RedisClient> client_;
  RedisJobBusOptions options_;
  std::string max_length_;
  std::atomic<bool> group_ready_{false};
  std::atomic<bool> closed_{false};
  std::mutex close_mutex_;
  std::condition_variable closed_cv_;

  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> received_{0};
  std::atomic<std::uint64_t> errors_{0};
  redis::RateLimitedLog log_;
};

}  // namespace transnotes::queue
