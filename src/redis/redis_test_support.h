// Test helpers shared by the redis, cache and queue test suites (header-only, tests only).
//  - shared_test_redis_url(): TRANSNOTES_TEST_REDIS_URL or nullopt (tests fail then: scripts/test.sh starts one).
//  - unique_test_prefix(): a key prefix no other test or process uses.
//  - ThrowawayRedis: a private redis-server on a free loopback port that a test may stop and
//    restart on the same port, to exercise outages.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redis/redis_client.h"

namespace transnotes::redis::testing {

inline std::optional<std::string> shared_test_redis_url() {
  const char* url = std::getenv("TRANSNOTES_TEST_REDIS_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

inline std::string unique_test_prefix(std::string_view what) {
  static std::atomic<int> counter{0};
  auto now = std::chrono::system_clock::now().time_since_epoch().count();
  return "transnotes:test:" + std::string(what) + ":" + std::to_string(::getpid()) + ":" +
         std::to_string(now) + ":" + std::to_string(counter++) + ":";
}

inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

class ThrowawayRedis {
 public:
  // The server keeps its dump.rdb in a private temporary directory: a test can SAVE, stop and
  // start again to simulate an outage that keeps the data (a network partition).
  explicit ThrowawayRedis(std::vector<std::string> extra_args = {})
      : port_(free_loopback_port()), extra_args_(std::move(extra_args)) {
    char pattern[] = "/tmp/transnotes-redis-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    start();
  }
  ~ThrowawayRedis() {
    stop();
    ::unlink((dir_ + "/dump.rdb").c_str());
    ::rmdir(dir_.c_str());
  }
  ThrowawayRedis(const ThrowawayRedis&) = delete;
  ThrowawayRedis& operator=(const ThrowawayRedis&) = delete;

  int port() const { return port_; }
  std::string url(int db = 0) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }

  void start() {
    if (pid_ > 0) return;
    std::string port = std::to_string(port_);
    pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<std::string> args{
          "redis-server", "--port", port,         "--bind",  "127.0.0.1", "--save", "",
          "--appendonly", "no",     "--loglevel", "warning", "--dir",     dir_};
      args.insert(args.end(), extra_args_.begin(), extra_args_.end());
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    if (pid < 0) throw std::runtime_error("fork failed");
    pid_ = pid;
    RedisConfig config;
    config.port = port_;
    for (int attempt = 0; attempt < 200; ++attempt) {
      try {
        auto connection = RedisConnection::open(config);
        auto pong = connection->command({"PING"});
        if (pong.str == "PONG" || pong.is_error_code("NOAUTH")) return;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    stop();
    throw std::runtime_error("throwaway redis-server did not start on port " + port);
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  int port_;
  std::string dir_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
};

// Retries `call` until it returns true or ~10 s pass (reconnects are asynchronous to the test).
template <typename Call>
bool eventually(Call call) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (call()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace transnotes::redis::testing
