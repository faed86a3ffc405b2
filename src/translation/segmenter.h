// Splits a text into translatable segments (sentences, never spanning a line break) and the
// exact separators between them, so translated segments can be put back into the original
// layout. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace transnotes::translation {

// A text cut into segments and separators.
// Invariant: separators.size() == segments.size() + 1 and
//   separators[0] + segments[0] + separators[1] + ... + segments[n-1] + separators[n] == text.
// Every segment is non-empty, contains no '\n' or '\r', and has no leading or trailing
// whitespace; all whitespace and line breaks (LF, CRLF, CR) live in the separators.
struct Segmentation {
  std::vector<std::string> segments;
  std::vector<std::string> separators;
};

// Longest segment handed to an engine by default, in bytes. Engines' cost grows faster than
// linearly with a segment's length (Apertium spent 30 s of CPU on one 200,000-character
// "sentence"), and real sentences are far shorter.
inline constexpr std::size_t kMaxSegmentBytes = 1000;

// Cuts `text` into lines, then each line into sentences. A sentence ends after '.', '!', '?'
// or '…' (with any closing quotes/brackets) followed by whitespace, unless the next word starts
// with a lower-case ASCII letter or the period ends a known abbreviation ("Mr.", "e.g.") or an
// initial ("J."). Decimals ("3.5") never split because no whitespace follows the period.
// A sentence longer than `max_segment_bytes` (at least 4, so any UTF-8 character fits) is cut
// into pieces of at most that many bytes: at the last whitespace that fits, or, in a run without
// whitespace, at the last character boundary that fits. Nothing is ever dropped.
Segmentation segment_text(std::string_view text, std::size_t max_segment_bytes = kMaxSegmentBytes);

// Splits one line (no line breaks) into trimmed sentences, bounded as segment_text bounds them;
// whitespace between them is dropped.
std::vector<std::string> split_sentences(std::string_view line,
                                         std::size_t max_segment_bytes = kMaxSegmentBytes);

// Joins `translated` (one entry per segment, same order) with the separators of `segmentation`.
// Throws std::invalid_argument if the sizes differ.
std::string reassemble(const Segmentation& segmentation,
                       const std::vector<std::string>& translated);

}  // namespace transnotes::translation
