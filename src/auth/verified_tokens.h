// Access tokens this process has already verified, so that a client sending the same token on
// every request pays for its signature check once, not on every request (the check parses JSON
// and runs HMAC through libjwt: several microseconds, most of a cached read's budget).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "domain/model.h"

namespace transnotes::auth {

// Thread-safe. Keyed by the whole token, so only the exact bytes that were verified match;
// expiry is checked again on every lookup. Bounded: a full shard is emptied (those tokens are
// verified again on their next use).
class VerifiedTokens {
 public:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kMaxPerShard = 1024;

  // The user of a token verified before that has not expired by `now_seconds`.
  std::optional<UserId> find(std::string_view token, std::int64_t now_seconds) const;
  void remember(std::string_view token, UserId user, std::int64_t expires_at_seconds);

 private:
  struct Entry {
    UserId user = 0;
    std::int64_t expires_at = 0;
  };
  // Lookups by string_view, without copying the token.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
      return std::hash<std::string_view>{}(text);
    }
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries;
  };
  Shard& shard_for(std::string_view token) const;

  mutable std::array<Shard, kShards> shards_;
};

}  // namespace transnotes::auth
