// Builds the accounts service (auth/) a process needs from its Config: the token codec with the
// secret key and lifetimes, the password policy, the hashing strength.
#pragma once

#include <memory>
#include <string>

#include "app/config.h"
#include "auth/account_service.h"
#include "auth/password_policy.h"
#include "auth/passwords.h"
#include "auth/tokens.h"
#include "domain/ports.h"

namespace transnotes::app {

struct Accounts {
  std::unique_ptr<Store> owned_store;  // set by open_accounts
  std::unique_ptr<auth::TokenCodec> tokens;
  std::unique_ptr<auth::PasswordPolicy> policy;
  std::unique_ptr<auth::PasswordHashing> hashing;
  std::unique_ptr<auth::AccountService> service;

  Accounts();
  Accounts(Accounts&&) noexcept;
  Accounts& operator=(Accounts&&) noexcept;
  ~Accounts();
};

// For `serve`: accounts over the process's store, signing with `secret_key`.
Accounts make_accounts(const Config& config, Store& store, const std::string& secret_key);
// For the `users` commands: opens (and migrates) the store itself. They issue no tokens, so no
// SECRET_KEY is needed.
Accounts open_accounts(const Config& config);

}  // namespace transnotes::app
