// A small thread-safe Redis client over hiredis, used by the Redis cache and job bus.
//
// Failure model: every command either returns a Reply (which may be a Redis error reply, e.g.
// NOSCRIPT or NOGROUP: check Reply::is_error()) or throws transnotes::Unavailable when the server
// cannot be reached, times out or breaks the connection. A connection that failed is discarded;
// the next call dials a new one, so the client recovers by itself when Redis comes back. When a
// pooled connection turns out to have been closed by the server (restart, CLIENT KILL), the
// command is retried once on a freshly dialed connection, so callers rarely see the stale
// connection at all; all commands sent through this client must therefore tolerate a (rare)
// second execution — true for every user in transnotes (GET, versioned Lua scripts, XADD of
// idempotent wake-ups, XREADGROUP of wake-ups). After a
// failed dial, calls fail fast (without dialing) for `reconnect_backoff`; then one caller at a time
// probes, so an unreachable server costs one connect timeout per window, not one per caller.
//
// Thread safety: RedisClient may be shared by any number of threads. Idle connections are pooled
// (up to `max_idle_connections`, plus `max_idle_blocking_connections` for blocking commands); a
// call that finds the pool empty dials a new connection, so callers never wait for each other.
// Blocking commands (XREADGROUP BLOCK, BRPOPLPUSH) use blocking_command(), which takes connections
// from a separate pool and sets a longer read timeout, so they never tie up connections used by
// short commands.
//
// hiredis writes with write(2), which raises SIGPIPE on a connection the server closed. The first
// RedisClient constructed sets SIGPIPE to SIG_IGN if it still has the default (fatal) action.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;

namespace transnotes::redis {

struct RedisConfig {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;  // Redis 6 ACL user; empty: AUTH with the password only
  std::string password;  // empty: no AUTH
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds command_timeout{500};
  std::chrono::milliseconds reconnect_backoff{250};
  // Idle connections kept for reuse; size them to the number of concurrent callers (HTTP threads,
  // workers blocked in the job bus) to avoid dialing per call.
  std::size_t max_idle_connections = 32;
  std::size_t max_idle_blocking_connections = 32;
};

// Parses redis://[[user]:password@]host[:port][/db]. Throws std::invalid_argument on a malformed
// URL, another scheme (rediss:// TLS is not supported) or a bad port/db. Timeouts keep defaults.
RedisConfig parse_redis_url(std::string_view url);

// A decoded Redis reply (owned copy, independent of hiredis memory).
struct Reply {
  enum class Type { Nil, Status, Error, Integer, String, Array };
  Type type = Type::Nil;
  std::string str;  // Status, Error and String
  long long integer = 0;
  std::vector<Reply> elements;  // Array

  bool is_nil() const { return type == Type::Nil; }
  bool is_error() const { return type == Type::Error; }
  // True for an error reply whose code (first word) is `code`, e.g. "NOSCRIPT", "NOGROUP".
  bool is_error_code(std::string_view code) const;
};

// A Lua script with its SHA1 computed once, for EVALSHA.
class LuaScript {
 public:
  explicit LuaScript(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;
};

// One hiredis connection. Not thread-safe; owned by one caller at a time.
class RedisConnection {
 public:
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Dials, authenticates and selects the db. Throws Unavailable.
  static std::unique_ptr<RedisConnection> open(const RedisConfig& config);

  // Sends one command with binary-safe arguments. Throws Unavailable on I/O failure or timeout;
  // the connection is then broken() and must be discarded.
  Reply command(const std::vector<std::string_view>& args);
  void set_read_timeout(std::chrono::milliseconds timeout);
  bool broken() const { return broken_; }
  // True when the last failure was the server closing the connection (restart, CLIENT KILL,
  // idle timeout) rather than a timeout: the command most likely never ran.
  bool closed_by_peer() const { return closed_by_peer_; }

 private:
  explicit RedisConnection(redisContext* context) : context_(context) {}
  redisContext* context_;
  bool broken_ = false;
  bool closed_by_peer_ = false;
  std::chrono::milliseconds read_timeout_{0};
};

class RedisClient {
 public:
  explicit RedisClient(RedisConfig config);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  const RedisConfig& config() const { return config_; }

  // Runs one command with the configured command timeout. Throws Unavailable.
  Reply command(const std::vector<std::string_view>& args);
  // Runs a command that may block server-side (XREADGROUP BLOCK ms, BRPOPLPUSH) with a socket
  // read timeout of `read_timeout` (use the block time plus a margin). Throws Unavailable.
  Reply blocking_command(const std::vector<std::string_view>& args,
                         std::chrono::milliseconds read_timeout);
  // EVALSHA, falling back to EVAL (which also loads the script) on NOSCRIPT. Throws Unavailable;
  // a script error comes back as an error Reply.
  Reply eval(const LuaScript& script, const std::vector<std::string_view>& keys,
             const std::vector<std::string_view>& args);

  // Drops all pooled idle connections (e.g. after a fork). Thread-safe.
  void drop_idle_connections();

 private:
  struct Pool {
    std::mutex mutex;
    std::vector<std::unique_ptr<RedisConnection>> idle;
  };
  // Takes an idle connection (reused = true) or dials a new one. Throws Unavailable.
  std::unique_ptr<RedisConnection> acquire(Pool& pool, bool& reused);
  void release(Pool& pool, std::unique_ptr<RedisConnection> connection);
  Reply run(Pool& pool, const std::vector<std::string_view>& args,
            std::chrono::milliseconds read_timeout);

  RedisConfig config_;
  Pool pool_;
  Pool blocking_pool_;
  // steady_clock ticks until which dialing is skipped after a failed dial.
  std::atomic<std::int64_t> dial_blocked_until_{0};
};

}  // namespace transnotes::redis
