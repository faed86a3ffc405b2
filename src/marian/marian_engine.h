// MarianEngine: transnotes::translation::Engine backed by native OPUS-MT models (one
// MarianTranslator per model folder, weights loaded once and shared by all threads).
// translate_batch is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "marian/translator.h"
#include "translation/engine.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace transnotes::marian {

struct MarianModelDir {
  std::filesystem::path dir;  // folder holding config.json
  LanguagePair pair;
};

// "opus-mt-en-es" -> {en, es}; also "models--Helsinki-NLP--opus-mt-en-es" and
// "opus-mt-tc-big-en-es". nullopt when the name carries no simple pair (e.g. en-ROMANCE).
std::optional<LanguagePair> marian_pair_from_name(const std::string& folder_name);

// Model folders in models_dir (one sub-folder per model, must contain config.json) and in a
// Hugging Face hub cache (hub_dir/models--*/snapshots/<rev>/; newest snapshot wins). Missing
// dirs yield nothing. Results sorted by pair; the first occurrence of a pair wins.
std::vector<MarianModelDir> discover_marian_models(const std::filesystem::path& models_dir);
std::vector<MarianModelDir> discover_marian_hub_models(const std::filesystem::path& hub_dir);
// models_dir (if non-empty) then the Hugging Face hub cache, both as marian::model_search_dirs
// (model_hub.h) names them, so that `models list` and the engine look in the same places.
std::vector<MarianModelDir> discover_marian_models_default(const std::filesystem::path& models_dir);

struct MarianEngineOptions {
  // > 0: the engine sets the process-wide inference threads (OpenBLAS and the engine's pool,
  // marian::set_inference_threads) to this when it is built; 0: it leaves them as they are.
  int num_threads = 0;
  std::optional<int> num_beams;   // default: generation_config.json
  std::optional<int> max_length;  // default: generation_config.json
  int max_batch_tokens = 4096;    // token budget per batch (rows * longest row)
  bool int8 = false;
  // true: a model folder that fails to load (corrupt or hostile checkpoint) is logged as one
  // error line naming the file and field and left out; the engine serves the others. false: the
  // first such folder throws its ModelLoadError (for a model the user named explicitly).
  bool skip_invalid_models = true;
};

class MarianEngine : public translation::Engine {
 public:
  // Loads every model folder (pair from its folder name, see marian_pair_from_name).
  // Throws marian::ModelLoadError when a folder cannot be named, or cannot be loaded and
  // options.skip_invalid_models is false.
  explicit MarianEngine(const std::vector<std::filesystem::path>& model_dirs,
                        const MarianEngineOptions& options = {});
  explicit MarianEngine(const std::vector<MarianModelDir>& models,
                        const MarianEngineOptions& options = {});

  std::string name() const override { return "marian"; }
  std::vector<LanguagePair> pairs() const override;
  // Throws TranslationFailed for an unknown pair or any inference failure.
  std::vector<std::string> translate_batch(const std::string& source, const std::string& target,
                                           const std::vector<std::string>& segments) override;

  // Bytes of model weights loaded: the sizes of the loaded models' model.safetensors files.
  std::uint64_t model_bytes() const { return model_bytes_; }
  // Subword tokens of every successful translate_batch so far: each non-blank source segment's
  // pieces plus </s>, and its output as the target vocabulary's sentencepiece model segments it
  // plus </s> (the generated tokens, where the model emitted the canonical segmentation, as it
  // does almost always). Thread-safe.
  std::uint64_t translated_tokens() const {
    return translated_tokens_.load(std::memory_order_relaxed);
  }

 private:
  struct LoadedModel {
    std::shared_ptr<const marian::MarianTranslator> translator;
    // target.spm, to count the tokens of an output; null if it could not be read.
    std::shared_ptr<const sentencepiece::SentencePieceProcessor> target_pieces;
  };
  std::uint64_t count_tokens(const LoadedModel& model, const std::vector<std::string>& sources,
                             const std::vector<std::string>& outputs) const;

  std::map<std::pair<std::string, std::string>, LoadedModel> translators_;
  std::uint64_t model_bytes_ = 0;
  std::atomic<std::uint64_t> translated_tokens_{0};
};

}  // namespace transnotes::marian
