#include "app/model_commands.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <system_error>

#include "marian/checkpoint.h"
#include "marian/translator.h"

namespace transnotes::app {
namespace fs = std::filesystem;

namespace {

using marian::kOptionalModelFiles;
using marian::kRequiredModelFiles;

void ensure_curl_initialised() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool valid_repo_part(std::string_view part) {
  if (part.empty() || part == "." || part == ".." || part.size() > 96) return false;
  return std::all_of(part.begin(), part.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

void validate_repo_id(const std::string& repo_id) {
  const auto slash = repo_id.find('/');
  const bool ok = slash == std::string::npos
                      ? valid_repo_part(repo_id)
                      : valid_repo_part(std::string_view(repo_id).substr(0, slash)) &&
                            valid_repo_part(std::string_view(repo_id).substr(slash + 1));
  if (!ok) {
    throw BadRequest("invalid model repository id '" + repo_id +
                     "' (expected e.g. Helsinki-NLP/opus-mt-en-es)");
  }
}

void validate_revision(const std::string& revision) {
  const bool ok = !revision.empty() && revision.size() <= 256 &&
                  std::none_of(revision.begin(), revision.end(),
                               [](unsigned char c) { return std::isspace(c) || std::iscntrl(c); });
  if (!ok) throw BadRequest("invalid revision '" + revision + "'");
}

std::string url_escape(CURL* curl, const std::string& text) {
  char* escaped = curl_easy_escape(curl, text.c_str(), static_cast<int>(text.size()));
  if (escaped == nullptr) throw ModelPullError("cannot URL-encode '" + text + "'");
  std::string result(escaped);
  curl_free(escaped);
  return result;
}

// Removes a directory tree on scope exit unless released. Keeps failures from leaving debris.
class DirectoryGuard {
 public:
  explicit DirectoryGuard(fs::path dir) : dir_(std::move(dir)) {}
  DirectoryGuard(const DirectoryGuard&) = delete;
  DirectoryGuard& operator=(const DirectoryGuard&) = delete;
  ~DirectoryGuard() {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  void release() { dir_.clear(); }

 private:
  fs::path dir_;
};

std::string human_size(std::uint64_t bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  if (bytes >= (1ull << 30)) {
    out << static_cast<double>(bytes) / (1ull << 30) << " GiB";
  } else if (bytes >= (1ull << 20)) {
    out << static_cast<double>(bytes) / (1ull << 20) << " MiB";
  } else if (bytes >= 1024) {
    out << static_cast<double>(bytes) / 1024 << " KiB";
  } else {
    out << bytes << " B";
  }
  return out.str();
}

// A new, empty folder parent/prefix + random suffix. mkdir (not mkdtemp, which forces 0700) so
// that the model folder it becomes gets the permissions the process umask gives every folder.
fs::path make_unique_dir(const fs::path& parent, const std::string& prefix) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device entropy;
  std::mt19937_64 random(entropy());
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string suffix(8, 'x');
    for (char& c : suffix) c = kAlphabet[random() % (sizeof kAlphabet - 1)];
    const fs::path dir = parent / (prefix + suffix);
    if (::mkdir(dir.c_str(), 0777) == 0) return dir;
    if (errno != EEXIST) break;
  }
  throw ModelPullError("cannot create a temporary folder in " + parent.string() + ": " +
                       std::strerror(errno));
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f != nullptr) std::fclose(f);
  }
};

struct DigestDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

// Where a body goes (a file or a string), what it may cost, and its running SHA-256.
struct TransferState {
  std::FILE* out = nullptr;
  std::string* text = nullptr;
  std::uint64_t written = 0;
  std::uint64_t limit = 0;  // most bytes this body may have (what is left of the pull's budget)
  bool over_limit = false;
  bool write_failed = false;
  std::unique_ptr<EVP_MD_CTX, DigestDeleter> sha256;
  const ProgressCallback* progress = nullptr;
  std::string file;
  std::uint64_t last_reported = ~std::uint64_t{0};
};

size_t write_body(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  const size_t bytes = size * count;
  // Returning short makes curl abort the transfer (CURLE_WRITE_ERROR) mid-body.
  if (bytes > state->limit - state->written) {
    state->over_limit = true;
    return 0;
  }
  if (state->out != nullptr && std::fwrite(data, 1, bytes, state->out) != bytes) {
    state->write_failed = true;
    return 0;
  }
  if (state->text != nullptr) state->text->append(data, bytes);
  if (state->sha256 && EVP_DigestUpdate(state->sha256.get(), data, bytes) != 1) {
    state->write_failed = true;
    return 0;
  }
  state->written += bytes;
  return bytes;
}

int report_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* state = static_cast<TransferState*>(user);
  if (state->progress != nullptr && *state->progress &&
      static_cast<std::uint64_t>(now) != state->last_reported) {
    state->last_reported = static_cast<std::uint64_t>(now);
    (*state->progress)(DownloadProgress{state->file, static_cast<std::uint64_t>(now),
                                        total > 0 ? static_cast<std::uint64_t>(total) : 0, false});
  }
  return 0;
}

std::string hex(const unsigned char* bytes, unsigned size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < size; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 15];
  }
  return out;
}

std::string too_large(const std::string& file, std::uint64_t limit) {
  return "download of " + file + " stopped: the pull would exceed its limit of " +
         std::to_string(limit) + " bytes (" + human_size(limit) + ")";
}

enum class FetchOutcome { kOk, kNotFound };

struct Fetched {
  FetchOutcome outcome = FetchOutcome::kOk;
  std::uint64_t bytes = 0;
  std::string sha256;  // hex, of the body
};

// GETs `url` into `target` (a file) or `text`. At most `limit` body bytes are accepted: a longer
// body (announced or not) aborts the transfer. Redirects are followed to http(s) only, so a hub
// cannot point the download at file://, ftp:// or any other scheme libcurl speaks. kNotFound on
// HTTP 404 (the file is removed); throws ModelPullError on every other failure (HTTP error,
// transport error, short body, limit).
Fetched fetch(const std::string& url, const fs::path& target, std::string* text,
              const std::string& file, const ProgressCallback& progress, std::uint64_t limit,
              std::uint64_t pull_limit) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) throw ModelPullError("cannot initialise libcurl");
  std::unique_ptr<std::FILE, FileCloser> out;
  if (text == nullptr) {
    out.reset(std::fopen(target.c_str(), "wb"));
    if (!out) throw ModelPullError("cannot write " + target.string() + ": " + std::strerror(errno));
  }
  TransferState state;
  state.out = out.get();
  state.text = text;
  state.limit = limit;
  state.progress = &progress;
  state.file = file;
  state.sha256.reset(EVP_MD_CTX_new());
  if (!state.sha256 || EVP_DigestInit_ex(state.sha256.get(), EVP_sha256(), nullptr) != 1)
    throw ModelPullError("cannot initialise SHA-256");

  std::array<char, CURL_ERROR_SIZE> error_text{};
  CURL* handle = curl.get();
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(handle, CURLOPT_MAXREDIRS, 10L);
  // Refuses at once a body whose Content-Length is over the limit; write_body catches the rest.
  curl_easy_setopt(handle, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(limit));
  curl_easy_setopt(handle, CURLOPT_USERAGENT, "transnotes/0.1 (model_hub; libcurl)");
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_text.data());
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &write_body);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, &report_progress);
  curl_easy_setopt(handle, CURLOPT_XFERINFODATA, &state);
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT, 30L);
  // A stalled connection (under 1 byte/s for a minute) is a failure, not a hang.
  curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, 60L);

  const CURLcode code = curl_easy_perform(handle);
  long status = 0;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t content_length = -1;
  curl_easy_getinfo(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &content_length);
  const bool flushed = !out || (std::fflush(out.get()) == 0 && !std::ferror(out.get()));
  out.reset();

  Fetched fetched;
  if (code == CURLE_OK && status == 404) {
    std::error_code ec;
    if (text == nullptr) fs::remove(target, ec);
    fetched.outcome = FetchOutcome::kNotFound;
    return fetched;
  }
  if (state.over_limit || code == CURLE_FILESIZE_EXCEEDED)
    throw ModelPullError(too_large(file, pull_limit));
  if (code != CURLE_OK) {
    std::string reason = error_text[0] != '\0' ? error_text.data() : curl_easy_strerror(code);
    if (state.write_failed) reason = "cannot write " + target.string();
    throw ModelPullError("download of " + file + " failed (" + url + "): " + reason);
  }
  if (status < 200 || status >= 300) {
    // The hub answers 401 for repositories that do not exist as well as for gated ones.
    const std::string hint =
        (status == 401 || status == 403) ? " (repository not found, private or gated)" : "";
    throw ModelPullError("download of " + file + " failed (" + url + "): HTTP " +
                         std::to_string(status) + hint);
  }
  if (!flushed) throw ModelPullError("cannot write " + target.string());
  if (content_length >= 0 && state.written != static_cast<std::uint64_t>(content_length)) {
    throw ModelPullError("download of " + file + " is incomplete (" + url + "): got " +
                         std::to_string(state.written) + " of " + std::to_string(content_length) +
                         " bytes");
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned digest_size = 0;
  if (EVP_DigestFinal_ex(state.sha256.get(), digest.data(), &digest_size) != 1)
    throw ModelPullError("cannot compute the SHA-256 of " + file);
  if (progress && text == nullptr)
    progress(DownloadProgress{file, state.written, state.written, true});
  fetched.bytes = state.written;
  fetched.sha256 = hex(digest.data(), digest_size);
  return fetched;
}

// What the hub says about a file of the repository: its size, and for files stored in Git LFS
// (the weights) the SHA-256 of the content.
struct HubFile {
  std::uint64_t size = 0;
  std::string sha256;  // lowercase hex; empty when not an LFS file
};

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The files of the repository's top folder from the hub API ({endpoint}/api/models/{repo}/tree/
// {revision}, an array of {"type": "file", "path", "size", "lfs": {"oid": sha256, "size"}}).
// Empty when the hub does not offer the listing (a mirror serving only /resolve/ URLs, an old
// hub) or answers something else than such an array: then files are checked by their own
// Content-Length and by loading the checkpoint, not against hub metadata.
std::map<std::string, HubFile> read_hub_listing(const std::string& url) {
  constexpr std::uint64_t kMaxListingBytes = 4 << 20;  // a few hundred entries take ~100 KB
  std::string body;
  try {
    const auto fetched =
        fetch(url, {}, &body, "the file listing", {}, kMaxListingBytes, kMaxListingBytes);
    if (fetched.outcome == FetchOutcome::kNotFound) return {};
  } catch (const ModelPullError&) {
    return {};  // no listing: the checks that need none still run
  }
  boost::system::error_code ec;
  const boost::json::value listing = boost::json::parse(body, ec);
  std::map<std::string, HubFile> files;
  if (ec || !listing.is_array()) return files;
  for (const auto& entry : listing.as_array()) {
    const auto* object = entry.if_object();
    if (object == nullptr) continue;
    const auto* path = object->if_contains("path");
    const auto* size = object->if_contains("size");
    if (path == nullptr || !path->is_string() || size == nullptr || !size->is_number()) continue;
    HubFile file;
    boost::system::error_code size_ec;
    file.size = size->to_number<std::uint64_t>(size_ec);
    if (size_ec) continue;
    if (const auto* lfs = object->if_contains("lfs"); lfs != nullptr && lfs->is_object()) {
      // The tree API names it "oid", the model-info API's siblings "sha256".
      for (const char* key : {"oid", "sha256"})
        if (const auto* oid = lfs->as_object().if_contains(key);
            oid != nullptr && oid->is_string() && is_sha256_hex(oid->as_string()))
          file.sha256 = std::string(oid->as_string());
      if (const auto* lfs_size = lfs->as_object().if_contains("size");
          lfs_size != nullptr && lfs_size->is_number())
        file.size = lfs_size->to_number<std::uint64_t>(size_ec);
      if (size_ec) continue;
    }
    files.emplace(std::string(path->as_string()), std::move(file));
  }
  return files;
}

}  // namespace

std::string default_hf_endpoint() {
  const char* value = std::getenv("HF_ENDPOINT");
  return (value != nullptr && *value != '\0') ? std::string(value) : "https://huggingface.co";
}

PullResult pull_model(const std::string& endpoint, const std::string& repo_id,
                      const std::string& revision, const fs::path& models_dir,
                      const ProgressCallback& progress, std::uint64_t max_download_bytes) {
  validate_repo_id(repo_id);
  validate_revision(revision);
  ensure_curl_initialised();
  const std::string name = repo_id.substr(repo_id.rfind('/') + 1);

  std::error_code ec;
  fs::create_directories(models_dir, ec);
  if (ec) throw ModelPullError("cannot create " + models_dir.string() + ": " + ec.message());

  std::string base = endpoint.empty() ? default_hf_endpoint() : endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string escaped_revision;
  {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
    if (!curl) throw ModelPullError("cannot initialise libcurl");
    escaped_revision = url_escape(curl.get(), revision);
  }
  const std::string url_prefix = base + "/" + repo_id + "/resolve/" + escaped_revision + "/";

  // Hidden temp folder: list_models skips it; removed on any failure.
  const fs::path staging = make_unique_dir(models_dir, ".pull-" + name + "-");
  DirectoryGuard staging_guard(staging);

  PullResult result;
  std::map<std::string, HubFile> hub_files;
  const auto download = [&](std::string_view file_view, bool required) {
    const std::string file(file_view);
    const auto listed = hub_files.find(file);
    const Fetched fetched = fetch(url_prefix + file, staging / file, nullptr, file, progress,
                                  max_download_bytes - result.bytes, max_download_bytes);
    if (fetched.outcome == FetchOutcome::kNotFound) {
      if (required) {
        throw ModelPullError("required file " + file + " not found (HTTP 404) at " + url_prefix +
                             file);
      }
      return;
    }
    if (listed != hub_files.end() && !listed->second.sha256.empty()) {
      if (fetched.bytes != listed->second.size || fetched.sha256 != listed->second.sha256)
        throw ModelPullError(file + ": downloaded " + std::to_string(fetched.bytes) +
                             " bytes with SHA-256 " + fetched.sha256 + ", the hub lists " +
                             std::to_string(listed->second.size) + " bytes with SHA-256 " +
                             listed->second.sha256);
    }
    result.files.push_back(file);
    result.bytes += fetched.bytes;
  };
  // config.json first: a wrong repo id fails before the big download.
  download("config.json", true);
  hub_files = read_hub_listing(base + "/api/models/" + repo_id + "/tree/" + escaped_revision);
  std::uint64_t listed_bytes = result.bytes;
  for (const auto& [file, info] : hub_files) {
    const bool wanted = std::find(std::begin(kRequiredModelFiles), std::end(kRequiredModelFiles),
                                  file) != std::end(kRequiredModelFiles) ||
                        std::find(std::begin(kOptionalModelFiles), std::end(kOptionalModelFiles),
                                  file) != std::end(kOptionalModelFiles);
    if (wanted && file != "config.json") listed_bytes += info.size;
  }
  if (listed_bytes > max_download_bytes) {
    throw ModelPullError("the hub lists " + std::to_string(listed_bytes) + " bytes for " + repo_id +
                         ", more than the pull's limit of " + std::to_string(max_download_bytes) +
                         " bytes (" + human_size(max_download_bytes) + ")");
  }
  for (const auto file : kOptionalModelFiles) {
    if (file == "generation_config.json") download(file, false);
  }
  for (const auto file : kRequiredModelFiles) {
    if (file != "config.json") download(file, true);
  }
  for (const auto file : kOptionalModelFiles) {
    if (file != "generation_config.json") download(file, false);
  }

  // The rules `serve` and `translate` load by, so that a pulled model is one they will load.
  try {
    marian::check_checkpoint(staging);
  } catch (const marian::ModelLoadError& e) {
    // Messages name files by their path; the staging folder is about to go, the file name stays.
    std::string message = e.what();
    const std::string prefix = (staging / "").string();
    for (size_t at; (at = message.find(prefix)) != std::string::npos;)
      message.erase(at, prefix.size());
    throw ModelPullError(repo_id + " is not a usable MarianMT checkpoint: " + message);
  }

  const fs::path destination = models_dir / name;
  std::optional<fs::path> previous;
  if (fs::exists(fs::symlink_status(destination, ec))) {
    // Move the old folder aside (same filesystem: atomic), put the new one in, then delete.
    previous = make_unique_dir(models_dir, ".old-" + name + "-");
    fs::rename(destination, *previous, ec);  // replaces the empty placeholder directory
    if (ec) {
      fs::remove(*previous);
      throw ModelPullError("cannot replace " + destination.string() + ": " + ec.message());
    }
  }
  fs::rename(staging, destination, ec);
  if (ec) {
    std::error_code restore_ec;
    if (previous) fs::rename(*previous, destination, restore_ec);
    throw ModelPullError("cannot move the download to " + destination.string() + ": " +
                         ec.message());
  }
  staging_guard.release();
  if (previous) fs::remove_all(*previous, ec);

  result.path = destination;
  result.replaced_existing = previous.has_value();
  return result;
}

int run_models_list(std::ostream& out, const marian::ModelSearchDirs& dirs) {
  const auto models = marian::list_models(dirs);
  if (models.empty()) {
    out << "No MarianMT models in " << dirs.models_dir.string() << " or " << dirs.hub_cache.string()
        << ".\n"
        << "Fetch one with: transnotes models pull Helsinki-NLP/opus-mt-en-es\n";
    return 0;
  }
  std::size_t name_width = 4;
  for (const auto& model : models) name_width = std::max(name_width, model.name.size());
  const auto row = [&](const std::string& name, const std::string& pair, const std::string& size,
                       const std::string& origin, const std::string& status,
                       const std::string& path) {
    out << std::left << std::setw(static_cast<int>(name_width) + 2) << name << std::setw(9) << pair
        << std::setw(11) << size << std::setw(10) << origin << std::setw(10) << status << path
        << "\n";
  };
  row("NAME", "PAIR", "SIZE", "SOURCE", "STATUS", "PATH");
  for (const auto& model : models) {
    const std::string pair =
        model.source_language.empty() ? "?" : model.source_language + "-" + model.target_language;
    std::string status = model.complete ? "complete" : "partial";
    std::string path = model.path.string();
    if (!model.complete) {
      path += "  (missing:";
      for (const auto& file : model.missing_files) path += " " + file;
      path += ")";
    }
    row(model.name, pair, human_size(model.size_bytes),
        model.origin == marian::ModelOrigin::kModelsDir ? "models" : "hf-cache", status, path);
  }
  return 0;
}

int run_models_pull(std::ostream& out, std::ostream& err, const std::string& endpoint,
                    const std::string& repo_id, const std::string& revision,
                    const fs::path& models_dir, bool show_progress,
                    std::uint64_t max_download_bytes) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_draw{};
  const ProgressCallback draw = [&](const DownloadProgress& p) {
    const auto now = Clock::now();
    if (!p.finished && now - last_draw < std::chrono::milliseconds(200)) return;
    last_draw = now;
    err << "\r  " << std::left << std::setw(24) << p.file << std::right << std::setw(11)
        << human_size(p.done);
    if (p.total > 0) {
      err << " / " << std::setw(11) << human_size(p.total) << std::setw(5)
          << (100 * p.done / p.total) << "%";
    }
    err << (p.finished ? "\n" : "   ") << std::flush;
  };
  const std::string base = endpoint.empty() ? default_hf_endpoint() : endpoint;
  try {
    if (show_progress) err << "Pulling " << repo_id << "@" << revision << " from " << base << "\n";
    const PullResult result =
        pull_model(base, repo_id, revision, models_dir, show_progress ? draw : ProgressCallback{},
                   max_download_bytes);
    out << (result.replaced_existing ? "Updated " : "Pulled ") << repo_id << " into "
        << result.path.string() << " (" << result.files.size() << " files, "
        << human_size(result.bytes) << ")\n";
    return 0;
  } catch (const BadRequest& e) {
    err << "\nerror: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    err << "\nerror: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace transnotes::app

// Transitional forwarders for src/app/main.cpp's current calls (declared in marian/model_hub.h);
// remove both together once main.cpp calls transnotes::app's functions.
