// Finding MarianMT (OPUS-MT) checkpoints on disk. Fetching them from a hub is the command
// line's job (app/model_commands.h).
//
// Two places hold checkpoints:
//  * MODELS_DIR (default ./models): one folder per model, named after the repository without
//    its organisation (models/opus-mt-en-es/config.json, ...). `models pull` writes here.
//  * the Hugging Face cache: $HF_HOME/hub/models--{org}--{name}/snapshots/{rev}/, where
//    refs/main (when present) names the revision in use. Only read, never written.
//
// A checkpoint folder is complete when it holds every file in kRequiredModelFiles.
// All functions here are thread-compatible (no shared state).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "domain/errors.h"
#include "domain/model.h"

namespace transnotes::marian {

// Files a MarianMT checkpoint cannot work without.
inline constexpr std::string_view kRequiredModelFiles[] = {
    "config.json", "model.safetensors", "source.spm", "target.spm", "vocab.json"};
// Files fetched when the repository has them (a 404 is fine).
inline constexpr std::string_view kOptionalModelFiles[] = {
    "generation_config.json", "tokenizer_config.json", "special_tokens_map.json",
    "target_vocab.json"};

enum class ModelOrigin { kModelsDir, kHfCache };

struct ModelInfo {
  std::string name;     // folder name ("opus-mt-en-es") or repo id ("Helsinki-NLP/opus-mt-en-es")
  std::string repo_id;  // "Helsinki-NLP/opus-mt-en-es" when known (HF cache), else == name
  std::filesystem::path path;  // the folder holding config.json etc.
  ModelOrigin origin = ModelOrigin::kModelsDir;
  std::string revision;         // HF cache snapshot revision; empty for MODELS_DIR
  std::string source_language;  // from the name opus-mt-{src}-{tgt}; empty when not parseable
  std::string target_language;
  std::uintmax_t size_bytes = 0;  // sum of regular files (symlinks followed)
  bool complete = false;
  std::vector<std::string> missing_files;  // required files absent; empty iff complete
};

// Languages from a repository or folder name: "opus-mt-en-es" / "Helsinki-NLP/opus-mt-tc-big-en-es"
// -> {"en", "es"}, by MarianEngine's rule (marian_pair_from_name): nullopt for names without a
// simple pair ("opus-mt-en-ROMANCE"), which the engine does not serve.
std::optional<LanguagePair> languages_from_model_name(std::string_view name);

// Every MarianMT checkpoint in models_dir (sub-folders whose name starts with "opus-mt-" or whose
// config.json says "model_type": "marian", and hub-layout models--* folders; hidden folders such
// as in-progress pulls are skipped) and in the HF cache under hf_home/hub. Either directory may
// be empty or absent. Hub snapshots are chosen like MarianEngine's discovery does (refs/main if
// it has weights, else the newest snapshot with weights), so the list matches what it loads.
// Sorted: MODELS_DIR entries first, then HF cache entries, each by name. Never throws on
// unreadable entries (they are skipped).
std::vector<ModelInfo> list_models(const std::filesystem::path& models_dir,
                                   const std::filesystem::path& hf_home);

// Where MarianMT checkpoints are looked for. The one rule for everything that looks (the
// engine's discovery, `models list`), so that what is listed is what can be served.
struct ModelSearchDirs {
  std::filesystem::path models_dir;  // MODELS_DIR as configured; empty: not searched
  std::filesystem::path hub_cache;   // the Hugging Face hub cache (models--*/snapshots/...)
};
// models_dir as given; the hub cache is $HF_HUB_CACHE, else default_hf_home()/hub — as
// huggingface_hub resolves it, so a model transformers downloaded is found.
ModelSearchDirs model_search_dirs(const std::filesystem::path& models_dir);

// list_models over model_search_dirs' folders (hub_cache is read as it is, without "/hub").
std::vector<ModelInfo> list_models(const ModelSearchDirs& dirs);

// Environment defaults used by the CLI.
std::filesystem::path
default_hf_home();  // $HF_HOME, $XDG_CACHE_HOME/huggingface, ~/.cache/huggingface
std::filesystem::path default_models_dir();  // $MODELS_DIR or "models"

}  // namespace transnotes::marian
