#include "auth/account_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "auth/password_policy.h"
#include "auth/passwords.h"
#include "auth/tokens.h"
#include "auth/usernames.h"
#include "domain/errors.h"

namespace transnotes::auth {

namespace {

constexpr const char* kNoActiveAccount = "No active account found with the given credentials";
constexpr const char* kNoAccountForToken = "No active account found for the given token.";
constexpr const char* kUsernameTaken = "A user with that username already exists.";

void add(ValidationError::FieldErrors& errors, const char* field,
         const std::vector<std::string>& messages) {
  for (const auto& m : messages) errors[field].push_back(m);
}

AuthenticationFailed blacklisted() {
  return AuthenticationFailed("Token is blacklisted", "token_not_valid");
}

Timestamp seconds_to_micros(std::int64_t seconds) { return seconds * 1'000'000; }

unsigned hashing_slots(unsigned configured) {
  if (configured > 0) return std::min(configured, 1024u);
  return std::clamp(std::thread::hardware_concurrency(), 2u, 1024u);
}

}  // namespace

AccountService::AccountService(Store& store, TokenCodec& tokens, PasswordPolicy& policy,
                               const PasswordHashing& hashing, AccountOptions options)
    : store_(store),
      tokens_(tokens),
      policy_(policy),
      hashing_(hashing),
      options_(options),
      hashing_slots_(hashing_slots(options.concurrent_hashes)) {}

template <typename Work>
auto AccountService::with_hashing_slot(Work&& work) {
  hashing_slots_.acquire();
  struct Release {
    std::counting_semaphore<1024>& slots;
    ~Release() { slots.release(); }
  } release{hashing_slots_};
  return work();
}

AccountService::~AccountService() = default;

User AccountService::register_user(const std::string& username, const std::string& password,
                                   const std::string& email) {
  ValidationError::FieldErrors errors;
  add(errors, "username", validate_username(username));
  add(errors, "email", validate_email(email));
  // Django's validators compare the password with the account's attributes as given.
  add(errors, "password", policy_.validate(password, username, email));
  // DRF's UniqueValidator runs with the field's validators; asking only for a well-formed name
  // keeps malformed names from reaching the database.
  if (!errors.contains("username") && store_.find_user(username)) {
    errors["username"].push_back(kUsernameTaken);
  }
  if (!errors.empty()) throw ValidationError(std::move(errors));
  const std::string hash = with_hashing_slot([&] { return hashing_.hash(password); });
  auto user = store_.create_user(username, email, hash);
  // Another registration of the same name won the race between the check and the insert.
  if (!user) throw ValidationError("username", kUsernameTaken);
  spdlog::info("user {} registered (id {})", user->username, user->id);
  return *user;
}

TokenPair AccountService::obtain_tokens(const std::string& username, const std::string& password) {
  auto user = store_.find_user(username);
  if (!user) {
    // The same work as a real check, so the answer's timing does not tell whether the name exists.
    with_hashing_slot([&] { return hashing_.verify_against_dummy(password); });
    throw AuthenticationFailed(kNoActiveAccount);
  }
  const bool good =
      with_hashing_slot([&] { return hashing_.verify(password, user->password_hash); });
  if (!good || !user->is_active) throw AuthenticationFailed(kNoActiveAccount);
  if (hashing_.needs_rehash(user->password_hash)) {
    store_.set_password_hash(user->id, with_hashing_slot([&] { return hashing_.hash(password); }));
  }
  return tokens_.issue_pair(user->id);
}

RefreshResult AccountService::refresh(const std::string& refresh_token) {
  auto decoded = tokens_.decode(refresh_token, TokenType::kRefresh);
  if (!decoded) throw token_view_failure(decoded.problem());
  const Claims& claims = decoded.claims();
  if (store_.is_token_blacklisted(claims.jti)) throw blacklisted();
  auto user = store_.get_user(claims.user_id);
  if (!user || !user->is_active) throw AuthenticationFailed(kNoAccountForToken);
  RefreshResult result;
  result.access = tokens_.issue_access_from(claims);
  if (options_.rotate_refresh_tokens) {
    if (options_.blacklist_after_rotation) {
      store_.blacklist_token(claims.jti, claims.user_id, seconds_to_micros(claims.exp));
    }
    result.refresh = tokens_.issue(claims.user_id, TokenType::kRefresh);
  }
  return result;
}

void AccountService::verify(const std::string& token) {
  auto decoded = tokens_.decode_untyped(token);
  if (!decoded) throw token_view_failure(decoded.problem());
  // simplejwt answers a blacklisted token here with a validation error, not a 401.
  if (!decoded.claims().jti.empty() && store_.is_token_blacklisted(decoded.claims().jti)) {
    throw ValidationError("non_field_errors", "Token is blacklisted");
  }
}

void AccountService::blacklist(const std::string& refresh_token) {
  auto decoded = tokens_.decode(refresh_token, TokenType::kRefresh);
  if (!decoded) throw token_view_failure(decoded.problem());
  const Claims& claims = decoded.claims();
  if (store_.is_token_blacklisted(claims.jti)) throw blacklisted();
  store_.blacklist_token(claims.jti, claims.user_id, seconds_to_micros(claims.exp));
}

std::optional<UserId> AccountService::recognize(std::string_view authorization) const {
  try {
    auto raw = raw_token_from_authorization(authorization);
    if (!raw || raw->size() > TokenCodec::kMaxTokenLength) return std::nullopt;
    return verified_.find(*raw, tokens_.now_seconds());
  } catch (const AuthenticationFailed&) {
    return std::nullopt;  // a malformed header: authenticate() gives the 401
  }
}

UserId AccountService::authenticate(std::string_view authorization) const {
  auto raw = raw_token_from_authorization(authorization);
  if (!raw) throw NotAuthenticated();
  const std::int64_t now = tokens_.now_seconds();
  if (raw->size() <= TokenCodec::kMaxTokenLength) {
    if (auto user = verified_.find(*raw, now)) return *user;
  }
  auto decoded = tokens_.decode(*raw, TokenType::kAccess);
  if (!decoded) throw authentication_failure(decoded.problem());
  const Claims& claims = decoded.claims();
  // simplejwt's get_user: a token outliving its user (deleted, deactivated) is refused.
  auto user = store_.get_user(claims.user_id);
  if (!user) throw UnknownUser();
  if (!user->is_active) throw AuthenticationFailed("User is inactive", "user_inactive");
  verified_.remember(*raw, claims.user_id,
                     std::min(claims.exp, now + options_.user_recheck_interval.count()));
  return claims.user_id;
}

std::vector<User> AccountService::list_users() { return store_.list_users(); }

bool AccountService::is_staff(UserId user) const {
  auto found = store_.get_user(user);
  return found && found->is_active && found->is_staff;
}

bool AccountService::delete_user(const std::string& username) {
  auto user = store_.find_user(username);
  if (!user) return false;
  const bool deleted = store_.delete_user(user->id);
  if (deleted) spdlog::info("user {} (id {}) deleted with their notes", user->username, user->id);
  return deleted;
}

void AccountService::set_password(const std::string& username, const std::string& password) {
  auto user = store_.find_user(username);
  if (!user) throw NotFound();
  auto problems = policy_.validate(password, user->username, user->email);
  if (!problems.empty())
    throw ValidationError(ValidationError::FieldErrors{{"password", problems}});
  const std::string hash = with_hashing_slot([&] { return hashing_.hash(password); });
  if (!store_.set_password_hash(user->id, hash)) throw NotFound();
}

std::int64_t AccountService::adopt_open_notes(const std::string& username) {
  auto user = store_.find_user(username);
  if (!user) throw NotFound();
  const auto moved = store_.reassign_notes(kOpenModeOwner, user->id);
  spdlog::info("{} open-mode notes given to user {} (id {})", moved, user->username, user->id);
  return moved;
}

}  // namespace transnotes::auth
