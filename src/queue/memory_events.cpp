#include "queue/memory_events.h"

#include <algorithm>
#include <utility>

namespace transnotes::queue {

namespace {
// How many publishes between sweeps of streams nobody listens to and nothing was added to
// for max_age: keeps the map from growing with every user ever seen.
constexpr std::uint64_t kSweepEvery = 1024;
}  // namespace

class MemoryUserEvents::MemorySubscription final : public Subscription {
 public:
  MemorySubscription(MemoryUserEvents& events, UserId owner, std::uint64_t token)
      : events_(events), owner_(owner), token_(token) {}
  ~MemorySubscription() override { events_.unsubscribe(owner_, token_); }

 private:
  MemoryUserEvents& events_;
  UserId owner_;
  std::uint64_t token_;
};

MemoryUserEvents::MemoryUserEvents(UserEventHistory history) : history_(history) {}

MemoryUserEvents::~MemoryUserEvents() = default;

MemoryUserEvents::Stream& MemoryUserEvents::stream_for(UserId owner) {
  auto [it, inserted] = streams_.try_emplace(owner);
  if (inserted) {
    // See the header: ids of a new stream start past any the process could have given before.
    const auto start = static_cast<std::uint64_t>(std::max<Timestamp>(now_micros(), 1));
    it->second.last_id = start;
    it->second.dropped_up_to = start;
  }
  return it->second;
}

void MemoryUserEvents::trim(Stream& stream, Clock::time_point now) {
  const auto oldest_kept = now - history_.max_age;
  while (!stream.events.empty() &&
         (stream.events.size() > history_.max_events || stream.bytes > history_.max_bytes ||
          stream.events.front().at < oldest_kept)) {
    stream.bytes -= stream.events.front().event.data.size();
    stream.dropped_up_to = stream.events.front().event.id;
    stream.events.pop_front();
  }
}

void MemoryUserEvents::forget_idle_streams(Clock::time_point now) {
  for (auto it = streams_.begin(); it != streams_.end();) {
    trim(it->second, now);
    if (it->second.listeners.empty() && it->second.events.empty()) {
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
}

void MemoryUserEvents::publish(UserId owner, std::string_view kind, std::string_view data) {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  Stream& stream = stream_for(owner);
  Held held{UserEvent{++stream.last_id, std::string(kind), std::string(data)}, now};
  stream.bytes += held.event.data.size();
  stream.events.push_back(std::move(held));
  const UserEvent& event = stream.events.back().event;
  for (auto& [token, listener] : stream.listeners) listener(event);
  trim(stream, now);
  if (++publishes_since_sweep_ >= kSweepEvery) {
    publishes_since_sweep_ = 0;
    forget_idle_streams(now);
  }
}

std::unique_ptr<UserEvents::Subscription> MemoryUserEvents::subscribe(
    UserId owner, std::optional<std::uint64_t> last_event_id, Listener listener) {
  std::lock_guard lock(mutex_);
  Stream& stream = stream_for(owner);
  trim(stream, Clock::now());
  if (last_event_id) {
    if (*last_event_id >= stream.dropped_up_to && *last_event_id <= stream.last_id) {
      for (const auto& held : stream.events) {
        if (held.event.id > *last_event_id) listener(held.event);
      }
    } else {
      listener(UserEvent{stream.last_id, "reset", "{}"});
    }
  }
  const auto token = next_token_++;
  stream.listeners.emplace(token, std::move(listener));
  return std::make_unique<MemorySubscription>(*this, owner, token);
}

void MemoryUserEvents::unsubscribe(UserId owner, std::uint64_t token) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(owner);
  if (it != streams_.end()) it->second.listeners.erase(token);
}

std::size_t MemoryUserEvents::streams_held() const {
  std::lock_guard lock(mutex_);
  return streams_.size();
}

}  // namespace transnotes::queue
