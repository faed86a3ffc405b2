// Text in, text out for one MarianMT model folder: tokenizer + model + generate().
// Thread-safe; one loaded copy of the weights serves all callers.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "marian/generate.h"
#include "marian/model.h"
#include "marian/tokenizer.h"

namespace transnotes::marian {

struct MarianTranslatorOptions {
  ModelOptions model;
  // Unset fields fall back to generation_config.json.
  std::optional<int> num_beams;
  std::optional<int> max_length;
  // Sentences are sorted by length and grouped so that rows*longest <= max_batch_tokens.
  int max_batch_tokens = 4096;
  // Source texts longer than this many tokens (with </s>) are split (split_source_pieces) and
  // the pieces translated one by one, never truncated; 0 = max_position_embeddings.
  int max_source_tokens = 0;
};

// Splits a source text's pieces (MarianTokenizer::pieces, without </s>) into consecutive runs
// that each fit max_tokens once </s> is added, so that no token is dropped. A leading ">>xx<<"
// target-language token is repeated at the head of every run. A run ends before a word-initial
// piece ("▁...") when its second half has one, else at the limit (a word longer than half a
// run). Pieces that fit are returned as one run. Throws TranslationFailed when max_tokens leaves
// no room for a piece.
std::vector<std::vector<std::string>> split_source_pieces(const std::vector<std::string>& pieces,
                                                          int max_tokens);

// Loads model_dir exactly as a MarianTranslator does (config and generation config, vocabularies,
// sentencepiece models, every tensor's name, dtype, shape and bounds) and lets it go: the check
// `models pull` runs before accepting a download. Throws ModelLoadError naming file and field.
void check_checkpoint(const std::filesystem::path& model_dir);

class MarianTranslator {
 public:
  // Throws ModelLoadError.
  MarianTranslator(const std::filesystem::path& model_dir,
                   const MarianTranslatorOptions& options = {});

  // Each text is translated as one sequence (or, beyond the model's positions, as the runs of
  // split_source_pieces joined by a space); result[i] belongs to texts[i]. Empty or
  // whitespace-only input gives "". Thread-safe.
  std::vector<std::string> translate(const std::vector<std::string>& texts) const;
  std::vector<std::string> translate(const std::vector<std::string>& texts,
                                     const GenerateOptions& options) const;
  // Splits text on '\n', translates each non-blank line as a whole sequence, rejoins.
  std::string translate_lines(const std::string& text) const;

  const MarianModel& model() const { return *model_; }
  const MarianTokenizer& tokenizer() const { return tokenizer_; }
  const GenerateOptions& default_options() const { return defaults_; }

 private:
  std::shared_ptr<const MarianModel> model_;
  MarianTokenizer tokenizer_;
  GenerateOptions defaults_;
  MarianTranslatorOptions options_;
};

}  // namespace transnotes::marian
