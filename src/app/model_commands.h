// `transnotes models list` and `transnotes models pull`: printing the installed MarianMT
// checkpoints, and fetching one from a Hugging Face hub over HTTP(S) with libcurl. The inference
// library (src/marian) only finds and checks checkpoints on disk (marian/model_hub.h); fetching
// them is the command line's business.
// All functions here are thread-compatible (no shared state besides libcurl's one-time global
// initialisation, which is guarded).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "domain/errors.h"
#include "marian/model_hub.h"

namespace transnotes::app {

// $HF_ENDPOINT or "https://huggingface.co".
std::string default_hf_endpoint();

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
//  * the folder loads as a MarianTranslator would load it (marian::check_checkpoint,
//  marian/translator.h): every file
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

// `transnotes models list`: prints a table of marian::list_models(dirs) (call it with
// marian::model_search_dirs(models_dir), the engine's own rule). Returns 0.
int run_models_list(std::ostream& out, const marian::ModelSearchDirs& dirs);

// `transnotes models pull <repo_id>`: pull_model with a one-line-per-file progress display on
// `err` when show_progress (carriage-return updates: meant for a terminal). Prints the result to
// `out`. Returns 0 on success, 1 on a failed pull (message on `err`), 2 on bad arguments.
int run_models_pull(std::ostream& out, std::ostream& err, const std::string& endpoint,
                    const std::string& repo_id, const std::string& revision,
                    const std::filesystem::path& models_dir, bool show_progress,
                    std::uint64_t max_download_bytes = kDefaultMaxDownloadBytes);

}  // namespace transnotes::app
