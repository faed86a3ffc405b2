#include "queue/bus.h"

#include "queue/memory_bus.h"
#include "queue/memory_events.h"
#include "queue/redis_bus.h"
#include "queue/redis_events.h"

namespace transnotes::queue {

std::unique_ptr<JobBus> open_bus(std::shared_ptr<redis::RedisClient> redis) {
  if (redis) return std::make_unique<RedisJobBus>(std::move(redis));
  return std::make_unique<MemoryJobBus>();
}

std::unique_ptr<UserEvents> open_user_events(std::shared_ptr<redis::RedisClient> redis) {
  if (redis) return std::make_unique<RedisUserEvents>(std::move(redis));
  return std::make_unique<MemoryUserEvents>();
}

}  // namespace transnotes::queue
