#include "app/accounts.h"

#include "app/application.h"
#include "auth/account_service.h"
#include "auth/password_policy.h"
#include "auth/passwords.h"
#include "auth/tokens.h"

namespace transnotes::app {

Accounts::Accounts() = default;
Accounts::Accounts(Accounts&&) noexcept = default;
Accounts& Accounts::operator=(Accounts&&) noexcept = default;
Accounts::~Accounts() = default;

Accounts make_accounts(const Config& config, Store& store, const std::string& secret_key) {
  Accounts accounts;
  accounts.tokens = std::make_unique<auth::TokenCodec>(
      secret_key, std::chrono::seconds(config.access_token_lifetime_seconds),
      std::chrono::seconds(config.refresh_token_lifetime_seconds));
  // Without its dictionary the policy throws: a service that would take any password must not
  // start.
  accounts.policy = std::make_unique<auth::PasswordPolicy>();
  accounts.hashing = std::make_unique<auth::PasswordHashing>();
  auth::AccountOptions options;
  options.rotate_refresh_tokens = config.rotate_refresh_tokens;
  options.blacklist_after_rotation = config.blacklist_after_rotation;
  options.user_recheck_interval = std::chrono::seconds(config.user_recheck_seconds);
  accounts.service = std::make_unique<auth::AccountService>(
      store, *accounts.tokens, *accounts.policy, *accounts.hashing, options);
  return accounts;
}

Accounts open_accounts(const Config& config) {
  auto store = open_and_migrate(config);
  // These commands issue no tokens: a throwaway key satisfies the codec.
  Accounts accounts = make_accounts(config, *store, std::string(64, 'x'));
  accounts.owned_store = std::move(store);
  return accounts;
}

}  // namespace transnotes::app
