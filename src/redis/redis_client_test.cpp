#include "redis/redis_client.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "domain/errors.h"
#include "redis/redis_test_support.h"

namespace transnotes::redis {
namespace {

using testing::eventually;
using testing::shared_test_redis_url;
using testing::ThrowawayRedis;
using testing::unique_test_prefix;

#define REQUIRE_TEST_REDIS(url_var)       \
  auto url_var = shared_test_redis_url(); \
  if (!url_var) GTEST_FAIL() << "TRANSNOTES_TEST_REDIS_URL is not set (run scripts/services.sh)"

TEST(RedisUrl, ParsesFullUrl) {
  RedisConfig config = parse_redis_url("redis://:s3cret@cache.example:6380/1");
  EXPECT_EQ(config.host, "cache.example");
  EXPECT_EQ(config.port, 6380);
  EXPECT_EQ(config.db, 1);
  EXPECT_EQ(config.password, "s3cret");
  EXPECT_EQ(config.username, "");
}

TEST(RedisUrl, DefaultsPortAndDb) {
  RedisConfig config = parse_redis_url("redis://localhost");
  EXPECT_EQ(config.host, "localhost");
  EXPECT_EQ(config.port, 6379);
  EXPECT_EQ(config.db, 0);
  EXPECT_EQ(config.password, "");
  EXPECT_EQ(parse_redis_url("redis://10.0.0.5:7000/").db, 0);
}

TEST(RedisUrl, UserAndPercentEncodedPassword) {
  RedisConfig config = parse_redis_url("redis://app:p%40ss@127.0.0.1:6379/2");
  EXPECT_EQ(config.username, "app");
  EXPECT_EQ(config.password, "p@ss");
  EXPECT_EQ(config.db, 2);
}

TEST(RedisUrl, RejectsBadUrls) {
  EXPECT_THROW(parse_redis_url("http://localhost:6379/0"), std::invalid_argument);
  EXPECT_THROW(parse_redis_url("rediss://localhost:6379/0"), std::invalid_argument);
  EXPECT_THROW(parse_redis_url("redis://localhost:6379/abc"), std::invalid_argument);
  EXPECT_THROW(parse_redis_url("redis://localhost:0/0"), std::invalid_argument);
  EXPECT_THROW(parse_redis_url("not a url"), std::invalid_argument);
}

TEST(LuaScript, Sha1MatchesRedis) {
  // SHA1("return 1") as Redis computes it for SCRIPT LOAD.
  EXPECT_EQ(LuaScript("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST(RedisClient, RoundTripBinarySafe) {
  REQUIRE_TEST_REDIS(url);
  RedisClient client(parse_redis_url(*url));
  std::string key = unique_test_prefix("client") + "bin";
  std::string value("a\0b\r\nc", 6);
  EXPECT_EQ(client.command({"SET", key, value, "PX", "60000"}).str, "OK");
  Reply got = client.command({"GET", key});
  EXPECT_EQ(got.type, Reply::Type::String);
  EXPECT_EQ(got.str, value);
  EXPECT_TRUE(client.command({"GET", key + "missing"}).is_nil());
  EXPECT_EQ(client.command({"DEL", key}).integer, 1);
  Reply error = client.command({"NOSUCHCOMMAND"});
  EXPECT_TRUE(error.is_error());
}

TEST(RedisClient, EvalFallsBackToEvalOnNoscriptAndThenUsesEvalsha) {
  REQUIRE_TEST_REDIS(url);
  RedisClient client(parse_redis_url(*url));
  // A script unique to this run so it is surely not cached server-side yet.
  std::string marker = unique_test_prefix("lua");
  LuaScript script("return {KEYS[1], ARGV[1], '" + marker + "'}");
  EXPECT_EQ(client.command({"SCRIPT", "EXISTS", script.sha1()}).elements.at(0).integer, 0);
  Reply reply = client.eval(script, {"k"}, {"v"});
  ASSERT_EQ(reply.type, Reply::Type::Array);
  EXPECT_EQ(reply.elements.at(0).str, "k");
  EXPECT_EQ(reply.elements.at(1).str, "v");
  EXPECT_EQ(reply.elements.at(2).str, marker);
  EXPECT_EQ(client.command({"SCRIPT", "EXISTS", script.sha1()}).elements.at(0).integer, 1);
  EXPECT_EQ(client.eval(script, {"k2"}, {"v2"}).elements.at(0).str, "k2");
}

TEST(RedisClient, SelectsDbFromUrl) {
  REQUIRE_TEST_REDIS(url);
  RedisConfig config = parse_redis_url(*url);
  config.db = 1;
  RedisClient db1(config);
  config.db = 2;
  RedisClient db2(config);
  std::string key = unique_test_prefix("db") + "k";
  db1.command({"SET", key, "one", "PX", "60000"});
  EXPECT_TRUE(db2.command({"GET", key}).is_nil());
  EXPECT_EQ(db1.command({"GET", key}).str, "one");
  db1.command({"DEL", key});
}

TEST(RedisClient, ManyThreadsShareOneClient) {
  REQUIRE_TEST_REDIS(url);
  RedisClient client(parse_redis_url(*url));
  std::string key = unique_test_prefix("threads") + "counter";
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) client.command({"INCR", key});
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(client.command({"GET", key}).str, "1600");
  client.command({"DEL", key});
}

TEST(RedisClient, ReconnectsAfterClientKill) {
  REQUIRE_TEST_REDIS(url);
  RedisClient client(parse_redis_url(*url));
  Reply id = client.command({"CLIENT", "ID"});
  ASSERT_EQ(id.type, Reply::Type::Integer);
  std::string id_text = std::to_string(id.integer);
  // Kill the pooled connection from another connection.
  auto killer = RedisConnection::open(parse_redis_url(*url));
  EXPECT_EQ(killer->command({"CLIENT", "KILL", "ID", id_text}).integer, 1);
  // The server closed the pooled connection: the client retries once on a fresh connection, so
  // the caller does not even see the failure.
  EXPECT_EQ(client.command({"PING"}).str, "PONG");
  EXPECT_NE(client.command({"CLIENT", "ID"}).integer, id.integer);
}

TEST(RedisClient, UnavailableWhileServerDownThenRecovers) {
  ThrowawayRedis server;
  RedisConfig config = parse_redis_url(server.url());
  config.reconnect_backoff = std::chrono::milliseconds(20);
  RedisClient client(config);
  EXPECT_EQ(client.command({"SET", "k", "v"}).str, "OK");
  server.stop();
  EXPECT_THROW(client.command({"GET", "k"}), Unavailable);
  EXPECT_THROW(client.command({"GET", "k"}), Unavailable);  // dial refused / fail-fast
  server.start();
  EXPECT_TRUE(eventually([&] {
    try {
      return client.command({"PING"}).str == "PONG";
    } catch (const Unavailable&) {
      return false;
    }
  }));
  EXPECT_TRUE(client.command({"GET", "k"}).is_nil());  // no persistence: a fresh server
}

TEST(RedisClient, PooledConnectionsSurviveServerRestartTransparently) {
  ThrowawayRedis server;
  RedisClient client(parse_redis_url(server.url()));
  EXPECT_EQ(client.command({"SET", "k", "v"}).str, "OK");  // leaves a pooled connection
  server.stop();
  server.start();
  // The pooled connection is dead; the retry on a fresh one hides it.
  EXPECT_TRUE(client.command({"GET", "k"}).is_nil());
}

TEST(RedisClient, AuthenticatesWithPasswordFromUrl) {
  ThrowawayRedis server({"--requirepass", "s3cr%t"});
  RedisClient anonymous(parse_redis_url(server.url()));
  EXPECT_TRUE(anonymous.command({"GET", "k"}).is_error_code("NOAUTH"));
  std::string url = "redis://:s3cr%25t@127.0.0.1:" + std::to_string(server.port()) + "/3";
  RedisClient client(parse_redis_url(url));
  EXPECT_EQ(client.command({"SET", "k", "v"}).str, "OK");
  EXPECT_EQ(client.command({"CLIENT", "INFO"}).str.find("db=3") != std::string::npos, true);
  RedisConfig wrong = parse_redis_url(url);
  wrong.password = "nope";
  EXPECT_THROW(RedisClient(wrong).command({"PING"}), Unavailable);
}

TEST(RedisClient, UnreachableServerThrowsUnavailable) {
  RedisConfig config;
  config.port = testing::free_loopback_port();  // nothing listens there
  RedisClient client(config);
  EXPECT_THROW(client.command({"PING"}), Unavailable);
  EXPECT_THROW(client.blocking_command({"BLPOP", "x", "1"}, std::chrono::seconds(2)), Unavailable);
}

TEST(RedisClient, BlockingCommandWaitsLongerThanCommandTimeout) {
  REQUIRE_TEST_REDIS(url);
  RedisConfig config = parse_redis_url(*url);
  config.command_timeout = std::chrono::milliseconds(100);
  RedisClient client(config);
  std::string key = unique_test_prefix("block") + "list";
  // BLPOP for 1 s exceeds the 100 ms command timeout but not the 3 s blocking read timeout.
  Reply reply = client.blocking_command({"BLPOP", key, "1"}, std::chrono::seconds(3));
  EXPECT_TRUE(reply.is_nil());
  // With a short command timeout the same call breaks the connection instead.
  EXPECT_THROW(client.command({"BLPOP", key, "1"}), Unavailable);
  EXPECT_EQ(client.command({"PING"}).str, "PONG");
}

}  // namespace
}  // namespace transnotes::redis
