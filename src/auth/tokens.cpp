#include "auth/tokens.h"

#include <jwt.h>
#include <sodium.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <utility>

#include "auth/sodium_ready.h"

namespace transnotes::auth {
namespace {

constexpr const char* kTokenTypeClaim = "token_type";
constexpr const char* kUserIdClaim = "user_id";
constexpr const char* kJtiClaim = "jti";

struct JwtFree {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

struct CharFree {
  void operator()(char* text) const { std::free(text); }
};
using MallocText = std::unique_ptr<char, CharFree>;

// uuid4().hex, as simplejwt's set_jti makes it: 128 random bits with the version-4 and RFC 4122
// variant bits set, in lower-case hex.
std::string random_jti() {
  std::array<unsigned char, 16> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(32, '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    hex[2 * i] = kHex[bytes[i] >> 4];
    hex[2 * i + 1] = kHex[bytes[i] & 0x0f];
  }
  return hex;
}

enum class ClaimState { kMissing, kNotInteger, kPresent };

// libjwt's jwt_get_grant_int answers 0 both for a 0 and for a string, a float or a boolean (and
// -1 with errno ENOENT when the claim is missing). Any other answer is the integer itself, which
// is what every claim of a genuine token holds; only a 0 is read back as its JSON text, where
// jansson writes an integer as bare decimal digits and nothing else.
ClaimState integer_claim(jwt_t* jwt, const char* name, std::int64_t& value) {
  errno = 0;
  const long quick = jwt_get_grant_int(jwt, name);
  if (errno == ENOENT) return ClaimState::kMissing;
  if (quick != 0) {
    value = quick;
    return ClaimState::kPresent;
  }
  MallocText json(jwt_get_grants_json(jwt, name));
  if (!json) return ClaimState::kMissing;
  std::string_view text(json.get());
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  return error == std::errc() && stop == end ? ClaimState::kPresent : ClaimState::kNotInteger;
}

bool has_claim(jwt_t* jwt, const char* name) {
  return MallocText(jwt_get_grants_json(jwt, name)) != nullptr;
}

// jansson's json_object_get answers "missing" for every name when the payload is not an object;
// PyJWT refuses such a payload outright ("must be a json object").
bool payload_is_object(jwt_t* jwt) {
  MallocText json(jwt_get_grants_json(jwt, nullptr));
  return json && json.get()[0] == '{';
}

}  // namespace

std::string_view to_string(TokenType type) {
  return type == TokenType::kAccess ? "access" : "refresh";
}

std::string_view message(TokenProblem problem) {
  switch (problem) {
    case TokenProblem::kInvalid:
      return "Token is invalid";
    case TokenProblem::kExpired:
      return "Token is expired";
    case TokenProblem::kNoExp:
      return "Token has no 'exp' claim";
    case TokenProblem::kNoId:
      return "Token has no id";
    case TokenProblem::kNoType:
      return "Token has no type";
    case TokenProblem::kWrongType:
      return "Token has wrong type";
    case TokenProblem::kNoUserId:
      return "Token contained no recognizable user identification";
  }
  return "Token is invalid";
}

TokenCodec::TokenCodec(std::string secret_key, std::chrono::seconds access_lifetime,
                       std::chrono::seconds refresh_lifetime, Clock clock)
    : key_(std::move(secret_key)),
      access_lifetime_(access_lifetime),
      refresh_lifetime_(refresh_lifetime),
      clock_(std::move(clock)) {
  if (key_.size() < kMinKeyLength) {
    throw Error("the token signing key must be at least " + std::to_string(kMinKeyLength) +
                " bytes long");
  }
  if (access_lifetime_.count() <= 0 || refresh_lifetime_.count() <= 0) {
    throw Error("token lifetimes must be positive");
  }
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
  ensure_sodium_ready();
}

TokenCodec::~TokenCodec() { sodium_memzero(key_.data(), key_.size()); }

std::int64_t TokenCodec::now_seconds() const {
  return std::chrono::floor<std::chrono::seconds>(clock_()).time_since_epoch().count();
}

std::string TokenCodec::encode(UserId user, std::string_view type, std::int64_t now,
                               std::chrono::seconds lifetime) const {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw Error("jwt_new failed");
  JwtPtr jwt(raw);
  const std::string type_text(type);
  const std::string jti = random_jti();
  // Every grant below is new on a fresh jwt_t, so each add can fail only for lack of memory.
  if (jwt_add_grant(jwt.get(), kTokenTypeClaim, type_text.c_str()) != 0 ||
      jwt_add_grant_int(jwt.get(), "exp", static_cast<long>(now + lifetime.count())) != 0 ||
      jwt_add_grant_int(jwt.get(), "iat", static_cast<long>(now)) != 0 ||
      jwt_add_grant(jwt.get(), kJtiClaim, jti.c_str()) != 0 ||
      jwt_add_grant_int(jwt.get(), kUserIdClaim, static_cast<long>(user)) != 0 ||
      jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(key_.data()),
                  static_cast<int>(key_.size())) != 0) {
    throw Error("could not build a token");
  }
  MallocText encoded(jwt_encode_str(jwt.get()));
  if (!encoded) throw Error("could not sign a token");
  return std::string(encoded.get());
}

std::string TokenCodec::issue(UserId user, TokenType type) const {
  return encode(user, to_string(type), now_seconds(),
                type == TokenType::kAccess ? access_lifetime_ : refresh_lifetime_);
}

TokenPair TokenCodec::issue_pair(UserId user) const {
  const std::int64_t now = now_seconds();
  TokenPair pair;
  pair.refresh = encode(user, to_string(TokenType::kRefresh), now, refresh_lifetime_);
  pair.access = encode(user, to_string(TokenType::kAccess), now, access_lifetime_);
  return pair;
}

std::string TokenCodec::issue_access_from(const Claims& refresh) const {
  return issue(refresh.user_id, TokenType::kAccess);
}

DecodeResult TokenCodec::decode(std::string_view token, TokenType expected) const {
  return check(token, expected);
}

DecodeResult TokenCodec::decode_untyped(std::string_view token) const {
  return check(token, std::nullopt);
}

DecodeResult TokenCodec::check(std::string_view token, std::optional<TokenType> expected) const {
  // libjwt reads a C string: a NUL inside would hide whatever follows it from the signature check.
  if (token.empty() || token.size() > kMaxTokenLength ||
      token.find('\0') != std::string_view::npos) {
    return TokenProblem::kInvalid;
  }
  const std::string text(token);
  jwt_t* raw = nullptr;
  // Verifies the signature for the algorithm the token's header names (with a constant-time
  // comparison in Debian's 1.10.2-1+deb12u1, CVE-2024-25189), and refuses alg "none" when a key
  // is given.
  if (jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(key_.data()),
                 static_cast<int>(key_.size())) != 0) {
    return TokenProblem::kInvalid;
  }
  JwtPtr jwt(raw);
  // libjwt would accept HS384 or HS512 signed with the same key, and PyJWT (algorithms=["HS256"])
  // would not; "none" is refused above, and again here whatever libjwt does.
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) return TokenProblem::kInvalid;

  const std::int64_t now = now_seconds();
  Claims claims;
  // PyJWT's claim checks: iat must be an integer not in the future, exp an integer not passed.
  switch (integer_claim(jwt.get(), "iat", claims.iat)) {
    case ClaimState::kNotInteger:
      return TokenProblem::kInvalid;
    case ClaimState::kPresent:
      if (claims.iat > now) return TokenProblem::kInvalid;
      break;
    case ClaimState::kMissing:
      break;
  }
  switch (integer_claim(jwt.get(), "exp", claims.exp)) {
    case ClaimState::kNotInteger:
      return TokenProblem::kInvalid;
    case ClaimState::kMissing:
      return payload_is_object(jwt.get()) ? TokenProblem::kNoExp : TokenProblem::kInvalid;
    case ClaimState::kPresent:
      if (claims.exp <= now) return TokenProblem::kExpired;
      break;
  }

  // simplejwt's Token.verify: a jti, then the type.
  if (const char* jti = jwt_get_grant(jwt.get(), kJtiClaim)) {
    claims.jti = jti;
  } else {
    // Present but not a string: nothing a blacklist could be keyed on.
    return has_claim(jwt.get(), kJtiClaim) ? TokenProblem::kInvalid : TokenProblem::kNoId;
  }
  if (const char* type = jwt_get_grant(jwt.get(), kTokenTypeClaim)) {
    claims.token_type = type;
  } else if (!has_claim(jwt.get(), kTokenTypeClaim)) {
    if (expected) return TokenProblem::kNoType;
  } else if (expected) {
    return TokenProblem::kWrongType;  // not a string, so not the expected one
  }
  if (expected && claims.token_type != to_string(*expected)) return TokenProblem::kWrongType;

  switch (integer_claim(jwt.get(), kUserIdClaim, claims.user_id)) {
    case ClaimState::kMissing:
      return TokenProblem::kNoUserId;
    case ClaimState::kNotInteger:
      return TokenProblem::kInvalid;
    case ClaimState::kPresent:
      break;
  }
  return claims;
}

AuthenticationFailed authentication_failure(TokenProblem problem) {
  if (problem == TokenProblem::kNoUserId) {
    return AuthenticationFailed(std::string(message(problem)), "token_not_valid");
  }
  return AuthenticationFailed(
      "Given token not valid for any token type", "token_not_valid",
      {TokenRefusal{"AccessToken", "access", std::string(message(problem))}});
}

AuthenticationFailed token_view_failure(TokenProblem problem) {
  return AuthenticationFailed(std::string(message(problem)), "token_not_valid");
}

std::optional<std::string_view> raw_token_from_authorization(std::string_view header) {
  // Python's bytes.split(): runs of ASCII whitespace separate words; edges are dropped.
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  std::array<std::string_view, 2> words;
  std::size_t count = 0;
  std::size_t i = 0;
  while (i < header.size()) {
    while (i < header.size() && is_space(header[i])) ++i;
    if (i == header.size()) break;
    const std::size_t start = i;
    while (i < header.size() && !is_space(header[i])) ++i;
    if (count < words.size()) words[count] = header.substr(start, i - start);
    ++count;
  }
  if (count == 0 || words[0] != "Bearer") return std::nullopt;
  if (count != 2) {
    throw AuthenticationFailed("Authorization header must contain two space-delimited values",
                               "bad_authorization_header");
  }
  return words[1];
}

}  // namespace transnotes::auth
