// MarianMT checkpoint metadata from a Hugging Face model folder: config.json (MarianConfig) and
// generation_config.json (or the generation fields of config.json when that file is absent).
// Every loading problem (missing/malformed file, unsupported setting, wrong tensor shape) is
// reported as ModelLoadError whose message names the file (and tensor).
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "domain/errors.h"

namespace transnotes::marian {

class ModelLoadError : public transnotes::TranslationFailed {
 public:
  using TranslationFailed::TranslationFailed;
};

struct MarianConfig {
  int d_model = 0;
  int encoder_layers = 0;
  int decoder_layers = 0;
  int encoder_attention_heads = 0;
  int decoder_attention_heads = 0;
  int encoder_ffn_dim = 0;
  int decoder_ffn_dim = 0;
  std::string activation_function;  // swish/silu, gelu, gelu_new, gelu_fast, relu, ...
  bool scale_embedding = false;
  int max_position_embeddings = 512;
  int vocab_size = 0;          // encoder (source) vocabulary
  int decoder_vocab_size = 0;  // == vocab_size unless separate vocabularies
  bool share_encoder_decoder_embeddings = true;
  int pad_token_id = 0;
  int eos_token_id = 0;
  int decoder_start_token_id = 0;
};

// What generate() uses by default; mirrors Hugging Face GenerationConfig fields.
struct GenerationConfig {
  int max_length = 20;  // HF default when nothing is configured; counts the start token
  int num_beams = 1;
  float length_penalty = 1.0f;
  bool early_stopping = false;
  std::vector<std::vector<int>> bad_words_ids;
  int forced_eos_token_id = -1;  // -1: none
  bool renormalize_logits = false;
  int eos_token_id = 0;
  int pad_token_id = 0;
  int decoder_start_token_id = 0;
};

// Parses <dir>/config.json. Throws ModelLoadError.
MarianConfig load_marian_config(const std::filesystem::path& model_dir);
// Parses <dir>/generation_config.json if present, else generation fields of config.json.
GenerationConfig load_generation_config(const std::filesystem::path& model_dir,
                                        const MarianConfig& config);

}  // namespace transnotes::marian
