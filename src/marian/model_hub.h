// Finding and fetching MarianMT (OPUS-MT) checkpoints on disk.
//
// Two places hold checkpoints:
//  * MODELS_DIR (default ./models): one folder per model, named after the repository without
//    its organisation (models/opus-mt-en-es/config.json, ...). `pull_model` writes here.
//  * the Hugging Face cache: $HF_HOME/hub/models--{org}--{name}/snapshots/{rev}/, where
//    refs/main (when present) names the revision in use. Only read, never written.
//
// A checkpoint folder is complete when it holds every file in kRequiredModelFiles.
// All functions here are thread-compatible (no shared state besides libcurl's one-time global
// initialisation, which is guarded).
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
struct LanguagePair {
  std::string source;
  std::string target;
};
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
std::string default_hf_endpoint();  // $HF_ENDPOINT or "https://huggingface.co"
std::filesystem::path
default_hf_home();  // $HF_HOME, $XDG_CACHE_HOME/huggingface, ~/.cache/huggingface
std::filesystem::path default_models_dir();  // $MODELS_DIR or "models"

// A pull failed; nothing was left in models_dir (no partial folder, no temp leftovers).
class ModelPullError : public transnotes::Error {
 public:
  using Error::Error;
};

struct DownloadProgress {
  std::string file;         // "model.safetensors"
  std::uint64_t done = 0;   // bytes received so far for this file
  std::uint64_t total = 0;  // expected bytes; 0 while unknown
  bool finished = false;    // last call for this file
};
// Called on the pulling thread, often (throttle output yourself). Must not throw.
using ProgressCallback = std::function<void(const DownloadProgress&)>;

struct PullResult {
  std::filesystem::path path;      // models_dir / "opus-mt-en-es"
  std::vector<std::string> files;  // files fetched, in download order
  std::uint64_t bytes = 0;         // total bytes written
  bool replaced_existing = false;  // an older folder of the same name was replaced
};

// Largest total a pull downloads unless told otherwise (OPUS-MT models are ~300 MB, tc-big ~1 GB).
inline constexpr std::uint64_t kDefaultMaxDownloadBytes = std::uint64_t{2} << 30;

// Downloads repo_id at revision from `endpoint` ({endpoint}/{repo_id}/resolve/{revision}/{file},
// redirects followed to http(s) only) into a temporary folder inside models_dir, then renames it
// to models_dir / <repo name without org>. Checks before the rename:
//  * each body is as long as its Content-Length;
//  * all bodies together stay within max_download_bytes: a larger total is refused before it
//    starts when the hub lists the sizes, else aborted mid-transfer;
//  * when the hub lists the repository ({endpoint}/api/models/{repo_id}/tree/{revision}), each
//    Git LFS file (the weights) has the listed size and SHA-256;
//  * the folder loads as a Translator would load it (check_checkpoint, translator.h): every file
//    present and well-formed, every id and size in range.
// The folder gets the permissions of the process umask. An existing folder of that name is
// replaced only after the new one passed. Creates models_dir if needed.
// Throws ModelPullError (with the file, URL and HTTP status, curl error or failed check in the
// message) on any failure, leaving models_dir as it was. BadRequest for a malformed
// repo_id/revision.
PullResult pull_model(const std::string& endpoint, const std::string& repo_id,
                      const std::string& revision, const std::filesystem::path& models_dir,
                      const ProgressCallback& progress = {},
                      std::uint64_t max_download_bytes = kDefaultMaxDownloadBytes);

// `transnotes models list`: prints a table of list_models(). Returns 0. The first form is the
// one to call (with model_search_dirs(models_dir)); the second reads hf_home/hub.
int run_models_list(std::ostream& out, const ModelSearchDirs& dirs);
int run_models_list(std::ostream& out, const std::filesystem::path& models_dir,
                    const std::filesystem::path& hf_home);

// `transnotes models pull <repo_id>`: pull_model with a one-line-per-file progress display on
// `err` when show_progress (carriage-return updates: meant for a terminal). Prints the result to
// `out`. Returns 0 on success, 1 on a failed pull (message on `err`), 2 on bad arguments.
int run_models_pull(std::ostream& out, std::ostream& err, const std::string& endpoint,
                    const std::string& repo_id, const std::string& revision,
                    const std::filesystem::path& models_dir, bool show_progress,
                    std::uint64_t max_download_bytes = kDefaultMaxDownloadBytes);

}  // namespace transnotes::marian
