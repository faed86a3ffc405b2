// Who is asking, and how much they may ask: authentication of API requests, the account routes
// (registration and simplejwt's token endpoints), throttling and Idempotency-Key replay.
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <cctype>

#include "api/api.h"
#include "api/error_mapping.h"
#include "api/json_io.h"
#include "auth/account_service.h"
#include "domain/text.h"

namespace transnotes::api {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxIdempotencyKeyLength = 255;
// A reservation still unanswered after this long belongs to a process that died: requests are
// bounded far below it (statement timeouts, pool waits).
constexpr Timestamp kAbandonedReservation = 120LL * 1'000'000;

// DRF's CharField(required=True, allow_blank=False) for the account routes. Passwords are taken
// as sent (Django's forms do not strip them either); other fields are trimmed. U+0000 is refused
// as CharField's ProhibitNullCharactersValidator does, except where the caller's own validation
// names it in DRF's order (the registered username).
struct RequiredFields {
  const json::object& body;
  ValidationError::FieldErrors errors;

  std::string take(const char* field, bool trim = true, bool refuse_null = true) {
    auto value = read_string_field(body, field, errors);
    if (errors.contains(field)) return {};
    if (!value) {
      errors[field].push_back("This field is required.");
      return {};
    }
    std::string text = trim ? trim_whitespace(*value) : *value;
    if (!is_valid_utf8(text)) {
      errors[field].push_back("Not a valid string.");
      return {};
    }
    if (trim_whitespace(text).empty()) {
      errors[field].push_back("This field may not be blank.");
    } else if (refuse_null && text.find('\0') != std::string::npos) {
      errors[field].push_back("Null characters are not allowed.");
    }
    return text;
  }
  std::string optional(const char* field) {
    auto value = read_string_field(body, field, errors);
    if (errors.contains(field) || !value) return {};
    if (!is_valid_utf8(*value)) {
      errors[field].push_back("Not a valid string.");
      return {};
    }
    return trim_whitespace(*value);
  }
  void check() {
    if (!errors.empty()) throw ValidationError(std::move(errors));
  }
};

std::string lower_ascii(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool is_valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxIdempotencyKeyLength) return false;
  for (unsigned char c : key) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

auth::AccountService& Api::accounts() const {
  // The account routes exist only where there are accounts; open mode has none.
  if (!services_.accounts || options_.auth_mode == AuthMode::kOpen) throw NotFound();
  return *services_.accounts;
}

UserId Api::caller(const http::Request& request) const {
  if (options_.auth_mode == AuthMode::kOpen) return kOpenModeOwner;
  // A token naming the open-mode owner (forged with the key) finds no user: the store never
  // returns that placeholder row, so it is refused like any deleted user's.
  return services_.accounts->authenticate(request.header("Authorization"));
}

std::optional<UserId> Api::fast_caller(const http::Request& request) const {
  if (options_.auth_mode == AuthMode::kOpen) return kOpenModeOwner;
  // Only tokens checked recently: checking a new one looks its user up in the database, which
  // the event loop must not wait for (handle() does it and remembers the token).
  return services_.accounts->recognize(request.header("Authorization"));
}

std::string Api::client_address(const http::Request& request) const {
  if (options_.trust_proxy) {
    // The proxy we trust appends the address it saw; earlier entries are the client's word.
    std::string_view forwarded = request.header("X-Forwarded-For");
    auto comma = forwarded.rfind(',');
    if (comma != std::string_view::npos) forwarded.remove_prefix(comma + 1);
    std::string last = trim_whitespace(forwarded);
    if (!last.empty() && last.size() <= 64) return last;
  }
  return request.remote_address;
}

void Api::throttle(const std::string& key, const RateLimit& limit,
                   std::atomic<std::uint64_t>& refused, int cost) {
  if (!services_.limiter || limit.burst < 1) return;  // no limiter, or this limit is off
  if (auto wait = services_.limiter->acquire(key, limit, cost)) {
    counters_.throttled.fetch_add(1, std::memory_order_relaxed);
    refused.fetch_add(1, std::memory_order_relaxed);
    throw Throttled(*wait);
  }
}

http::Response Api::idempotent(const http::Request& request, UserId owner,
                               const std::function<http::Response()>& handler) {
  const std::string_view key_header = request.header("Idempotency-Key");
  if (key_header.empty() || !services_.idempotency_store) return handler();
  if (!is_valid_idempotency_key(key_header)) {
    throw BadRequest("Idempotency-Key must be 1 to " + std::to_string(kMaxIdempotencyKeyLength) +
                     " visible ASCII characters.");
  }
  const std::string key(key_header);
  auto url = boost::urls::parse_origin_form(request.target);
  const std::string path = url ? std::string(url->encoded_path()) : request.target;
  // The same key with another request is a client bug, not a retry: refuse rather than replay.
  const std::string fingerprint = request.method + " " + path + " " +
                                  source_digest(request.body, request.header("Content-Type"));
  Store& store = *services_.idempotency_store;
  const Timestamp expire_before =
      now_micros() -
      std::chrono::duration_cast<std::chrono::microseconds>(options_.idempotency_ttl).count();
  auto first = store.reserve_idempotency_key(owner, key, fingerprint, expire_before);
  if (first && first->status == 0 && first->fingerprint == fingerprint &&
      first->created_at < now_micros() - kAbandonedReservation) {
    // The process that reserved the key died before it answered (no request runs this long):
    // free the key so that this retry runs the request instead of meeting 409 for a day.
    store.release_idempotency_key(owner, key);
    first = store.reserve_idempotency_key(owner, key, fingerprint, expire_before);
  }
  if (first) {
    if (first->fingerprint != fingerprint) {
      throw BadRequest(
          "This Idempotency-Key was already used with a different request; use a new key.");
    }
    if (first->status == 0) {
      throw Conflict("A request with this Idempotency-Key is still being processed; retry later.");
    }
    http::Response replay{first->status, first->body, "application/json", {}};
    if (!first->location.empty()) replay.headers.emplace_back("Location", first->location);
    replay.headers.emplace_back("Idempotent-Replayed", "true");
    return replay;
  }
  http::Response response;
  try {
    response = handler();
  } catch (...) {
    // A refused request did nothing: the key stays free for a corrected retry.
    try {
      store.release_idempotency_key(owner, key);
    } catch (const Error&) {
    }
    throw;
  }
  if (response.status >= 200 && response.status < 300) {
    std::string location;
    for (const auto& [name, value] : response.headers) {
      if (name == "Location") location = value;
    }
    store.finish_idempotency_key(owner, key, response.status, response.body, location);
  } else {
    store.release_idempotency_key(owner, key);
  }
  return response;
}

void Api::throttle_account_route(const http::Request& request) {
  // Every account route costs the service (a password hash, a database read): each address
  // draws on one bucket for all of them, before the body is even read.
  throttle("auth:address:" + client_address(request), options_.throttle.auth_per_address,
           counters_.throttled_auth);
}

http::Response Api::register_user(const http::Request& request, const Params&) {
  auto& service = accounts();
  throttle_account_route(request);
  const auto body = parse_body(request);
  RequiredFields fields{body, {}};
  std::string username = fields.take("username", /*trim=*/true, /*refuse_null=*/false);
  std::string password = fields.take("password", /*trim=*/false);
  std::string email = fields.optional("email");
  fields.check();
  User user = service.register_user(username, password, email);
  return json_response(
      201, json::object{{"id", user.id}, {"username", user.username}, {"email", user.email}});
}

http::Response Api::obtain_token(const http::Request& request, const Params&) {
  auto& service = accounts();
  throttle_account_route(request);
  const auto body = parse_body(request);
  RequiredFields fields{body, {}};
  std::string username = fields.take("username");
  std::string password = fields.take("password", /*trim=*/false);
  fields.check();
  // Failed logins are counted per account, whichever addresses they come from. Usernames are
  // at most 150 characters; anything longer cannot be an account and shares one bucket.
  const std::string failures_key =
      "login-failures:" +
      (username.size() <= kMaxUsernameLength ? lower_ascii(username) : std::string("(too long)"));
  throttle(failures_key, options_.throttle.failed_logins_per_username,
           counters_.throttled_failed_login, /*cost=*/0);
  auth::TokenPair tokens;
  try {
    tokens = service.obtain_tokens(username, password);
  } catch (const AuthenticationFailed&) {
    const RateLimit& limit = options_.throttle.failed_logins_per_username;
    if (services_.limiter && limit.burst >= 1) services_.limiter->acquire(failures_key, limit);
    throw;
  }
  return json_response(200, json::object{{"refresh", tokens.refresh}, {"access", tokens.access}});
}

http::Response Api::refresh_token(const http::Request& request, const Params&) {
  auto& service = accounts();
  throttle_account_route(request);
  const auto body = parse_body(request);
  RequiredFields fields{body, {}};
  std::string refresh = fields.take("refresh");
  fields.check();
  auto result = service.refresh(refresh);
  json::object out{{"access", result.access}};
  if (result.refresh) out["refresh"] = *result.refresh;
  return json_response(200, out);
}

http::Response Api::verify_token(const http::Request& request, const Params&) {
  auto& service = accounts();
  throttle_account_route(request);
  const auto body = parse_body(request);
  RequiredFields fields{body, {}};
  std::string token = fields.take("token");
  fields.check();
  service.verify(token);
  return json_response(200, json::object{});
}

http::Response Api::blacklist_token(const http::Request& request, const Params&) {
  auto& service = accounts();
  throttle_account_route(request);
  const auto body = parse_body(request);
  RequiredFields fields{body, {}};
  std::string refresh = fields.take("refresh");
  fields.check();
  service.blacklist(refresh);
  return json_response(200, json::object{});
}

}  // namespace transnotes::api
