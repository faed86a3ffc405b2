#include "auth/usernames.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "domain/model.h"

namespace transnotes::auth {
namespace {

constexpr const char* kInvalidUsername =
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ "
    "characters.";
constexpr const char* kInvalidEmail = "Enter a valid email address.";
constexpr const char* kNullCharacters = "Null characters are not allowed.";
// The whole address, RFC 3696 section 3 (Django checks it before the parts).
constexpr std::size_t kMaxEmailAddressSyntaxLength = 320;

// Characters, as Python's len() counts them: UTF-8 lead bytes.
std::size_t character_count(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  }));
}

bool is_ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string too_long(std::size_t limit) {
  return "Ensure this field has no more than " + std::to_string(limit) + " characters.";
}

// The dot-atom form of Django's user_regex: atoms of letters, digits and !#$%&'*+/=?^_`{}|~-
// joined by single dots.
bool is_dot_atom(std::string_view local) {
  static constexpr std::string_view kAtomSymbols = "-!#$%&'*+/=?^_`{}|~";
  if (local.empty() || local.front() == '.' || local.back() == '.') return false;
  char previous = '\0';
  for (char c : local) {
    if (c == '.') {
      if (previous == '.') return false;
    } else if (!is_ascii_alnum(c) && kAtomSymbols.find(c) == std::string_view::npos) {
      return false;
    }
    previous = c;
  }
  return true;
}

// The quoted-string form of Django's user_regex: "..." of printable ASCII and control
// characters except tab, CR, LF, space and NUL, with " and \ only escaped.
bool is_quoted_string(std::string_view local) {
  if (local.size() < 2 || local.front() != '"' || local.back() != '"') return false;
  const std::string_view inside = local.substr(1, local.size() - 2);
  for (std::size_t i = 0; i < inside.size(); ++i) {
    const auto c = static_cast<unsigned char>(inside[i]);
    if (c == '\\') {
      if (++i == inside.size()) return false;
      const auto escaped = static_cast<unsigned char>(inside[i]);
      if (escaped == 0 || escaped == '\n' || escaped == '\r' || escaped > 0x7f) return false;
    } else if (c == 0 || c == '\t' || c == '\n' || c == '\r' || c == ' ' || c == '"' || c > 0x7f) {
      return false;
    }
  }
  return true;
}

// A label character. Bytes of non-ASCII letters count as letters: Django retries such a domain
// in its IDNA (punycode) form, which is all ASCII letters and digits.
bool is_label_char(char c) { return is_ascii_alnum(c) || static_cast<unsigned char>(c) >= 0x80; }

// Django's domain_regex: labels of 1 to 63 letters and digits with inner hyphens, each followed
// by a dot, then a top-level label of 2 to 63 letters, digits and hyphens not ending in one.
bool is_domain_name(std::string_view domain) {
  const auto last_dot = domain.rfind('.');
  if (last_dot == std::string_view::npos) return false;
  const std::string_view top = domain.substr(last_dot + 1);
  if (top.size() < 2 || top.size() > 63 || top.back() == '-') return false;
  if (!std::all_of(top.begin(), top.end(), [](char c) { return is_label_char(c) || c == '-'; })) {
    return false;
  }
  std::string_view rest = domain.substr(0, last_dot);
  while (true) {
    const auto dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63 || !is_label_char(label.front()) ||
        !is_label_char(label.back()) || !std::all_of(label.begin(), label.end(), [](char c) {
          return is_label_char(c) || c == '-';
        })) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    rest = rest.substr(dot + 1);
  }
}

// Django's literal_regex with validate_ipv46_address: [IPv4] or [IPv6].
bool is_address_literal(std::string_view domain) {
  if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return false;
  const std::string address(domain.substr(1, domain.size() - 2));
  if (!std::all_of(address.begin(), address.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
      })) {
    return false;
  }
  unsigned char buffer[16];
  return inet_pton(AF_INET, address.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, address.c_str(), buffer) == 1;
}

bool is_valid_email(std::string_view email) {
  const auto at = email.rfind('@');
  if (at == std::string_view::npos || character_count(email) > kMaxEmailAddressSyntaxLength) {
    return false;
  }
  const std::string_view local = email.substr(0, at);
  const std::string_view domain = email.substr(at + 1);
  if (!is_dot_atom(local) && !is_quoted_string(local)) return false;
  return domain == "localhost" || is_domain_name(domain) || is_address_literal(domain);
}

}  // namespace

std::vector<std::string> validate_username(std::string_view username) {
  if (username.empty()) return {"This field may not be blank."};
  std::vector<std::string> messages;
  const bool allowed = std::all_of(username.begin(), username.end(), [](char c) {
    return is_ascii_alnum(c) || c == '@' || c == '.' || c == '+' || c == '-' || c == '_';
  });
  if (!allowed) messages.emplace_back(kInvalidUsername);
  if (character_count(username) > kMaxUsernameLength) {
    messages.push_back(too_long(kMaxUsernameLength));
  }
  if (username.find('\0') != std::string_view::npos) messages.emplace_back(kNullCharacters);
  return messages;
}

std::vector<std::string> validate_email(std::string_view email) {
  if (email.empty()) return {};
  std::vector<std::string> messages;
  if (character_count(email) > kMaxEmailLength) messages.push_back(too_long(kMaxEmailLength));
  if (email.find('\0') != std::string_view::npos) messages.emplace_back(kNullCharacters);
  if (!is_valid_email(email)) messages.emplace_back(kInvalidEmail);
  return messages;
}

}  // namespace transnotes::auth
