// Hashing of NoteKey for the caches' maps and shard choice.
#pragma once

#include <cstddef>
#include <cstdint>

#include "domain/ports.h"

namespace transnotes::cache {

// Every output bit depends on every bit of owner and id (the splitmix64 finaliser): sequential ids
// of one owner spread over the memory cache's shards, picked by the top bits, and two owners'
// runs of small ids do not pile onto the same hash buckets.
inline std::uint64_t mix_note_key(const NoteKey& key) {
  std::uint64_t x = static_cast<std::uint64_t>(key.id) ^
                    (static_cast<std::uint64_t>(key.owner) * 0x9E3779B97F4A7C15ull);
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

struct NoteKeyHash {
  std::size_t operator()(const NoteKey& key) const noexcept {
    return static_cast<std::size_t>(mix_note_key(key));
  }
};

}  // namespace transnotes::cache
