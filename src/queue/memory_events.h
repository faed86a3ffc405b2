// In-process UserEvents: the embedded default, where the API and its workers share one process.
//
// Each user's stream keeps its newest events (at most max_events, max_bytes of data, none older
// than max_age) for Last-Event-ID. Ids follow each other one by one within a user's stream and
// start, when the stream is first used (again), from the clock in microseconds: ids keep
// increasing across restarts of the process, and an id from before a restart (or from a stream
// forgotten for being idle) is older than anything held, so its client gets a reset rather than
// a silent gap.
//
// Listeners are called under the instance's lock, in publish order; a Subscription's destructor
// takes the lock, so no call is under way once it returned.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

#include "domain/ports.h"

namespace transnotes::queue {

struct UserEventHistory {
  std::size_t max_events = 256;
  std::size_t max_bytes = 1u << 20;
  std::chrono::seconds max_age{300};
};

class MemoryUserEvents final : public UserEvents {
 public:
  explicit MemoryUserEvents(UserEventHistory history = {});
  ~MemoryUserEvents() override;

  void publish(UserId owner, std::string_view kind, std::string_view data) override;
  std::unique_ptr<Subscription> subscribe(UserId owner, std::optional<std::uint64_t> last_event_id,
                                          Listener listener) override;

  // Users whose stream is held now (for tests of the idle sweep).
  std::size_t streams_held() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Held {
    UserEvent event;
    Clock::time_point at;
  };
  struct Stream {
    std::uint64_t last_id = 0;
    std::uint64_t dropped_up_to = 0;  // the newest id no longer held; resuming after it is whole
    std::deque<Held> events;
    std::size_t bytes = 0;
    std::map<std::uint64_t, Listener> listeners;
  };
  class MemorySubscription;

  Stream& stream_for(UserId owner);
  void trim(Stream& stream, Clock::time_point now);
  void forget_idle_streams(Clock::time_point now);
  void unsubscribe(UserId owner, std::uint64_t token);

  UserEventHistory history_;
  mutable std::mutex mutex_;
  std::unordered_map<UserId, Stream> streams_;
  std::uint64_t next_token_ = 1;
  std::uint64_t publishes_since_sweep_ = 0;
};

}  // namespace transnotes::queue
