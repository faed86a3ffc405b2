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

struct TranslatorOptions {
  ModelOptions model;
  // Unset fields fall back to generation_config.json.
  std::optional<int> num_beams;
  std::optional<int> max_length;
  // Sentences are sorted by length and grouped so that rows*longest <= max_batch_tokens.
  int max_batch_tokens = 4096;
  // Source rows longer than this are truncated (keeping </s>); 0 = max_position_embeddings.
  int max_source_tokens = 0;
};

class Translator {
 public:
  // Throws ModelLoadError.
  Translator(const std::filesystem::path& model_dir, const TranslatorOptions& options = {});

  // Each text is translated as one sequence; result[i] belongs to texts[i]. Empty or
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
  TranslatorOptions options_;
};

}  // namespace transnotes::marian
