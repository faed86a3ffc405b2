#include "auth/passwords.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "domain/errors.h"

namespace transnotes::auth {
namespace {

TEST(Passwords, HashIsArgon2idWithTheInteractiveLimitsByDefault) {
  PasswordHashing hashing;
  EXPECT_EQ(hashing.opslimit(), 2u);
  EXPECT_EQ(hashing.memlimit(), 64u << 20);
  const std::string encoded = hashing.hash("violet-Harbor-58-kettle");
  EXPECT_EQ(encoded.rfind("$argon2id$v=19$m=65536,t=2,p=1$", 0), 0u) << encoded;
  EXPECT_TRUE(hashing.verify("violet-Harbor-58-kettle", encoded));
  EXPECT_FALSE(hashing.verify("violet-harbor-58-kettle", encoded));
}

TEST(Passwords, SaltIsFreshEachTime) {
  auto hashing = PasswordHashing::fast_for_tests();
  const std::string a = hashing.hash("same password");
  const std::string b = hashing.hash("same password");
  EXPECT_NE(a, b);
  EXPECT_TRUE(hashing.verify("same password", a));
  EXPECT_TRUE(hashing.verify("same password", b));
}

TEST(Passwords, EveryByteCounts) {
  auto hashing = PasswordHashing::fast_for_tests();
  const std::string with_nul("pass\0word", 9);
  const std::string encoded = hashing.hash(with_nul);
  EXPECT_TRUE(hashing.verify(with_nul, encoded));
  EXPECT_FALSE(hashing.verify("pass", encoded));
  EXPECT_FALSE(hashing.verify("", encoded));
  const std::string unicode = "contraseña-ß-密码";
  EXPECT_TRUE(hashing.verify(unicode, hashing.hash(unicode)));
}

TEST(Passwords, UnusableStoredHashNeverMatches) {
  auto hashing = PasswordHashing::fast_for_tests();
  for (const std::string& stored :
       {std::string(), std::string("!"), std::string("pbkdf2_sha256$600000$salt$hash"),
        std::string("$argon2id$garbage"), std::string("$argon2i$v=19$m=8,t=1,p=1$x$y")}) {
    EXPECT_FALSE(hashing.verify("", stored)) << stored;
    EXPECT_FALSE(hashing.verify("!", stored)) << stored;
    EXPECT_TRUE(hashing.needs_rehash(stored)) << stored;
  }
}

TEST(Passwords, DummyNeverMatches) {
  auto hashing = PasswordHashing::fast_for_tests();
  EXPECT_FALSE(hashing.verify_against_dummy(""));
  EXPECT_FALSE(hashing.verify_against_dummy("password"));
}

TEST(Passwords, NeedsRehashWhenTheLimitsChange) {
  auto fast = PasswordHashing::fast_for_tests();
  PasswordHashing stronger(3, 1u << 20);
  const std::string encoded = fast.hash("x");
  EXPECT_FALSE(fast.needs_rehash(encoded));
  EXPECT_TRUE(stronger.needs_rehash(encoded));
  EXPECT_TRUE(stronger.verify("x", encoded));  // old hashes keep working
}

TEST(Passwords, LimitsOutOfRangeAreRefused) {
  EXPECT_THROW(PasswordHashing(0, 64u << 20), Error);
  EXPECT_THROW(PasswordHashing(2, 1024), Error);
}

// The fastest of several runs of each piece of work: what each costs, with the machine's other
// load left out. The pieces take turns, so a busy spell slows all of them rather than one (one at
// a time, seven slow runs of one against seven quiet runs of another made a 2.8x gap under CI).
std::vector<std::chrono::nanoseconds> fastest_of(int rounds,
                                                 const std::vector<std::function<void()>>& works) {
  std::vector<std::chrono::nanoseconds> best(works.size(), std::chrono::nanoseconds::max());
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t i = 0; i < works.size(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      works[i]();
      best[i] =
          std::min(best[i], std::chrono::nanoseconds(std::chrono::steady_clock::now() - start));
    }
  }
  return best;
}

TEST(Passwords, UnknownUserCostsAsMuchAsAWrongPassword) {
  // Big enough limits that the hash, not the call, is what is timed (a few ms per check), and
  // many passes over little memory: the memory is a fresh mmap per check, and on these VMs its
  // page faults (with or without a huge page, by the address) varied 2x between checks of 4 MiB.
  PasswordHashing hashing(12, 1u << 20);
  const std::string stored = hashing.hash("the real password");
  const auto fastest = fastest_of(
      9, {[&] { hashing.verify("guess", stored); }, [&] { hashing.verify_against_dummy("guess"); },
          [&] { hashing.verify("guess", "!"); }});
  const auto wrong_password = fastest[0];
  const auto no_such_user = fastest[1];
  const auto unusable_hash = fastest[2];
  // Loose bounds: they catch a dummy that skips the work (100x faster), not scheduling noise.
  EXPECT_GT(no_such_user * 2, wrong_password);
  EXPECT_GT(wrong_password * 2, no_such_user);
  EXPECT_GT(unusable_hash * 2, wrong_password);
}

TEST(Passwords, ConcurrentHashAndVerify) {
  auto hashing = PasswordHashing::fast_for_tests();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string password = "pw-" + std::to_string(t) + "-" + std::to_string(i);
        const std::string encoded = hashing.hash(password);
        if (!hashing.verify(password, encoded) || hashing.verify(password + "x", encoded)) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace transnotes::auth
