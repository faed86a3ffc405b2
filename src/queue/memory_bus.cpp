#include "queue/memory_bus.h"

#include <algorithm>

namespace transnotes::queue {

MemoryJobBus::MemoryJobBus(std::size_t max_pending)
    : max_pending_(std::max<std::size_t>(1, max_pending)) {}

void MemoryJobBus::publish(const JobNotice& notice) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    if (pending_.size() >= max_pending_) pending_.pop_front();
    pending_.push_back(notice);
  }
  ready_.notify_one();
}

std::optional<JobNotice> MemoryJobBus::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, std::max(timeout, std::chrono::milliseconds(0)),
                  [&] { return closed_ || !pending_.empty(); });
  if (closed_ || pending_.empty()) return std::nullopt;
  JobNotice notice = pending_.front();
  pending_.pop_front();
  return notice;
}

void MemoryJobBus::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    pending_.clear();
  }
  ready_.notify_all();
}

}  // namespace transnotes::queue
