#include "auth/verified_tokens.h"

#include <gtest/gtest.h>

#include <string>

namespace transnotes::auth {
namespace {

TEST(VerifiedTokens, RecognizesOnlyTheExactTokenUntilItExpires) {
  VerifiedTokens tokens;
  tokens.remember("header.payload.signature", 7, /*expires_at=*/1000);
  EXPECT_EQ(tokens.find("header.payload.signature", 999), std::optional<UserId>(7));
  // No leeway: at exp the token is expired, as simplejwt has it.
  EXPECT_EQ(tokens.find("header.payload.signature", 1000), std::nullopt);
  // Any other bytes, even a prefix or one changed character, are a different token.
  EXPECT_EQ(tokens.find("header.payload.signaturE", 10), std::nullopt);
  EXPECT_EQ(tokens.find("header.payload.signature.", 10), std::nullopt);
  EXPECT_EQ(tokens.find("header.payload", 10), std::nullopt);
}

TEST(VerifiedTokens, StaysBounded) {
  VerifiedTokens tokens;
  const std::size_t total = VerifiedTokens::kShards * VerifiedTokens::kMaxPerShard * 3;
  for (std::size_t i = 0; i < total; ++i) tokens.remember("token-" + std::to_string(i), 1, 100);
  std::size_t remembered = 0;
  for (std::size_t i = 0; i < total; ++i) {
    if (tokens.find("token-" + std::to_string(i), 0)) ++remembered;
  }
  EXPECT_LE(remembered, VerifiedTokens::kShards * VerifiedTokens::kMaxPerShard);
  EXPECT_GT(remembered, 0u);
}

}  // namespace
}  // namespace transnotes::auth
