#include "auth/password_policy.h"

#include <pwquality.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <set>
#include <unordered_map>

#include "domain/errors.h"

namespace transnotes::auth {
namespace {

// UTF-8 to code points, each undecodable byte as U+FFFD (the API layer refuses such text first).
std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    char32_t code = lead;
    if (lead >= 0xc2 && lead <= 0xdf) {
      extra = 1;
      code = lead & 0x1f;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      extra = 2;
      code = lead & 0x0f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      extra = 3;
      code = lead & 0x07;
    } else if (lead >= 0x80) {
      extra = text.size();  // not a lead byte: refused below
    }
    bool ok = i + extra < text.size();
    for (std::size_t k = 1; ok && k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      ok = (next & 0xc0) == 0x80;
      code = (code << 6) | (next & 0x3f);
    }
    if (!ok) {
      out.push_back(U'\uFFFD');
      ++i;
      continue;
    }
    out.push_back(code);
    i += extra + 1;
  }
  return out;
}

// Python's str.lower() for the scripts account data is written in here (Latin, Greek,
// Cyrillic); other characters are kept as they are.
char32_t to_lower(char32_t c) {
  if (c >= U'A' && c <= U'Z') return c + 32;
  if ((c >= 0xc0 && c <= 0xde && c != 0xd7)) return c + 32;  // À..Þ except ×
  if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x138 && c != 0x149 && c != 0x17f) {
    const bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
    if (odd_lower ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;  // Latin Extended-A pairs
    return c;
  }
  if (c >= 0x391 && c <= 0x3ab && c != 0x3a2) return c + 32;  // Α..Ϋ
  if (c >= 0x410 && c <= 0x42f) return c + 32;                // А..Я
  if (c >= 0x400 && c <= 0x40f) return c + 80;                // Ѐ..Џ
  return c;
}

std::u32string lower(std::u32string text) {
  for (auto& c : text) c = to_lower(c);
  return text;
}

// Python's isdigit(): the decimal digits of common scripts and the super- and subscript digits.
bool is_digit(char32_t c) {
  return (c >= U'0' && c <= U'9') || c == 0xb2 || c == 0xb3 || c == 0xb9 ||
         (c >= 0x660 && c <= 0x669) || (c >= 0x6f0 && c <= 0x6f9) || (c >= 0x966 && c <= 0x96f) ||
         c == 0x2070 || (c >= 0x2074 && c <= 0x2079) || (c >= 0x2080 && c <= 0x2089) ||
         (c >= 0xff10 && c <= 0xff19);
}

// re's \w on str: letters, digits and "_". Outside ASCII, everything but the Latin-1 symbols,
// the general punctuation block and spaces counts as a letter.
bool is_word(char32_t c) {
  if (c < 0x80) {
    return (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || (c >= U'0' && c <= U'9') ||
           c == U'_';
  }
  if (c >= 0x80 && c <= 0xbf) return c == 0xaa || c == 0xb5 || c == 0xba || is_digit(c);
  if (c == 0xd7 || c == 0xf7) return false;
  if (c >= 0x2000 && c <= 0x206f) return false;
  if (c == 0x3000 || c == 0xfeff || c == U'\uFFFD') return false;
  return true;
}

// re.split(r"\W+", value) + [value].
std::vector<std::u32string> attribute_parts(const std::u32string& value) {
  std::vector<std::u32string> parts;
  std::u32string current;
  std::size_t i = 0;
  while (i <= value.size()) {
    if (i == value.size() || !is_word(value[i])) {
      parts.push_back(current);
      current.clear();
      while (i < value.size() && !is_word(value[i])) ++i;
      if (i == value.size()) {
        // A trailing separator run leaves an empty last part, as re.split does.
        if (!value.empty() && !is_word(value.back())) parts.push_back({});
        break;
      }
      continue;
    }
    current.push_back(value[i]);
    ++i;
  }
  parts.push_back(value);
  return parts;
}

// Django's exceeds_maximum_length_ratio: a value far shorter than the password cannot be similar
// enough to matter, and quick_ratio would only call it dissimilar more slowly.
bool exceeds_maximum_length_ratio(std::size_t password_length, double max_similarity,
                                  std::size_t value_length) {
  const double length_bound_similarity = max_similarity / 2 * static_cast<double>(password_length);
  return password_length >= 10 * value_length &&
         static_cast<double>(value_length) < length_bound_similarity;
}

bool is_space(char32_t c) {
  return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || c == U'\v' || c == U'\f' ||
         c == 0x1c || c == 0x1d || c == 0x1e || c == 0x1f || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

std::string encode_utf8(const std::u32string& text) {
  std::string out;
  for (char32_t c : text) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return out;
}

bool readable_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && info.st_size > 0;
}

struct SettingsFree {
  void operator()(pwquality_settings_t* settings) const { pwquality_free_settings(settings); }
};

using Settings = std::unique_ptr<pwquality_settings_t, SettingsFree>;

// libpwquality with every check of its own that Django does not make switched off, so what is
// left is cracklib's.
Settings cracklib_only_settings(const std::string& dictionary) {
  Settings settings(pwquality_default_settings());
  if (!settings) throw Error("password policy: libpwquality could not allocate its settings");
  const std::pair<int, int> neutral[] = {
      {PWQ_SETTING_MIN_LENGTH, 0},  // raised to libpwquality's floor of 6; see word_lists
      {PWQ_SETTING_DIG_CREDIT, 0},       {PWQ_SETTING_UP_CREDIT, 0},
      {PWQ_SETTING_LOW_CREDIT, 0},       {PWQ_SETTING_OTH_CREDIT, 0},
      {PWQ_SETTING_MIN_CLASS, 0},        {PWQ_SETTING_MAX_REPEAT, 0},
      {PWQ_SETTING_MAX_CLASS_REPEAT, 0}, {PWQ_SETTING_MAX_SEQUENCE, 0},
      {PWQ_SETTING_GECOS_CHECK, 0},      {PWQ_SETTING_USER_CHECK, 0},
      {PWQ_SETTING_DICT_CHECK, 1},
  };
  for (auto [setting, value] : neutral) {
    if (pwquality_set_int_value(settings.get(), setting, value) != 0) {
      throw Error("password policy: libpwquality refused setting " + std::to_string(setting));
    }
  }
  if (pwquality_set_str_value(settings.get(), PWQ_SETTING_DICT_PATH, dictionary.c_str()) != 0) {
    throw Error("password policy: libpwquality refused the dictionary path");
  }
  return settings;
}

// cracklib's objection to `password` ("" when none, or when libpwquality refused it first for a
// reason of its own, such as under 6 characters or a palindrome).
std::string cracklib_finding(pwquality_settings_t* settings, const std::string& password) {
  void* aux = nullptr;
  const int result = pwquality_check(settings, password.c_str(), nullptr, nullptr, &aux);
  std::string finding;
  if (result == PWQ_ERROR_CRACKLIB_CHECK && aux) finding = static_cast<const char*>(aux);
  char buffer[PWQ_MAX_ERROR_MESSAGE_LEN];
  // Releases `aux` for the codes where libpwquality allocates it.
  pwquality_strerror(buffer, sizeof buffer, result, aux);
  return finding;
}

}  // namespace

double quick_ratio(std::u32string_view a, std::u32string_view b) {
  const std::size_t length = a.size() + b.size();
  if (length == 0) return 1.0;
  std::unordered_map<char32_t, std::size_t> available;
  for (char32_t c : b) ++available[c];
  std::size_t matches = 0;
  for (char32_t c : a) {
    auto it = available.find(c);
    if (it != available.end() && it->second > 0) {
      --it->second;
      ++matches;
    }
  }
  return 2.0 * static_cast<double>(matches) / static_cast<double>(length);
}

struct PasswordPolicy::Dictionary {
  Settings settings;
  // cracklib's findings as it words them in this process's locale, read from its answers to
  // known passwords at startup (so a translated cracklib still maps): the three that mean
  // Django's "too common".
  std::string dictionary_word;
  std::string reversed_dictionary_word;
  std::string simplistic;
  std::vector<std::string> words;  // lower case, sorted
  // pwquality_check opens cracklib's dictionary on every call, and cracklib is not documented
  // to be thread-safe; registrations are rare.
  mutable std::mutex mutex;

  std::string finding(const std::string& password) const {
    std::lock_guard lock(mutex);
    return cracklib_finding(settings.get(), password);
  }
};

PasswordPolicy::PasswordPolicy(PasswordPolicyOptions options)
    : options_(std::move(options)), dictionary_(std::make_unique<Dictionary>()) {
  for (const char* suffix : {".pwd", ".pwi", ".hwm"}) {
    const std::string path = options_.cracklib_dictionary + suffix;
    if (!readable_file(path)) {
      throw Error("password policy: cracklib dictionary file " + path +
                  " is missing or empty (Debian: install cracklib-runtime)");
    }
  }
  Dictionary& dictionary = *dictionary_;
  dictionary.settings = cracklib_only_settings(options_.cracklib_dictionary);
  // Known answers: a dictionary that opens but finds nothing is as bad as one that does not open.
  dictionary.dictionary_word = dictionary.finding("password");
  dictionary.reversed_dictionary_word = dictionary.finding("drowssap");
  dictionary.simplistic = dictionary.finding("abcdefgh");
  const std::string good = dictionary.finding("violet-Harbor-58-kettle");
  const std::set<std::string> distinct = {
      dictionary.dictionary_word, dictionary.reversed_dictionary_word, dictionary.simplistic, ""};
  if (distinct.size() != 4 || !good.empty()) {
    throw Error("password policy: cracklib dictionary " + options_.cracklib_dictionary +
                " cannot be used (for \"password\" it answered \"" + dictionary.dictionary_word +
                "\")");
  }
  if (options_.word_lists.empty()) throw Error("password policy: no word list configured");
  for (const auto& path : options_.word_lists) {
    std::ifstream in(path);
    if (!in) throw Error("password policy: cannot read word list " + path);
    std::string line;
    std::size_t before = dictionary_->words.size();
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      dictionary_->words.push_back(encode_utf8(lower(decode_utf8(line))));
    }
    if (dictionary_->words.size() == before) {
      throw Error("password policy: word list " + path + " is empty");
    }
  }
  std::sort(dictionary_->words.begin(), dictionary_->words.end());
  dictionary_->words.erase(std::unique(dictionary_->words.begin(), dictionary_->words.end()),
                           dictionary_->words.end());
}

PasswordPolicy::~PasswordPolicy() = default;

bool PasswordPolicy::too_similar(std::string_view password, std::string_view attribute) const {
  if (attribute.empty()) return false;
  const std::u32string lowered_password = lower(decode_utf8(password));
  const std::u32string value = lower(decode_utf8(attribute));
  for (const auto& part : attribute_parts(value)) {
    if (exceeds_maximum_length_ratio(lowered_password.size(), options_.max_similarity,
                                     part.size())) {
      continue;
    }
    if (quick_ratio(lowered_password, part) >= options_.max_similarity) return true;
  }
  return false;
}

bool PasswordPolicy::too_common(std::string_view password) const {
  // CommonPasswordValidator compares password.lower().strip().
  std::u32string key = lower(decode_utf8(password));
  while (!key.empty() && is_space(key.back())) key.pop_back();
  const auto first = std::find_if(key.begin(), key.end(), [](char32_t c) { return !is_space(c); });
  key.erase(key.begin(), first);
  if (std::binary_search(dictionary_->words.begin(), dictionary_->words.end(), encode_utf8(key))) {
    return true;
  }
  const std::string finding = dictionary_->finding(std::string(password));
  if (finding.empty()) return false;
  if (finding == dictionary_->dictionary_word || finding == dictionary_->reversed_dictionary_word ||
      finding == dictionary_->simplistic) {
    return true;
  }
  // The dictionary was there at startup; if cracklib cannot open it now ("error loading
  // dictionary"), refuse to judge rather than let every password through.
  for (const char* suffix : {".pwd", ".pwi", ".hwm"}) {
    if (!readable_file(options_.cracklib_dictionary + suffix)) {
      throw Error("password policy: cracklib cannot load its dictionary: " + finding);
    }
  }
  return false;  // cracklib's other findings (too few different characters) are not Django's
}

std::vector<std::string> PasswordPolicy::validate(std::string_view password,
                                                  std::string_view username,
                                                  std::string_view email) const {
  std::vector<std::string> messages;
  // UserAttributeSimilarityValidator stops at the first similar attribute.
  if (too_similar(password, username)) {
    messages.emplace_back("The password is too similar to the username.");
  } else if (too_similar(password, email)) {
    messages.emplace_back("The password is too similar to the email address.");
  }
  if (decode_utf8(password).size() < options_.min_length) {
    messages.push_back("This password is too short. It must contain at least " +
                       std::to_string(options_.min_length) +
                       (options_.min_length == 1 ? " character." : " characters."));
  }
  if (too_common(password)) messages.emplace_back("This password is too common.");
  const std::u32string code_points = decode_utf8(password);
  if (!code_points.empty() && std::all_of(code_points.begin(), code_points.end(), is_digit)) {
    messages.emplace_back("This password is entirely numeric.");
  }
  return messages;
}

}  // namespace transnotes::auth
