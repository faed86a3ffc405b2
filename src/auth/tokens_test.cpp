#include "auth/tokens.h"

#include <gtest/gtest.h>
#include <jwt.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace transnotes::auth {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

const std::string kKey = "0123456789abcdef0123456789abcdef-test-key";
const std::string kOtherKey = "fedcba9876543210fedcba9876543210-other-key";
constexpr std::int64_t kNow = 1'764'547'200;  // 2025-12-01T00:00:00Z

// A clock the tests move by hand; the codec reads it through its clock seam.
struct FakeClock {
  std::shared_ptr<std::atomic<std::int64_t>> micros =
      std::make_shared<std::atomic<std::int64_t>>(kNow * 1'000'000);
  TokenCodec::Clock seam() const {
    return [m = micros] { return system_clock::time_point(std::chrono::microseconds(m->load())); };
  }
  void set_seconds(std::int64_t s, std::int64_t extra_micros = 0) {
    micros->store(s * 1'000'000 + extra_micros);
  }
};

// Signs any payload with libjwt, as a forger with (or without) the key could.
std::string sign(const std::string& payload_json, jwt_alg_t alg = JWT_ALG_HS256,
                 const std::string& key = kKey) {
  jwt_t* raw = nullptr;
  EXPECT_EQ(jwt_new(&raw), 0);
  std::unique_ptr<jwt_t, void (*)(jwt_t*)> jwt(raw, jwt_free);
  EXPECT_EQ(jwt_add_grants_json(jwt.get(), payload_json.c_str()), 0) << payload_json;
  if (alg == JWT_ALG_NONE) {
    EXPECT_EQ(jwt_set_alg(jwt.get(), alg, nullptr, 0), 0);
  } else {
    EXPECT_EQ(jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(key.data()),
                          static_cast<int>(key.size())),
              0);
  }
  char* encoded = jwt_encode_str(jwt.get());
  EXPECT_NE(encoded, nullptr);
  std::string out = encoded ? encoded : "";
  std::free(encoded);
  return out;
}

std::string payload(
    const std::string& type, std::int64_t exp, std::int64_t iat,
    const std::string& extra = R"(,"jti":"0123456789abcdef0123456789abcdef","user_id":7)") {
  return R"({"token_type":")" + type + R"(","exp":)" + std::to_string(exp) + R"(,"iat":)" +
         std::to_string(iat) + extra + "}";
}

std::vector<std::string> split_dots(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t dot = token.find('.', start);
    parts.push_back(token.substr(start, dot - start));
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

// The claims libjwt reads from a token without checking anything: what a client sees.
std::string unverified_payload_json(const std::string& token) {
  jwt_t* raw = nullptr;
  EXPECT_EQ(jwt_decode(&raw, token.c_str(), nullptr, 0), 0);
  std::unique_ptr<jwt_t, void (*)(jwt_t*)> jwt(raw, jwt_free);
  char* json = jwt_get_grants_json(jwt.get(), nullptr);
  std::string out = json;
  std::free(json);
  return out;
}

class Tokens : public ::testing::Test {
 protected:
  FakeClock clock;
  TokenCodec codec{kKey, std::chrono::minutes(5), std::chrono::hours(24), clock.seam()};

  TokenProblem problem(const std::string& token, TokenType type = TokenType::kAccess) {
    DecodeResult result = codec.decode(token, type);
    EXPECT_FALSE(result.ok()) << token;
    return result.ok() ? TokenProblem::kInvalid : result.problem();
  }
};

// `text` is `length` lower-case hex digits. (No std::regex: GCC 12 warns inside it under the
// sanitizers.)
bool is_lower_hex(std::string_view text, std::size_t length) {
  return text.size() == length &&
         text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// A UUID4 in hex: version nibble 4, variant nibble 8, 9, a or b.
bool is_uuid4_hex(std::string_view text) {
  return is_lower_hex(text, 32) && text[12] == '4' &&
         std::string_view("89ab").find(text[16]) != std::string_view::npos;
}

TEST_F(Tokens, IssuedAccessTokenCarriesSimplejwtClaims) {
  const std::string token = codec.issue(42, TokenType::kAccess);
  const std::string json = unverified_payload_json(token);
  // libjwt writes keys sorted; the set and the types are simplejwt's.
  const std::string head = R"({"exp":1764547500,"iat":1764547200,"jti":")";
  const std::string tail = R"(","token_type":"access","user_id":42})";
  ASSERT_EQ(json.size(), head.size() + 32 + tail.size()) << json;
  EXPECT_TRUE(json.starts_with(head) && json.ends_with(tail)) << json;
  EXPECT_TRUE(is_lower_hex(std::string_view(json).substr(head.size(), 32), 32)) << json;
  DecodeResult result = codec.decode(token, TokenType::kAccess);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.claims().token_type, "access");
  EXPECT_EQ(result.claims().user_id, 42);
  EXPECT_EQ(result.claims().iat, kNow);
  EXPECT_EQ(result.claims().exp, kNow + 300);
  EXPECT_TRUE(is_lower_hex(result.claims().jti, 32));
}

TEST_F(Tokens, HeaderIsHs256Jwt) {
  const std::string token = codec.issue(1, TokenType::kAccess);
  jwt_t* raw = nullptr;
  ASSERT_EQ(jwt_decode(&raw, token.c_str(), nullptr, 0), 0);
  std::unique_ptr<jwt_t, void (*)(jwt_t*)> jwt(raw, jwt_free);
  char* header = jwt_get_headers_json(jwt.get(), nullptr);
  EXPECT_STREQ(header, R"({"alg":"HS256","typ":"JWT"})");
  std::free(header);
}

TEST_F(Tokens, RefreshTokenLivesADayByDefault) {
  TokenCodec defaults(kKey, std::chrono::minutes(5), std::chrono::hours(24), clock.seam());
  DecodeResult result =
      defaults.decode(defaults.issue(9, TokenType::kRefresh), TokenType::kRefresh);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.claims().token_type, "refresh");
  EXPECT_EQ(result.claims().exp, kNow + 86400);
}

TEST_F(Tokens, DefaultLifetimesAreFiveMinutesAndOneDay) {
  TokenCodec defaults(kKey);
  EXPECT_EQ(defaults.access_lifetime(), seconds(300));
  EXPECT_EQ(defaults.refresh_lifetime(), seconds(86400));
}

TEST_F(Tokens, JtiIsAFreshUuid4HexEachTime) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    DecodeResult result = codec.decode(codec.issue(1, TokenType::kAccess), TokenType::kAccess);
    ASSERT_TRUE(result.ok());
    const std::string& jti = result.claims().jti;
    EXPECT_TRUE(is_uuid4_hex(jti)) << jti;
    seen.insert(jti);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST_F(Tokens, PairSharesTheInstantAndAccessFromRefreshKeepsTheUser) {
  TokenPair pair = codec.issue_pair(5);
  DecodeResult refresh = codec.decode(pair.refresh, TokenType::kRefresh);
  DecodeResult access = codec.decode(pair.access, TokenType::kAccess);
  ASSERT_TRUE(refresh.ok());
  ASSERT_TRUE(access.ok());
  EXPECT_EQ(refresh.claims().iat, access.claims().iat);
  EXPECT_NE(refresh.claims().jti, access.claims().jti);

  clock.set_seconds(kNow + 1000);
  DecodeResult again = codec.decode(pair.refresh, TokenType::kRefresh);
  ASSERT_TRUE(again.ok());
  DecodeResult renewed = codec.decode(codec.issue_access_from(again.claims()), TokenType::kAccess);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed.claims().user_id, 5);
  EXPECT_EQ(renewed.claims().iat, kNow + 1000);  // not copied from the refresh token
  EXPECT_EQ(renewed.claims().exp, kNow + 1000 + 300);
  EXPECT_NE(renewed.claims().jti, again.claims().jti);
}

TEST_F(Tokens, ExpiresExactlyAtExpWithNoLeeway) {
  const std::string token = codec.issue(3, TokenType::kAccess);
  clock.set_seconds(kNow + 299, 999'999);
  EXPECT_TRUE(codec.decode(token, TokenType::kAccess).ok());
  clock.set_seconds(kNow + 300);
  EXPECT_EQ(problem(token), TokenProblem::kExpired);
  EXPECT_EQ(message(TokenProblem::kExpired), "Token is expired");
}

TEST_F(Tokens, WrongTypeInBothDirections) {
  EXPECT_EQ(problem(codec.issue(1, TokenType::kRefresh), TokenType::kAccess),
            TokenProblem::kWrongType);
  EXPECT_EQ(problem(codec.issue(1, TokenType::kAccess), TokenType::kRefresh),
            TokenProblem::kWrongType);
  EXPECT_EQ(message(TokenProblem::kWrongType), "Token has wrong type");
}

TEST_F(Tokens, UntypedAcceptsEitherType) {
  DecodeResult refresh = codec.decode_untyped(codec.issue(1, TokenType::kRefresh));
  ASSERT_TRUE(refresh.ok());
  EXPECT_EQ(refresh.claims().token_type, "refresh");
  EXPECT_TRUE(codec.decode_untyped(codec.issue(1, TokenType::kAccess)).ok());
  EXPECT_TRUE(codec.decode_untyped(sign(payload("sliding", kNow + 60, kNow))).ok());
  EXPECT_TRUE(codec.decode_untyped(sign(R"({"exp":1764547260,"jti":"ab","user_id":1})")).ok());
}

TEST_F(Tokens, PayloadChangedUnderTheSameSignatureIsInvalid) {
  const std::string genuine = codec.issue(1, TokenType::kAccess);
  const std::string forged_payload =
      sign(payload("access", kNow + 300, kNow,
                   R"(,"jti":"0123456789abcdef0123456789abcdef","user_id":2)"),
           JWT_ALG_HS256, kOtherKey);
  auto g = split_dots(genuine);
  auto f = split_dots(forged_payload);
  ASSERT_EQ(g.size(), 3u);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(problem(g[0] + "." + f[1] + "." + g[2]), TokenProblem::kInvalid);
  EXPECT_EQ(message(TokenProblem::kInvalid), "Token is invalid");
}

TEST_F(Tokens, ChangedSignatureIsInvalid) {
  const std::string genuine = codec.issue(1, TokenType::kAccess);
  std::string flipped = genuine;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(problem(flipped), TokenProblem::kInvalid);
  EXPECT_EQ(problem(genuine + "A"), TokenProblem::kInvalid);
  EXPECT_EQ(problem(genuine.substr(0, genuine.size() - 1)), TokenProblem::kInvalid);
  EXPECT_EQ(problem(genuine.substr(0, genuine.rfind('.') + 1)), TokenProblem::kInvalid);
}

TEST_F(Tokens, SignedWithAnotherKeyIsInvalid) {
  EXPECT_EQ(problem(sign(payload("access", kNow + 300, kNow), JWT_ALG_HS256, kOtherKey)),
            TokenProblem::kInvalid);
  TokenCodec other(kOtherKey, seconds(300), seconds(86400), clock.seam());
  EXPECT_EQ(problem(other.issue(1, TokenType::kAccess)), TokenProblem::kInvalid);
}

TEST_F(Tokens, AlgNoneIsInvalid) {
  const std::string unsigned_token = sign(payload("access", kNow + 300, kNow), JWT_ALG_NONE);
  EXPECT_EQ(unsigned_token.back(), '.');
  EXPECT_EQ(problem(unsigned_token), TokenProblem::kInvalid);
  EXPECT_EQ(codec.decode_untyped(unsigned_token).ok(), false);
  // A "none" header spliced onto a genuine payload and signature.
  auto none = split_dots(unsigned_token);
  auto genuine = split_dots(codec.issue(1, TokenType::kAccess));
  EXPECT_EQ(problem(none[0] + "." + genuine[1] + "." + genuine[2]), TokenProblem::kInvalid);
  EXPECT_EQ(problem(none[0] + "." + genuine[1] + "."), TokenProblem::kInvalid);
}

TEST_F(Tokens, OtherHmacAlgorithmsWithTheRightKeyAreInvalid) {
  EXPECT_EQ(problem(sign(payload("access", kNow + 300, kNow), JWT_ALG_HS384)),
            TokenProblem::kInvalid);
  EXPECT_EQ(problem(sign(payload("access", kNow + 300, kNow), JWT_ALG_HS512)),
            TokenProblem::kInvalid);
  // The control: the same payload under HS256 passes, so the refusal above is the algorithm's.
  EXPECT_TRUE(codec.decode(sign(payload("access", kNow + 300, kNow)), TokenType::kAccess).ok());
}

TEST_F(Tokens, MalformedInputIsInvalid) {
  for (const std::string& garbage :
       {std::string(), std::string("abc"), std::string("a.b"), std::string("a.b.c"),
        std::string(".."), std::string("...."), std::string("Bearer x"),
        std::string("eyJhbGciOiJIUzI1NiJ9.e30."), std::string(5000, '.')}) {
    EXPECT_EQ(problem(garbage), TokenProblem::kInvalid) << garbage;
  }
}

TEST_F(Tokens, NulInsideTheTokenIsInvalid) {
  const std::string genuine = codec.issue(1, TokenType::kAccess);
  ASSERT_TRUE(codec.decode(genuine, TokenType::kAccess).ok());
  EXPECT_EQ(problem(genuine + std::string(1, '\0') + "tail"), TokenProblem::kInvalid);
}

TEST_F(Tokens, OverlongInputIsRefusedBeforeParsing) {
  // Signed and otherwise valid, only too long: the cap alone refuses it.
  const std::string padding(TokenCodec::kMaxTokenLength, 'x');
  const std::string big = sign(
      payload("access", kNow + 300, kNow, R"(,"jti":"ab","user_id":1,"pad":")" + padding + "\""));
  ASSERT_GT(big.size(), TokenCodec::kMaxTokenLength);
  EXPECT_EQ(problem(big), TokenProblem::kInvalid);
  const std::string fits =
      sign(payload("access", kNow + 300, kNow, R"(,"jti":"ab","user_id":1,"pad":"x")"));
  EXPECT_TRUE(codec.decode(fits, TokenType::kAccess).ok());
}

TEST_F(Tokens, MissingClaimsGetSimplejwtMessagesInItsOrder) {
  EXPECT_EQ(problem(sign(R"({"token_type":"access","iat":1764547200,"jti":"a","user_id":1})")),
            TokenProblem::kNoExp);
  EXPECT_EQ(message(TokenProblem::kNoExp), "Token has no 'exp' claim");
  EXPECT_EQ(problem(sign(R"({"token_type":"access","exp":1764547500,"user_id":1})")),
            TokenProblem::kNoId);
  EXPECT_EQ(message(TokenProblem::kNoId), "Token has no id");
  EXPECT_EQ(problem(sign(R"({"exp":1764547500,"jti":"a","user_id":1})")), TokenProblem::kNoType);
  EXPECT_EQ(message(TokenProblem::kNoType), "Token has no type");
  EXPECT_EQ(problem(sign(R"({"token_type":"access","exp":1764547500,"jti":"a"})")),
            TokenProblem::kNoUserId);
  EXPECT_EQ(message(TokenProblem::kNoUserId),
            "Token contained no recognizable user identification");
  // Expiry is PyJWT's check and comes before simplejwt's: an expired token without a jti is
  // "expired".
  EXPECT_EQ(problem(sign(R"({"token_type":"access","exp":1764547100,"user_id":1})")),
            TokenProblem::kExpired);
}

TEST_F(Tokens, GarbageClaimsAreInvalid) {
  const std::string jti = R"("jti":"0123456789abcdef0123456789abcdef")";
  for (const std::string& body : {
           R"({"token_type":"access","exp":"1764547500",)" + jti + R"(,"user_id":1})",
           R"({"token_type":"access","exp":1764547500.5,)" + jti + R"(,"user_id":1})",
           R"({"token_type":"access","exp":1764547500,"iat":"x",)" + jti + R"(,"user_id":1})",
           R"({"token_type":"access","exp":1764547500,)" + jti + R"(,"user_id":"1"})",
           R"({"token_type":"access","exp":1764547500,)" + jti + R"(,"user_id":1.5})",
           R"({"token_type":"access","exp":1764547500,)" + jti + R"(,"user_id":true})",
           R"({"token_type":"access","exp":1764547500,)" + jti + R"(,"user_id":null})",
           std::string(R"({"token_type":"access","exp":1764547500,"jti":5,"user_id":1})"),
       }) {
    EXPECT_EQ(problem(sign(body)), TokenProblem::kInvalid) << body;
  }
  // A token_type that is not a string is never the expected one.
  EXPECT_EQ(problem(sign(R"({"token_type":1,"exp":1764547500,)" + jti + R"(,"user_id":1})")),
            TokenProblem::kWrongType);
}

TEST_F(Tokens, ZeroAndNegativeUserIdsAreIntegersToo) {
  // libjwt reads 0 for a non-integer claim; a real 0 (or -1, its "missing" answer) must still
  // read as itself.
  for (std::int64_t id : {0, -1}) {
    DecodeResult result = codec.decode(
        sign(payload("access", kNow + 300, kNow, R"(,"jti":"ab","user_id":)" + std::to_string(id))),
        TokenType::kAccess);
    ASSERT_TRUE(result.ok()) << id;
    EXPECT_EQ(result.claims().user_id, id);
  }
}

TEST_F(Tokens, IssuedInTheFutureIsInvalid) {
  // PyJWT refuses an iat later than now ("The token is not yet valid (iat)").
  EXPECT_EQ(problem(sign(payload("access", kNow + 300, kNow + 1))), TokenProblem::kInvalid);
  EXPECT_TRUE(codec.decode(sign(payload("access", kNow + 300, kNow)), TokenType::kAccess).ok());
}

TEST_F(Tokens, ShortKeyOrBadLifetimeIsRefusedAtConstruction) {
  EXPECT_THROW(TokenCodec(std::string(31, 'k')), Error);
  EXPECT_NO_THROW(TokenCodec(std::string(32, 'k')));
  EXPECT_THROW(TokenCodec(kKey, seconds(0)), Error);
  EXPECT_THROW(TokenCodec(kKey, seconds(300), seconds(-1)), Error);
}

TEST_F(Tokens, SystemClockByDefault) {
  TokenCodec real(kKey);
  const auto before = std::chrono::floor<seconds>(system_clock::now()).time_since_epoch().count();
  DecodeResult result = real.decode(real.issue(1, TokenType::kAccess), TokenType::kAccess);
  ASSERT_TRUE(result.ok());
  EXPECT_GE(result.claims().iat, before);
  EXPECT_LE(result.claims().iat, before + 5);
}

TEST_F(Tokens, ConcurrentIssueAndDecode) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        DecodeResult r =
            codec.decode(codec.issue(t * 1000 + i, TokenType::kAccess), TokenType::kAccess);
        if (!r.ok() || r.claims().user_id != t * 1000 + i) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(TokenErrors, AuthenticationFailureHasSimplejwtShape) {
  AuthenticationFailed e = authentication_failure(TokenProblem::kExpired);
  EXPECT_EQ(e.detail(), "Given token not valid for any token type");
  EXPECT_EQ(e.code(), "token_not_valid");
  ASSERT_EQ(e.messages().size(), 1u);
  EXPECT_EQ(e.messages()[0].token_class, "AccessToken");
  EXPECT_EQ(e.messages()[0].token_type, "access");
  EXPECT_EQ(e.messages()[0].message, "Token is expired");

  AuthenticationFailed no_user = authentication_failure(TokenProblem::kNoUserId);
  EXPECT_EQ(no_user.detail(), "Token contained no recognizable user identification");
  EXPECT_EQ(no_user.code(), "token_not_valid");
  EXPECT_TRUE(no_user.messages().empty());

  AuthenticationFailed view = token_view_failure(TokenProblem::kWrongType);
  EXPECT_EQ(view.detail(), "Token has wrong type");
  EXPECT_EQ(view.code(), "token_not_valid");
  EXPECT_TRUE(view.messages().empty());
}

TEST(AuthorizationHeader, NoCredentialsUnlessBearer) {
  EXPECT_EQ(raw_token_from_authorization(""), std::nullopt);
  EXPECT_EQ(raw_token_from_authorization("   "), std::nullopt);
  EXPECT_EQ(raw_token_from_authorization("Basic dXNlcjpwYXNz"), std::nullopt);
  EXPECT_EQ(raw_token_from_authorization("bearer abc"), std::nullopt);  // case-sensitive
  EXPECT_EQ(raw_token_from_authorization("Token abc def"), std::nullopt);
}

TEST(AuthorizationHeader, BearerToken) {
  EXPECT_EQ(raw_token_from_authorization("Bearer abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(raw_token_from_authorization("  Bearer \t abc  "), "abc");
}

TEST(AuthorizationHeader, BearerWithoutExactlyTwoPartsIsRefused) {
  for (const char* header : {"Bearer", "Bearer   ", "Bearer a b", "Bearer a b c"}) {
    try {
      raw_token_from_authorization(header);
      ADD_FAILURE() << header;
    } catch (const AuthenticationFailed& e) {
      EXPECT_EQ(e.detail(), "Authorization header must contain two space-delimited values");
      EXPECT_EQ(e.code(), "bad_authorization_header");
    }
  }
}

}  // namespace
}  // namespace transnotes::auth
