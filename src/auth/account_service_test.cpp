// The accounts use cases over a real SQLite store: what the token routes and the API's
// authentication rely on.
#include "auth/account_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "auth/password_policy.h"
#include "auth/passwords.h"
#include "domain/errors.h"
#include "storage/storage.h"

namespace transnotes::auth {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey = "account-service-test-key-0123456789abcdef";
constexpr const char* kPassword = "violet-Harbor-58-kettle";

class Accounts : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("transnotes-accounts-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
    storage::StorageConfig config;
    config.database_url = "sqlite:///" + (directory_ / "db.sqlite3").string();
    store_ = storage::open_store(config);
    store_->migrate();
    make_service({});
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    std::filesystem::remove_all(directory_);
  }
  void make_service(AccountOptions options) {
    service_.reset();
    tokens_ = std::make_unique<TokenCodec>(kKey, 5min, 24h, [this] { return now_; });
    service_ = std::make_unique<AccountService>(*store_, *tokens_, policy_, hashing_, options);
  }
  std::string bearer(const std::string& token) { return "Bearer " + token; }

  std::filesystem::path directory_;
  std::unique_ptr<Store> store_;
  std::chrono::system_clock::time_point now_ = std::chrono::system_clock::now();
  std::unique_ptr<TokenCodec> tokens_;
  PasswordPolicy policy_;
  PasswordHashing hashing_ = PasswordHashing::fast_for_tests();
  std::unique_ptr<AccountService> service_;
};

TEST_F(Accounts, RegisterCollectsEveryFieldsMessages) {
  try {
    service_->register_user("bad name!", "12345678", "not-an-email");
    FAIL() << "accepted";
  } catch (const ValidationError& e) {
    EXPECT_TRUE(e.errors().contains("username"));
    EXPECT_TRUE(e.errors().contains("email"));
    EXPECT_EQ(e.errors().at("password"),
              (std::vector<std::string>{"This password is too common.",
                                        "This password is entirely numeric."}));
  }
  User alice = service_->register_user("alice", kPassword, "alice@example.com");
  EXPECT_GE(alice.id, 1);
  try {
    service_->register_user("ALICE", kPassword, "");
    FAIL() << "accepted a case-insensitive duplicate";
  } catch (const ValidationError& e) {
    EXPECT_EQ(e.errors().at("username"),
              std::vector<std::string>{"A user with that username already exists."});
  }
}

TEST_F(Accounts, LoginRefusesWrongPasswordsAndUnknownNamesAlike) {
  service_->register_user("alice", kPassword, "");
  auto pair = service_->obtain_tokens("Alice", kPassword);  // names match case-insensitively
  EXPECT_EQ(service_->authenticate(bearer(pair.access)), store_->find_user("alice")->id);
  for (auto [name, password] :
       {std::pair{"alice", "wrong-Harbor-58-kettle"}, std::pair{"nobody", kPassword}}) {
    try {
      service_->obtain_tokens(name, password);
      FAIL() << name;
    } catch (const AuthenticationFailed& e) {
      EXPECT_EQ(e.detail(), "No active account found with the given credentials");
      EXPECT_EQ(e.code(), "");
    }
  }
}

TEST_F(Accounts, ARememberedAccessTokenStillExpires) {
  service_->register_user("alice", kPassword, "");
  auto pair = service_->obtain_tokens("alice", kPassword);
  ASSERT_NO_THROW(service_->authenticate(bearer(pair.access)));
  ASSERT_NO_THROW(service_->authenticate(bearer(pair.access)));  // from the memo
  now_ += 5min;
  try {
    service_->authenticate(bearer(pair.access));
    FAIL() << "an expired token was accepted";
  } catch (const AuthenticationFailed& e) {
    EXPECT_EQ(e.detail(), "Given token not valid for any token type");
    ASSERT_EQ(e.messages().size(), 1u);
    EXPECT_EQ(e.messages()[0].message, "Token is expired");
  }
  EXPECT_THROW(service_->authenticate(""), NotAuthenticated);
  EXPECT_THROW(service_->authenticate("Basic abc"), NotAuthenticated);
  EXPECT_THROW(service_->authenticate(bearer(pair.refresh)), AuthenticationFailed);
}

TEST_F(Accounts, ADeletedOrDeactivatedUserLosesAccessWithinTheRecheckInterval) {
  const UserId alice = service_->register_user("alice", kPassword, "").id;
  auto pair = service_->obtain_tokens("alice", kPassword);
  const auto header = bearer(pair.access);
  EXPECT_EQ(service_->recognize(header), std::nullopt);  // not checked yet: no shortcut
  ASSERT_EQ(service_->authenticate(header), alice);
  EXPECT_EQ(service_->recognize(header), std::optional<UserId>(alice));
  ASSERT_TRUE(service_->delete_user("alice"));
  EXPECT_EQ(service_->authenticate(header), alice);  // trusted for the interval...
  now_ += 31s;
  EXPECT_EQ(service_->recognize(header), std::nullopt);
  try {
    service_->authenticate(header);  // ...then the user is looked up again
    FAIL() << "a deleted user's token was accepted";
  } catch (const AuthenticationFailed& e) {
    EXPECT_EQ(e.detail(), "User not found");
    EXPECT_EQ(e.code(), "user_not_found");
  }
  EXPECT_EQ(service_->recognize("Bearer a b"), std::nullopt);  // malformed: no throw here
}

TEST_F(Accounts, ATokenNamingTheOpenModeOwnerFindsNoUser) {
  // Forged with the key: owner 0 is a placeholder row the store never returns as a user.
  for (UserId id : {kOpenModeOwner, UserId{-1}}) {
    const auto header = bearer(tokens_->issue(id, TokenType::kAccess));
    EXPECT_THROW(service_->authenticate(header), UnknownUser) << id;
    EXPECT_EQ(service_->recognize(header), std::nullopt) << id;
  }
}

TEST_F(Accounts, BlacklistedRefreshTokensStopWorking) {
  service_->register_user("alice", kPassword, "");
  auto pair = service_->obtain_tokens("alice", kPassword);
  auto refreshed = service_->refresh(pair.refresh);
  EXPECT_FALSE(refreshed.refresh);  // no rotation by default
  EXPECT_NO_THROW(service_->authenticate(bearer(refreshed.access)));
  service_->blacklist(pair.refresh);
  try {
    service_->refresh(pair.refresh);
    FAIL() << "a blacklisted token refreshed";
  } catch (const AuthenticationFailed& e) {
    EXPECT_EQ(e.detail(), "Token is blacklisted");
    EXPECT_EQ(e.code(), "token_not_valid");
  }
  try {
    service_->verify(pair.refresh);
    FAIL() << "a blacklisted token verified";
  } catch (const ValidationError& e) {
    EXPECT_EQ(e.errors().at("non_field_errors"), std::vector<std::string>{"Token is blacklisted"});
  }
  EXPECT_NO_THROW(service_->verify(pair.access));
}

TEST_F(Accounts, RotationBlacklistsThePredecessor) {
  AccountOptions options;
  options.rotate_refresh_tokens = true;
  make_service(options);
  service_->register_user("alice", kPassword, "");
  auto pair = service_->obtain_tokens("alice", kPassword);
  auto first = service_->refresh(pair.refresh);
  ASSERT_TRUE(first.refresh);
  EXPECT_THROW(service_->refresh(pair.refresh), AuthenticationFailed);
  auto second = service_->refresh(*first.refresh);
  ASSERT_TRUE(second.refresh);
  service_->blacklist(*second.refresh);  // log out
  EXPECT_THROW(service_->refresh(*second.refresh), AuthenticationFailed);
}

TEST_F(Accounts, RefreshForADeletedUserIsRefused) {
  service_->register_user("alice", kPassword, "");
  auto pair = service_->obtain_tokens("alice", kPassword);
  ASSERT_TRUE(service_->delete_user("alice"));
  try {
    service_->refresh(pair.refresh);
    FAIL();
  } catch (const AuthenticationFailed& e) {
    EXPECT_EQ(e.detail(), "No active account found for the given token.");
  }
  EXPECT_FALSE(service_->delete_user("alice"));
}

TEST_F(Accounts, SetPasswordChecksThePolicyAndTakesEffect) {
  service_->register_user("alice", kPassword, "");
  EXPECT_THROW(service_->set_password("alice", "alice123"), ValidationError);
  EXPECT_THROW(service_->set_password("nobody", kPassword), NotFound);
  service_->set_password("alice", "amber-Canyon-71-teapot");
  EXPECT_THROW(service_->obtain_tokens("alice", kPassword), AuthenticationFailed);
  EXPECT_NO_THROW(service_->obtain_tokens("alice", "amber-Canyon-71-teapot"));
}

}  // namespace
}  // namespace transnotes::auth
