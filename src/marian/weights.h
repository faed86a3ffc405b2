// Internal to src/marian: not part of the engine's API; only the engine's own sources include it.
//
// Weights: a Marian checkpoint's parameters bound to the model's structs. fp32 tensors are used
// in place from the mapped model.safetensors; f16/bf16 and misaligned tensors are converted
// into storage the ModelWeights owns. In int8 mode the linear layers also get int8 copies
// (ModelOptions::int8), and the pages of fp32 tensors that are never read again go back to the
// page cache. Immutable after bind_weights, except for the greedy screen built on first use.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "marian/argmax_screen.h"
#include "marian/checkpoint.h"
#include "marian/model.h"
#include "marian/ops.h"
#include "marian/safetensors.h"

namespace transnotes::marian {

struct EncoderLayerWeights {
  ops::Attention self;
  ops::LayerNorm self_ln;
  ops::FeedForward ffn;
  ops::LayerNorm final_ln;
};

struct DecoderLayerWeights {
  ops::Attention self;
  ops::LayerNorm self_ln;
  ops::Attention cross;
  ops::LayerNorm cross_ln;
  ops::FeedForward ffn;
  ops::LayerNorm final_ln;
};

struct ModelWeights {
  std::vector<std::vector<float>> owned;  // converted / realigned tensors
  std::vector<std::vector<int8_t>> owned_q;
  std::vector<int8::PackedWeights> packed;  // int8 mode with VNNI: one per linear layer
  // fp32 mode: greedy argmax over lm_head, built by the first greedy step (beam search, the
  // usual default, never needs its int8 copy of the output projection).
  bool screen_enabled = false;
  mutable std::once_flag screen_once;
  mutable std::unique_ptr<ArgmaxScreen> screen;
  const float* encoder_embed = nullptr;  // [vocab_size, d]
  const float* decoder_embed = nullptr;  // [decoder_vocab_size, d]
  ops::Linear lm_head;                   // [decoder_vocab_size, d] + final_logits_bias
  std::vector<float> positions;          // [max_position_embeddings, d]
  std::vector<EncoderLayerWeights> encoder;
  std::vector<DecoderLayerWeights> decoder;
  ops::Activation act = ops::Activation::kSwish;
  float embed_scale = 1.0f;
};

// Binds every parameter of config's model from `file` (transformers' tensor names; tied
// embeddings and a missing lm_head / final_logits_bias handled as transformers does) and
// prepares the int8 copies options ask for. The result points into `file`, which must outlive
// it. Throws ModelLoadError naming the tensor and its expected shape on any mismatch.
std::unique_ptr<ModelWeights> bind_weights(const SafetensorsFile& file, const MarianConfig& config,
                                           const ModelOptions& options);

}  // namespace transnotes::marian
