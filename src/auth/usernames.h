// The account fields registration checks besides the password: the username and the email
// address, with the messages Django REST Framework gives for Django's User model.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace transnotes::auth {

inline constexpr std::size_t kMaxEmailLength = 254;  // Django's User.email max_length

// Every message for `username` (as received, already trimmed), in DRF's order: blank alone;
// otherwise the character check, then the length check, then NUL characters. Empty: valid.
//
// Usernames are 1 to 150 characters of ASCII letters, digits and @ . + - _ . Django's default
// UnicodeUsernameValidator also allows letters of other scripts; ASCII only makes the
// case-insensitive uniqueness of usernames well defined (ASCII has one case folding, Unicode
// several) and rules out look-alike names. The refusal keeps the Unicode validator's message,
// which clients of the Django service know. DRF puts the uniqueness check ("A user with that
// username already exists.") between the character and the length checks.
std::vector<std::string> validate_username(std::string_view username);

// Every message for an email address, in DRF's order: the length check (254 characters), NUL
// characters, then Django's EmailValidator ("Enter a valid email address."). An empty address
// is valid (User.email is optional).
std::vector<std::string> validate_email(std::string_view email);

}  // namespace transnotes::auth
