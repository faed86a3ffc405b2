#include "auth/verified_tokens.h"

#include <functional>

namespace transnotes::auth {

VerifiedTokens::Shard& VerifiedTokens::shard_for(std::string_view token) const {
  return shards_[Hash{}(token) % kShards];
}

std::optional<UserId> VerifiedTokens::find(std::string_view token, std::int64_t now_seconds) const {
  Shard& shard = shard_for(token);
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(token);
  // simplejwt: a token whose exp is now or earlier is expired (no leeway).
  if (it == shard.entries.end() || it->second.expires_at <= now_seconds) return std::nullopt;
  return it->second.user;
}

void VerifiedTokens::remember(std::string_view token, UserId user,
                              std::int64_t expires_at_seconds) {
  Shard& shard = shard_for(token);
  std::lock_guard lock(shard.mutex);
  if (shard.entries.size() >= kMaxPerShard) shard.entries.clear();
  shard.entries.insert_or_assign(std::string(token), Entry{user, expires_at_seconds});
}

}  // namespace transnotes::auth
