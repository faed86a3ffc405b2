#include "auth/usernames.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace transnotes::auth {
namespace {

using Messages = std::vector<std::string>;

const std::string kInvalidUsername =
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ "
    "characters.";
const std::string kBlank = "This field may not be blank.";
const std::string kInvalidEmail = "Enter a valid email address.";
const std::string kNull = "Null characters are not allowed.";

TEST(Usernames, Valid) {
  for (const std::string& name :
       {std::string("alice"), std::string("Alice_Smith-99"), std::string("a.b+c@d"),
        std::string("a"), std::string(150, 'x'), std::string("0"), std::string("_.@+-")}) {
    EXPECT_EQ(validate_username(name), Messages{}) << name;
  }
}

TEST(Usernames, Blank) { EXPECT_EQ(validate_username(""), Messages{kBlank}); }

TEST(Usernames, InvalidCharacters) {
  for (const std::string& name :
       {std::string("alice smith"), std::string("alice!"), std::string("a/b"), std::string("josé"),
        std::string("名前"), std::string("a\tb"), std::string("a#b")}) {
    EXPECT_EQ(validate_username(name), Messages{kInvalidUsername}) << name;
  }
}

TEST(Usernames, TooLongCountsCharacters) {
  EXPECT_EQ(validate_username(std::string(151, 'x')),
            Messages{"Ensure this field has no more than 150 characters."});
  // 150 characters, 300 bytes: the length is fine, the characters are not ASCII.
  std::string accented;
  for (int i = 0; i < 150; ++i) accented += "é";
  EXPECT_EQ(validate_username(accented), Messages{kInvalidUsername});
  EXPECT_EQ(validate_username(accented + "é"),
            (Messages{kInvalidUsername, "Ensure this field has no more than 150 characters."}));
}

TEST(Usernames, NulCharacter) {
  EXPECT_EQ(validate_username(std::string("a\0b", 3)), (Messages{kInvalidUsername, kNull}));
}

TEST(Emails, AsDjangosEmailValidator) {
  // Expected values from Django's EmailValidator regular expressions, run in Python.
  const std::vector<std::pair<std::string, bool>> cases = {
      {R"(alice@example.com)", true},
      {R"(Alice.Smith+tag@Sub.Example.CO.uk)", true},
      {R"(a@b.co)", true},
      {R"(a@b.c)", false},
      {R"(a@localhost)", true},
      {R"(a@[127.0.0.1])", true},
      {R"(a@[::1])", true},
      {R"(a@[IPv6:::1])", false},
      {R"(a@[127.0.0.01])", false},
      {R"(a@[300.1.1.1])", false},
      {R"(a@-example.com)", false},
      {R"(a@example-.com)", false},
      {R"(a@exa_mple.com)", false},
      {R"(a@example.com.)", false},
      {R"(a@.example.com)", false},
      {R"(a@example..com)", false},
      {R"(a@example)", false},
      {R"(.a@example.com)", false},
      {R"(a.@example.com)", false},
      {R"(a..b@example.com)", false},
      {R"("john doe"@example.com)", false},
      {R"("john\ doe"@example.com)", true},
      {R"("john\"doe"@example.com)", true},
      {R"("a"@example.com)", true},
      {R"(""@example.com)", true},
      {R"(john doe@example.com)", false},
      {R"(@example.com)", false},
      {R"(alice@)", false},
      {R"(alice)", false},
      {R"(a@b@example.com)", false},
      {R"(a@example.c-m)", true},
      {R"(a@example.co-)", false},
      {R"(a@example.-com)", true},
      {R"(a@xn--bcher-kva.de)", true},
      {R"(a@1.2.3.4)", false},
      {R"(a@123.com)", true},
      {R"(user!#$%&'*+/=?^_`{}|~-@example.com)", true},
  };
  for (const auto& [email, valid] : cases) {
    EXPECT_EQ(validate_email(email), valid ? Messages{} : Messages{kInvalidEmail}) << email;
  }
}

TEST(Emails, EmptyIsAllowed) { EXPECT_EQ(validate_email(""), Messages{}); }

TEST(Emails, InternationalDomainsButNotLocalParts) {
  EXPECT_EQ(validate_email("a@bücher.de"), Messages{});  // Django retries it as punycode
  EXPECT_EQ(validate_email("josé@example.com"), Messages{kInvalidEmail});
}

TEST(Emails, Lengths) {
  const std::string label(61, 'b');  // labels are at most 63 characters
  const std::string at_limit =
      std::string(64, 'a') + "@" + label + "." + label + "." + label + ".com";
  ASSERT_EQ(at_limit.size(), 254u);
  EXPECT_EQ(validate_email(at_limit), Messages{});
  EXPECT_EQ(validate_email("a" + at_limit),
            Messages{"Ensure this field has no more than 254 characters."});
  // Over 320 characters, the address is not even looked at.
  const std::string huge = std::string(310, 'a') + "@example.com";
  EXPECT_EQ(validate_email(huge),
            (Messages{"Ensure this field has no more than 254 characters.", kInvalidEmail}));
}

TEST(Emails, NulCharacter) {
  EXPECT_EQ(validate_email(std::string("a\0b@example.com", 15)), (Messages{kNull, kInvalidEmail}));
}

}  // namespace
}  // namespace transnotes::auth
