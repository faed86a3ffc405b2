// Non-blocking, pipelined GETs for callers that must not block, such as HTTP event-loop threads
// answering cache hits. A blocking GET parks its thread for a whole round trip; here a get()
// only queues the command, and replies are read by the client's own I/O thread. Concurrent gets
// share a few connections, so Redis reads and answers them in batches (pipelining).
//
// Failure model: a connection that fails (refused, reset, a reply that cannot be parsed, or no
// reply within `command_timeout`) completes all its outstanding gets with kFailed and is dialed
// again on a later get(), no sooner than `reconnect_backoff` after the failure. While no
// connection is up, get() returns false at once and the caller uses its blocking path (which has
// its own error handling). Every get() that returned true gets exactly one callback, also when
// the client is destroyed.
//
// Thread safety: get() may be called from any thread. Callbacks run on the client's I/O thread,
// in the order the gets were queued on a connection; they must be quick and must not call back
// into this client's destructor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "redis/redis_client.h"

namespace transnotes::redis {

class AsyncGetClient {
 public:
  enum class Outcome { kValue, kNil, kFailed };
  // `value` holds the string for kValue; for kFailed a short reason.
  using Callback = std::function<void(Outcome outcome, std::string value)>;

  // Uses host, port, db, username, password, connect_timeout, command_timeout and
  // reconnect_backoff of `config`. Connects lazily, on the first get().
  explicit AsyncGetClient(const RedisConfig& config, int connections = 2);
  ~AsyncGetClient();
  AsyncGetClient(const AsyncGetClient&) = delete;
  AsyncGetClient& operator=(const AsyncGetClient&) = delete;

  // Queues GET `key`. True: `done` will be called exactly once. False: no connection is ready
  // (being dialed, backing off after a failure, or shut down); `done` is never called.
  bool get(std::string_view key, Callback done);

  struct Stats {
    std::uint64_t sent = 0;      // gets accepted
    std::uint64_t failed = 0;    // gets completed with kFailed
    std::uint64_t refused = 0;   // get() calls that returned false
    std::uint64_t connects = 0;  // connections established
  };
  Stats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace transnotes::redis
