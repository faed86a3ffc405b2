// Password hashing: Argon2id through libsodium's crypto_pwhash_str, the encoded string stored as
// User::password_hash. Not Django's pbkdf2_sha256 format: hashes from the Django database are not
// carried over, users set new passwords.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace transnotes::auth {

// How hard hashing is, and the hashing itself. Immutable after construction; every method may be
// called from any thread at once.
struct PasswordHashing {
  // libsodium's crypto_pwhash_OPSLIMIT_INTERACTIVE and MEMLIMIT_INTERACTIVE: about 50 ms and
  // 64 MiB per hash on a server core.
  static constexpr unsigned long long kInteractiveOpsLimit = 2;
  static constexpr std::size_t kInteractiveMemLimit = std::size_t{64} << 20;

  // Throws transnotes::Error for limits libsodium refuses, or when libsodium cannot start.
  explicit PasswordHashing(unsigned long long opslimit = kInteractiveOpsLimit,
                           std::size_t memlimit = kInteractiveMemLimit);
  // libsodium's smallest limits (crypto_pwhash_OPSLIMIT_MIN, MEMLIMIT_MIN): for tests only.
  static PasswordHashing fast_for_tests();

  // The Argon2id encoded string ("$argon2id$v=19$m=65536,t=2,p=1$...") of `password`, with a
  // fresh random salt. Throws transnotes::Error when the memory cannot be had.
  std::string hash(std::string_view password) const;
  // Whether `password` is the one `encoded` was made from. An `encoded` that is not an Argon2id
  // string (an account that cannot log in) is false after the same work as a real check.
  bool verify(std::string_view password, const std::string& encoded) const;
  // The same work as verify() against a stored hash, for a username that has no account, so a
  // login answers in about the same time whether the user exists. Always false.
  bool verify_against_dummy(std::string_view password) const;
  // Whether `encoded` was made with other limits than these (rehash it after a good login).
  bool needs_rehash(const std::string& encoded) const;

  unsigned long long opslimit() const { return opslimit_; }
  std::size_t memlimit() const { return memlimit_; }

 private:
  unsigned long long opslimit_;
  std::size_t memlimit_;
  std::string dummy_hash_;  // of a random password nobody knows, made with these limits
};

}  // namespace transnotes::auth
