#include "cache/redis_cache.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "domain/errors.h"

namespace transnotes::cache {
namespace {

// KEYS[1] note key; ARGV[1] version; ARGV[2] body; ARGV[3] ttl ms. Returns 1 if stored.
const redis::LuaScript kPutScript(R"lua(
local current = redis.call('GET', KEYS[1])
if current then
  local newline = string.find(current, '\n', 1, true)
  local stored = tonumber(string.sub(current, 2, newline and (newline - 1) or -1)) or 0
  if stored > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], 'v' .. ARGV[1] .. '\n' .. ARGV[2], 'PX', ARGV[3])
return 1
)lua");

// KEYS[1] note key; ARGV[1] min version; ARGV[2] ttl ms. Leaves a tombstone of
// max(min version, stored version); the winning version is kept as the original decimal text.
const redis::LuaScript kInvalidateScript(R"lua(
local level = ARGV[1]
local current = redis.call('GET', KEYS[1])
if current then
  local newline = string.find(current, '\n', 1, true)
  local stored = string.sub(current, 2, newline and (newline - 1) or -1)
  if (tonumber(stored) or 0) > tonumber(level) then level = stored end
end
redis.call('SET', KEYS[1], 't' .. level, 'PX', ARGV[2])
return 1
)lua");

}  // namespace

RedisNoteCache::RedisNoteCache(std::shared_ptr<redis::RedisClient> client,
                               RedisNoteCacheOptions options)
    : client_(std::move(client)),
      options_(std::move(options)),
      ttl_ms_(std::to_string(std::max<long long>(1, options_.ttl.count()))) {
  if (options_.async_connections > 0) {
    async_ = std::make_unique<redis::AsyncGetClient>(client_->config(), options_.async_connections);
  }
}

std::string RedisNoteCache::key_for(const NoteKey& key) const {
  std::string redis_key = options_.key_prefix;
  redis_key += std::to_string(key.owner);
  redis_key += ':';
  redis_key += std::to_string(key.id);
  return redis_key;
}

void RedisNoteCache::record_error(std::string_view what, std::string_view detail) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  log_.warn(what, detail);
}

std::optional<std::string> RedisNoteCache::get(const NoteKey& key) {
  if (has_pending_.load(std::memory_order_acquire) && !replay_pending()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  try {
    redis::Reply reply = client_->command({"GET", key_for(key)});
    if (reply.type == redis::Reply::Type::String && !reply.str.empty() && reply.str[0] == 'v') {
      auto newline = reply.str.find('\n');
      if (newline != std::string::npos) {
        hits_.fetch_add(1, std::memory_order_relaxed);
        return reply.str.substr(newline + 1);
      }
    }
    if (reply.is_error()) record_error("note cache get failed", reply.str);
  } catch (const Unavailable& error) {
    record_error("note cache unavailable (get)", error.what());
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

bool RedisNoteCache::get_async(const NoteKey& key, GetCallback done) {
  // Remembered invalidations must be replayed before anything is served from Redis; get() does
  // that (blocking), so leave those reads to it.
  if (!async_ || has_pending_.load(std::memory_order_acquire)) return false;
  using Outcome = redis::AsyncGetClient::Outcome;
  return async_->get(key_for(key),
                     [this, done = std::move(done)](Outcome outcome, std::string value) {
                       if (outcome == Outcome::kValue && !value.empty() && value[0] == 'v') {
                         auto newline = value.find('\n');
                         if (newline != std::string::npos) {
                           hits_.fetch_add(1, std::memory_order_relaxed);
                           value.erase(0, newline + 1);
                           return done(std::move(value));
                         }
                       }
                       if (outcome == Outcome::kFailed)
                         record_error("note cache get failed", value);
                       misses_.fetch_add(1, std::memory_order_relaxed);
                       done(std::nullopt);
                     });
}

void RedisNoteCache::put(const NoteKey& key, std::int64_t version, std::string_view body) {
  if (has_pending_.load(std::memory_order_acquire) && !replay_pending()) return;
  try {
    run_put(key, version, body);
  } catch (const Unavailable& error) {
    record_error("note cache put dropped", error.what());
  }
}

void RedisNoteCache::run_put(const NoteKey& key, std::int64_t version, std::string_view body) {
  const std::string version_text = std::to_string(version);
  redis::Reply reply = client_->eval(kPutScript, {key_for(key)}, {version_text, body, ttl_ms_});
  if (reply.is_error()) throw Unavailable("note cache put failed: " + reply.str);
}

void RedisNoteCache::run_invalidate(const NoteKey& key, std::int64_t min_version) {
  std::string version_text = std::to_string(min_version);
  redis::Reply reply = client_->eval(kInvalidateScript, {key_for(key)}, {version_text, ttl_ms_});
  if (reply.is_error()) throw Unavailable("note cache invalidate failed: " + reply.str);
}

void RedisNoteCache::invalidate(const NoteKey& key, std::int64_t min_version) {
  try {
    run_invalidate(key, min_version);
  } catch (const Unavailable& error) {
    record_error("note cache unavailable (invalidation queued for replay)", error.what());
    remember_failed_invalidation(key, min_version);
  }
}

void RedisNoteCache::refresh(const NoteKey& key, std::int64_t version, std::string_view body) {
  try {
    run_put(key, version, body);
  } catch (const Unavailable& error) {
    record_error("note cache unavailable (invalidation queued for replay)", error.what());
    remember_failed_invalidation(key, version);
  }
}

void RedisNoteCache::remember_failed_invalidation(const NoteKey& key, std::int64_t min_version) {
  std::lock_guard lock(pending_mutex_);
  auto found = pending_.find(key);
  if (found != pending_.end()) {
    found->second = std::max(found->second, min_version);
  } else if (pending_.size() < options_.max_pending_invalidations) {
    pending_.emplace(key, min_version);
  } else {
    purge_needed_ = true;
  }
  has_pending_.store(true, std::memory_order_release);
}

bool RedisNoteCache::replay_pending() {
  std::unique_lock replay(replay_mutex_, std::try_to_lock);
  if (!replay.owns_lock()) return false;  // another thread is replaying; be safe and skip
  std::vector<std::pair<NoteKey, std::int64_t>> batch;
  bool purge = false;
  {
    std::lock_guard lock(pending_mutex_);
    batch.assign(pending_.begin(), pending_.end());
    purge = purge_needed_;
  }
  try {
    if (purge) purge_prefix();
    for (const auto& [key, min_version] : batch) run_invalidate(key, min_version);
  } catch (const Unavailable& error) {
    record_error("note cache still unavailable (replaying invalidations)", error.what());
    return false;
  }
  std::lock_guard lock(pending_mutex_);
  for (const auto& [key, min_version] : batch) {
    auto found = pending_.find(key);
    // A newer failure for the same note may have raised the version meanwhile: keep that one.
    if (found != pending_.end() && found->second <= min_version) pending_.erase(found);
  }
  if (purge) purge_needed_ = false;
  bool done = pending_.empty() && !purge_needed_;
  if (done) has_pending_.store(false, std::memory_order_release);
  return done;
}

void RedisNoteCache::purge_prefix() {
  std::string cursor = "0";
  std::string pattern = options_.key_prefix + "*";
  do {
    redis::Reply reply = client_->command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (reply.type != redis::Reply::Type::Array || reply.elements.size() != 2) {
      throw Unavailable("note cache purge: unexpected SCAN reply " + reply.str);
    }
    cursor = reply.elements[0].str;
    std::vector<std::string_view> unlink{"UNLINK"};
    for (const redis::Reply& key : reply.elements[1].elements) unlink.push_back(key.str);
    if (unlink.size() > 1) {
      // An error reply (a user without UNLINK, a read-only replica) deleted nothing: the purge
      // must stay pending, or the stale entries it was for would be served.
      const redis::Reply removed = client_->command(unlink);
      if (removed.is_error()) throw Unavailable("note cache purge failed: " + removed.str);
    }
  } while (cursor != "0");
}

RedisNoteCacheStats RedisNoteCache::stats() const {
  RedisNoteCacheStats stats;
  stats.hits = hits_.load(std::memory_order_relaxed);
  stats.misses = misses_.load(std::memory_order_relaxed);
  stats.errors = errors_.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(pending_mutex_);
    stats.pending_invalidations = pending_.size();
  }
  if (async_) {
    const auto async = async_->stats();
    stats.async_sent = async.sent;
    stats.async_refused = async.refused;
  }
  return stats;
}

std::vector<prometheus::MetricFamily> metric_families(const RedisNoteCacheStats& stats) {
  const auto value = [](std::uint64_t n) { return static_cast<double>(n); };
  return {
      metrics::counter_family(
          "transnotes_cache_lookups_total", "Note cache lookups in Redis, by result.",
          {{{{"result", "hit"}}, value(stats.hits)}, {{{"result", "miss"}}, value(stats.misses)}}),
      metrics::counter_family(
          "transnotes_cache_errors_total",
          "Redis calls of the note cache that failed (unreachable, timed out, error reply).",
          {{{}, value(stats.errors)}}),
      metrics::gauge_family("transnotes_cache_pending_invalidations",
                            "Failed cache invalidations waiting to be replayed.",
                            {{{}, value(stats.pending_invalidations)}}),
      metrics::counter_family(
          "transnotes_cache_async_reads_total",
          "Non-blocking cache reads from the event loop: sent on the pipelined connections, or "
          "declined (no connection up) and passed to the blocking path.",
          {{{{"outcome", "sent"}}, value(stats.async_sent)},
           {{{"outcome", "declined"}}, value(stats.async_refused)}}),
  };
}

std::string render_prometheus(const RedisNoteCacheStats& stats) {
  return prometheus::TextSerializer().Serialize(metric_families(stats));
}

}  // namespace transnotes::cache
