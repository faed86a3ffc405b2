// MarianMTModel forward pass (Hugging Face transformers semantics) on the CPU with OpenBLAS.
// A MarianModel is immutable after load() and may be shared by any number of threads; all
// per-call state lives in EncoderOutput / DecoderState objects owned by the caller.
// The layers below it, internal to src/marian: weights.h (binding the checkpoint's tensors),
// ops.h (layer norm, attention, feed-forward, linear layers), kernels.h (SIMD primitives).
// fp32 tensors are used in place from the mmap'ed model.safetensors; f16/bf16 are converted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "marian/checkpoint.h"

namespace transnotes::marian {

class SafetensorsFile;
class ArgmaxScreen;

struct ModelOptions {
  // Threads that quantize weights at load in int8 mode; 0 = one per hardware thread. Inference
  // threads are a process-wide setting that load never touches (set_inference_threads, parallel.h).
  int num_threads = 0;
  // int8 inference. On CPUs with AVX-512 VNNI every linear layer (encoder, decoder, output
  // projection) is quantized at load (symmetric int8 per output row, packed for vpdpbusd) and
  // multiplied with per-row uint8-quantized activations (marian/int8_gemm.h); the fp32 pages of
  // those weights are then released from RSS. Elsewhere: weight-only int8 copies of the decoder
  // linears and the output projection, used by the AVX2 kernels when <= 64 rows are multiplied.
  // Results differ slightly from fp32 (not bit-exact). Off by default.
  bool int8 = false;
  // int8 mode only: use the AVX-512 VNNI kernel where the CPU has it. false selects the
  // weight-only int8 path of CPUs without VNNI (for comparisons and tests of that path).
  bool int8_vnni = true;
  // fp32 mode on CPUs with AVX-512 VNNI: greedy steps pick each token through an ArgmaxScreen
  // (marian/argmax_screen.h), i.e. the argmax of the fp32 logits with only the few logits that
  // can be the largest (1-2 of 58k in bench/mt) computed in fp32 after an int8 pass. Costs an
  // int8 copy of the output projection (a quarter of its fp32 size), made by the first greedy
  // step. false: every logit in fp32.
  bool greedy_screen = true;
};

// Encoder output for a batch of unpadded source rows (padded internally to src_len).
struct EncoderOutput {
  int batch = 0;
  int src_len = 0;
  int d_model = 0;
  std::vector<int> lengths;   // real tokens per row
  std::vector<float> hidden;  // [batch, src_len, d_model]; padded positions hold garbage
};

// Per-call decoder state of one batch of hypotheses: the self-attention cache, the
// cross-attention keys/values of their source rows and scratch buffers. Opaque: created by
// MarianModel::start_decoder and read or changed only through MarianModel's functions. Not
// thread-safe: one state serves one decoding loop at a time.
struct DecoderState;
struct DecoderStateDeleter {
  void operator()(DecoderState* state) const;
};
using DecoderStatePtr = std::unique_ptr<DecoderState, DecoderStateDeleter>;

// The bound parameters of a model (internal to src/marian: weights.h).
struct ModelWeights;

class MarianModel {
 public:
  // Loads config.json, generation_config.json, model.safetensors from a HF model folder.
  // Throws ModelLoadError naming the file/tensor on any problem.
  static std::shared_ptr<const MarianModel> load(const std::filesystem::path& model_dir,
                                                 const ModelOptions& options = {});
  ~MarianModel();

  const MarianConfig& config() const { return config_; }
  const GenerationConfig& generation_config() const { return generation_; }
  const std::filesystem::path& dir() const { return dir_; }
  int decoder_vocab_size() const { return config_.decoder_vocab_size; }

  // Runs the encoder. If layer_outputs is given it receives encoder_layers+1 tensors
  // [batch*src_len*d] (0 = scaled embeddings + positions).
  std::shared_ptr<const EncoderOutput> encode(
      const std::vector<std::vector<int>>& input_ids,
      std::vector<std::vector<float>>* layer_outputs = nullptr) const;

  // Creates decoder state: hypothesis i attends encoder row source_row[i]; at most max_steps
  // decoder_step calls.
  DecoderStatePtr start_decoder(std::shared_ptr<const EncoderOutput> encoder,
                                std::vector<int> source_row, int max_steps) const;
  // Feeds one token per hypothesis; writes raw logits (incl. final_logits_bias)
  // [num_hyps, decoder_vocab_size] to logits.
  void decoder_step(DecoderState& state, std::span<const int> tokens, float* logits) const;
  // Greedy step: feeds tokens like decoder_step and sets chosen[i] (unless it is >= 0 already,
  // a forced token) to the first id with the largest logit among the ids not in banned[i] (ids
  // in range). With the screen (ModelOptions::greedy_screen) only the logits that can be the
  // largest are computed in fp32; the choice is still that of the fp32 logits (up to the few-ulp
  // differences of summation order between kernels, see argmax_screen.h).
  void decoder_step_greedy(DecoderState& state, std::span<const int> tokens,
                           std::span<const std::vector<int>> banned, int* chosen) const;
  // Whether greedy steps go through the screen (fp32 mode, option on, CPU with VNNI).
  bool has_greedy_screen() const;
  // The greedy screen (built on first use, ~35 ms for OPUS-MT-base), or nullptr when greedy
  // steps compute every logit.
  const ArgmaxScreen* greedy_screen() const;
  // Keeps hypotheses keep[0..n) (indices may repeat: beam reordering); state shrinks to n.
  void select_hypotheses(DecoderState& state, std::span<const int> keep) const;

  // Convenience for tests: teacher-forced logits [rows, T, V] for decoder_ids (equal lengths).
  std::vector<float> teacher_forced_logits(const std::vector<std::vector<int>>& input_ids,
                                           const std::vector<std::vector<int>>& decoder_ids) const;

 private:
  MarianModel() = default;
  // Runs the decoder layers for one token per hypothesis and advances the state; returns the
  // final hidden states [num_hyps, d_model] (in state.x).
  const float* decoder_hidden(DecoderState& state, std::span<const int> tokens) const;
  std::filesystem::path dir_;
  MarianConfig config_;
  GenerationConfig generation_;
  std::unique_ptr<SafetensorsFile> file_;
  std::unique_ptr<ModelWeights> weights_;
};

}  // namespace transnotes::marian
