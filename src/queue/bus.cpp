#include "queue/bus.h"

#include "queue/memory_bus.h"
#include "queue/redis_bus.h"

namespace transnotes::queue {

std::unique_ptr<JobBus> open_bus(std::shared_ptr<redis::RedisClient> redis) {
  if (redis) return std::make_unique<RedisJobBus>(std::move(redis));
  return std::make_unique<MemoryJobBus>();
}

}  // namespace transnotes::queue
