#include "api/list_page_cache.h"

#include <functional>
#include <utility>

namespace transnotes::api {

namespace {

// What an entry costs besides its body: list node, index slot, control block, about.
constexpr std::size_t kEntryOverhead = 128;

std::size_t cost(const ListPageCache::Page& page) { return page.body->size() + kEntryOverhead; }

}  // namespace

std::size_t ListPageCache::KeyHash::operator()(const Key& key) const noexcept {
  std::size_t h = std::hash<std::int64_t>{}(key.owner);
  h = h * 1'000'003u ^ std::hash<std::int64_t>{}(key.limit);
  return h * 1'000'003u ^ std::hash<std::int64_t>{}(key.offset);
}

std::optional<ListPageCache::Page> ListPageCache::get(const Key& key, std::int64_t version) {
  std::lock_guard lock(mutex_);
  auto found = index_.find(key);
  if (found == index_.end()) return std::nullopt;
  auto entry = found->second;
  if (entry->page.version != version) {
    if (entry->page.version < version) drop(entry);
    return std::nullopt;
  }
  entries_.splice(entries_.begin(), entries_, entry);
  return entry->page;
}

void ListPageCache::put(const Key& key, Page page) {
  const std::size_t page_cost = cost(page);
  if (page_cost > max_bytes_) return;
  std::lock_guard lock(mutex_);
  if (auto found = index_.find(key); found != index_.end()) {
    if (found->second->page.version > page.version) return;
    drop(found->second);
  }
  while (!entries_.empty() && bytes_ + page_cost > max_bytes_) drop(std::prev(entries_.end()));
  entries_.push_front(Entry{key, std::move(page)});
  index_.emplace(key, entries_.begin());
  bytes_ += page_cost;
}

std::size_t ListPageCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

std::size_t ListPageCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void ListPageCache::drop(std::list<Entry>::iterator entry) {
  bytes_ -= cost(entry->page);
  index_.erase(entry->key);
  entries_.erase(entry);
}

}  // namespace transnotes::api
