// NoteCache over Redis (production): one string key per note, `<prefix><owner>:<id>` (default
// prefix "transnotes:note:"), so every key names the owner whose note it caches, in the db selected
// by the client's URL (the original deployment used db 1 for the cache), with a TTL (default 300
// s).
//
// Versioning: the value is either "v<version>\n<body>" (an entry) or "t<min_version>" (a
// tombstone). put() and invalidate() are Lua scripts, so the compare-and-set is atomic in Redis:
//   - put(id, v, body) writes only if the stored entry/tombstone version is <= v;
//   - invalidate(id, m) always replaces the value with a tombstone of max(m, stored version).
// This closes the cache-aside race: a reader that loaded the old row before a write cannot put it
// back after the write's invalidation (its version is lower than the tombstone's).
// Versions are compared as Lua numbers (doubles): exact up to 2^53, and INT64_MAX (deletion)
// still compares above every realistic version.
//
// Failures: never throws. When Redis is unreachable, get() returns nullopt, put() is dropped, and
// errors are counted and logged (at most once per 10 s). The client reconnects by itself.
//
// Invalidations that fail while Redis is unreachable (a network partition, not a restart: a
// restarted Redis without persistence comes back empty) could leave a stale entry behind. They
// are remembered in memory (note key -> highest min_version, up to `max_pending_invalidations`) and
// replayed before any other operation succeeds again: while replay is pending or failing, get()
// misses and put() is dropped, so a stale entry is never served. If more invalidations fail than
// can be remembered, the whole prefix is purged (SCAN + UNLINK) on recovery instead. What remains
// is a process crash during an outage, which loses the pending list; the TTL bounds that case.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/note_key_hash.h"
#include "domain/ports.h"
#include "metrics/metrics.h"
#include "redis/async_get_client.h"
#include "redis/rate_limited_log.h"
#include "redis/redis_client.h"

namespace transnotes::cache {

struct RedisNoteCacheOptions {
  std::string key_prefix = "transnotes:note:";
  std::chrono::milliseconds ttl = std::chrono::seconds(300);
  std::size_t max_pending_invalidations = 100000;
  // > 0: get_async() reads through this many non-blocking, pipelined connections (for the
  // API's event loop); 0: get_async() always declines and callers use get().
  int async_connections = 0;
};

struct RedisNoteCacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t errors = 0;                 // Redis calls that failed (unreachable/timeout/error)
  std::uint64_t pending_invalidations = 0;  // failed invalidations waiting to be replayed
  std::uint64_t async_sent = 0;             // get_async reads sent on the pipelined connections
  std::uint64_t async_refused = 0;          // get_async calls declined (no connection up)
};

// The stats as metric families (counters and a gauge, each with its help text), for a
// metrics::MetricsRegistry collector; render_prometheus is the same in the text format.
std::vector<prometheus::MetricFamily> metric_families(const RedisNoteCacheStats& stats);
std::string render_prometheus(const RedisNoteCacheStats& stats);

class RedisNoteCache final : public NoteCache {
 public:
  // `client` is shared (e.g. with other users of the same db); it must outlive nothing else.
  explicit RedisNoteCache(std::shared_ptr<redis::RedisClient> client,
                          RedisNoteCacheOptions options = {});

  std::optional<std::string> get(const NoteKey& key) override;
  bool get_async(const NoteKey& key, GetCallback done) override;
  void put(const NoteKey& key, std::int64_t version, std::string_view body) override;
  void invalidate(const NoteKey& key, std::int64_t min_version) override;
  // One versioned put: it also blocks every older version, as invalidate() does.
  void refresh(const NoteKey& key, std::int64_t version, std::string_view body) override;

  RedisNoteCacheStats stats() const;
  std::string key_for(const NoteKey& key) const;

 private:
  void run_invalidate(const NoteKey& key, std::int64_t min_version);  // throws Unavailable
  // The versioned put script; throws Unavailable (also for an error reply).
  void run_put(const NoteKey& key, std::int64_t version, std::string_view body);
  void remember_failed_invalidation(const NoteKey& key, std::int64_t min_version);
  // Replays remembered invalidations; true when none are left. Never throws.
  bool replay_pending();
  void purge_prefix();  // throws Unavailable
  void record_error(std::string_view what, std::string_view detail);

  std::shared_ptr<redis::RedisClient> client_;
  RedisNoteCacheOptions options_;
  std::string ttl_ms_;

  std::atomic<std::uint64_t> hits_{0};
  std::atomic<std::uint64_t> misses_{0};
  std::atomic<std::uint64_t> errors_{0};
  redis::RateLimitedLog log_;

  std::atomic<bool> has_pending_{false};  // fast-path check for the hot get()
  mutable std::mutex pending_mutex_;      // guards pending_ and purge_needed_
  std::unordered_map<NoteKey, std::int64_t, NoteKeyHash> pending_;
  bool purge_needed_ = false;
  std::mutex replay_mutex_;  // one replayer at a time; others just miss meanwhile
  // Last member: destroyed first, answering its outstanding gets while the rest still exists.
  std::unique_ptr<redis::AsyncGetClient> async_;
};

}  // namespace transnotes::cache
