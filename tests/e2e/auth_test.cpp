// Users, tokens and limits end to end (issue 10): the real binary over real HTTP, on the embedded
// SQLite store and on PostgreSQL, with the bodies, status codes and headers that
// djangorestframework-simplejwt and DRF give. Tokens for the refusal cases are minted with the
// service's own codec (auth::TokenCodec) and its clock seam, or taken apart by hand.
#include <gtest/gtest.h>
#include <jwt.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "auth/tokens.h"
#include "e2e/fault_services.h"
#include "e2e/harness.h"

namespace {

namespace json = boost::json;
namespace auth = transnotes::auth;
using e2e::request;
using Headers = std::vector<std::pair<std::string, std::string>>;
using SteadyClock = std::chrono::steady_clock;

const Headers kAnonymous{{"Authorization", ""}};
constexpr const char* kChallenge = "Bearer realm=\"api\"";
constexpr const char* kPassword = "violet-Harbor-58-kettle";

std::string note_path(std::int64_t id) { return "/api/v1/notes/" + std::to_string(id) + "/"; }
std::string job_path(std::int64_t id) { return "/api/v1/translations/" + std::to_string(id) + "/"; }

// ---- base64url, to take tokens apart and put them back together --------------------------

constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kBase64Url[(buffer >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kBase64Url[(buffer << (6 - bits)) & 0x3f];
  return out;  // unpadded, as JWS wants
}

std::string base64url_decode(std::string_view text) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    auto at = kBase64Url.find(c);
    if (at == std::string_view::npos) break;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(at);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

struct TokenParts {
  std::string header;     // encoded
  json::object payload;   // decoded
  std::string signature;  // encoded
};

TokenParts split_token(const std::string& token) {
  auto first = token.find('.');
  auto second = token.find('.', first + 1);
  return {token.substr(0, first),
          json::parse(base64url_decode(token.substr(first + 1, second - first - 1))).as_object(),
          token.substr(second + 1)};
}

std::string join_token(const std::string& header, const json::object& payload,
                       const std::string& signature) {
  return header + "." + base64url_encode(json::serialize(payload)) + "." + signature;
}

// `payload` signed by libjwt with `algorithm` and `key`: for tokens whose signature is right but
// whose algorithm is not the one the service accepts.
std::string sign_with(jwt_alg_t algorithm, const json::object& payload, const std::string& key) {
  jwt_t* token = nullptr;
  if (jwt_new(&token) != 0) return {};
  std::string encoded;
  if (jwt_add_grants_json(token, json::serialize(payload).c_str()) == 0 &&
      jwt_set_alg(token, algorithm, reinterpret_cast<const unsigned char*>(key.data()),
                  static_cast<int>(key.size())) == 0) {
    if (char* text = jwt_encode_str(token)) {
      encoded = text;
      free(text);
    }
  }
  jwt_free(token);
  return encoded;
}

std::int64_t user_id_of(const std::string& token) {
  return split_token(token).payload.at("user_id").as_int64();
}

// ---- requests -------------------------------------------------------------------------------

e2e::HttpResult post(int port, const std::string& path, const json::object& body,
                     const Headers& headers = kAnonymous) {
  return request(port, "POST", path, json::serialize(body), "application/json", headers);
}

e2e::HttpResult register_user(int port, const std::string& username, const std::string& password,
                              const std::string& email = "") {
  json::object body{{"username", username}, {"password", password}};
  if (!email.empty()) body["email"] = email;
  return post(port, "/api/v1/auth/register/", body);
}

e2e::HttpResult login(int port, const std::string& username, const std::string& password) {
  return post(port, "/api/v1/auth/token/", {{"username", username}, {"password", password}});
}

std::int64_t create_note(int port, const Headers& as, const std::string& title = "Mine",
                         const std::string& text = "Hello world.") {
  auto res = request(port, "POST", "/api/v1/notes/",
                     json::serialize(json::object{
                         {"title", title}, {"original_text", text}, {"original_language", "en"}}),
                     "application/json", as);
  EXPECT_EQ(res.status, 201) << res.body;
  return res.status == 201 ? res.json().at("id").as_int64() : -1;
}

e2e::HttpResult translate(int port, std::int64_t note, const Headers& as,
                          const std::string& target = "es", const Headers& more = {}) {
  Headers headers = as;
  headers.insert(headers.end(), more.begin(), more.end());
  return request(port, "POST", note_path(note) + "translate/",
                 json::serialize(json::object{{"target_language", target}}), "application/json",
                 headers);
}

// No Authorization named: request() sends the harness's test user's token.
const Headers kAsDefault{};

std::string throttled_detail(const std::string& retry_after) {
  return "Request was throttled. Expected available in " + retry_after + " second" +
         (retry_after == "1" ? "" : "s") + ".";
}

// Checks a DRF throttle answer: 429, a positive whole Retry-After and the detail naming it.
void expect_throttled(const e2e::HttpResult& res, int max_seconds) {
  EXPECT_EQ(res.status, 429) << res.body;
  const std::string retry_after = res.header("Retry-After");
  ASSERT_FALSE(retry_after.empty()) << res.body;
  const int seconds = std::stoi(retry_after);
  EXPECT_GE(seconds, 1);
  EXPECT_LE(seconds, max_seconds);
  EXPECT_EQ(res.json(), json::value(json::object{{"detail", throttled_detail(retry_after)}}));
}

void expect_challenge(const e2e::HttpResult& res, const json::value& body,
                      const std::string& what) {
  EXPECT_EQ(res.status, 401) << what << ": " << res.body;
  EXPECT_EQ(res.header("WWW-Authenticate"), kChallenge) << what;
  if (!res.body.empty()) {
    EXPECT_EQ(res.json(), body) << what << ": " << res.body;
  }
}

json::value bad_token_body(const std::string& message) {
  return json::object{{"detail", "Given token not valid for any token type"},
                      {"code", "token_not_valid"},
                      {"messages", json::array{json::object{{"token_class", "AccessToken"},
                                                            {"token_type", "access"},
                                                            {"message", message}}}}};
}

double median_seconds(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// ---- the suite, on both stores ------------------------------------------------------------

class AuthTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<e2e::Service> start(std::vector<std::string> args = {},
                                      std::map<std::string, std::string> env = {},
                                      const std::string& auth = "jwt") {
    e2e::ServiceOptions options;
    options.args = std::move(args);
    options.env = std::move(env);
    options.auth = auth;
    if (GetParam() == "postgres") {
      std::string url = e2e::database_url_for("postgres");
      if (url.empty()) {
        ADD_FAILURE() << "TRANSNOTES_TEST_DATABASE_URL unset: the PostgreSQL run needs it";
        return nullptr;
      }
      options.env["DATABASE_URL"] = url;
    }
    return std::make_unique<e2e::Service>(options);
  }
};

#define START_OR_FAIL(var, ...)  \
  auto var = start(__VA_ARGS__); \
  ASSERT_NE(var, nullptr)

TEST_P(AuthTest, RegisterAnswersTheNewUserAndRefusesADuplicateNameInAnyCase) {
  START_OR_FAIL(service);
  const int port = service->port();
  auto res = register_user(port, "Alice", kPassword, "alice@example.com");
  ASSERT_EQ(res.status, 201) << res.body;
  auto body = res.json().as_object();
  EXPECT_EQ(body.size(), 3u) << res.body;
  EXPECT_GT(body.at("id").as_int64(), 0);
  EXPECT_EQ(body.at("username"), "Alice");
  EXPECT_EQ(body.at("email"), "alice@example.com");

  res = register_user(port, "bob", kPassword);
  ASSERT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(res.json().at("email"), "");
  EXPECT_NE(res.json().at("id"), body.at("id"));

  for (std::string taken : {"Alice", "alice", "ALICE", "BoB"}) {
    res = register_user(port, taken, kPassword);
    EXPECT_EQ(res.status, 400) << taken;
    EXPECT_EQ(res.json(),
              json::parse(R"({"username": ["A user with that username already exists."]})"))
        << taken << ": " << res.body;
  }
}

TEST_P(AuthTest, RegisterRefusesWeakPasswordsWithDjangosMessages) {
  START_OR_FAIL(service);
  const int port = service->port();
  const std::string too_short =
      "This password is too short. It must contain at least 8 characters.";
  const std::string numeric = "This password is entirely numeric.";
  const std::string similar = "The password is too similar to the username.";
  const std::string common = "This password is too common.";
  struct Case {
    std::string username, password;
    std::vector<std::string> messages;
  };
  const std::vector<Case> cases{
      {"shorty", "x7#Kq2", {too_short}},
      {"numbers", "9081726354", {numeric}},
      {"thatcher", "thatcher1925!", {similar}},
      {"commoner", "qwertyuiop", {common}},
      {"1234567", "1234567", {similar, too_short, common, numeric}},
  };
  for (const auto& c : cases) {
    auto res = register_user(port, c.username, c.password);
    EXPECT_EQ(res.status, 400) << c.password;
    json::array expected;
    for (const auto& m : c.messages) expected.push_back(json::value(m));
    EXPECT_EQ(res.json(), json::value(json::object{{"password", expected}}))
        << c.password << ": " << res.body;
    // Nothing was created: the name is still free.
    EXPECT_EQ(login(port, c.username, c.password).status, 401);
  }
}

// DRF's CharField refuses U+0000 in every field before any other check (the password validators
// and the token decoder would otherwise see a string cut short at it).
TEST_P(AuthTest, NullCharactersAreRefusedInEveryAccountField) {
  START_OR_FAIL(service);
  const int port = service->port();
  const json::value refused = json::parse(R"(["Null characters are not allowed."])");
  auto res = request(port, "POST", "/api/v1/auth/register/",
                     R"({"username": "nul", "password": "Zq8#Lm2$Wx\u0000password"})",
                     "application/json", kAnonymous);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_EQ(res.json(), json::value(json::object{{"password", refused}})) << res.body;
  res = request(port, "POST", "/api/v1/auth/token/",
                R"({"username": "nul", "password": "Zq8#Lm2$Wx\u0000password"})",
                "application/json", kAnonymous);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_EQ(res.json(), json::value(json::object{{"password", refused}})) << res.body;
  for (std::string field : {"refresh", "blacklist"}) {
    res = request(port, "POST", "/api/v1/auth/token/" + field + "/", R"({"refresh": "a\u0000b"})",
                  "application/json", kAnonymous);
    EXPECT_EQ(res.status, 400) << field << ": " << res.body;
    EXPECT_EQ(res.json(), json::value(json::object{{"refresh", refused}})) << res.body;
  }
  res = request(port, "POST", "/api/v1/auth/token/verify/", R"({"token": "a\u0000b"})",
                "application/json", kAnonymous);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_EQ(res.json(), json::value(json::object{{"token", refused}})) << res.body;
  // The username's own checks name it after the pattern, as DRF orders them.
  res = request(port, "POST", "/api/v1/auth/register/",
                R"({"username": "a\u0000b", "password": "violet-Harbor-58-kettle"})",
                "application/json", kAnonymous);
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json().at("username").as_array().back(), "Null characters are not allowed.");
}

TEST_P(AuthTest, RegisterRefusesBadUsernamesAndMissingFields) {
  START_OR_FAIL(service);
  const int port = service->port();
  const std::string invalid =
      "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ "
      "characters.";
  for (const std::string& name :
       std::vector<std::string>{"bad name", "semi;colon", "tab\there", std::string(151, 'a')}) {
    auto res = register_user(port, name, kPassword);
    EXPECT_EQ(res.status, 400) << name;
    ASSERT_TRUE(res.json().as_object().contains("username")) << res.body;
    auto messages = res.json().at("username").as_array();
    if (name.size() > 150) {
      EXPECT_NE(std::find(messages.begin(), messages.end(),
                          json::value("Ensure this field has no more than 150 characters.")),
                messages.end())
          << res.body;
    } else {
      EXPECT_EQ(res.json(),
                json::value(json::object{{"username", json::array{json::value(invalid)}}}))
          << name << ": " << res.body;
    }
  }
  auto res = post(port, "/api/v1/auth/register/", json::object{});
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"username": ["This field is required."],
                                        "password": ["This field is required."]})"));
  res = post(port, "/api/v1/auth/register/", {{"username", "carol"}});
  EXPECT_EQ(res.json(), json::parse(R"({"password": ["This field is required."]})"));
  res = post(port, "/api/v1/auth/token/", json::object{});
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"username": ["This field is required."],
                                        "password": ["This field is required."]})"));
  for (std::string route : {"refresh", "blacklist"}) {
    res = post(port, "/api/v1/auth/token/" + route + "/", json::object{});
    EXPECT_EQ(res.status, 400) << route;
    EXPECT_EQ(res.json(), json::parse(R"({"refresh": ["This field is required."]})")) << route;
  }
  res = post(port, "/api/v1/auth/token/verify/", json::object{});
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"token": ["This field is required."]})"));
}

TEST_P(AuthTest, TokenRefreshVerifyAndTheirRefusals) {
  START_OR_FAIL(service);
  const int port = service->port();
  ASSERT_EQ(register_user(port, "dora", kPassword).status, 201);
  auto res = login(port, "dora", kPassword);
  ASSERT_EQ(res.status, 200) << res.body;
  auto pair = res.json().as_object();
  ASSERT_EQ(pair.size(), 2u) << res.body;
  const std::string access(pair.at("access").as_string());
  const std::string refresh(pair.at("refresh").as_string());
  EXPECT_EQ(split_token(access).payload.at("token_type"), "access");
  EXPECT_EQ(split_token(refresh).payload.at("token_type"), "refresh");
  EXPECT_EQ(split_token(access).payload.at("jti").as_string().size(), 32u);

  res = post(port, "/api/v1/auth/token/refresh/", {{"refresh", refresh}});
  ASSERT_EQ(res.status, 200) << res.body;
  ASSERT_EQ(res.json().as_object().size(), 1u) << res.body;  // no rotation by default
  const std::string refreshed(res.json().at("access").as_string());
  EXPECT_EQ(user_id_of(refreshed), user_id_of(access));
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/", "", "", e2e::bearer(refreshed)).status, 200);
  // Without rotation the refresh token keeps working.
  EXPECT_EQ(post(port, "/api/v1/auth/token/refresh/", {{"refresh", refresh}}).status, 200);

  for (const auto& token : {access, refresh, refreshed}) {
    res = post(port, "/api/v1/auth/token/verify/", {{"token", token}});
    EXPECT_EQ(res.status, 200) << res.body;
    EXPECT_EQ(res.json(), json::value(json::object{}));
  }

  // The token views answer simplejwt's InvalidToken: the reason as detail, with the challenge.
  const json::value invalid =
      json::parse(R"({"detail": "Token is invalid", "code": "token_not_valid"})");
  expect_challenge(post(port, "/api/v1/auth/token/verify/", {{"token", "not-a-token"}}), invalid,
                   "verify garbage");
  expect_challenge(post(port, "/api/v1/auth/token/refresh/", {{"refresh", "not-a-token"}}), invalid,
                   "refresh garbage");
  expect_challenge(post(port, "/api/v1/auth/token/refresh/", {{"refresh", access}}),
                   json::parse(R"({"detail": "Token has wrong type", "code": "token_not_valid"})"),
                   "refresh with an access token");
  expect_challenge(post(port, "/api/v1/auth/token/blacklist/", {{"refresh", access}}),
                   json::parse(R"({"detail": "Token has wrong type", "code": "token_not_valid"})"),
                   "blacklist an access token");
  auth::TokenCodec past(e2e::kTestSecretKey, std::chrono::minutes(5), std::chrono::hours(24),
                        [] { return std::chrono::system_clock::now() - std::chrono::hours(48); });
  expect_challenge(post(port, "/api/v1/auth/token/refresh/",
                        {{"refresh", past.issue(user_id_of(access), auth::TokenType::kRefresh)}}),
                   json::parse(R"({"detail": "Token is expired", "code": "token_not_valid"})"),
                   "expired refresh");
}

TEST_P(AuthTest, WrongPasswordAndUnknownUserAnswerAlikeInBodyAndTime) {
  START_OR_FAIL(service);
  const int port = service->port();
  ASSERT_EQ(register_user(port, "erin", kPassword).status, 201);
  const json::value expected =
      json::parse(R"({"detail": "No active account found with the given credentials"})");
  std::vector<double> wrong_password, unknown_user;
  // Interleaved, so a burst of load on the machine hits both alike; five each stays under the
  // default failed-login limit (10/min per name).
  for (int round = 0; round < 5; ++round) {
    auto started = SteadyClock::now();
    auto res = login(port, "erin", "violet-Harbor-58-kettlE");
    wrong_password.push_back(std::chrono::duration<double>(SteadyClock::now() - started).count());
    EXPECT_EQ(res.status, 401);
    EXPECT_EQ(res.json(), expected) << res.body;
    EXPECT_EQ(res.header("WWW-Authenticate"), kChallenge);

    started = SteadyClock::now();
    res = login(port, "nobody-" + std::to_string(round), kPassword);
    unknown_user.push_back(std::chrono::duration<double>(SteadyClock::now() - started).count());
    EXPECT_EQ(res.status, 401);
    EXPECT_EQ(res.json(), expected) << res.body;
    EXPECT_EQ(res.header("WWW-Authenticate"), kChallenge);
  }
  const double wrong = median_seconds(wrong_password);
  const double unknown = median_seconds(unknown_user);
  std::cout << "login refusal medians: wrong password " << wrong * 1000 << " ms, unknown user "
            << unknown * 1000 << " ms\n";
  // Both hash a password; without the dummy hash an unknown name answers many times faster.
  EXPECT_LT(wrong, 3 * unknown);
  EXPECT_LT(unknown, 3 * wrong);
}

TEST_P(AuthTest, BlacklistedRefreshTokenIsRefusedEverywhere) {
  START_OR_FAIL(service);
  const int port = service->port();
  auto tokens = e2e::register_and_login(port, "frank", kPassword);
  auto res = post(port, "/api/v1/auth/token/blacklist/", {{"refresh", tokens.refresh}});
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.json(), json::value(json::object{}));

  const json::value blacklisted =
      json::parse(R"({"detail": "Token is blacklisted", "code": "token_not_valid"})");
  expect_challenge(post(port, "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}}),
                   blacklisted, "refresh after logout");
  expect_challenge(post(port, "/api/v1/auth/token/blacklist/", {{"refresh", tokens.refresh}}),
                   blacklisted, "second logout");
  res = post(port, "/api/v1/auth/token/verify/", {{"token", tokens.refresh}});
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), json::parse(R"({"non_field_errors": ["Token is blacklisted"]})"));
  // Another login is a new session.
  auto again = login(port, "frank", kPassword);
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(post(port, "/api/v1/auth/token/refresh/",
                 {{"refresh", std::string(again.json().at("refresh").as_string())}})
                .status,
            200);
}

TEST_P(AuthTest, NoOrBadTokenIsRefusedOnEveryProtectedRouteAndMethod) {
  START_OR_FAIL(service, {"--workers", "1"});
  const int port = service->port();
  const std::string own_access = e2e::default_token(port);
  const auto note = create_note(port, kAsDefault);
  auto translated = translate(port, note, kAsDefault);
  ASSERT_EQ(translated.status, 202) << translated.body;
  const auto job = translated.json().at("translation").at("id").as_int64();
  // Read twice by its owner, the note is in the cache: the refusals below must hold there too.
  ASSERT_EQ(request(port, "GET", note_path(note)).status, 200);
  ASSERT_EQ(request(port, "GET", note_path(note)).status, 200);

  struct Route {
    std::string method, path, body;
  };
  const std::string note_body = R"({"title": "x", "original_text": "y"})";
  const std::vector<Route> routes{
      {"GET", "/api/v1/notes/", ""},
      {"POST", "/api/v1/notes/", note_body},
      {"GET", note_path(note), ""},
      {"PUT", note_path(note), note_body},
      {"PATCH", note_path(note), R"({"title": "x"})"},
      {"DELETE", note_path(note), ""},
      {"POST", note_path(note) + "translate/", R"({"target_language": "es"})"},
      {"GET", note_path(note) + "translations/", ""},
      {"GET", job_path(job), ""},
      {"GET", "/api/v1/stats/", ""},
      {"GET", "/api/v1/languages/", ""},
      // A missing id is no way around the check.
      {"GET", note_path(987654), ""},
  };

  const std::int64_t me = user_id_of(own_access);
  const auto victim = register_user(port, "grace", kPassword);
  ASSERT_EQ(victim.status, 201);
  const std::int64_t other_user = victim.json().at("id").as_int64();
  auto parts = split_token(own_access);
  json::object tampered_payload = parts.payload;
  tampered_payload["user_id"] = other_user;
  json::object longer_life = parts.payload;
  longer_life["exp"] = longer_life.at("exp").as_int64() + 3600;
  const std::string alg_none_header = base64url_encode(R"({"alg":"none","typ":"JWT"})");
  auth::TokenCodec past(e2e::kTestSecretKey, std::chrono::minutes(5), std::chrono::hours(24),
                        [] { return std::chrono::system_clock::now() - std::chrono::hours(1); });
  auth::TokenCodec other_key("another-secret-key-of-the-right-length-0123456789");
  auth::TokenCodec same_key(e2e::kTestSecretKey);
  // The seam is honest: the codec with the service's key and the real clock mints a token the
  // service takes.
  ASSERT_EQ(request(port, "GET", "/api/v1/stats/", "", "",
                    e2e::bearer(same_key.issue(me, auth::TokenType::kAccess)))
                .status,
            200);
  const std::string refresh = e2e::register_and_login(port, "henry", kPassword).refresh;
  // simplejwt splits the header on any run of whitespace.
  for (const std::string& spelling : {"Bearer  " + own_access, "Bearer\t" + own_access}) {
    auto res = request(port, "GET", "/api/v1/stats/", "", "", {{"Authorization", spelling}});
    EXPECT_EQ(res.status, 200) << res.body;
  }
  // libjwt signs as the codec does: the same claims with HS256 are accepted.
  ASSERT_EQ(request(port, "GET", "/api/v1/stats/", "", "",
                    e2e::bearer(sign_with(JWT_ALG_HS256, parts.payload, e2e::kTestSecretKey)))
                .status,
            200);

  struct BadToken {
    std::string what, token, message;
  };
  const std::vector<BadToken> bad_tokens{
      {"expired", past.issue(me, auth::TokenType::kAccess), "Token is expired"},
      {"tampered user_id", join_token(parts.header, tampered_payload, parts.signature),
       "Token is invalid"},
      {"tampered exp", join_token(parts.header, longer_life, parts.signature), "Token is invalid"},
      {"alg none", join_token(alg_none_header, parts.payload, ""), "Token is invalid"},
      {"alg none with the old signature",
       join_token(alg_none_header, parts.payload, parts.signature), "Token is invalid"},
      {"wrong key", other_key.issue(me, auth::TokenType::kAccess), "Token is invalid"},
      {"HS512 with the right key", sign_with(JWT_ALG_HS512, parts.payload, e2e::kTestSecretKey),
       "Token is invalid"},
      {"HS384 with the right key", sign_with(JWT_ALG_HS384, parts.payload, e2e::kTestSecretKey),
       "Token is invalid"},
      {"refresh as access", refresh, "Token has wrong type"},
      {"garbage", "garbage", "Token is invalid"},
      {"three dots of nothing", "..", "Token is invalid"},
  };

  const json::value not_provided =
      json::parse(R"({"detail": "Authentication credentials were not provided."})");
  const json::value bad_header = json::parse(
      R"({"detail": "Authorization header must contain two space-delimited values",
          "code": "bad_authorization_header"})");
  for (const auto& route : routes) {
    const std::string where = route.method + " " + route.path;
    expect_challenge(
        request(port, route.method, route.path, route.body, "application/json", kAnonymous),
        not_provided, where + " without a token");
    // Another scheme is no JWT credential: anonymous, as simplejwt reads it.
    expect_challenge(request(port, route.method, route.path, route.body, "application/json",
                             {{"Authorization", "Basic " + own_access}}),
                     not_provided, where + " with Basic");
    expect_challenge(request(port, route.method, route.path, route.body, "application/json",
                             {{"Authorization", "Bearer a b"}}),
                     bad_header, where + " with three words");
    for (const auto& bad : bad_tokens) {
      expect_challenge(request(port, route.method, route.path, route.body, "application/json",
                               e2e::bearer(bad.token)),
                       bad_token_body(bad.message), where + " with " + bad.what + " token");
    }
    // HEAD has no body, but the status and challenge still hold.
    if (route.method == "GET") {
      auto res = request(port, "HEAD", route.path, "", "", kAnonymous);
      EXPECT_EQ(res.status, 401) << "HEAD " << route.path;
      EXPECT_EQ(res.header("WWW-Authenticate"), kChallenge) << "HEAD " << route.path;
    }
  }
  // None of those reached the note.
  auto kept = request(port, "GET", note_path(note));
  ASSERT_EQ(kept.status, 200);
  EXPECT_EQ(kept.json().at("title"), "Mine");
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/").json().as_array().size(), 1u);
}

TEST_P(AuthTest, AnExpiredAccessTokenFromTheServiceItselfIsRefused) {
  START_OR_FAIL(service, {"--access-token-lifetime", "1"});
  const int port = service->port();
  auto tokens = e2e::register_and_login(port, "ivy", kPassword);
  // exp is whole seconds and not inclusive: two seconds on, the token has certainly lapsed.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  expect_challenge(request(port, "GET", "/api/v1/notes/", "", "", e2e::bearer(tokens.access)),
                   bad_token_body("Token is expired"), "expired by the service's own lifetime");
  // A refresh gives a working one again.
  auto res = post(port, "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}});
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/", "", "",
                    e2e::bearer(std::string(res.json().at("access").as_string())))
                .status,
            200);
}

TEST_P(AuthTest, AnExpiredRefreshTokenIsRefusedByTheTokenRoutes) {
  START_OR_FAIL(service, {"--refresh-token-lifetime", "1"});
  const int port = service->port();
  auto tokens = e2e::register_and_login(port, "ivan", kPassword);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  const json::value expired =
      json::parse(R"({"detail": "Token is expired", "code": "token_not_valid"})");
  expect_challenge(post(port, "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}}),
                   expired, "refresh with an expired refresh token");
  expect_challenge(post(port, "/api/v1/auth/token/verify/", {{"token", tokens.refresh}}), expired,
                   "verify an expired refresh token");
  expect_challenge(post(port, "/api/v1/auth/token/blacklist/", {{"refresh", tokens.refresh}}),
                   expired, "log out with an expired refresh token");
  // The access token has its own (default) lifetime and still works.
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/", "", "", e2e::bearer(tokens.access)).status, 200);
}

TEST_P(AuthTest, AnotherUsersNotesAndJobsAreIndistinguishableFromMissingOnes) {
  START_OR_FAIL(service, {"--workers", "1"});
  const int port = service->port();
  const auto note = create_note(port, kAsDefault, "Secret", "Hello world.");
  auto translated = translate(port, note, kAsDefault);
  ASSERT_EQ(translated.status, 202) << translated.body;
  const auto job = translated.json().at("translation").at("id").as_int64();
  ASSERT_EQ(e2e::wait_for_job(port, job)["status"], "succeeded");
  // Twice: the second read is served from the cache, which must still check the owner.
  auto before = request(port, "GET", note_path(note));
  ASSERT_EQ(before.status, 200);
  ASSERT_EQ(request(port, "GET", note_path(note)).body, before.body);
  const auto stats_before = request(port, "GET", "/api/v1/stats/").json();
  const auto jobs_before = request(port, "GET", note_path(note) + "translations/").json();

  const Headers as_bob = e2e::bearer(e2e::register_and_login(port, "bob", kPassword).access);
  const json::value not_found = json::parse(R"({"detail": "Not found."})");
  const std::int64_t missing = note + 1000;
  struct Probe {
    std::string method, suffix, body;
    bool valid = true;  // a valid request, which only the missing note refuses
  };
  const std::vector<Probe> probes{
      {"GET", "", ""},
      {"PUT", "", R"({"title": "Mine now", "original_text": "Overwritten."})"},
      {"PATCH", "", R"({"title": "Mine now"})"},
      {"DELETE", "", ""},
      {"POST", "translate/", R"({"target_language": "es"})"},
      {"GET", "translations/", ""},
      // Refusals of the body or the language must not tell an existing id from a missing one.
      {"PUT", "", R"({"title": ""})", false},
      {"PATCH", "", R"({"original_text": 5, "title": null})", false},
      {"POST", "translate/", R"({"target_language": "xx"})", false},
      {"POST", "translate/", R"({})", false},
  };
  for (const auto& probe : probes) {
    auto theirs = request(port, probe.method, note_path(note) + probe.suffix, probe.body,
                          "application/json", as_bob);
    auto absent = request(port, probe.method, note_path(missing) + probe.suffix, probe.body,
                          "application/json", as_bob);
    const std::string where = probe.method + " " + note_path(note) + probe.suffix;
    if (probe.valid) {
      EXPECT_EQ(theirs.status, 404) << where << ": " << theirs.body;
      EXPECT_EQ(theirs.json(), not_found) << where;
    }
    EXPECT_EQ(theirs.status, absent.status) << where << " " << probe.body;
    EXPECT_EQ(theirs.body, absent.body) << where;
    EXPECT_EQ(theirs.headers.size(), absent.headers.size()) << where;
  }
  auto theirs = request(port, "GET", job_path(job), "", "", as_bob);
  EXPECT_EQ(theirs.status, 404);
  EXPECT_EQ(theirs.json(), not_found);
  EXPECT_EQ(request(port, "GET", job_path(job + 1000), "", "", as_bob).body, theirs.body);

  auto list = request(port, "GET", "/api/v1/notes/", "", "", as_bob);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json(), json::value(json::array{}));
  auto stats = request(port, "GET", "/api/v1/stats/", "", "", as_bob);
  EXPECT_EQ(stats.json(), json::parse(R"({"total_notes": 0, "total_translations": 0,
                                          "language_breakdown": []})"));

  // The owner sees everything as it was, including through the cache.
  EXPECT_EQ(request(port, "GET", note_path(note)).body, before.body);
  EXPECT_EQ(request(port, "GET", "/api/v1/stats/").json(), stats_before);
  EXPECT_EQ(request(port, "GET", note_path(note) + "translations/").json(), jobs_before);
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/").json().as_array().size(), 1u);
  // And Bob's own note stays his.
  const auto bobs = create_note(port, as_bob, "Bob's");
  EXPECT_EQ(request(port, "GET", note_path(bobs)).status, 404);
  EXPECT_EQ(request(port, "GET", note_path(bobs), "", "", as_bob).status, 200);
}

TEST_P(AuthTest, RotationBlacklistsEachUsedRefreshToken) {
  START_OR_FAIL(service, {"--rotate-refresh-tokens", "true"});
  const int port = service->port();
  auto tokens = e2e::register_and_login(port, "jack", kPassword);
  auto res = post(port, "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}});
  ASSERT_EQ(res.status, 200) << res.body;
  auto body = res.json().as_object();
  ASSERT_EQ(body.size(), 2u) << res.body;
  const std::string second(body.at("refresh").as_string());
  EXPECT_NE(second, tokens.refresh);
  EXPECT_EQ(user_id_of(second), user_id_of(tokens.refresh));
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/", "", "",
                    e2e::bearer(std::string(body.at("access").as_string())))
                .status,
            200);

  const json::value blacklisted =
      json::parse(R"({"detail": "Token is blacklisted", "code": "token_not_valid"})");
  expect_challenge(post(port, "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}}),
                   blacklisted, "the rotated-out refresh token");

  res = post(port, "/api/v1/auth/token/refresh/", {{"refresh", second}});
  ASSERT_EQ(res.status, 200) << res.body;
  const std::string third(res.json().at("refresh").as_string());
  expect_challenge(post(port, "/api/v1/auth/token/refresh/", {{"refresh", second}}), blacklisted,
                   "the second, rotated out too");

  res = post(port, "/api/v1/auth/token/blacklist/", {{"refresh", third}});
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.json(), json::value(json::object{}));
  expect_challenge(post(port, "/api/v1/auth/token/refresh/", {{"refresh", third}}), blacklisted,
                   "the newest after logout");
}

TEST_P(AuthTest, RotationWithoutBlacklistKeepsTheOldRefreshToken) {
  START_OR_FAIL(service,
                {"--rotate-refresh-tokens", "true", "--blacklist-after-rotation", "false"});
  const int port = service->port();
  auto tokens = e2e::register_and_login(port, "kate", kPassword);
  auto res = post(port, "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}});
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_TRUE(res.json().as_object().contains("refresh"));
  EXPECT_EQ(post(port, "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}}).status, 200);
}

TEST_P(AuthTest, TranslateIsThrottledPerUser) {
  START_OR_FAIL(service, {"--workers", "0", "--throttle-translate", "3/min"});
  const int port = service->port();
  const auto note = create_note(port, kAsDefault);
  std::int64_t job = 0;
  for (int i = 0; i < 3; ++i) {
    auto res = translate(port, note, kAsDefault);
    ASSERT_EQ(res.status, 202) << i << ": " << res.body;
    job = res.json().at("translation").at("id").as_int64();
  }
  expect_throttled(translate(port, note, kAsDefault), 60);
  // Another user has a bucket of their own; reads are never throttled.
  const Headers as_other = e2e::bearer(e2e::register_and_login(port, "liam", kPassword).access);
  EXPECT_EQ(translate(port, create_note(port, as_other), as_other).status, 202);
  // Clients poll their jobs: that is never throttled either.
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(request(port, "GET", note_path(note)).status, 200);
    ASSERT_EQ(request(port, "GET", "/api/v1/notes/").status, 200);
    ASSERT_EQ(request(port, "GET", job_path(job)).status, 200);
    ASSERT_EQ(request(port, "GET", note_path(note) + "translations/").status, 200);
  }
  auto metrics = request(port, "GET", "/metrics").body;
  EXPECT_NE(metrics.find("transnotes_throttled_requests_total{scope=\"translate\"} 1\n"),
            std::string::npos)
      << metrics;
}

TEST_P(AuthTest, ThrottledTranslateRecoversAfterRetryAfter) {
  START_OR_FAIL(service, {"--workers", "0", "--throttle-translate", "2/s"});
  const int port = service->port();
  const auto note = create_note(port, kAsDefault);
  // Two a second refill while the loop runs, so count until the first refusal.
  e2e::HttpResult refused;
  for (int i = 0; i < 100 && refused.status != 429; ++i) {
    auto res = translate(port, note, kAsDefault);
    if (res.status == 429) {
      refused = res;
    } else {
      ASSERT_EQ(res.status, 202) << res.body;
    }
  }
  ASSERT_EQ(refused.status, 429) << "a 2/s bucket never ran dry";
  expect_throttled(refused, 1);
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(refused.header("Retry-After"))));
  auto res = translate(port, note, kAsDefault);
  EXPECT_EQ(res.status, 202) << res.body;
}

TEST_P(AuthTest, FailedLoginsAreThrottledPerUsername) {
  START_OR_FAIL(service, {"--throttle-failed-logins", "3/min"});
  const int port = service->port();
  ASSERT_EQ(register_user(port, "mia", kPassword).status, 201);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(login(port, "mia", "wrong-password-" + std::to_string(i)).status, 401);
  // Now even the right password waits: the guesser cannot tell it was right.
  expect_throttled(login(port, "mia", kPassword), 60);
  expect_throttled(login(port, "MIA", kPassword), 60);  // the same account, any case
  // Other accounts are not locked out by it, and their successful logins do not count: after
  // five of them a wrong password is still a plain 401.
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(login(port, e2e::kTestUser, e2e::kTestPassword).status, 200);
  EXPECT_EQ(login(port, e2e::kTestUser, "not-the-password").status, 401);
}

TEST_P(AuthTest, AuthRoutesAreThrottledPerAddressButReadsNeverAre) {
  // The harness spends two of the five (register + login of its test user).
  START_OR_FAIL(service, {"--throttle-auth", "5/min"});
  const int port = service->port();
  const std::string refresh = [&] {
    auto res = login(port, e2e::kTestUser, e2e::kTestPassword);
    EXPECT_EQ(res.status, 200) << res.body;
    return std::string(res.json().at("refresh").as_string());
  }();
  e2e::HttpResult refused;
  for (int i = 0; i < 10 && refused.status != 429; ++i) {
    auto res = post(port, "/api/v1/auth/token/verify/", {{"token", refresh}});
    if (res.status == 429) refused = res;
  }
  expect_throttled(refused, 60);
  expect_throttled(login(port, e2e::kTestUser, e2e::kTestPassword), 60);
  expect_throttled(register_user(port, "noah", kPassword), 60);
  expect_throttled(post(port, "/api/v1/auth/token/refresh/", {{"refresh", refresh}}), 60);
  expect_throttled(post(port, "/api/v1/auth/token/blacklist/", {{"refresh", refresh}}), 60);
  const auto note = create_note(port, kAsDefault);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(request(port, "GET", note_path(note)).status, 200) << i;
    ASSERT_EQ(request(port, "GET", "/api/v1/stats/").status, 200) << i;
  }
}

TEST_P(AuthTest, ActiveJobsAreCappedPerUser) {
  START_OR_FAIL(service, {"--workers", "0", "--max-active-jobs", "2"});
  const int port = service->port();
  std::vector<std::int64_t> jobs, first_notes;
  for (const char* title : {"first", "second"}) {
    first_notes.push_back(create_note(port, kAsDefault, title));
    auto res = translate(port, first_notes.back(), kAsDefault);
    ASSERT_EQ(res.status, 202) << res.body;
    jobs.push_back(res.json().at("translation").at("id").as_int64());
  }
  const auto third_note = create_note(port, kAsDefault, "third");
  auto res = translate(port, third_note, kAsDefault);
  EXPECT_EQ(res.status, 429) << res.body;
  EXPECT_FALSE(res.header("Retry-After").empty());
  EXPECT_EQ(
      res.json(),
      json::parse(
          R"({"detail": "You already have 2 translations queued or running. Wait for one to finish, then try again."})"));
  // Asking again for a job already queued is no new job, so the cap does not refuse it.
  res = translate(port, first_notes[0], kAsDefault);
  EXPECT_EQ(res.status, 202) << res.body;
  EXPECT_EQ(res.json().at("translation").at("id").as_int64(), jobs[0]);
  const Headers as_other = e2e::bearer(e2e::register_and_login(port, "olga", kPassword).access);
  res = translate(port, create_note(port, as_other), as_other);
  EXPECT_EQ(res.status, 202) << res.body;
  EXPECT_EQ(request(port, "GET", note_path(third_note) + "translations/").json(),
            json::value(json::array{}));
}

TEST_P(AuthTest, ActiveJobsCapCountsRunningJobsOfASlowEngine) {
  const std::string modes = e2e::make_temp_dir("transnotes-slow-auth");
  {
    std::ifstream installed("/usr/share/apertium/modes/eng-spa.mode");
    std::string pipeline((std::istreambuf_iterator<char>(installed)), {});
    ASSERT_FALSE(pipeline.empty()) << "apertium-en-es is not installed";
    std::ofstream(modes + "/eng-spa.mode") << "sed -u 'e sleep 5' | " << pipeline;
  }
  START_OR_FAIL(service, {"--workers", "1", "--max-active-jobs", "1"},
                {{"APERTIUM_MODES_DIR", modes}, {"TRANSNOTES_ENGINES", "apertium"}});
  const int port = service->port();
  auto first = translate(port, create_note(port, kAsDefault), kAsDefault);
  ASSERT_EQ(first.status, 202) << first.body;
  const auto job = first.json().at("translation").at("id").as_int64();
  const auto deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (request(port, "GET", job_path(job)).json().at("status") != "running" &&
         SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(request(port, "GET", job_path(job)).json().at("status"), "running");
  auto res = translate(port, create_note(port, kAsDefault, "second"), kAsDefault);
  EXPECT_EQ(res.status, 429) << res.body;
}

TEST_P(AuthTest, RepeatedTranslateOfTheSameTextReturnsTheQueuedJob) {
  START_OR_FAIL(service, {"--workers", "0"});
  const int port = service->port();
  const auto note = create_note(port, kAsDefault);
  auto first = translate(port, note, kAsDefault);
  ASSERT_EQ(first.status, 202) << first.body;
  auto second = translate(port, note, kAsDefault);
  ASSERT_EQ(second.status, 202) << second.body;
  const auto job = first.json().at("translation").at("id").as_int64();
  EXPECT_EQ(second.json().at("translation").at("id").as_int64(), job);
  EXPECT_EQ(second.header("Location"), first.header("Location"));
  // Another note with the same text is another job.
  auto other = translate(port, create_note(port, kAsDefault), kAsDefault);
  ASSERT_EQ(other.status, 202);
  EXPECT_NE(other.json().at("translation").at("id").as_int64(), job);
  // New text is new work.
  ASSERT_EQ(
      request(port, "PATCH", note_path(note), R"({"original_text": "Goodbye world."})").status,
      200);
  auto after_edit = translate(port, note, kAsDefault);
  ASSERT_EQ(after_edit.status, 202) << after_edit.body;
  const auto new_job = after_edit.json().at("translation").at("id").as_int64();
  EXPECT_NE(new_job, job);
  EXPECT_EQ(translate(port, note, kAsDefault).json().at("translation").at("id").as_int64(),
            new_job);
}

TEST_P(AuthTest, AFinishedJobIsNotReturnedForANewTranslate) {
  START_OR_FAIL(service, {"--workers", "1"});
  const int port = service->port();
  const auto note = create_note(port, kAsDefault);
  auto first = translate(port, note, kAsDefault);
  ASSERT_EQ(first.status, 202) << first.body;
  const auto job = first.json().at("translation").at("id").as_int64();
  ASSERT_EQ(e2e::wait_for_job(port, job)["status"], "succeeded");
  auto again = translate(port, note, kAsDefault);
  ASSERT_EQ(again.status, 202) << again.body;
  EXPECT_NE(again.json().at("translation").at("id").as_int64(), job);
}

TEST_P(AuthTest, IdempotencyKeyReplaysTheFirstAnswerPerUser) {
  START_OR_FAIL(service, {"--workers", "0"});
  const int port = service->port();
  const std::string body = R"({"title": "Once", "original_text": "Only once."})";
  const Headers keyed{{"Idempotency-Key", "create-7f3a"}};
  auto first = request(port, "POST", "/api/v1/notes/", body, "application/json", keyed);
  ASSERT_EQ(first.status, 201) << first.body;
  EXPECT_EQ(first.header("Idempotent-Replayed"), "");
  auto second = request(port, "POST", "/api/v1/notes/", body, "application/json", keyed);
  ASSERT_EQ(second.status, 201) << second.body;
  EXPECT_EQ(second.body, first.body);
  EXPECT_EQ(second.header("Location"), first.header("Location"));
  EXPECT_FALSE(first.header("Location").empty());
  EXPECT_EQ(second.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/").json().as_array().size(), 1u);

  auto changed =
      request(port, "POST", "/api/v1/notes/", R"({"title": "Twice", "original_text": "Other."})",
              "application/json", keyed);
  EXPECT_EQ(changed.status, 400);
  EXPECT_EQ(
      changed.json(),
      json::parse(
          R"({"detail": "This Idempotency-Key was already used with a different request; use a new key."})"));
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/").json().as_array().size(), 1u);

  // The same key is another user's own.
  Headers as_other = e2e::bearer(e2e::register_and_login(port, "pete", kPassword).access);
  Headers other_keyed = as_other;
  other_keyed.insert(other_keyed.end(), keyed.begin(), keyed.end());
  auto theirs = request(port, "POST", "/api/v1/notes/", body, "application/json", other_keyed);
  ASSERT_EQ(theirs.status, 201) << theirs.body;
  EXPECT_EQ(theirs.header("Idempotent-Replayed"), "");
  EXPECT_NE(theirs.json().at("id"), first.json().at("id"));
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/", "", "", as_other).json().as_array().size(), 1u);

  // A refused request does not use the key up.
  const Headers fresh_key{{"Idempotency-Key", "create-after-fix"}};
  EXPECT_EQ(request(port, "POST", "/api/v1/notes/", R"({"title": "no text"})", "application/json",
                    fresh_key)
                .status,
            400);
  EXPECT_EQ(request(port, "POST", "/api/v1/notes/", body, "application/json", fresh_key).status,
            201);

  // translate with a key.
  const auto note = first.json().at("id").as_int64();
  const Headers translate_key{{"Idempotency-Key", "translate-1"}};
  auto asked = translate(port, note, kAsDefault, "es", translate_key);
  ASSERT_EQ(asked.status, 202) << asked.body;
  EXPECT_EQ(asked.header("Idempotent-Replayed"), "");
  auto replayed = translate(port, note, kAsDefault, "es", translate_key);
  EXPECT_EQ(replayed.status, 202);
  EXPECT_EQ(replayed.body, asked.body);
  EXPECT_EQ(replayed.header("Location"), asked.header("Location"));
  EXPECT_EQ(replayed.header("Idempotent-Replayed"), "true");
  // The same key for another target language is another request.
  auto reused = translate(port, note, kAsDefault, "en", translate_key);
  EXPECT_EQ(reused.status, 400);
  EXPECT_EQ(
      reused.json(),
      json::parse(
          R"({"detail": "This Idempotency-Key was already used with a different request; use a new key."})"));

  for (std::string bad : {std::string(256, 'k'), std::string("with space")}) {
    auto res = request(port, "POST", "/api/v1/notes/", body, "application/json",
                       {{"Idempotency-Key", bad}});
    EXPECT_EQ(res.status, 400) << bad;
  }
}

TEST_P(AuthTest, ConcurrentRetriesWithOneIdempotencyKeyCreateOneNote) {
  START_OR_FAIL(service, {"--workers", "0"});
  const int port = service->port();
  const std::string body = R"({"title": "Raced", "original_text": "Only once."})";
  constexpr int kClients = 8;
  std::vector<e2e::HttpResult> answers(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      answers[i] = request(port, "POST", "/api/v1/notes/", body, "application/json",
                           {{"Idempotency-Key", "raced-key"}});
    });
  }
  for (auto& client : clients) client.join();
  std::string created;
  for (const auto& answer : answers) {
    // The first finishes the request; one arriving while it runs is told to retry (409).
    ASSERT_TRUE(answer.status == 201 || answer.status == 409)
        << answer.status << " " << answer.body;
    if (answer.status == 201) {
      if (created.empty()) created = answer.body;
      EXPECT_EQ(answer.body, created);
    }
  }
  EXPECT_FALSE(created.empty());
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/").json().as_array().size(), 1u);
  auto retried = request(port, "POST", "/api/v1/notes/", body, "application/json",
                         {{"Idempotency-Key", "raced-key"}});
  EXPECT_EQ(retried.status, 201);
  EXPECT_EQ(retried.header("Idempotent-Replayed"), "true");
}

TEST_P(AuthTest, ConcurrentTranslatesOfOneNoteShareOneJob) {
  START_OR_FAIL(service, {"--workers", "0"});
  const int port = service->port();
  const auto note = create_note(port, kAsDefault);
  constexpr int kClients = 8;
  std::vector<e2e::HttpResult> answers(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] { answers[i] = translate(port, note, kAsDefault); });
  }
  for (auto& client : clients) client.join();
  std::set<std::int64_t> jobs;
  for (const auto& answer : answers) {
    ASSERT_EQ(answer.status, 202) << answer.body;
    jobs.insert(answer.json().at("translation").at("id").as_int64());
  }
  EXPECT_EQ(jobs.size(), 1u);
  EXPECT_EQ(request(port, "GET", note_path(note) + "translations/").json().as_array().size(), 1u);
}

// The per-address bucket keys on the peer address; X-Forwarded-For counts only behind a proxy the
// operator said to trust, and then only its last entry (the one that proxy appended).
TEST_P(AuthTest, ForwardedForChoosesTheAddressBucketOnlyBehindATrustedProxy) {
  auto exhaust = [](int port, const Headers& headers) {
    e2e::HttpResult last;
    for (int i = 0; i < 10 && last.status != 429; ++i) {
      last = post(port, "/api/v1/auth/token/verify/", {{"token", "x"}}, headers);
    }
    return last;
  };
  {
    START_OR_FAIL(direct, {"--throttle-auth", "3/min"});
    ASSERT_EQ(exhaust(direct->port(), kAnonymous).status, 429);
    auto spoofed = post(direct->port(), "/api/v1/auth/token/verify/", {{"token", "x"}},
                        {{"Authorization", ""}, {"X-Forwarded-For", "203.0.113.9"}});
    expect_throttled(spoofed, 60);
  }
  START_OR_FAIL(proxied, {"--throttle-auth", "3/min", "--trust-proxy"});
  const int port = proxied->port();
  const Headers client_a{{"Authorization", ""}, {"X-Forwarded-For", "203.0.113.1"}};
  ASSERT_EQ(exhaust(port, client_a).status, 429);
  // A client cannot pick a fresh bucket by writing its own entry before the proxy's.
  expect_throttled(post(port, "/api/v1/auth/token/verify/", {{"token", "x"}},
                        {{"Authorization", ""}, {"X-Forwarded-For", "198.51.100.7, 203.0.113.1"}}),
                   60);
  // Another client behind the same proxy has its own.
  auto other = post(port, "/api/v1/auth/token/verify/", {{"token", "x"}},
                    {{"Authorization", ""}, {"X-Forwarded-For", "203.0.113.2"}});
  EXPECT_EQ(other.status, 401) << other.body;
}

TEST_P(AuthTest, NotesLongerThanTheDefaultLimitAreRefused) {
  START_OR_FAIL(service);
  const int port = service->port();
  const json::value refusal = json::parse(
      R"({"original_text": ["Ensure this field has no more than 100000 characters."]})");
  auto res = request(port, "POST", "/api/v1/notes/",
                     json::serialize(json::object{{"title", "long"},
                                                  {"original_text", std::string(100'001, 'a')}}));
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), refusal) << res.body.substr(0, 200);
  // Characters, not bytes: 100,000 two-byte characters fit.
  std::string accented;
  for (int i = 0; i < 100'000; ++i) accented += "\xc3\xa9";
  res = request(port, "POST", "/api/v1/notes/",
                json::serialize(json::object{{"title", "long"}, {"original_text", accented}}));
  ASSERT_EQ(res.status, 201) << res.body.substr(0, 200);
  const auto id = res.json().at("id").as_int64();
  res = request(port, "PATCH", note_path(id),
                json::serialize(json::object{{"original_text", std::string(100'001, 'b')}}));
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.json(), refusal);
}

TEST_P(AuthTest, ConcurrentRegistrationsOfOneNameCreateOneUser) {
  START_OR_FAIL(service);
  const int port = service->port();
  constexpr int kClients = 6;
  std::vector<e2e::HttpResult> answers(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    // Case differs between clients: the names are one name.
    clients.emplace_back(
        [&, i] { answers[i] = register_user(port, i % 2 ? "Racer" : "racer", kPassword); });
  }
  for (auto& client : clients) client.join();
  int created = 0;
  for (const auto& answer : answers) {
    if (answer.status == 201) {
      ++created;
      continue;
    }
    EXPECT_EQ(answer.status, 400) << answer.body;
    EXPECT_EQ(answer.json(),
              json::parse(R"({"username": ["A user with that username already exists."]})"));
  }
  EXPECT_EQ(created, 1);
}

// Notes written in open mode belong to the open-mode owner, which is no account: a JWT-mode user
// on the same store cannot reach them, and open mode still finds them afterwards.
TEST_P(AuthTest, OpenModeNotesAreNoUsersInJwtMode) {
  const std::string data_dir = e2e::make_temp_dir("transnotes-open-then-jwt");
  const std::string database = GetParam() == "postgres" ? e2e::database_url_for("postgres") : "";
  if (GetParam() == "postgres") {
    ASSERT_FALSE(database.empty());
  }
  auto options = [&](const std::string& auth) {
    e2e::ServiceOptions o;
    o.auth = auth;
    o.data_dir = data_dir;
    if (!database.empty()) o.env["DATABASE_URL"] = database;
    return o;
  };
  std::int64_t note = 0;
  std::string body;
  {
    e2e::Service open(options("open"));
    note = create_note(open.port(), kAnonymous, "Before accounts");
    body = request(open.port(), "GET", note_path(note), "", "", kAnonymous).body;
  }
  {
    e2e::Service jwt(options("jwt"));
    const int port = jwt.port();
    EXPECT_EQ(request(port, "GET", note_path(note)).status, 404);
    EXPECT_EQ(request(port, "GET", "/api/v1/notes/").json(), json::value(json::array{}));
    EXPECT_EQ(request(port, "GET", "/api/v1/stats/").json().at("total_notes"), 0);
    // Not even with a token naming the open-mode owner's id, signed with the right key.
    auth::TokenCodec same_key(e2e::kTestSecretKey);
    const auto as_owner_zero = e2e::bearer(same_key.issue(0, auth::TokenType::kAccess));
    // simplejwt answers a token whose user is not found so.
    const json::value user_not_found =
        json::parse(R"({"detail": "User not found", "code": "user_not_found"})");
    for (const std::string& path : {std::string("/api/v1/notes/"), note_path(note)}) {
      auto res = request(port, "GET", path, "", "", as_owner_zero);
      expect_challenge(res, user_not_found, "GET " + path + " as the open-mode owner");
    }
  }
  e2e::Service open_again(options("open"));
  EXPECT_EQ(request(open_again.port(), "GET", note_path(note), "", "", kAnonymous).body, body);
}

TEST_P(AuthTest, OpenModeNeedsNoTokenAndHasNoAccountRoutes) {
  START_OR_FAIL(service, {}, {}, "open");
  const int port = service->port();
  auto res = request(port, "POST", "/api/v1/notes/", R"({"title": "t", "original_text": "x"})",
                     "application/json", kAnonymous);
  EXPECT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/", "", "", kAnonymous).json().as_array().size(),
            1u);
  for (std::string route :
       {"register/", "token/", "token/refresh/", "token/verify/", "token/blacklist/"}) {
    res = post(port, "/api/v1/auth/" + route,
               {{"username", "x"}, {"password", kPassword}, {"refresh", "x"}, {"token", "x"}});
    EXPECT_EQ(res.status, 404) << route << ": " << res.body;
    EXPECT_EQ(res.json(), json::parse(R"({"detail": "Not found."})"));
  }
  // A token, even a good-looking one, changes nothing.
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/", "", "", e2e::bearer("garbage")).status, 200);
}

INSTANTIATE_TEST_SUITE_P(Backends, AuthTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// ---- production mode: PostgreSQL + Redis, two API processes --------------------------------

#define REQUIRE_PRODUCTION_SERVICES()                                                 \
  do {                                                                                \
    if (!std::getenv("TRANSNOTES_TEST_DATABASE_URL"))                                 \
      GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL unset: production tests need it"; \
    if (!faults::RedisServer::available())                                            \
      GTEST_FAIL() << "redis-server not installed: production tests need it";         \
  } while (0)

e2e::ServiceOptions production_api(const std::string& database_url, const std::string& redis_url,
                                   std::vector<std::string> extra = {}) {
  e2e::ServiceOptions options;
  options.args = {"--workers", "0"};
  options.args.insert(options.args.end(), extra.begin(), extra.end());
  options.env = {{"DATABASE_URL", database_url}, {"REDIS_URL", redis_url}};
  return options;
}

TEST(AuthProduction, CachedNoteStaysPrivateAcrossProcesses) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  const std::string database = e2e::database_url_for("postgres");
  e2e::Service first(production_api(database, redis.url()));
  e2e::Service second(production_api(database, redis.url()));
  const auto note = create_note(first.port(), kAsDefault, "Private");
  // Both processes have read it, so it sits in the shared cache.
  auto owner_view = request(first.port(), "GET", note_path(note));
  ASSERT_EQ(owner_view.status, 200);
  ASSERT_EQ(request(second.port(), "GET", note_path(note)).body, owner_view.body);
  ASSERT_EQ(request(second.port(), "GET", note_path(note)).body, owner_view.body);

  const Headers as_other =
      e2e::bearer(e2e::register_and_login(second.port(), "quinn", kPassword).access);
  for (int port : {first.port(), second.port()}) {
    for (int i = 0; i < 2; ++i) {
      auto res = request(port, "GET", note_path(note), "", "", as_other);
      EXPECT_EQ(res.status, 404) << res.body;
      EXPECT_EQ(res.json(), json::parse(R"({"detail": "Not found."})"));
    }
    EXPECT_EQ(request(port, "GET", "/api/v1/notes/", "", "", as_other).json(),
              json::value(json::array{}));
    EXPECT_EQ(request(port, "GET", note_path(note) + "translations/", "", "", as_other).status,
              404);
    EXPECT_EQ(request(port, "GET", "/api/v1/stats/", "", "", as_other).json().at("total_notes"), 0);
  }
  EXPECT_EQ(request(second.port(), "GET", note_path(note)).body, owner_view.body);
}

TEST(AuthProduction, TranslateBucketIsSharedAcrossProcesses) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  const std::string database = e2e::database_url_for("postgres");
  e2e::Service first(production_api(database, redis.url(), {"--throttle-translate", "3/min"}));
  e2e::Service second(production_api(database, redis.url(), {"--throttle-translate", "3/min"}));
  const auto note = create_note(first.port(), kAsDefault);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(translate(first.port(), note, kAsDefault).status, 202);
  expect_throttled(translate(second.port(), note, kAsDefault), 60);
  expect_throttled(translate(first.port(), note, kAsDefault), 60);
}

TEST(AuthProduction, BlacklistAndFailedLoginsAreSharedAcrossProcesses) {
  REQUIRE_PRODUCTION_SERVICES();
  faults::RedisServer redis;
  const std::string database = e2e::database_url_for("postgres");
  const std::vector<std::string> flags{"--rotate-refresh-tokens", "true",
                                       "--throttle-failed-logins", "3/min"};
  e2e::Service first(production_api(database, redis.url(), flags));
  e2e::Service second(production_api(database, redis.url(), flags));
  auto tokens = e2e::register_and_login(first.port(), "rita", kPassword);
  auto rotated = post(first.port(), "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}});
  ASSERT_EQ(rotated.status, 200) << rotated.body;
  expect_challenge(
      post(second.port(), "/api/v1/auth/token/refresh/", {{"refresh", tokens.refresh}}),
      json::parse(R"({"detail": "Token is blacklisted", "code": "token_not_valid"})"),
      "the rotated-out token on the other process");
  // A token issued by one process works on the other (one SECRET_KEY).
  EXPECT_EQ(request(second.port(), "GET", "/api/v1/notes/", "", "",
                    e2e::bearer(std::string(rotated.json().at("access").as_string())))
                .status,
            200);

  EXPECT_EQ(login(first.port(), "rita", "wrong-1").status, 401);
  EXPECT_EQ(login(second.port(), "rita", "wrong-2").status, 401);
  EXPECT_EQ(login(first.port(), "rita", "wrong-3").status, 401);
  expect_throttled(login(second.port(), "rita", kPassword), 60);
  expect_throttled(login(first.port(), "rita", kPassword), 60);
}

}  // namespace
