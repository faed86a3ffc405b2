// UserEvents over Redis Streams (production): a worker on any machine reaches a stream held by
// any API process, and every API process gives the same ids, so Last-Event-ID works whichever
// process a client reconnects to.
//
// One Redis Stream per user, <prefix><owner>:
//   publish: XADD <key> MAXLEN ~ <max_events> * kind <kind> data <json>, and EXPIRE <key>
//            <ttl> (one Lua call): the history is bounded in length, and a user quiet for the
//            ttl costs nothing.
//   ids:     Redis's entry id "<ms>-<seq>" is the event id <ms> * 1000 + <seq> (decimal,
//            increasing like the entry ids, and below 2^53 so that JavaScript holds it exactly;
//            the append script moves a thousandth entry within one ms to the next ms).
//   resume:  XINFO STREAM tells the newest id given (last-generated-id), the oldest entry held
//            (recorded-first-entry-id) and whether any was ever trimmed (entries-added against
//            length): a Last-Event-ID up to the newest resumes with nothing missed when nothing
//            was trimmed or it is at least the oldest held; anything else gets a reset at
//            last-generated-id. Id 0 means "before everything" (the reset of an empty stream).
//   live:    one reader thread per instance (started by the first subscribe) runs XREAD BLOCK
//            over the streams of the users subscribed here, from the oldest position any of
//            their subscriptions still needs; each subscription skips what it already has.
//            A new subscription joins at the reader's next round (within `block`).
// Streams rather than PUBLISH/SUBSCRIBE: pub/sub keeps no history and has no ids of its own,
// so resuming would need a second store and a counter kept in step with it.
//
// Failures: publish() logs (rate-limited), counts and drops; subscribe() throws Unavailable; the
// reader retries after `outage_sleep` and its subscriptions resume where they were.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "domain/ports.h"
#include "redis/rate_limited_log.h"
#include "redis/redis_client.h"

namespace transnotes::queue {

struct RedisUserEventsOptions {
  std::string key_prefix = "transnotes:events:";
  std::size_t max_events = 256;
  std::chrono::seconds ttl{24 * 3600};
  std::chrono::milliseconds block{200};
  std::chrono::milliseconds outage_sleep{1000};
};

class RedisUserEvents final : public UserEvents {
 public:
  explicit RedisUserEvents(std::shared_ptr<redis::RedisClient> client,
                           RedisUserEventsOptions options = {});
  ~RedisUserEvents() override;

  void publish(UserId owner, std::string_view kind, std::string_view data) override;
  std::unique_ptr<Subscription> subscribe(UserId owner, std::optional<std::uint64_t> last_event_id,
                                          Listener listener) override;

  std::uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

 private:
  struct Subscriber {
    UserId owner;
    std::uint64_t position;  // the newest event id it has
    Listener listener;
  };
  class RedisSubscription;

  std::string key_for(UserId owner) const;
  void run_reader();
  // One XREAD round over every subscribed user's stream. Throws Unavailable.
  void read_once();
  void unsubscribe(std::uint64_t token);
  void record_error(std::string_view what, std::string_view detail);

  std::shared_ptr<redis::RedisClient> client_;
  RedisUserEventsOptions options_;
  redis::LuaScript append_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::uint64_t, Subscriber> subscribers_;
  std::uint64_t next_token_ = 1;
  bool stopping_ = false;
  std::thread reader_;
  std::atomic<std::uint64_t> errors_{0};
  redis::RateLimitedLog log_;
};

}  // namespace transnotes::queue
