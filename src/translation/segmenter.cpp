#include "translation/segmenter.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

namespace transnotes::translation {
namespace {

using Range = std::pair<std::size_t, std::size_t>;  // [begin, end) byte offsets

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026
// Closing marks that stay with the sentence they end: quotes and brackets (ASCII, », ”, ’).
constexpr std::array<std::string_view, 9> kClosers = {
    "\"", "'", ")", "]", "}", "\xC2\xBB", "\xE2\x80\x9D", "\xE2\x80\x99", "\xE2\x80\xBA"};
// Words that end with a period without ending the sentence (compared lower-case, no period).
constexpr std::array<std::string_view, 44> kAbbreviations = {
    "mr",   "mrs",  "ms",  "dr",     "prof", "sr",  "sra", "srta", "jr",   "st",  "vs",
    "e.g",  "i.e",  "cf",  "approx", "no",   "nos", "fig", "figs", "inc",  "ltd", "co",
    "corp", "dept", "vol", "pp",     "jan",  "feb", "mar", "apr",  "jun",  "jul", "aug",
    "sep",  "sept", "oct", "nov",    "dec",  "mt",  "ave", "gen",  "capt", "rev", "hon"};

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

bool starts_with_at(std::string_view text, std::size_t pos, std::string_view prefix) {
  return text.substr(pos, prefix.size()) == prefix;
}

// Length of the sentence terminator at `pos` (".", "!", "?", "…"), 0 if none.
std::size_t terminator_length(std::string_view text, std::size_t pos) {
  const char c = text[pos];
  if (c == '.' || c == '!' || c == '?') return 1;
  if (starts_with_at(text, pos, kEllipsis)) return kEllipsis.size();
  return 0;
}

std::size_t closer_length(std::string_view text, std::size_t pos) {
  for (std::string_view closer : kClosers) {
    if (starts_with_at(text, pos, closer)) return closer.size();
  }
  return 0;
}

// True if the period at `period_pos` belongs to an abbreviation or an initial.
bool ends_abbreviation(std::string_view line, std::size_t period_pos) {
  std::size_t begin = period_pos;
  while (begin > 0 && !is_blank(line[begin - 1])) --begin;
  std::string word;
  for (std::size_t i = begin; i < period_pos; ++i) {
    const char c = line[i];
    if (word.empty() && (c == '(' || c == '"' || c == '\'' || c == '[')) continue;
    word.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  if (word.empty()) return false;
  if (word.size() == 1 && word[0] >= 'a' && word[0] <= 'z') return true;  // initial "J."
  if (word.find('.') != std::string::npos) return true;                   // "e.g", "U.S"
  return std::find(kAbbreviations.begin(), kAbbreviations.end(), word) != kAbbreviations.end();
}

Range trimmed(std::string_view line, std::size_t begin, std::size_t end) {
  while (begin < end && is_blank(line[begin])) ++begin;
  while (end > begin && is_blank(line[end - 1])) --end;
  return {begin, end};
}

// Trimmed, non-empty sentence ranges of one line.
std::vector<Range> sentence_ranges(std::string_view line) {
  std::vector<Range> ranges;
  std::size_t start = 0;
  std::size_t pos = 0;
  const std::size_t size = line.size();
  while (pos < size) {
    const std::size_t term = terminator_length(line, pos);
    if (term == 0) {
      ++pos;
      continue;
    }
    const bool single_period =
        line[pos] == '.' && (pos + 1 >= size || terminator_length(line, pos + 1) == 0);
    const std::size_t run_start = pos;
    std::size_t end = pos + term;
    while (end < size) {
      const std::size_t more = terminator_length(line, end);
      if (more == 0) break;
      end += more;
    }
    while (end < size) {
      const std::size_t closer = closer_length(line, end);
      if (closer == 0) break;
      end += closer;
    }
    pos = end;
    if (end >= size || !is_blank(line[end])) continue;
    std::size_t next = end;
    while (next < size && is_blank(line[next])) ++next;
    if (next >= size) continue;  // only trailing blanks follow: the line's end closes it
    if (line[next] >= 'a' && line[next] <= 'z') continue;
    if (single_period && ends_abbreviation(line, run_start)) continue;
    const Range sentence = trimmed(line, start, end);
    if (sentence.first < sentence.second) ranges.push_back(sentence);
    start = next;
    pos = next;
  }
  const Range last = trimmed(line, start, size);
  if (last.first < last.second) ranges.push_back(last);
  return ranges;
}

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The sentences of one line, each longer one cut into pieces of at most `max_bytes`.
std::vector<Range> bounded_ranges(std::string_view line, std::size_t max_bytes) {
  max_bytes = std::max<std::size_t>(max_bytes, 4);
  std::vector<Range> bounded;
  for (auto [begin, end] : sentence_ranges(line)) {
    while (end - begin > max_bytes) {
      const std::size_t limit = begin + max_bytes;  // a piece may end here, exclusive
      std::size_t cut = limit;
      while (cut > begin && !is_blank(line[cut])) --cut;
      std::size_t next = cut;
      if (cut > begin) {
        while (next < end && is_blank(line[next])) ++next;
        while (cut > begin && is_blank(line[cut - 1])) --cut;
      } else {
        // No whitespace to cut at: cut between characters, never inside one.
        cut = limit;
        while (cut > begin && is_utf8_continuation(line[cut])) --cut;
        if (cut == begin) cut = limit;  // not UTF-8: bytes are all we have
        next = cut;
      }
      bounded.emplace_back(begin, cut);
      begin = next;
    }
    bounded.emplace_back(begin, end);
  }
  return bounded;
}

}  // namespace

std::vector<std::string> split_sentences(std::string_view line, std::size_t max_segment_bytes) {
  std::vector<std::string> sentences;
  for (const auto& [begin, end] : bounded_ranges(line, max_segment_bytes)) {
    sentences.emplace_back(line.substr(begin, end - begin));
  }
  return sentences;
}

Segmentation segment_text(std::string_view text, std::size_t max_segment_bytes) {
  Segmentation result;
  std::string separator;
  std::size_t line_start = 0;
  while (line_start <= text.size()) {
    std::size_t line_end = line_start;
    while (line_end < text.size() && text[line_end] != '\n' && text[line_end] != '\r') ++line_end;
    const std::string_view line = text.substr(line_start, line_end - line_start);
    std::size_t consumed = 0;
    for (const auto& [begin, end] : bounded_ranges(line, max_segment_bytes)) {
      separator.append(line.substr(consumed, begin - consumed));
      result.separators.push_back(std::move(separator));
      separator.clear();
      result.segments.emplace_back(line.substr(begin, end - begin));
      consumed = end;
    }
    separator.append(line.substr(consumed));
    if (line_end >= text.size()) break;
    std::size_t break_length = 1;
    if (text[line_end] == '\r' && line_end + 1 < text.size() && text[line_end + 1] == '\n') {
      break_length = 2;
    }
    separator.append(text.substr(line_end, break_length));
    line_start = line_end + break_length;
  }
  result.separators.push_back(std::move(separator));
  return result;
}

std::string reassemble(const Segmentation& segmentation,
                       const std::vector<std::string>& translated) {
  if (translated.size() != segmentation.segments.size() ||
      segmentation.separators.size() != segmentation.segments.size() + 1) {
    throw std::invalid_argument("reassemble: segment count mismatch");
  }
  std::size_t total = 0;
  for (const auto& part : segmentation.separators) total += part.size();
  for (const auto& part : translated) total += part.size();
  std::string text;
  text.reserve(total);
  for (std::size_t i = 0; i < translated.size(); ++i) {
    text += segmentation.separators[i];
    text += translated[i];
  }
  text += segmentation.separators.back();
  return text;
}

}  // namespace transnotes::translation
