// generate() as Hugging Face transformers does it for MarianMTModel: greedy search
// (num_beams == 1) or beam search (HF BeamSearchScorer incl. early_stopping heuristic),
// with the checkpoint's logits processors: bad_words_ids, forced_eos_token_id at
// max_length-1, min_new_tokens (EOS suppressed), renormalize_logits.
// Thread-safe (the model is const; each call owns its state).
#pragma once

#include <vector>

#include "marian/model.h"

namespace transnotes::marian {

struct GenerateOptions {
  int num_beams = 1;
  int max_length = 20;     // counts the decoder start token (HF semantics)
  int max_new_tokens = 0;  // > 0 overrides max_length with 1 + max_new_tokens
  int min_new_tokens = 0;  // EOS forbidden until this many tokens were generated
  float length_penalty = 1.0f;
  bool early_stopping = false;

  // Defaults from the model's generation_config.json (num_beams, max_length, ...).
  static GenerateOptions from_model(const MarianModel& model);
};

struct GenerateResult {
  // Starts with decoder_start_token_id, ends with </s> unless cut by max_length; no padding.
  std::vector<int> ids;
  float score = 0.0f;  // beam: HF sequences_score; greedy: 0
};

// input_ids: unpadded source rows, each ending with </s>. Returns one result per row.
std::vector<GenerateResult> generate(const MarianModel& model,
                                     const std::vector<std::vector<int>>& input_ids,
                                     const GenerateOptions& options);

}  // namespace transnotes::marian
