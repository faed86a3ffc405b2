#include "auth/passwords.h"

#include <sodium.h>

#include <array>

#include "auth/sodium_ready.h"
#include "domain/errors.h"

namespace transnotes::auth {

static_assert(PasswordHashing::kInteractiveOpsLimit == crypto_pwhash_OPSLIMIT_INTERACTIVE);
static_assert(PasswordHashing::kInteractiveMemLimit == crypto_pwhash_MEMLIMIT_INTERACTIVE);

namespace {

bool is_argon2id(const std::string& encoded) {
  return encoded.rfind(crypto_pwhash_argon2id_STRPREFIX, 0) == 0 &&
         encoded.size() < crypto_pwhash_STRBYTES;
}

}  // namespace

PasswordHashing::PasswordHashing(unsigned long long opslimit, std::size_t memlimit)
    : opslimit_(opslimit), memlimit_(memlimit) {
  ensure_sodium_ready();
  if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > crypto_pwhash_OPSLIMIT_MAX ||
      memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > crypto_pwhash_MEMLIMIT_MAX) {
    throw Error("password hashing limits out of libsodium's range");
  }
  std::array<unsigned char, 32> secret{};
  randombytes_buf(secret.data(), secret.size());
  dummy_hash_ = hash(std::string_view(reinterpret_cast<const char*>(secret.data()), secret.size()));
  sodium_memzero(secret.data(), secret.size());
}

PasswordHashing PasswordHashing::fast_for_tests() {
  return PasswordHashing(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
}

std::string PasswordHashing::hash(std::string_view password) const {
  std::array<char, crypto_pwhash_STRBYTES> out{};
  if (crypto_pwhash_str_alg(out.data(), password.data(), password.size(), opslimit_, memlimit_,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw Error("password hashing ran out of memory");
  }
  return std::string(out.data());
}

bool PasswordHashing::verify(std::string_view password, const std::string& encoded) const {
  // An unusable stored hash still costs a full check, so it does not stand out by its speed.
  if (!is_argon2id(encoded)) return verify_against_dummy(password);
  return crypto_pwhash_str_verify(encoded.c_str(), password.data(), password.size()) == 0;
}

bool PasswordHashing::verify_against_dummy(std::string_view password) const {
  // The dummy's password is 32 random bytes nobody kept, so this fails, after a real check.
  [[maybe_unused]] const int never_zero =
      crypto_pwhash_str_verify(dummy_hash_.c_str(), password.data(), password.size());
  return false;
}

bool PasswordHashing::needs_rehash(const std::string& encoded) const {
  if (!is_argon2id(encoded)) return true;
  return crypto_pwhash_str_needs_rehash(encoded.c_str(), opslimit_, memlimit_) != 0;
}

}  // namespace transnotes::auth
