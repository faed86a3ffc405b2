// Splits a text into translatable segments (sentences, never spanning a line break) and the
// exact separators between them, so translated segments can be put back into the original
// layout. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace transnotes {

// A text cut into segments and separators.
// Invariant: separators.size() == segments.size() + 1 and
//   separators[0] + segments[0] + separators[1] + ... + segments[n-1] + separators[n] == text.
// Every segment is non-empty, contains no '\n' or '\r', and has no leading or trailing
// whitespace; all whitespace and line breaks (LF, CRLF, CR) live in the separators.
struct Segmentation {
  std::vector<std::string> segments;
  std::vector<std::string> separators;
};

// Cuts `text` into lines, then each line into sentences. A sentence ends after '.', '!', '?'
// or '…' (with any closing quotes/brackets) followed by whitespace, unless the next word starts
// with a lower-case ASCII letter or the period ends a known abbreviation ("Mr.", "e.g.") or an
// initial ("J."). Decimals ("3.5") never split because no whitespace follows the period.
Segmentation segment_text(std::string_view text);

// Splits one line (no line breaks) into trimmed sentences; whitespace between them is dropped.
std::vector<std::string> split_sentences(std::string_view line);

// Joins `translated` (one entry per segment, same order) with the separators of `segmentation`.
// Throws std::invalid_argument if the sizes differ.
std::string reassemble(const Segmentation& segmentation,
                       const std::vector<std::string>& translated);

}  // namespace transnotes
