// Which passwords registration accepts: Django's four default validators, in Django's order and
// with its messages. Django's own list of 20,000 common passwords is replaced by cracklib's
// dictionary (through libpwquality), which refuses more: any password cracklib finds to be based
// on a dictionary word.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace transnotes::auth {

struct PasswordPolicyOptions {
  // MinimumLengthValidator's min_length.
  std::size_t min_length = 8;
  // UserAttributeSimilarityValidator's max_similarity.
  double max_similarity = 0.7;
  // cracklib's packed dictionary, without the .pwd/.pwi/.hwm suffix (Debian's cracklib-runtime).
  std::string cracklib_dictionary = "/var/cache/cracklib/cracklib_dict";
  // The word lists it was packed from (one word a line), for the exact matches the packed
  // dictionary's own checks let through: words under 6 characters, with under 5 different
  // characters, or palindromes.
  std::vector<std::string> word_lists = {"/usr/share/dict/cracklib-small"};
};

// Immutable after construction; validate may be called from any thread at once.
class PasswordPolicy {
 public:
  // Throws transnotes::Error when the dictionary or a word list cannot be read, so a service
  // without them refuses to start instead of accepting every password.
  explicit PasswordPolicy(PasswordPolicyOptions options = {});
  ~PasswordPolicy();
  PasswordPolicy(const PasswordPolicy&) = delete;
  PasswordPolicy& operator=(const PasswordPolicy&) = delete;

  // Every validator's refusal, in Django's order (similarity, length, common, numeric); empty:
  // the password is acceptable. `username` and `email` are the account's (either may be empty).
  // Throws transnotes::Error if the dictionary became unreadable since construction.
  std::vector<std::string> validate(std::string_view password, std::string_view username,
                                    std::string_view email) const;

 private:
  struct Dictionary;
  bool too_similar(std::string_view password, std::string_view attribute) const;
  bool too_common(std::string_view password) const;

  PasswordPolicyOptions options_;
  std::unique_ptr<Dictionary> dictionary_;
};

// difflib.SequenceMatcher(a=a, b=b).quick_ratio() over the Unicode code points of two UTF-8
// strings: 2 * (characters in common, counted with multiplicity) / (len(a) + len(b)); 1.0 when
// both are empty.
double quick_ratio(std::u32string_view a, std::u32string_view b);

}  // namespace transnotes::auth
