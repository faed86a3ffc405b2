#include "auth/password_policy.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "domain/errors.h"

namespace transnotes::auth {
namespace {

using Messages = std::vector<std::string>;

const std::string kSimilarUsername = "The password is too similar to the username.";
const std::string kSimilarEmail = "The password is too similar to the email address.";
const std::string kTooShort = "This password is too short. It must contain at least 8 characters.";
const std::string kCommon = "This password is too common.";
const std::string kNumeric = "This password is entirely numeric.";

// One policy for the whole suite: loading the word list is the slow part.
const PasswordPolicy& policy() {
  static const PasswordPolicy shared;
  return shared;
}

Messages check(const std::string& password, const std::string& username = "alice",
               const std::string& email = "alice@example.com") {
  return policy().validate(password, username, email);
}

// A folder removed with everything in it at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "auth-policy-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST(PasswordPolicy, GoodPassphrasePasses) {
  EXPECT_EQ(check("violet-Harbor-58-kettle"), Messages{});
  EXPECT_EQ(check("violet-Harbor-58-kettle", "", ""), Messages{});
}

TEST(PasswordPolicy, CommonPasswords) {
  EXPECT_EQ(check("password"), Messages{kCommon});
  EXPECT_EQ(check("qwertyuiop"), Messages{kCommon});
  EXPECT_EQ(check("PASSWORD"), Messages{kCommon});
  EXPECT_EQ(check("drowssap"), Messages{kCommon});    // reversed dictionary word
  EXPECT_EQ(check("abcdefghij"), Messages{kCommon});  // simplistic
}

TEST(PasswordPolicy, NumericAndCommon) {
  EXPECT_EQ(check("12345678"), (Messages{kCommon, kNumeric}));
  EXPECT_EQ(check("9081726354"), Messages{kNumeric});
}

TEST(PasswordPolicy, SimilarToUsernameAndCommon) {
  EXPECT_EQ(check("alice123"), (Messages{kSimilarUsername, kCommon}));
}

TEST(PasswordPolicy, SimilarToEmail) {
  EXPECT_EQ(check("thatcher1925!", "bob", "margaret.thatcher@example.com"),
            Messages{kSimilarEmail});
  // Only the first similar attribute is named, the username before the email.
  EXPECT_EQ(check("thatcher1925!", "thatcher", "margaret.thatcher@example.com"),
            Messages{kSimilarUsername});
  // The same password with nothing to be similar to.
  EXPECT_EQ(check("thatcher1925!", "bob", "bob@example.com"), Messages{});
}

TEST(PasswordPolicy, AllFourInDjangosOrder) {
  EXPECT_EQ(check("1234567", "1234567", ""),
            (Messages{kSimilarUsername, kTooShort, kCommon, kNumeric}));
}

TEST(PasswordPolicy, ShortWordsAreCheckedAgainstTheWordList) {
  // libpwquality stops at its own 6-character floor and cracklib at under 5 different
  // characters before looking words up; the word list still finds them.
  EXPECT_EQ(check("abc"), (Messages{kTooShort, kCommon}));
  EXPECT_EQ(check("banana"), (Messages{kTooShort, kCommon}));
  EXPECT_EQ(check("BaNaNa"), (Messages{kTooShort, kCommon}));
  EXPECT_EQ(check(" Banana "), Messages{kCommon});  // compared stripped, as Django does
  EXPECT_EQ(check("x7#Kq2"), Messages{kTooShort});
}

TEST(PasswordPolicy, OtherCracklibFindingsAreNotDjangos) {
  // cracklib: "it does not contain enough DIFFERENT characters"; libpwquality: a palindrome.
  // Django refuses neither.
  EXPECT_EQ(check("abba1221abba"), Messages{});
  EXPECT_EQ(check("x9y9x9y9x9y9"), Messages{});
}

TEST(PasswordPolicy, LengthCountsCharactersNotBytes) {
  EXPECT_EQ(check("ñøþæßðŋ"), Messages{kTooShort});  // 7 characters, 14 bytes
  EXPECT_EQ(check("ñøþæßðŋħ"), Messages{});
}

TEST(PasswordPolicy, NumericInOtherScripts) {
  EXPECT_EQ(check("١٢٣٤٥٦٧٨٩"), Messages{kNumeric});  // Arabic-Indic digits
}

TEST(PasswordPolicy, ShorterMinimumUsesSingularWhenOne) {
  PasswordPolicyOptions options;
  options.min_length = 1;
  PasswordPolicy one(options);
  EXPECT_EQ(one.validate("", "", ""),
            Messages{"This password is too short. It must contain at least 1 character."});
}

TEST(PasswordPolicy, MissingDictionaryRefusesToStart) {
  PasswordPolicyOptions options;
  options.cracklib_dictionary = "/nonexistent/cracklib_dict";
  try {
    PasswordPolicy broken(options);
    FAIL() << "constructed without a dictionary";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cracklib_dict.pwd"), std::string::npos)
        << e.what();
  }
}

TEST(PasswordPolicy, UnusableDictionaryRefusesToStart) {
  TempDir dir;
  for (const char* suffix : {".pwd", ".pwi", ".hwm"}) {
    std::ofstream(dir.path / (std::string("dict") + suffix)) << "not a cracklib dictionary\n";
  }
  PasswordPolicyOptions options;
  options.cracklib_dictionary = (dir.path / "dict").string();
  EXPECT_THROW(PasswordPolicy{options}, Error);
}

TEST(PasswordPolicy, MissingWordListRefusesToStart) {
  PasswordPolicyOptions options;
  options.word_lists = {"/nonexistent/words"};
  EXPECT_THROW(PasswordPolicy{options}, Error);
  options.word_lists = {};
  EXPECT_THROW(PasswordPolicy{options}, Error);
}

TEST(PasswordPolicy, DictionaryRemovedLaterRefusesToJudge) {
  TempDir dir;
  for (const char* suffix : {".pwd", ".pwi", ".hwm"}) {
    std::filesystem::copy_file(std::string("/var/cache/cracklib/cracklib_dict") + suffix,
                               dir.path / (std::string("dict") + suffix));
  }
  PasswordPolicyOptions options;
  options.cracklib_dictionary = (dir.path / "dict").string();
  PasswordPolicy policy(options);
  EXPECT_EQ(policy.validate("violet-Harbor-58-kettle", "", ""), Messages{});
  for (const char* suffix : {".pwd", ".pwi", ".hwm"}) {
    std::filesystem::remove(dir.path / (std::string("dict") + suffix));
  }
  EXPECT_THROW(policy.validate("violet-Harbor-58-kettle", "", ""), Error);
}

TEST(PasswordPolicy, ConcurrentValidation) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (check("password") != Messages{kCommon}) ++wrong;
        if (!check("violet-Harbor-58-kettle").empty()) ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(QuickRatio, MatchesDifflib) {
  // Values from Python's difflib.SequenceMatcher(a=..., b=...).quick_ratio().
  EXPECT_DOUBLE_EQ(quick_ratio(U"alice123", U"alice"), 10.0 / 13.0);
  EXPECT_DOUBLE_EQ(quick_ratio(U"aab", U"abb"), 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(quick_ratio(U"abc", U""), 0.0);
  EXPECT_DOUBLE_EQ(quick_ratio(U"", U""), 1.0);
  EXPECT_DOUBLE_EQ(quick_ratio(U"xyzjohnxyz", U"john"), 8.0 / 14.0);
  EXPECT_DOUBLE_EQ(quick_ratio(U"ññ", U"ñ"), 2.0 / 3.0);
}

}  // namespace
}  // namespace transnotes::auth
