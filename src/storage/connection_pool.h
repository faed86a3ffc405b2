// ConnectionPool: the one pooling policy both stores use. Connections are created lazily, up to
// max_size, and handed out exclusively. A caller that finds none free waits at most `wait`, then
// gets Unavailable: a saturated or stuck database turns into a 503 rather than requests that
// hang forever. A connection comes back to the pool only when it is still usable.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "domain/errors.h"

namespace transnotes::storage {

template <class Connection>
class ConnectionPool {
 public:
  struct Policy {
    int max_size = 8;
    std::chrono::milliseconds wait{10'000};
  };
  // `open` makes a new connection (throwing Unavailable when it cannot); `reusable` says whether a
  // returned connection may serve another caller (not broken, no transaction left open).
  ConnectionPool(Policy policy, std::function<std::unique_ptr<Connection>()> open,
                 std::function<bool(const Connection&)> reusable)
      : policy_(policy), open_connection_(std::move(open)), reusable_(std::move(reusable)) {}
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  class Lease {
   public:
    Lease(ConnectionPool& pool, std::unique_ptr<Connection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_.release(std::move(conn_), broken_); }
    Connection* operator->() { return conn_.get(); }
    Connection& operator*() { return *conn_; }
    // The connection is in an unknown state: close it instead of returning it.
    void mark_broken() { broken_ = true; }

   private:
    ConnectionPool& pool_;
    std::unique_ptr<Connection> conn_;
    bool broken_ = false;
  };

  Lease acquire() {
    std::unique_lock lock(mutex_);
    const auto has_room = [&] { return !idle_.empty() || open_ < policy_.max_size; };
    if (!has_room()) {
      ++waiting_;
      const bool got_one = available_.wait_for(lock, policy_.wait, has_room);
      --waiting_;
      if (!got_one) throw Unavailable("database unavailable: no free connection in the pool");
    }
    while (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      // A connection can break while idle (the server closed it); open a fresh one instead.
      if (reusable_(*conn)) return Lease(*this, std::move(conn));
      --open_;
    }
    ++open_;
    lock.unlock();
    try {
      return Lease(*this, open_connection_());
    } catch (...) {
      release(nullptr, true);
      throw;
    }
  }

  // Connections open now (idle or leased), for tests and metrics.
  int open_count() const {
    std::lock_guard lock(mutex_);
    return open_;
  }

  struct Stats {
    int open = 0;     // idle or leased
    int leased = 0;   // held by a caller (or being opened for one)
    int waiting = 0;  // callers blocked in acquire()
    int max_size = 0;
  };
  Stats stats() const {
    std::lock_guard lock(mutex_);
    return {.open = open_,
            .leased = open_ - static_cast<int>(idle_.size()),
            .waiting = waiting_,
            .max_size = policy_.max_size};
  }

 private:
  void release(std::unique_ptr<Connection> conn, bool broken) {
    {
      std::lock_guard lock(mutex_);
      if (conn && !broken && reusable_(*conn)) {
        idle_.push_back(std::move(conn));
      } else {
        --open_;
      }
    }
    available_.notify_one();
    // A discarded connection is closed here, outside the lock.
  }

  const Policy policy_;
  const std::function<std::unique_ptr<Connection>()> open_connection_;
  const std::function<bool(const Connection&)> reusable_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  int open_ = 0;
  int waiting_ = 0;
};

}  // namespace transnotes::storage
