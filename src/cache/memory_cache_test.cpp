#include "cache/memory_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace transnotes::cache {
namespace {

// A note of the open-mode owner unless the test names another: most guarantees are per key, and
// the owner-isolation tests below use several owners.
NoteKey note(std::int64_t id, UserId owner = kOpenModeOwner) { return NoteKey{owner, id}; }

using std::chrono::milliseconds;

TEST(MemoryNoteCache, MissThenHit) {
  MemoryNoteCache cache;
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
  cache.put(note(1), 1, "{\"id\":1}");
  EXPECT_EQ(cache.get(note(1)), "{\"id\":1}");
  EXPECT_EQ(cache.get(note(2)), std::nullopt);
}

// Two users' notes with the same id are different entries: neither user is ever answered with
// the other's body, and one user's invalidation neither drops nor blocks the other's entry.
TEST(MemoryNoteCache, OwnersWithTheSameNoteIdNeverSeeEachOthersEntries) {
  MemoryNoteCache cache;
  const UserId alice = 1, bob = 2;
  cache.put(note(5, alice), 3, "alice's note");
  EXPECT_EQ(cache.get(note(5, bob)), std::nullopt);
  EXPECT_EQ(cache.get(note(5)), std::nullopt);  // nor the open-mode owner's
  cache.put(note(5, bob), 1, "bob's note");     // a lower version than alice's: still stored
  EXPECT_EQ(cache.get(note(5, alice)), "alice's note");
  EXPECT_EQ(cache.get(note(5, bob)), "bob's note");

  cache.invalidate(note(5, alice), INT64_MAX);  // alice deletes her note
  EXPECT_EQ(cache.get(note(5, alice)), std::nullopt);
  EXPECT_EQ(cache.get(note(5, bob)), "bob's note");
  cache.refresh(note(5, bob), 2, "bob's edit");  // alice's deletion floor does not block bob
  EXPECT_EQ(cache.get(note(5, bob)), "bob's edit");
  EXPECT_EQ(cache.get(note(5, alice)), std::nullopt);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(MemoryNoteCache, HigherVersionWins) {
  MemoryNoteCache cache;
  cache.put(note(7), 3, "v3");
  cache.put(note(7), 2, "v2");  // older reader arriving late
  EXPECT_EQ(cache.get(note(7)), "v3");
  cache.put(note(7), 4, "v4");
  EXPECT_EQ(cache.get(note(7)), "v4");
}

TEST(MemoryNoteCache, InvalidateBlocksOlderPutsButNotNewer) {
  MemoryNoteCache cache;
  cache.put(note(5), 1, "v1");
  cache.invalidate(note(5), 2);
  EXPECT_EQ(cache.get(note(5)), std::nullopt);
  // The race: a reader loaded v1 before the write, puts it after the invalidation.
  cache.put(note(5), 1, "v1");
  EXPECT_EQ(cache.get(note(5)), std::nullopt);
  cache.put(note(5), 2, "v2");
  EXPECT_EQ(cache.get(note(5)), "v2");
}

TEST(MemoryNoteCache, InvalidateWithoutEntryStillLeavesTombstone) {
  MemoryNoteCache cache;
  cache.invalidate(note(9), 4);
  cache.put(note(9), 3, "v3");
  EXPECT_EQ(cache.get(note(9)), std::nullopt);
  cache.put(note(9), 4, "v4");
  EXPECT_EQ(cache.get(note(9)), "v4");
}

TEST(MemoryNoteCache, InvalidateKeepsHigherCachedVersionAsFloor) {
  MemoryNoteCache cache;
  cache.put(note(3), 6, "v6");
  cache.invalidate(note(3), 2);  // stale invalidation: still drops, but v5 must not come back
  EXPECT_EQ(cache.get(note(3)), std::nullopt);
  cache.put(note(3), 5, "v5");
  EXPECT_EQ(cache.get(note(3)), std::nullopt);
}

TEST(MemoryNoteCache, RefreshCachesTheWrittenVersionAndBlocksOlderOnes) {
  MemoryNoteCache cache;
  cache.put(note(8), 1, "v1");
  cache.refresh(note(8), 2, "v2");
  EXPECT_EQ(cache.get(note(8)), "v2");
  cache.put(note(8), 1, "v1");  // a reader that loaded v1 before the write
  EXPECT_EQ(cache.get(note(8)), "v2");
  cache.refresh(note(8), 3, "v3");
  cache.refresh(note(8), 2,
                "v2");  // a slower writer of an older version: neither served nor evicting
  EXPECT_EQ(cache.get(note(8)), "v3");
  cache.invalidate(note(8), INT64_MAX);
  cache.refresh(note(8), 4, "v4");  // after the delete
  EXPECT_EQ(cache.get(note(8)), std::nullopt);
}

TEST(MemoryNoteCache, DeletionTombstoneBlocksEverything) {
  MemoryNoteCache cache;
  cache.put(note(4), 1, "v1");
  cache.invalidate(note(4), INT64_MAX);
  cache.put(note(4), 1000000, "late");
  EXPECT_EQ(cache.get(note(4)), std::nullopt);
}

TEST(MemoryNoteCache, EvictsLeastRecentlyUsed) {
  // Capacity 16 over 16 shards: one slot per shard, so two ids in the same shard evict each other.
  MemoryNoteCache cache({.capacity = 16, .ttl = std::chrono::seconds(300)});
  for (std::int64_t id = 1; id <= 1000; ++id) cache.put(note(id), 1, std::to_string(id));
  EXPECT_LE(cache.size(), 16u);
  EXPECT_EQ(cache.get(note(1000)), "1000");  // the newest survives
  int survivors = 0;
  for (std::int64_t id = 1; id <= 1000; ++id) survivors += cache.get(note(id)).has_value();
  EXPECT_LE(survivors, 16);
  EXPECT_GE(survivors, 1);
}

TEST(MemoryNoteCache, RecentlyReadEntrySurvivesEviction) {
  MemoryNoteCache cache({.capacity = 16 * 2, .ttl = std::chrono::seconds(300)});
  // Find three ids that land in the same shard as id 1 by watching evictions is fragile, so fill
  // many ids while touching id 1 between every put: it must always survive.
  cache.put(note(1), 1, "one");
  for (std::int64_t id = 2; id <= 500; ++id) {
    cache.put(note(id), 1, "x");
    ASSERT_EQ(cache.get(note(1)), "one") << "evicted after put of " << id;
  }
  EXPECT_LE(cache.size(), 32u);
}

TEST(MemoryNoteCache, TombstonesCountTowardCapacity) {
  MemoryNoteCache cache({.capacity = 16, .ttl = std::chrono::seconds(300)});
  for (std::int64_t id = 1; id <= 1000; ++id) cache.invalidate(note(id), 2);
  EXPECT_LE(cache.size(), 16u);
}

// A clock the TTL tests move by hand.
std::chrono::steady_clock::time_point fake_now_value{};
std::chrono::steady_clock::time_point fake_now() { return fake_now_value; }

TEST(MemoryNoteCache, EntriesExpireAfterTtl) {
  MemoryNoteCache cache({.capacity = 100, .ttl = milliseconds(30), .now = &fake_now});
  cache.put(note(1), 1, "v1");
  fake_now_value += milliseconds(29);
  EXPECT_EQ(cache.get(note(1)), "v1");
  fake_now_value += milliseconds(1);
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
}

// Every get() is a hit or a miss: absent, expired and tombstoned keys are misses.
TEST(MemoryNoteCache, StatsCountEveryLookupAndWhatIsHeld) {
  MemoryNoteCache cache({.capacity = 100, .ttl = milliseconds(30), .now = &fake_now});
  EXPECT_EQ(cache.get(note(1)), std::nullopt);  // absent
  cache.put(note(1), 1, "v1");
  EXPECT_EQ(cache.get(note(1)), "v1");
  cache.invalidate(note(2), 3);
  EXPECT_EQ(cache.get(note(2)), std::nullopt);  // tombstone
  auto stats = cache.stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.bytes, cache.bytes());
  fake_now_value += milliseconds(30);
  EXPECT_EQ(cache.get(note(1)), std::nullopt);  // expired
  stats = cache.stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 3u);
  EXPECT_EQ(stats.entries, 1u);
}

TEST(MemoryNoteCache, TombstonesExpireAfterTtl) {
  MemoryNoteCache cache({.capacity = 100, .ttl = milliseconds(30), .now = &fake_now});
  cache.invalidate(note(1), 5);
  fake_now_value += milliseconds(29);
  cache.put(note(1), 1, "v1");  // the tombstone still blocks older versions
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
  fake_now_value += milliseconds(1);
  cache.put(note(1), 1, "v1");  // the tombstone is gone, so even an old version is accepted
  EXPECT_EQ(cache.get(note(1)), "v1");
}

TEST(MemoryNoteCache, ConcurrentReadersAndWritersKeepVersionOrder) {
  // Large enough that nothing is evicted: eviction legitimately forgets versions.
  MemoryNoteCache cache({.capacity = 10000, .ttl = std::chrono::seconds(300)});
  constexpr int kIds = 64;
  constexpr int kVersions = 300;
  std::atomic<int> regressions{0};
  std::atomic<int> bodies_seen{0};
  std::atomic<int> writers_running{4};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      struct Done {
        std::atomic<int>& running;
        ~Done() { --running; }
      } done{writers_running};
      for (int v = 1; v <= kVersions; ++v) {
        for (int id = 0; id < kIds; ++id) {
          // The last round only puts, so every id must end as the entry of kVersions.
          if ((v + t) % 7 == 0 && v < kVersions) {
            cache.invalidate(note(id), v);
          } else {
            cache.put(note(id), v, std::to_string(v));
          }
        }
      }
    });
  }
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      // Once a reader saw version v of an id, it may miss but never see an older version again:
      // that is what the version checks guarantee while nothing is evicted. Readers run for as
      // long as any writer does.
      std::vector<int> newest_seen(kIds, 0);
      do {
        for (int id = 0; id < kIds; ++id) {
          auto body = cache.get(note(id));
          if (!body) continue;
          const int version = std::stoi(*body);
          ++bodies_seen;
          if (version < newest_seen[id]) ++regressions;
          newest_seen[id] = std::max(newest_seen[id], version);
        }
      } while (writers_running.load() > 0);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(regressions.load(), 0);
  EXPECT_GT(bodies_seen.load(), 0);  // the readers did observe entries
  for (int id = 0; id < kIds; ++id) {
    EXPECT_EQ(cache.get(note(id)), std::to_string(kVersions)) << "id " << id;
  }
  EXPECT_EQ(cache.size(), static_cast<std::size_t>(kIds));
}

TEST(MemoryNoteCacheBytes, StaysUnderTheByteBoundEvictingLeastRecentlyUsed) {
  const std::size_t max_bytes = 16 * 4096;  // 4 KiB a shard
  MemoryNoteCache cache({.capacity = 10000, .max_bytes = max_bytes, .ttl = std::chrono::hours(1)});
  const std::string body(1000, 'b');
  cache.put(note(1), 1, "kept because it is read");
  for (std::int64_t id = 2; id <= 2000; ++id) {
    cache.put(note(id), 1, body);
    ASSERT_LE(cache.bytes(), max_bytes) << "after put of " << id;
    ASSERT_EQ(cache.get(note(1)), "kept because it is read") << "evicted after put of " << id;
  }
  EXPECT_EQ(cache.get(note(2000)), body);       // the newest is there
  EXPECT_EQ(cache.get(note(2)), std::nullopt);  // an old unread one went
  // 2000 entries would hold ~2 MB; the byte bound, not the entry bound, limited them.
  EXPECT_LT(cache.size(), 16u * 4u + 1u);
}

TEST(MemoryNoteCacheBytes, ReplacingAnEntryAccountsItsNewSize) {
  MemoryNoteCache cache({.capacity = 100, .max_bytes = 16 * 100000, .ttl = std::chrono::hours(1)});
  EXPECT_EQ(cache.bytes(), 0u);
  cache.put(note(1), 1, std::string(5000, 'a'));
  EXPECT_EQ(cache.bytes(), MemoryNoteCache::kSlotOverheadBytes + 5000);
  cache.put(note(1), 2, std::string(10, 'a'));
  EXPECT_EQ(cache.bytes(), MemoryNoteCache::kSlotOverheadBytes + 10);
  cache.invalidate(note(1), 3);
  EXPECT_EQ(cache.bytes(), MemoryNoteCache::kSlotOverheadBytes);
}

TEST(MemoryNoteCacheBytes, BodyLargerThanAShardIsNotKeptButStillBlocksOlderVersions) {
  MemoryNoteCache cache({.capacity = 100, .max_bytes = 16 * 1024, .ttl = std::chrono::hours(1)});
  cache.put(note(1), 1, "small v1");
  cache.put(note(1), 2, std::string(2000, 'x'));  // over the 1 KiB share of its shard
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
  EXPECT_LE(cache.bytes(), 16u * 1024u);
  cache.put(note(1), 1, "small v1");  // a late reader of the old row
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
  cache.put(note(1), 3, "small v3");
  EXPECT_EQ(cache.get(note(1)), "small v3");
}

}  // namespace
}  // namespace transnotes::cache
