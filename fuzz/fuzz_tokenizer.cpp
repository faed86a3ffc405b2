// Fuzzes the SentencePiece-facing tokenizer (marian/tokenizer.h) of the tiny-en-es fixture with
// arbitrary bytes as source text: pieces, ids, decoding, the split of long sources into runs that
// fit the model (split_source_pieces), and one greedy translation of the text.
//
// Input: one byte, then the text. The byte's low six bits set the run length for
// split_source_pieces (plus 1); when both high bits are set a text of up to kMaxTranslatedBytes
// is also translated (a translation costs as much as a hundred tokenizations, so only some inputs
// pay for it; long texts split into runs are fuzzed by the tokenization part).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "domain/errors.h"
#include "fuzz_support.h"
#include "marian/tokenizer.h"
#include "marian/translator.h"

namespace {

using namespace transnotes;

constexpr std::size_t kMaxTranslatedBytes = 160;

const marian::MarianTranslator& translator() {
  static const marian::MarianTranslator loaded = [] {
    marian::MarianTranslatorOptions options;
    options.model.num_threads = 1;
    options.num_beams = 1;
    options.max_length = 4;
    return marian::MarianTranslator(fuzz::tiny_checkpoint(), options);
  }();
  return loaded;
}

// Whether `runs` hold exactly `pieces`, in order, with a leading language token repeated at the
// head of every run: split_source_pieces must never drop, duplicate or reorder a piece.
bool runs_hold_pieces(const std::vector<std::vector<std::string>>& runs,
                      const std::vector<std::string>& pieces, int max_tokens) {
  if (runs.size() == 1 && runs[0] == pieces) return true;
  const bool prefixed = !pieces.empty() && pieces[0].size() > 4 && pieces[0].rfind(">>", 0) == 0 &&
                        pieces[0].substr(pieces[0].size() - 2) == "<<";
  std::vector<std::string> joined;
  if (prefixed) joined.push_back(pieces[0]);
  for (const auto& run : runs) {
    if (static_cast<int>(run.size()) + 1 > max_tokens) return false;  // + </s>
    std::size_t first = 0;
    if (prefixed) {
      if (run.empty() || run[0] != pieces[0]) return false;
      first = 1;
    }
    joined.insert(joined.end(), run.begin() + static_cast<long>(first), run.end());
  }
  return joined == pieces;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& t = translator();
  const auto& tokenizer = t.tokenizer();
  const int max_tokens = data[0] % 64 + 1;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto pieces = tokenizer.pieces(text);
    const auto ids = tokenizer.encode_pieces(pieces);
    if (ids.size() != pieces.size() + 1 || ids.back() != tokenizer.eos_id()) __builtin_trap();
    for (int id : ids)
      if (id < 0 || id >= t.model().config().vocab_size) __builtin_trap();
    tokenizer.decode(ids);
    try {
      const auto runs = marian::split_source_pieces(pieces, max_tokens);
      if (!runs_hold_pieces(runs, pieces, max_tokens)) __builtin_trap();
    } catch (const TranslationFailed&) {
      // Too few positions for a language token and a piece: refused, as documented.
    }
    if (data[0] >= 0xC0 && text.size() <= kMaxTranslatedBytes) t.translate({text});
  } catch (const TranslationFailed&) {
  }
  return 0;
}
