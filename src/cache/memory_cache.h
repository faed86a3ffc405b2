// In-process NoteCache: the embedded default when no Redis is configured.
//
// Bounded LRU with TTL and versioned entries, bounded both by count and by bytes (bodies plus a
// fixed per-slot overhead): the least recently used slots go until both bounds hold. Each note
// key (owner, id) maps to either
//   - an entry (version, body), or
//   - a tombstone remembering min_version (left by invalidate()).
// put(id, v, body) is ignored when the slot holds an entry with a higher version or a tombstone
// with min_version > v; this closes the cache-aside race in which a reader that loaded the old row
// before a write puts it back after the write's invalidation. Tombstones expire with the TTL and
// count toward the capacity, like entries. A body too large for the byte bound is not kept: its
// put leaves a tombstone of its version instead, so older versions stay blocked.
//
// Thread safety: all methods may be called from any thread. The key space is split over 16 shards,
// each with its own mutex, LRU list and hash map, so concurrent readers rarely contend; get()
// copies the body outside the lock (bodies are held as shared_ptr<const std::string>).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/note_key_hash.h"
#include "domain/ports.h"
#include "metrics/metrics.h"

namespace transnotes::cache {

struct MemoryNoteCacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;   // absent, expired, or a tombstone
  std::uint64_t entries = 0;  // slots held: entries and tombstones
  std::uint64_t bytes = 0;    // what those slots account for
};

// The stats as metric families (the lookups under the Redis cache's name), for a
// metrics::MetricsRegistry collector.
std::vector<prometheus::MetricFamily> metric_families(const MemoryNoteCacheStats& stats);

struct MemoryNoteCacheOptions {
  std::size_t capacity = 10000;  // entries + tombstones, across all shards (at least 1 per shard)
  // Bytes held across all shards, split evenly over them (so one body may use a shard's share,
  // max_bytes / 16, at most).
  std::size_t max_bytes = std::size_t{256} << 20;
  std::chrono::milliseconds ttl = std::chrono::seconds(300);
  // The clock TTLs are measured on: tests pass a clock they move, so expiry is checked without
  // sleeping. A plain function pointer keeps the lookup path free of indirection cost.
  std::chrono::steady_clock::time_point (*now)() = &std::chrono::steady_clock::now;
};

class MemoryNoteCache final : public NoteCache {
 public:
  explicit MemoryNoteCache(MemoryNoteCacheOptions options = {});

  std::optional<std::string> get(const NoteKey& key) override;
  void put(const NoteKey& key, std::int64_t version, std::string_view body) override;
  void invalidate(const NoteKey& key, std::int64_t min_version) override;
  // Stores the body unless a newer version or tombstone is there; the stored entry blocks older
  // versions as invalidate(key, version) would, without dropping a newer entry.
  void refresh(const NoteKey& key, std::int64_t version, std::string_view body) override;

  // Number of live-or-expired-but-not-yet-evicted slots (entries + tombstones). For tests/metrics.
  std::size_t size() const;
  // Bytes those slots account for (bodies plus the per-slot overhead). For tests/metrics.
  std::size_t bytes() const;
  // What one slot costs besides its body: list node, hash node, shared body control block.
  static constexpr std::size_t kSlotOverheadBytes = 160;
  // Lookups so far and what is held now, each shard read under its lock in turn.
  MemoryNoteCacheStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Slot {
    NoteKey key;
    // Entry: the body's version. Tombstone: the minimum version a later put needs.
    std::int64_t version = 0;
    std::shared_ptr<const std::string> body;  // null for a tombstone
    Clock::time_point expires_at;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::list<Slot> lru;  // most recently used first
    std::unordered_map<NoteKey, std::list<Slot>::iterator, NoteKeyHash> index;
    std::size_t bytes = 0;
    // Counted under the mutex get() holds anyway: no extra atomic on the lookup path.
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
  };
  static constexpr std::size_t kShards = 16;

  Shard& shard_for(const NoteKey& key);
  // Inserts or replaces the slot of `slot.key` at the front, evicting from the back if needed.
  // The shard's mutex must be held.
  void store_locked(Shard& shard, Slot slot);
  static void erase_locked(Shard& shard, std::list<Slot>::iterator slot);
  static std::size_t slot_bytes(const Slot& slot);

  std::size_t shard_capacity_;
  std::size_t shard_max_bytes_;
  std::chrono::milliseconds ttl_;
  Clock::time_point (*now_)();
  std::array<Shard, kShards> shards_;
};

}  // namespace transnotes::cache
