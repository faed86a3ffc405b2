#include "redis/async_get_client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redis/redis_test_support.h"

namespace transnotes::redis {
namespace {

using Outcome = AsyncGetClient::Outcome;
using testing::eventually;
using testing::ThrowawayRedis;
using testing::unique_test_prefix;

struct Answer {
  Outcome outcome;
  std::string value;
};

// Retries until the client has a connection up (the first get() only starts dialing), then
// waits for the answer.
std::optional<Answer> get_when_connected(AsyncGetClient& client, const std::string& key) {
  std::optional<Answer> answer;
  eventually([&] {
    auto promise = std::make_shared<std::promise<Answer>>();
    auto future = promise->get_future();
    if (!client.get(key, [promise](Outcome outcome, std::string value) {
          promise->set_value({outcome, std::move(value)});
        })) {
      return false;
    }
    answer = future.get();
    return true;
  });
  return answer;
}

// A loopback TCP listener that accepts (through the kernel's backlog) and never answers.
class SilentPeer {
 public:
  SilentPeer() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("cannot open a loopback listener");
    }
    port_ = ntohs(address.sin_port);
  }
  ~SilentPeer() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

TEST(AsyncGetClient, ValuesMissesAndBinaryData) {
  ThrowawayRedis server;
  RedisClient sync(parse_redis_url(server.url(3)));
  const std::string binary("a\0b\r\n$-1\r\n", 10);
  sync.command({"SET", "k1", "hello"});
  sync.command({"SET", "k2", binary});
  sync.command({"HSET", "k3", "f", "v"});

  AsyncGetClient client(parse_redis_url(server.url(3)));
  auto hello = get_when_connected(client, "k1");
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->outcome, Outcome::kValue);
  EXPECT_EQ(hello->value, "hello");
  auto bin = get_when_connected(client, "k2");
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->value, binary);
  auto missing = get_when_connected(client, "nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->outcome, Outcome::kNil);
  auto wrong_type = get_when_connected(client, "k3");
  ASSERT_TRUE(wrong_type);
  EXPECT_EQ(wrong_type->outcome, Outcome::kFailed);
  EXPECT_NE(wrong_type->value.find("WRONGTYPE"), std::string::npos) << wrong_type->value;
  // The error reply did not break the connection: the next get still works.
  EXPECT_EQ(get_when_connected(client, "k1")->value, "hello");
}

TEST(AsyncGetClient, SelectsTheDbAndAuthenticates) {
  ThrowawayRedis server({"--requirepass", "s3cret"});
  RedisConfig config =
      parse_redis_url("redis://:s3cret@127.0.0.1:" + std::to_string(server.port()) + "/5");
  RedisClient(config).command({"SET", "only-in-5", "yes"});
  AsyncGetClient client(config);
  auto answer = get_when_connected(client, "only-in-5");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, Outcome::kValue);
  EXPECT_EQ(answer->value, "yes");

  // A wrong password never yields a value: gets are refused, or fail when the AUTH reply
  // arrives after they were queued.
  RedisConfig wrong = config;
  wrong.password = "wrong";
  wrong.reconnect_backoff = std::chrono::milliseconds(5);
  AsyncGetClient refused(wrong);
  std::atomic<int> values{0};
  for (int i = 0; i < 100; ++i) {
    refused.get("only-in-5", [&](Outcome o, std::string) { values += o != Outcome::kFailed; });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(values.load(), 0);
  EXPECT_GE(refused.stats().connects, 1u);  // it did reach the server
}

// Many threads with many outstanding gets each: every callback gets the value of its own key.
TEST(AsyncGetClient, PipelinedGetsFromManyThreadsEachGetTheirOwnValue) {
  ThrowawayRedis server;
  RedisClient sync(parse_redis_url(server.url()));
  const std::string prefix = unique_test_prefix("async");
  for (int i = 0; i < 200; ++i) {
    sync.command({"SET", prefix + std::to_string(i), "value-" + std::to_string(i)});
  }
  AsyncGetClient client(parse_redis_url(server.url()), 2);
  ASSERT_TRUE(get_when_connected(client, prefix + "0"));
  // Let the second connection come up too.
  for (int i = 0; i < 4; ++i) get_when_connected(client, prefix + "1");

  std::atomic<int> right{0}, wrong{0}, refused{0};
  std::atomic<int> outstanding{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 500; ++round) {
        const int i = (t * 500 + round) % 200;
        ++outstanding;
        const bool accepted =
            client.get(prefix + std::to_string(i), [&, i](Outcome o, std::string v) {
              if (o == Outcome::kValue && v == "value-" + std::to_string(i)) {
                ++right;
              } else {
                ++wrong;
              }
              --outstanding;
            });
        if (!accepted) {
          ++refused;
          --outstanding;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE(eventually([&] { return outstanding.load() == 0; }));
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(refused.load(), 0);
  EXPECT_EQ(right.load(), 2000);
  EXPECT_GE(client.stats().sent, 2000u);
}

// A server that goes away fails the outstanding gets (never leaves them hanging); when it is
// back, the client dials again by itself.
TEST(AsyncGetClient, RecoversAfterRedisRestarts) {
  ThrowawayRedis server;
  RedisConfig config = parse_redis_url(server.url());
  config.reconnect_backoff = std::chrono::milliseconds(50);
  RedisClient(config).command({"SET", "k", "before"});
  AsyncGetClient client(config, 1);
  ASSERT_EQ(get_when_connected(client, "k")->value, "before");

  server.stop();
  // Gets still accepted on the broken connection fail; once the client noticed, it refuses.
  std::atomic<int> answered_with_value{0};
  bool refused_while_down = false;
  for (int i = 0; i < 100 && !refused_while_down; ++i) {
    refused_while_down = !client.get("k", [&](Outcome o, std::string) {
      if (o != Outcome::kFailed) ++answered_with_value;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(refused_while_down);
  EXPECT_EQ(answered_with_value.load(), 0);

  server.start();
  RedisClient(config).command({"SET", "k", "after"});
  ASSERT_TRUE(eventually([&] {
    auto answer = get_when_connected(client, "k");
    return answer && answer->outcome == Outcome::kValue && answer->value == "after";
  }));
  EXPECT_GE(client.stats().connects, 2u);
}

// A peer that accepts but never answers: gets fail after the command timeout.
TEST(AsyncGetClient, SilentServerTimesOut) {
  SilentPeer peer;

  RedisConfig config;
  config.port = peer.port();
  config.command_timeout = std::chrono::milliseconds(200);
  {
    AsyncGetClient client(config, 1);
    auto answer = get_when_connected(client, "k");
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->outcome, Outcome::kFailed);
    EXPECT_NE(answer->value.find("no reply"), std::string::npos) << answer->value;
  }
}

TEST(AsyncGetClient, NothingListeningMeansRefusedNotHanging) {
  RedisConfig config;
  config.port = testing::free_loopback_port();
  config.reconnect_backoff = std::chrono::milliseconds(10);
  AsyncGetClient client(config, 2);
  int refused = 0;
  for (int i = 0; i < 50; ++i) {
    if (!client.get("k", [](Outcome, std::string) { ADD_FAILURE() << "no server, no answer"; })) {
      ++refused;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(refused, 50);
  EXPECT_EQ(client.stats().connects, 0u);
}

// Destroying the client answers everything still outstanding.
TEST(AsyncGetClient, DestructionCompletesOutstandingGets) {
  SilentPeer peer;
  RedisConfig config;
  config.port = peer.port();
  config.command_timeout = std::chrono::seconds(60);
  std::atomic<int> failed{0};
  int accepted = 0;
  {
    AsyncGetClient client(config, 1);
    ASSERT_TRUE(eventually([&] {
      if (client.get("k", [&](Outcome o, std::string) { failed += o == Outcome::kFailed; })) {
        ++accepted;
        return true;
      }
      return false;
    }));
    for (int i = 0; i < 10; ++i) {
      if (client.get("k", [&](Outcome o, std::string) { failed += o == Outcome::kFailed; })) {
        ++accepted;
      }
    }
  }
  EXPECT_EQ(accepted, 11);
  EXPECT_EQ(failed.load(), accepted);
}

}  // namespace
}  // namespace transnotes::redis
