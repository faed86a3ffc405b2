// The accounts use cases: registration, the simplejwt token endpoints (obtain, refresh, verify,
// blacklist), resolving an Authorization header to a user, and the operator's user commands.
// Knows the Store port and this layer's token, password and policy helpers; no HTTP.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <semaphore>
#include <string>
#include <string_view>
#include <vector>

#include "auth/tokens.h"
#include "auth/verified_tokens.h"
#include "domain/model.h"
#include "domain/ports.h"

namespace transnotes::auth {

class PasswordPolicy;
struct PasswordHashing;

struct AccountOptions {
  // simplejwt's ROTATE_REFRESH_TOKENS: a refresh also returns a new refresh token.
  bool rotate_refresh_tokens = false;
  // simplejwt's BLACKLIST_AFTER_ROTATION: the refresh token that was rotated stops working.
  bool blacklist_after_rotation = true;
  // Password hashes computed at once (each Argon2id run takes its memory limit, 64 MiB by
  // default); further logins wait. 0: the number of CPUs, at least 2.
  unsigned concurrent_hashes = 0;
  // How long an access token, once checked together with its user, is trusted without looking
  // the user up again: a deleted or deactivated user loses access within this time (simplejwt
  // looks the user up on every request; this amortizes that lookup).
  std::chrono::seconds user_recheck_interval{30};
};

struct RefreshResult {
  std::string access;
  std::optional<std::string> refresh;  // with rotation
};

// Thread-safe; keeps references to its arguments, which must outlive it.
class AccountService {
 public:
  AccountService(Store& store, TokenCodec& tokens, PasswordPolicy& policy,
                 const PasswordHashing& hashing, AccountOptions options = {});
  ~AccountService();

  // Checks username, email and password as Django's registration would and creates the user.
  // Throws ValidationError with every field's messages.
  User register_user(const std::string& username, const std::string& password,
                     const std::string& email);
  // Throws AuthenticationFailed("No active account found with the given credentials") for a
  // wrong username or password, in about the same time either way.
  TokenPair obtain_tokens(const std::string& username, const std::string& password);
  // Throws AuthenticationFailed(code token_not_valid: "Token is invalid", "Token is expired",
  // "Token is blacklisted", ...) or (code no_active_account) when the user is gone.
  RefreshResult refresh(const std::string& refresh_token);
  // Any valid token type. Throws AuthenticationFailed(token_not_valid) for a bad token and
  // ValidationError(non_field_errors: "Token is blacklisted") for a blacklisted one.
  void verify(const std::string& token);
  // Log out: the refresh token stops working. Throws AuthenticationFailed(token_not_valid).
  void blacklist(const std::string& refresh_token);

  // The user an API request acts for, from its Authorization header value (empty when absent):
  // the access token's signature, expiry and type, and that its user exists and is active (as
  // simplejwt's JWTAuthentication). A token checked in the last user_recheck_interval is
  // recognized by its bytes without either (expiry is still checked every time).
  // Throws NotAuthenticated when there is no Bearer credential, UnknownUser for a user that is
  // gone, AuthenticationFailed otherwise.
  UserId authenticate(std::string_view authorization) const;
  // authenticate() for callers that must not block (the HTTP event loop): only a token checked
  // recently (see above) is recognized; nullopt for anything else, which authenticate() decides.
  std::optional<UserId> recognize(std::string_view authorization) const;

  // Operator commands (the `users` CLI). Passwords are checked by the same policy.
  User create_user(const std::string& username, const std::string& password,
                   const std::string& email) {
    return register_user(username, password, email);
  }
  std::vector<User> list_users();
  // Whether `user` is an active staff account (may administer every user's jobs). Asks the
  // store every time: granting and revoking take effect at once.
  bool is_staff(UserId user) const;
  // False when there is no such user.
  bool delete_user(const std::string& username);
  // Throws ValidationError for a weak password, NotFound for an unknown user.
  void set_password(const std::string& username, const std::string& password);
  // Gives the notes of the open-mode owner (those created with --auth open, or before accounts
  // existed) to `username`. Returns how many moved. Throws NotFound for an unknown user.
  std::int64_t adopt_open_notes(const std::string& username);

 private:
  Store& store_;
  TokenCodec& tokens_;
  PasswordPolicy& policy_;
  const PasswordHashing& hashing_;
  AccountOptions options_;
  mutable VerifiedTokens verified_;
  // Bounds the memory and CPU that password hashing takes (see AccountOptions).
  std::counting_semaphore<1024> hashing_slots_;
  // Runs `work` (a hash or a verification) in one of hashing_slots_.
  template <typename Work>
  auto with_hashing_slot(Work&& work);  // a memo of authenticate(), which stays logically const
};

}  // namespace transnotes::auth
