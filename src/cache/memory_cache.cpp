#include "cache/memory_cache.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace transnotes::cache {

MemoryNoteCache::MemoryNoteCache(MemoryNoteCacheOptions options)
    : shard_capacity_(std::max<std::size_t>(1, (options.capacity + kShards - 1) / kShards)),
      shard_max_bytes_(std::max<std::size_t>(kSlotOverheadBytes, options.max_bytes / kShards)),
      ttl_(options.ttl),
      now_(options.now ? options.now : &Clock::now) {}

MemoryNoteCache::Shard& MemoryNoteCache::shard_for(const NoteKey& key) {
  return shards_[(mix_note_key(key) >> 60) % kShards];
}

std::optional<std::string> MemoryNoteCache::get(const NoteKey& key) {
  Shard& shard = shard_for(key);
  std::shared_ptr<const std::string> body;
  {
    std::lock_guard lock(shard.mutex);
    auto found = shard.index.find(key);
    if (found == shard.index.end()) {
      ++shard.misses;
      return std::nullopt;
    }
    auto slot = found->second;
    if (now_() >= slot->expires_at) {
      erase_locked(shard, slot);
      ++shard.misses;
      return std::nullopt;
    }
    if (!slot->body) {  // tombstone
      ++shard.misses;
      return std::nullopt;
    }
    shard.lru.splice(shard.lru.begin(), shard.lru, slot);
    body = slot->body;
    ++shard.hits;
  }
  return std::string(*body);  // copy outside the lock
}

void MemoryNoteCache::put(const NoteKey& key, std::int64_t version, std::string_view body) {
  auto shared_body = std::make_shared<const std::string>(body);  // allocate outside the lock
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  auto found = shard.index.find(key);
  if (found != shard.index.end()) {
    const Slot& existing = *found->second;
    bool expired = now_() >= existing.expires_at;
    if (!expired && existing.version > version) return;  // newer entry or tombstone wins
  }
  store_locked(shard, Slot{key, version, std::move(shared_body), now_() + ttl_});
}

void MemoryNoteCache::refresh(const NoteKey& key, std::int64_t version, std::string_view body) {
  // A stored entry of `version` already refuses every older put, so the versioned put is all the
  // invalidation a memory cache needs (the default would also drop a newer entry).
  put(key, version, body);
}

void MemoryNoteCache::invalidate(const NoteKey& key, std::int64_t min_version) {
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  std::int64_t level = min_version;
  auto found = shard.index.find(key);
  if (found != shard.index.end() && now_() < found->second->expires_at) {
    // A cached body of version v proves the row had version v, so anything older stays stale.
    level = std::max(level, found->second->version);
  }
  store_locked(shard, Slot{key, level, nullptr, now_() + ttl_});
}

std::size_t MemoryNoteCache::slot_bytes(const Slot& slot) {
  return kSlotOverheadBytes + (slot.body ? slot.body->size() : 0);
}

void MemoryNoteCache::erase_locked(Shard& shard, std::list<Slot>::iterator slot) {
  shard.bytes -= slot_bytes(*slot);
  shard.index.erase(slot->key);
  shard.lru.erase(slot);
}

void MemoryNoteCache::store_locked(Shard& shard, Slot slot) {
  if (slot_bytes(slot) > shard_max_bytes_) slot.body.reset();  // too big: keep only its version
  auto found = shard.index.find(slot.key);
  if (found != shard.index.end()) erase_locked(shard, found->second);
  const std::size_t bytes = slot_bytes(slot);
  while (!shard.lru.empty() &&
         (shard.lru.size() >= shard_capacity_ || shard.bytes + bytes > shard_max_bytes_)) {
    erase_locked(shard, std::prev(shard.lru.end()));
  }
  shard.lru.push_front(std::move(slot));
  shard.index.emplace(shard.lru.front().key, shard.lru.begin());
  shard.bytes += bytes;
}

std::size_t MemoryNoteCache::bytes() const {
  std::size_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    total += shard.bytes;
  }
  return total;
}

MemoryNoteCacheStats MemoryNoteCache::stats() const {
  MemoryNoteCacheStats stats;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    stats.hits += shard.hits;
    stats.misses += shard.misses;
    stats.entries += shard.lru.size();
    stats.bytes += shard.bytes;
  }
  return stats;
}

std::vector<prometheus::MetricFamily> metric_families(const MemoryNoteCacheStats& stats) {
  const auto value = [](std::uint64_t n) { return static_cast<double>(n); };
  return {
      metrics::counter_family(
          "transnotes_cache_lookups_total", "Note cache lookups in this process, by result.",
          {{{{"result", "hit"}}, value(stats.hits)}, {{{"result", "miss"}}, value(stats.misses)}}),
      metrics::gauge_family("transnotes_cache_entries",
                            "Slots the in-process note cache holds (entries and tombstones).",
                            {{{}, value(stats.entries)}}),
      metrics::gauge_family("transnotes_cache_bytes",
                            "Bytes the in-process note cache's slots account for.",
                            {{{}, value(stats.bytes)}}),
  };
}

std::size_t MemoryNoteCache::size() const {
  std::size_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    total += shard.lru.size();
  }
  return total;
}

}  // namespace transnotes::cache
