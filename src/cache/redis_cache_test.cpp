#include "cache/redis_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "domain/errors.h"
#include "redis/redis_test_support.h"

namespace transnotes::cache {
namespace {

// A note of the open-mode owner unless the test names another: most guarantees are per key, and
// the owner-isolation tests below use several owners.
NoteKey note(std::int64_t id, UserId owner = kOpenModeOwner) { return NoteKey{owner, id}; }

using redis::testing::eventually;
using redis::testing::ThrowawayRedis;
using redis::testing::unique_test_prefix;
using std::chrono::milliseconds;

// get_async() through the non-blocking client, retried while that client is still dialing
// (it declines then). nullopt inside: a miss; outer nullopt: it never accepted.
std::optional<std::optional<std::string>> get_async_when_ready(RedisNoteCache& cache,
                                                               const NoteKey& key) {
  std::optional<std::optional<std::string>> answer;
  eventually([&] {
    auto promise = std::make_shared<std::promise<std::optional<std::string>>>();
    auto future = promise->get_future();
    if (!cache.get_async(key, [promise](std::optional<std::string> body) {
          promise->set_value(std::move(body));
        })) {
      return false;
    }
    answer = future.get();
    return true;
  });
  return answer;
}

class RedisNoteCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = redis::testing::shared_test_redis_url();
    if (!url) GTEST_FAIL() << "TRANSNOTES_TEST_REDIS_URL is not set (run scripts/services.sh)";
    client_ = std::make_shared<redis::RedisClient>(redis::parse_redis_url(*url));
    options_.key_prefix = unique_test_prefix("cache");
  }
  std::unique_ptr<RedisNoteCache> make_cache() {
    return std::make_unique<RedisNoteCache>(client_, options_);
  }
  std::shared_ptr<redis::RedisClient> client_;
  RedisNoteCacheOptions options_;
};

TEST_F(RedisNoteCacheTest, MissThenHitWithBinaryBody) {
  auto cache = make_cache();
  EXPECT_EQ(cache->get(note(1)), std::nullopt);
  std::string body("{\"title\":\"a\nb\0c\"}", 17);
  cache->put(note(1), 1, body);
  EXPECT_EQ(cache->get(note(1)), body);
  EXPECT_EQ(cache->get(note(2)), std::nullopt);
  auto stats = cache->stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.errors, 0u);
}

TEST_F(RedisNoteCacheTest, KeyLayoutAndTtl) {
  auto cache = make_cache();
  cache->put(note(42, 7), 3, "body");
  // The owner is part of the key: another user's note 42 lives in another key.
  EXPECT_EQ(cache->key_for(note(42, 7)), options_.key_prefix + "7:42");
  redis::Reply ttl = client_->command({"PTTL", cache->key_for(note(42, 7))});
  EXPECT_GT(ttl.integer, 0);
  EXPECT_LE(ttl.integer, 300000);
  EXPECT_EQ(client_->command({"GET", cache->key_for(note(42, 7))}).str, "v3\nbody");
}

// Two users' notes with the same id are different Redis keys: neither user is ever answered with
// the other's body (by get or get_async), and one user's invalidation neither drops nor blocks
// the other's entry.
TEST_F(RedisNoteCacheTest, OwnersWithTheSameNoteIdNeverSeeEachOthersEntries) {
  options_.async_connections = 1;
  auto cache = make_cache();
  const UserId alice = 1, bob = 2;
  cache->put(note(5, alice), 3, "alice's note");
  EXPECT_EQ(cache->get(note(5, bob)), std::nullopt);
  EXPECT_EQ(cache->get(note(5)), std::nullopt);  // nor the open-mode owner's
  auto bob_async = get_async_when_ready(*cache, note(5, bob));
  ASSERT_TRUE(bob_async);
  EXPECT_EQ(*bob_async, std::nullopt);
  cache->put(note(5, bob), 1, "bob's note");  // a lower version than alice's: still stored
  EXPECT_EQ(cache->get(note(5, alice)), "alice's note");
  EXPECT_EQ(cache->get(note(5, bob)), "bob's note");

  cache->invalidate(note(5, alice), INT64_MAX);  // alice deletes her note
  EXPECT_EQ(cache->get(note(5, alice)), std::nullopt);
  EXPECT_EQ(cache->get(note(5, bob)), "bob's note");
  cache->refresh(note(5, bob), 2, "bob's edit");  // alice's deletion floor does not block bob
  EXPECT_EQ(cache->get(note(5, bob)), "bob's edit");
  auto alice_async = get_async_when_ready(*cache, note(5, alice));
  ASSERT_TRUE(alice_async);
  EXPECT_EQ(*alice_async, std::nullopt);
  EXPECT_NE(cache->key_for(note(5, alice)), cache->key_for(note(5, bob)));
  EXPECT_EQ(cache->stats().errors, 0u);
}

TEST_F(RedisNoteCacheTest, HigherVersionWins) {
  auto cache = make_cache();
  cache->put(note(7), 3, "v3");
  cache->put(note(7), 2, "v2");
  EXPECT_EQ(cache->get(note(7)), "v3");
  cache->put(note(7), 4, "v4");
  EXPECT_EQ(cache->get(note(7)), "v4");
}

TEST_F(RedisNoteCacheTest, InvalidateBlocksOlderPutsButNotNewer) {
  auto cache = make_cache();
  cache->put(note(5), 1, "v1");
  cache->invalidate(note(5), 2);
  EXPECT_EQ(cache->get(note(5)), std::nullopt);
  cache->put(note(5), 1, "v1");  // the cache-aside race: a stale reader arrives late
  EXPECT_EQ(cache->get(note(5)), std::nullopt);
  cache->put(note(5), 2, "v2");
  EXPECT_EQ(cache->get(note(5)), "v2");
}

TEST_F(RedisNoteCacheTest, InvalidateKeepsHigherStoredVersionAndDeletionBlocksAll) {
  auto cache = make_cache();
  cache->put(note(3), 6, "v6");
  cache->invalidate(note(3), 2);
  cache->put(note(3), 5, "v5");
  EXPECT_EQ(cache->get(note(3)), std::nullopt);
  EXPECT_EQ(client_->command({"GET", cache->key_for(note(3))}).str, "t6");
  cache->invalidate(note(3), INT64_MAX);
  EXPECT_EQ(client_->command({"GET", cache->key_for(note(3))}).str, "t9223372036854775807");
  cache->put(note(3), 1000000, "late");
  EXPECT_EQ(cache->get(note(3)), std::nullopt);
}

TEST_F(RedisNoteCacheTest, EntriesAndTombstonesExpire) {
  options_.ttl = milliseconds(50);
  auto cache = make_cache();
  cache->put(note(1), 1, "v1");
  cache->invalidate(note(2), 9);
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(cache->get(note(1)), std::nullopt);
  cache->put(note(2), 1, "old but allowed after the tombstone expired");
  EXPECT_TRUE(cache->get(note(2)).has_value());
}

TEST_F(RedisNoteCacheTest, ConcurrentWritersKeepVersionOrder) {
  auto cache = make_cache();
  constexpr int kIds = 16;
  constexpr int kVersions = 60;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int v = 1; v <= kVersions; ++v) {
        for (int id = 0; id < kIds; ++id) {
          // The last round only puts, so every id must end as the entry of kVersions.
          if ((v + t) % 5 == 0 && v < kVersions) {
            cache->invalidate(note(id), v);
          } else {
            cache->put(note(id), v, std::to_string(v));
          }
          cache->get(note(id));
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int id = 0; id < kIds; ++id) {
    EXPECT_EQ(cache->get(note(id)), std::to_string(kVersions)) << "id " << id;
  }
  EXPECT_EQ(cache->stats().errors, 0u);
}

RedisNoteCacheOptions throwaway_options() {
  RedisNoteCacheOptions options;
  options.key_prefix = "transnotes:note:";
  return options;
}

std::shared_ptr<redis::RedisClient> throwaway_client(const ThrowawayRedis& server) {
  auto config = redis::parse_redis_url(server.url(1));
  config.reconnect_backoff = milliseconds(20);
  config.command_timeout = milliseconds(300);
  return std::make_shared<redis::RedisClient>(config);
}

TEST(RedisNoteCacheOutage, DownMeansMissesNeverThrowsThenRecovers) {
  ThrowawayRedis server;
  auto client = throwaway_client(server);
  RedisNoteCache cache(client, throwaway_options());
  cache.put(note(1), 1, "v1");
  ASSERT_EQ(cache.get(note(1)), "v1");
  server.stop();
  EXPECT_NO_THROW({
    EXPECT_EQ(cache.get(note(1)), std::nullopt);
    cache.put(note(2), 1, "v1");
    EXPECT_EQ(cache.get(note(2)), std::nullopt);
  });
  EXPECT_GE(cache.stats().errors, 2u);
  server.start();
  EXPECT_TRUE(eventually([&] {
    cache.put(note(3), 1, "back");
    return cache.get(note(3)) == "back";
  }));
}

TEST_F(RedisNoteCacheTest, RefreshCachesTheWrittenVersionAndBlocksOlderOnes) {
  auto cache = make_cache();
  cache->put(note(8), 1, "v1");
  cache->refresh(note(8), 2, "v2");
  EXPECT_EQ(cache->get(note(8)), "v2");
  cache->put(note(8), 1, "v1");  // a reader that loaded v1 before the write
  EXPECT_EQ(cache->get(note(8)), "v2");
  cache->refresh(note(8), 3, "v3");
  cache->refresh(note(8), 2, "v2");  // a slower writer of an older version
  EXPECT_EQ(cache->get(note(8)), "v3");
  cache->invalidate(note(8), INT64_MAX);
  cache->refresh(note(8), 4, "v4");  // after the delete
  EXPECT_EQ(cache->get(note(8)), std::nullopt);
  EXPECT_EQ(cache->stats().errors, 0u);
}

TEST_F(RedisNoteCacheTest, GetAsyncAnswersLikeGet) {
  options_.async_connections = 2;
  auto cache = make_cache();
  std::string body("{\"title\":\"a\nb\0c\"}", 17);
  cache->put(note(1), 3, body);
  auto hit = get_async_when_ready(*cache, note(1));
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, body);
  auto miss = get_async_when_ready(*cache, note(2));
  ASSERT_TRUE(miss);
  EXPECT_EQ(*miss, std::nullopt);
  cache->invalidate(note(1), 4);  // a tombstone is a miss too
  auto after = get_async_when_ready(*cache, note(1));
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, std::nullopt);
  EXPECT_GE(cache->stats().hits, 1u);
}

TEST_F(RedisNoteCacheTest, GetAsyncDeclinesWithoutAsyncConnections) {
  auto cache = make_cache();
  EXPECT_FALSE(cache->get_async(note(1), [](std::optional<std::string>) {
    ADD_FAILURE() << "a declined get must not answer";
  }));
}

// While an invalidation that failed during an outage waits for replay, the non-blocking path
// declines (the blocking get() replays first): a stale body is never served from it either.
TEST(RedisNoteCacheOutage, GetAsyncNeverServesAnEntryAwaitingReplay) {
  ThrowawayRedis server;
  auto client = throwaway_client(server);
  RedisNoteCacheOptions options = throwaway_options();
  options.async_connections = 1;
  RedisNoteCache cache(client, options);
  cache.put(note(1), 1, "v1");
  auto before = get_async_when_ready(cache, note(1));
  ASSERT_TRUE(before);
  ASSERT_EQ(*before, "v1");
  ASSERT_EQ(client->command({"SAVE"}).str, "OK");
  server.stop();
  cache.invalidate(note(1), 2);  // fails: remembered for replay
  ASSERT_EQ(cache.stats().pending_invalidations, 1u);
  server.start();
  // The restarted server has the stale v1 entry again, yet get_async never returns it.
  for (int i = 0; i < 50; ++i) {
    std::promise<std::optional<std::string>> promise;
    if (cache.get_async(note(1),
                        [&](std::optional<std::string> body) { promise.set_value(body); })) {
      EXPECT_NE(promise.get_future().get(), std::optional<std::string>("v1"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(cache.get(note(1)), std::nullopt);  // replays
  auto after = get_async_when_ready(cache, note(1));
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, std::nullopt);
}

TEST(RedisNoteCacheOutage, InvalidationFailedDuringOutageIsReplayedOnRecovery) {
  ThrowawayRedis server;
  auto client = throwaway_client(server);
  RedisNoteCache cache(client, throwaway_options());
  cache.put(note(1), 1, "v1");
  ASSERT_EQ(cache.get(note(1)), "v1");
  // Persist the entry, then take Redis away: when it returns it still holds the v1 entry, like
  // after a network partition.
  ASSERT_EQ(client->command({"SAVE"}).str, "OK");
  server.stop();
  EXPECT_NO_THROW(cache.invalidate(note(1), 2));  // fails: remembered for replay
  EXPECT_EQ(cache.stats().pending_invalidations, 1u);
  server.start();
  auto raw = throwaway_client(server);
  ASSERT_TRUE(eventually([&] {
    try {
      return raw->command({"GET", "transnotes:note:0:1"}).str == "v1\nv1";  // stale entry is back
    } catch (const Unavailable&) {
      return false;
    }
  }));
  // The first successful call replays the invalidation before reading: the stale body is never
  // served.
  EXPECT_TRUE(
      eventually([&] { return cache.stats().pending_invalidations == 0 || !cache.get(note(1)); }));
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
  EXPECT_EQ(cache.stats().pending_invalidations, 0u);
  EXPECT_EQ(raw->command({"GET", "transnotes:note:0:1"}).str, "t2");
  cache.put(note(1), 1, "v1");  // the race stays closed after recovery
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
  cache.put(note(1), 2, "v2");
  EXPECT_EQ(cache.get(note(1)), "v2");
}

// A remembered invalidation is replayed for the owner it was for: that owner's stale entry is
// never served, and another owner's entry for the same note id stays.
TEST(RedisNoteCacheOutage, ReplayedInvalidationKeepsItsOwner) {
  ThrowawayRedis server;
  auto client = throwaway_client(server);
  RedisNoteCache cache(client, throwaway_options());
  const UserId alice = 7, bob = 8;
  cache.put(note(1, alice), 1, "alice v1");
  cache.put(note(1, bob), 1, "bob v1");
  ASSERT_EQ(client->command({"SAVE"}).str, "OK");
  server.stop();
  cache.invalidate(note(1, alice), 2);
  ASSERT_EQ(cache.stats().pending_invalidations, 1u);
  server.start();
  EXPECT_TRUE(eventually([&] {
    cache.get(note(99));
    return cache.stats().pending_invalidations == 0;
  }));
  EXPECT_EQ(cache.get(note(1, alice)), std::nullopt);
  EXPECT_EQ(cache.get(note(1, bob)), "bob v1");
  auto raw = throwaway_client(server);
  EXPECT_EQ(raw->command({"GET", "transnotes:note:7:1"}).str, "t2");
}

// A refresh that cannot reach Redis is remembered as an invalidation: the stale entry that
// comes back with Redis is never served.
TEST(RedisNoteCacheOutage, RefreshFailedDuringOutageIsReplayedAsInvalidation) {
  ThrowawayRedis server;
  auto client = throwaway_client(server);
  RedisNoteCache cache(client, throwaway_options());
  cache.put(note(1), 1, "v1");
  ASSERT_EQ(client->command({"SAVE"}).str, "OK");
  server.stop();
  EXPECT_NO_THROW(cache.refresh(note(1), 2, "v2"));
  EXPECT_EQ(cache.stats().pending_invalidations, 1u);
  server.start();
  auto raw = throwaway_client(server);
  ASSERT_TRUE(eventually([&] {
    try {
      return raw->command({"GET", "transnotes:note:0:1"}).str == "v1\nv1";
    } catch (const Unavailable&) {
      return false;
    }
  }));
  EXPECT_TRUE(
      eventually([&] { return cache.stats().pending_invalidations == 0 || !cache.get(note(1)); }));
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
  cache.put(note(1), 1, "v1");
  EXPECT_EQ(cache.get(note(1)), std::nullopt);
}

TEST(RedisNoteCacheOutage, TooManyFailedInvalidationsPurgeThePrefix) {
  ThrowawayRedis server;
  auto client = throwaway_client(server);
  RedisNoteCacheOptions options = throwaway_options();
  options.max_pending_invalidations = 2;
  RedisNoteCache cache(client, options);
  for (int id = 1; id <= 5; ++id) cache.put(note(id), 1, "v1");
  client->command({"SET", "other:key", "kept"});
  ASSERT_EQ(client->command({"SAVE"}).str, "OK");
  server.stop();
  for (int id = 1; id <= 5; ++id) cache.invalidate(note(id), 2);
  server.start();
  EXPECT_TRUE(eventually([&] {
    cache.get(note(99));
    return cache.stats().pending_invalidations == 0;
  }));
  auto raw = throwaway_client(server);
  for (int id = 1; id <= 5; ++id) {
    EXPECT_EQ(cache.get(note(id)), std::nullopt) << id;
  }
  // Only pending ids 1 and 2 got tombstones; the rest were purged.
  EXPECT_EQ(raw->command({"GET", "transnotes:note:0:5"}).type, redis::Reply::Type::Nil);
  EXPECT_EQ(raw->command({"GET", "other:key"}).str, "kept");
}

// A purge that Redis refuses (here a cache user without UNLINK) is a failed purge: it stays
// pending and the stale entries are not served, until Redis accepts it.
TEST(RedisNoteCacheOutage, RefusedPurgeStaysPendingAndStaleEntriesAreNotServed) {
  ThrowawayRedis server({"--user", "default", "on", "nopass", "~*", "&*", "+@all", "-unlink"});
  auto client = throwaway_client(server);
  RedisNoteCacheOptions options = throwaway_options();
  options.max_pending_invalidations = 2;
  RedisNoteCache cache(client, options);
  for (int id = 1; id <= 5; ++id) cache.put(note(id), 1, "v1");
  ASSERT_EQ(client->command({"SAVE"}).str, "OK");
  server.stop();
  for (int id = 1; id <= 5; ++id) cache.invalidate(note(id), 2);  // ids 3..5 need the purge
  server.start();
  // The cache's own connection is back (the next cache call will try the purge).
  ASSERT_TRUE(eventually([&] {
    try {
      return client->command({"PING"}).str == "PONG";
    } catch (const Unavailable&) {
      return false;
    }
  }));
  auto raw = throwaway_client(server);
  ASSERT_TRUE(raw->command({"UNLINK", "transnotes:note:0:5"}).is_error());  // really refused
  const auto errors_before = cache.stats().errors;
  for (int id = 3; id <= 5; ++id) EXPECT_EQ(cache.get(note(id)), std::nullopt) << id;
  EXPECT_GT(cache.stats().errors, errors_before);
  EXPECT_EQ(raw->command({"GET", "transnotes:note:0:5"}).str, "v1\nv1");  // still there

  ASSERT_EQ(raw->command({"ACL", "SETUSER", "default", "+unlink"}).str, "OK");
  EXPECT_EQ(cache.get(note(5)), std::nullopt);  // the purge runs now
  EXPECT_EQ(cache.stats().pending_invalidations, 0u);
  EXPECT_EQ(raw->command({"GET", "transnotes:note:0:5"}).type, redis::Reply::Type::Nil);
  cache.put(note(5), 3, "v3");
  EXPECT_EQ(cache.get(note(5)), "v3");
}

}  // namespace
}  // namespace transnotes::cache
