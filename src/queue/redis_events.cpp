#include "queue/redis_events.h"

#include <charconv>
#include <set>
#include <utility>
#include <vector>

#include "domain/errors.h"

namespace transnotes::queue {

namespace {

// Event ids stay below 2^53 (until the year 2255), so a browser may hold them as numbers.
constexpr std::uint64_t kSequenceSpan = 1000;

// "<ms>-<seq>" -> ms * kSequenceSpan + seq; nullopt for anything else.
std::optional<std::uint64_t> event_id_of(std::string_view entry_id) {
  const auto dash = entry_id.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;
  auto [ms_end, ms_error] = std::from_chars(entry_id.data(), entry_id.data() + dash, ms);
  auto [seq_end, seq_error] =
      std::from_chars(entry_id.data() + dash + 1, entry_id.data() + entry_id.size(), seq);
  if (ms_error != std::errc() || seq_error != std::errc() || ms_end != entry_id.data() + dash ||
      seq_end != entry_id.data() + entry_id.size() || seq >= kSequenceSpan) {
    return std::nullopt;
  }
  return ms * kSequenceSpan + seq;
}

std::string entry_id_of(std::uint64_t event_id) {
  return std::to_string(event_id / kSequenceSpan) + "-" + std::to_string(event_id % kSequenceSpan);
}

// Appends, keeping every entry's sequence number below kSequenceSpan: the thousandth entry of
// one millisecond moves to the next one (ids stay increasing; what follows continues from it).
constexpr const char* kAppendScript = R"lua(
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'kind', ARGV[2], 'data', ARGV[3])
local dash = string.find(id, '-', 1, true)
if tonumber(string.sub(id, dash + 1)) >= 1000 then
  redis.call('XDEL', KEYS[1], id)
  local next_ms = string.format('%.0f', tonumber(string.sub(id, 1, dash - 1)) + 1)
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], next_ms .. '-0', 'kind', ARGV[2],
                  'data', ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return id
)lua";

}  // namespace

class RedisUserEvents::RedisSubscription final : public Subscription {
 public:
  RedisSubscription(RedisUserEvents& events, std::uint64_t token)
      : events_(events), token_(token) {}
  ~RedisSubscription() override { events_.unsubscribe(token_); }

 private:
  RedisUserEvents& events_;
  std::uint64_t token_;
};

RedisUserEvents::RedisUserEvents(std::shared_ptr<redis::RedisClient> client,
                                 RedisUserEventsOptions options)
    : client_(std::move(client)), options_(std::move(options)), append_(kAppendScript) {}

RedisUserEvents::~RedisUserEvents() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (reader_.joinable()) reader_.join();
}

std::string RedisUserEvents::key_for(UserId owner) const {
  return options_.key_prefix + std::to_string(owner);
}

void RedisUserEvents::record_error(std::string_view what, std::string_view detail) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  log_.warn(what, detail);
}

void RedisUserEvents::publish(UserId owner, std::string_view kind, std::string_view data) {
  try {
    const std::string key = key_for(owner);
    const std::string max_events = std::to_string(options_.max_events);
    const std::string ttl = std::to_string(options_.ttl.count());
    auto reply = client_->eval(append_, {key}, {max_events, kind, data, ttl});
    if (reply.is_error()) record_error("events: XADD failed, event dropped", reply.str);
  } catch (const Unavailable& error) {
    record_error("events: Redis unavailable, event dropped", error.what());
  }
}

std::unique_ptr<UserEvents::Subscription> RedisUserEvents::subscribe(
    UserId owner, std::optional<std::uint64_t> last_event_id, Listener listener) {
  auto info = client_->command({"XINFO", "STREAM", key_for(owner)});
  std::uint64_t newest = 0;  // last-generated-id
  std::uint64_t first = 0;   // recorded-first-entry-id: the oldest one held
  // Whether every entry ever added is still held. (Redis 7.0 leaves max-deleted-entry-id at 0-0
  // when MAXLEN trims, so that cannot tell.)
  bool whole = true;
  if (info.is_error()) {
    // A stream that does not exist (nothing published for the ttl) holds nothing: ids 0.
    if (info.str.find("no such key") == std::string::npos) {
      throw Unavailable("events: XINFO STREAM failed: " + info.str);
    }
  } else {
    long long length = 0;
    std::optional<long long> added;  // entries-added (Redis 7)
    for (std::size_t i = 0; i + 1 < info.elements.size(); i += 2) {
      const auto& name = info.elements[i].str;
      const auto& value = info.elements[i + 1];
      if (name == "last-generated-id") {
        newest = event_id_of(value.str).value_or(0);
      } else if (name == "recorded-first-entry-id") {
        first = event_id_of(value.str).value_or(0);
      } else if (name == "length") {
        length = value.integer;
      } else if (name == "entries-added") {
        added = value.integer;
      }
    }
    whole = added && *added == length;
  }
  std::uint64_t position = newest;
  if (last_event_id) {
    // The client saw `last_event_id`: what came after it is all here when nothing was trimmed,
    // or when it is at least the oldest entry held.
    if (*last_event_id <= newest && (whole || *last_event_id >= first)) {
      position = *last_event_id;
    } else {
      listener(UserEvent{newest, "reset", "{}"});
    }
  }
  std::uint64_t token = 0;
  {
    std::lock_guard lock(mutex_);
    token = next_token_++;
    subscribers_.emplace(token, Subscriber{owner, position, std::move(listener)});
    if (!reader_.joinable()) reader_ = std::thread([this] { run_reader(); });
  }
  changed_.notify_all();
  return std::make_unique<RedisSubscription>(*this, token);
}

void RedisUserEvents::unsubscribe(std::uint64_t token) {
  std::lock_guard lock(mutex_);
  subscribers_.erase(token);
}

void RedisUserEvents::run_reader() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return stopping_ || !subscribers_.empty(); });
      if (stopping_) return;
    }
    try {
      read_once();
    } catch (const Unavailable& error) {
      record_error("events: cannot read from Redis (streams wait)", error.what());
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, options_.outage_sleep, [this] { return stopping_; });
    }
  }
}

void RedisUserEvents::read_once() {
  // Each subscribed user's stream, from the oldest position one of its subscriptions needs.
  std::map<UserId, std::uint64_t> from;
  // Only these get this round's events: a subscription that joined during the round may need
  // older entries first, which the next round reads from its position.
  std::set<std::uint64_t> in_round;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [token, subscriber] : subscribers_) {
      in_round.insert(token);
      auto [it, inserted] = from.try_emplace(subscriber.owner, subscriber.position);
      if (!inserted) it->second = std::min(it->second, subscriber.position);
    }
  }
  if (from.empty()) return;
  const std::string block = std::to_string(options_.block.count());
  std::vector<std::string> keys;
  std::vector<std::string> ids;
  for (const auto& [owner, position] : from) {
    keys.push_back(key_for(owner));
    ids.push_back(entry_id_of(position));
  }
  std::vector<std::string_view> args{"XREAD", "COUNT", "256", "BLOCK", block, "STREAMS"};
  for (const auto& key : keys) args.push_back(key);
  for (const auto& id : ids) args.push_back(id);
  auto reply = client_->blocking_command(
      args, options_.block + client_->config().command_timeout + std::chrono::seconds(1));
  if (reply.is_error()) throw Unavailable("events: XREAD failed: " + reply.str);
  if (reply.type != redis::Reply::Type::Array) return;  // nil: nothing new within the block
  std::map<std::string, UserId> owner_of_key;
  for (const auto& [owner, position] : from) owner_of_key.emplace(key_for(owner), owner);
  std::lock_guard lock(mutex_);
  // [[key, [[entry_id, [field, value, ...]], ...]], ...]
  for (const auto& stream : reply.elements) {
    if (stream.elements.size() < 2) continue;
    auto owner = owner_of_key.find(stream.elements[0].str);
    if (owner == owner_of_key.end()) continue;
    for (const auto& entry : stream.elements[1].elements) {
      if (entry.elements.size() < 2) continue;
      auto id = event_id_of(entry.elements[0].str);
      if (!id) continue;
      UserEvent event;
      event.id = *id;
      const auto& fields = entry.elements[1].elements;
      for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str == "kind") event.kind = fields[i + 1].str;
        if (fields[i].str == "data") event.data = fields[i + 1].str;
      }
      for (auto& [token, subscriber] : subscribers_) {
        if (subscriber.owner != owner->second || event.id <= subscriber.position ||
            !in_round.contains(token)) {
          continue;
        }
        subscriber.position = event.id;
        subscriber.listener(event);
      }
    }
  }
}

}  // namespace transnotes::queue
