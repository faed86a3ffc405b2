// Private, throwaway Redis and PostgreSQL servers for fault-injection tests: each instance runs on
// its own free loopback port and its own temporary directory, so a test may stop, kill and
// restart it without disturbing the shared services other suites use.
//
// Thread safety: an instance is driven by one test thread (start/stop/kill); url() and port()
// may be read from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

namespace e2e {
class Service;
}

namespace faults {

// A loopback TCP port that was free a moment ago.
int free_port();

// Whether the process exists and is not a zombie (i.e. it has not exited).
bool process_alive(pid_t pid);

// Sends SIGTERM to the service and waits at most `limit` for it to exit. Returns the raw wait
// status, or nullopt when it did not exit in time (it is then killed with SIGKILL).
std::optional<int> terminate_within(e2e::Service& service, std::chrono::seconds limit);

// redis-server in the foreground as our child, no persistence: a restart loses every key, like
// a crashed cache node that comes back empty.
class RedisServer {
 public:
  static bool available();  // redis-server is installed
  RedisServer();            // starts it; throws std::runtime_error when it does not come up
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  void kill();   // SIGKILL (crash), waits for the process to go away
  void start();  // on the same port; waits until it answers PING
  int port() const { return port_; }
  std::string url() const;  // redis://127.0.0.1:port/0

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A PostgreSQL cluster made by initdb in a fresh directory, run with pg_ctl (as user postgres
// when we are root, as PostgreSQL refuses to run as root).
class PostgresServer {
 public:
  static std::string bin_dir();  // "" when PostgreSQL is not installed
  PostgresServer();              // initdb + start; throws std::runtime_error on failure
  ~PostgresServer();             // stops it and removes the directory
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  void stop();   // pg_ctl stop -m fast: clients are disconnected, the port closes
  void start();  // pg_ctl start -w on the same port
  // postgresql://postgres@127.0.0.1:port/postgres?schema=<schema>
  std::string url(const std::string& schema) const;

 private:
  void run_as_postgres(const std::string& command) const;
  std::string bin_;
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace faults
