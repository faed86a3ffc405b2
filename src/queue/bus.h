// open_bus(): the JobBus the settings ask for — Redis Streams when a client is given (jobs reach
// workers in any process), else the in-process bus — like open_store() for the database.
#pragma once

#include <memory>

#include "domain/ports.h"
#include "redis/redis_client.h"

namespace transnotes::queue {

std::unique_ptr<JobBus> open_bus(std::shared_ptr<redis::RedisClient> redis);

// The same for users' live events: Redis Streams when a client is given (see redis_events.h),
// else in-process (memory_events.h).
std::unique_ptr<UserEvents> open_user_events(std::shared_ptr<redis::RedisClient> redis);

}  // namespace transnotes::queue
