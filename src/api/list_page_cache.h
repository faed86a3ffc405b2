// Rendered note list pages, per process, each kept with the owner's notes version
// (Store::notes_version) it was rendered under and served only while that version is current.
// Bounded by bytes, least recently used first out. Thread-safe.
//
// Why a page served from here is never stale: the version is read before the rows (see
// Api::list_notes), so a page holds at least every write the version counts and is stored under
// a version no newer than its data. Versions only grow with committed writes, and a later reader
// that reads the same version saw no write since, so the page holds everything it must show.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "domain/model.h"

namespace transnotes::api {

class ListPageCache {
 public:
  struct Key {
    UserId owner = kOpenModeOwner;
    std::int64_t limit = 0;
    std::int64_t offset = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct Page {
    std::int64_t version = 0;
    // Shared with every answer that serves it: one copy however many requests are in flight.
    std::shared_ptr<const std::string> body;
    std::size_t notes = 0;    // how many notes the page holds
    bool more_after = false;  // whether a next page exists
  };

  explicit ListPageCache(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  ListPageCache(const ListPageCache&) = delete;
  ListPageCache& operator=(const ListPageCache&) = delete;

  // The page stored for `key` if it was rendered under `version`. A page of an older version is
  // dropped on the way (it can never be served again).
  std::optional<Page> get(const Key& key, std::int64_t version);
  // Stores `page` unless one of a newer version is there already (a slower reader of an older
  // version must not replace it). A page larger than the whole bound is not kept.
  void put(const Key& key, Page page);

  std::size_t bytes() const;
  std::size_t size() const;

 private:
  struct KeyHash {
    std::size_t operator()(const Key& key) const noexcept;
  };
  struct Entry {
    Key key;
    Page page;
  };
  void drop(std::list<Entry>::iterator entry);  // with mutex_ held

  const std::size_t max_bytes_;
  mutable std::mutex mutex_;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> index_;
  std::size_t bytes_ = 0;
};

}  // namespace transnotes::api
