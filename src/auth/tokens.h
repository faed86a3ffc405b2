// JSON Web Tokens as djangorestframework-simplejwt 5.5 (with PyJWT 2.9 and its default settings)
// issues and checks them: HS256, claims token_type/exp/iat/jti/user_id, the same refusal
// messages, so clients of the Django service keep working. Pure: no storage, no HTTP; the
// blacklist and the user lookup are the caller's.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "domain/errors.h"
#include "domain/model.h"

namespace transnotes::auth {

enum class TokenType { kAccess, kRefresh };
std::string_view to_string(TokenType type);  // "access", "refresh"

// What a token carries once its signature, algorithm and claims have been checked.
struct Claims {
  std::string token_type;  // "access" or "refresh" (decode_untyped: whatever the token says)
  UserId user_id = 0;
  std::string jti;  // 32 lower-case hex digits for tokens issued here
  std::int64_t exp = 0;
  std::int64_t iat = 0;
};

// Why a token was refused, in the order simplejwt checks.
enum class TokenProblem {
  kInvalid,    // malformed, bad signature, alg other than HS256, garbage claims, iat in the future
  kExpired,    // exp has passed (no leeway)
  kNoExp,      // no exp claim
  kNoId,       // no jti claim
  kNoType,     // no token_type claim
  kWrongType,  // token_type is not the one expected
  kNoUserId,   // no user_id claim (simplejwt's authentication refuses it)
};
// simplejwt's message: "Token is invalid", "Token is expired", "Token has no id", ...
std::string_view message(TokenProblem problem);

// The answer of TokenCodec::decode: the claims, or the one problem found first.
class DecodeResult {
 public:
  DecodeResult(Claims claims) : claims_(std::move(claims)) {}  // NOLINT: implicit by design
  DecodeResult(TokenProblem problem) : problem_(problem) {}    // NOLINT: implicit by design

  bool ok() const { return claims_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Claims& claims() const { return *claims_; }  // only when ok()
  Claims& claims() { return *claims_; }
  TokenProblem problem() const { return problem_; }  // only when !ok()

 private:
  std::optional<Claims> claims_;
  TokenProblem problem_ = TokenProblem::kInvalid;
};

struct TokenPair {
  std::string access;
  std::string refresh;
};

// Issues and checks HS256 tokens with one secret key. Immutable after construction; every method
// may be called from any thread at once.
class TokenCodec {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // Longer inputs are refused before any parsing (an access token here is ~250 bytes).
  static constexpr std::size_t kMaxTokenLength = 8 * 1024;
  // HS256's key should be at least as long as its output (RFC 7518 3.2).
  static constexpr std::size_t kMinKeyLength = 32;

  // Throws transnotes::Error for a key shorter than kMinKeyLength or a lifetime that is not
  // positive. An empty clock means the system clock.
  explicit TokenCodec(std::string secret_key,
                      std::chrono::seconds access_lifetime = std::chrono::minutes(5),
                      std::chrono::seconds refresh_lifetime = std::chrono::hours(24),
                      Clock clock = {});
  ~TokenCodec();
  TokenCodec(const TokenCodec&) = delete;
  TokenCodec& operator=(const TokenCodec&) = delete;

  // A new token for `user`: iat now, exp now + the type's lifetime, a fresh random jti.
  std::string issue(UserId user, TokenType type) const;
  // simplejwt's login answer: a refresh token and refresh.access_token, issued at the same
  // instant.
  TokenPair issue_pair(UserId user) const;
  // simplejwt's refresh.access_token for a refresh token decoded earlier: the same user_id, a new
  // jti, iat now and exp now + the access lifetime (iat is not copied).
  std::string issue_access_from(const Claims& refresh) const;

  // Checks `token` as simplejwt's AccessToken(token) / RefreshToken(token) would, plus a user_id
  // claim that is an integer.
  DecodeResult decode(std::string_view token, TokenType expected) const;
  // simplejwt's UntypedToken (POST /token/verify/): any token_type, or none.
  DecodeResult decode_untyped(std::string_view token) const;

  std::chrono::seconds access_lifetime() const { return access_lifetime_; }
  std::chrono::seconds refresh_lifetime() const { return refresh_lifetime_; }
  // Seconds since the epoch by this codec's clock (whole seconds, rounded down).
  std::int64_t now_seconds() const;

 private:
  std::string encode(UserId user, std::string_view type, std::int64_t now,
                     std::chrono::seconds lifetime) const;
  DecodeResult check(std::string_view token, std::optional<TokenType> expected) const;

  std::string key_;
  std::chrono::seconds access_lifetime_;
  std::chrono::seconds refresh_lifetime_;
  Clock clock_;
};

// The error for a request whose Authorization token was refused (simplejwt's JWTAuthentication
// with AccessToken as its one token class): 401 "Given token not valid for any token type", code
// token_not_valid, and the refusal under "messages".
AuthenticationFailed authentication_failure(TokenProblem problem);
// The error the token views (/token/refresh/, /token/verify/) answer: the message as detail, code
// token_not_valid.
AuthenticationFailed token_view_failure(TokenProblem problem);

// The raw token of an Authorization header value, read as simplejwt's get_raw_token reads it:
// nullopt for an empty value or one whose first word is not "Bearer" (no JWT credentials: the
// request is anonymous); throws AuthenticationFailed (code bad_authorization_header) for a Bearer
// value that is not exactly two whitespace-separated words. The view points into `header`.
std::optional<std::string_view> raw_token_from_authorization(std::string_view header);

}  // namespace transnotes::auth
