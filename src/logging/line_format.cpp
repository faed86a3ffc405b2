#include "logging/line_format.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>

namespace transnotes::logging {

using namespace std::string_view_literals;

namespace {

enum class Escape { json, text_message };

// Length of the valid UTF-8 sequence starting at s[i] (2..4), or 0 when it is not one
// (Unicode Table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto in = [](unsigned char b, unsigned char lo, unsigned char hi) {
    return b >= lo && b <= hi;
  };
  const unsigned char lead = byte(0);
  const std::size_t left = s.size() - i;
  if (in(lead, 0xC2, 0xDF)) return left >= 2 && in(byte(1), 0x80, 0xBF) ? 2 : 0;
  if (in(lead, 0xE0, 0xEF)) {
    if (left < 3) return 0;
    const unsigned char lo = lead == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = lead == 0xED ? 0x9F : 0xBF;
    return in(byte(1), lo, hi) && in(byte(2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in(lead, 0xF0, 0xF4)) {
    if (left < 4) return 0;
    const unsigned char lo = lead == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = lead == 0xF4 ? 0x8F : 0xBF;
    return in(byte(1), lo, hi) && in(byte(2), 0x80, 0xBF) && in(byte(3), 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

// Per byte: true when it is copied as is (a table: this runs over every byte of every line).
using PlainBytes = std::array<bool, 256>;
constexpr PlainBytes plain_bytes(Escape mode) {
  PlainBytes plain{};
  for (int c = 0x20; c < 0x7F; ++c) plain[static_cast<std::size_t>(c)] = true;
  if (mode == Escape::json) {
    plain['"'] = false;
    plain['\\'] = false;
  }
  return plain;
}
constexpr PlainBytes kPlainInJson = plain_bytes(Escape::json);
constexpr PlainBytes kPlainInTextMessage = plain_bytes(Escape::text_message);

std::uint64_t load_word(const char* bytes) {
  std::uint64_t word;
  std::memcpy(&word, bytes, sizeof word);
  return word;
}

// Eight bytes at once, as the table above would judge them one by one (the checks look at each
// byte of the word; byte order does not matter).
bool all_plain(std::uint64_t word, Escape mode) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  // Non-zero exactly when some byte of x is below n (for n up to 128).
  const auto has_byte_below = [](std::uint64_t x, std::uint64_t n) {
    return (x - kOnes * n) & ~x & kHighBits;
  };
  const auto has_byte = [&](std::uint64_t x, unsigned char byte) {
    return has_byte_below(x ^ (kOnes * byte), 1);
  };
  std::uint64_t special = has_byte_below(word, 0x20) | (word & kHighBits) | has_byte(word, 0x7F);
  if (mode == Escape::json) special |= has_byte(word, '"') | has_byte(word, '\\');
  return special == 0;
}

void append_escaped(std::string& out, std::string_view s, Escape mode) {
  static constexpr char kHex[] = "0123456789abcdef";
  const PlainBytes& plain = mode == Escape::json ? kPlainInJson : kPlainInTextMessage;
  std::size_t i = 0;
  while (i < s.size()) {
    // Plain ASCII runs are the common case: copy them whole.
    std::size_t run = i;
    while (run + 8 <= s.size() && all_plain(load_word(s.data() + run), mode)) run += 8;
    while (run < s.size() && plain[static_cast<unsigned char>(s[run])]) ++run;
    out.append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (const auto n = utf8_sequence_length(s, i)) {
        out.append(s.data() + i, n);
        i += n;
      } else {
        out.append("\\ufffd"sv);
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"':
        out.append("\\\""sv);
        break;
      case '\\':
        out.append("\\\\"sv);
        break;
      case '\n':
        out.append("\\n"sv);
        break;
      case '\r':
        out.append("\\r"sv);
        break;
      case '\t':
        out.append("\\t"sv);
        break;
      default:  // other controls and DEL
        out.append("\\u00"sv);
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
    ++i;
  }
}

bool is_bare_text_value(std::string_view value) {
  if (value.empty()) return false;
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '\\' || c == '=') return false;
  }
  return true;
}

void append_digits(std::string& out, long value, int width) {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < 16);
  for (int pad = n; pad < width; ++pad) out.push_back('0');
  while (n > 0) out.push_back(digits[--n]);
}

// The date and time to the second change once a second: each thread keeps the last one rendered.
struct SecondCache {
  std::time_t second = -1;
  char text[32] = {};
  std::size_t size = 0;
};

void append_second(std::string& out, SecondCache& cache, std::time_t second, bool utc) {
  if (second != cache.second) {
    std::tm parts{};
    if (utc) {
      gmtime_r(&second, &parts);
    } else {
      localtime_r(&second, &parts);
    }
    cache.size = std::strftime(cache.text, sizeof cache.text,
                               utc ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &parts);
    cache.second = second;
  }
  out.append(cache.text, cache.size);
}

}  // namespace

void append_json_string(std::string& out, std::string_view value) {
  out.push_back('"');
  append_escaped(out, value, Escape::json);
  out.push_back('"');
}

void append_text_value(std::string& out, std::string_view value) {
  if (is_bare_text_value(value)) {
    out.append(value);
  } else {
    append_json_string(out, value);
  }
}

void append_text_message(std::string& out, std::string_view message) {
  append_escaped(out, message, Escape::text_message);
}

void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point when) {
  thread_local SecondCache cache;
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
  // Floor division, so that instants before 1970 still render (tests, clocks set wrong).
  auto second = micros / 1'000'000;
  auto fraction = micros % 1'000'000;
  if (fraction < 0) {
    fraction += 1'000'000;
    --second;
  }
  append_second(out, cache, static_cast<std::time_t>(second), true);
  out.push_back('.');
  append_digits(out, static_cast<long>(fraction), 6);
  out.push_back('Z');
}

void append_local_timestamp(std::string& out, std::chrono::system_clock::time_point when) {
  thread_local SecondCache cache;
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
  auto second = millis / 1000;
  auto fraction = millis % 1000;
  if (fraction < 0) {
    fraction += 1000;
    --second;
  }
  append_second(out, cache, static_cast<std::time_t>(second), false);
  out.push_back('.');
  append_digits(out, static_cast<long>(fraction), 3);
}

std::string_view level_colour(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "\033[37m";
    case spdlog::level::debug:
      return "\033[36m";
    case spdlog::level::info:
      return "\033[32m";
    case spdlog::level::warn:
      return "\033[33m\033[1m";
    case spdlog::level::err:
      return "\033[31m\033[1m";
    case spdlog::level::critical:
      return "\033[1m\033[41m";
    default:
      return "";
  }
}

LogOutput::LogOutput(int fd) : fd_(fd), is_terminal_(::isatty(fd) == 1) {}

void LogOutput::write(std::string_view bytes) {
  std::lock_guard lock(mutex_);
  write_locked(bytes);
}

void LogOutput::write_locked(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report it: the log itself is what failed
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace transnotes::logging
