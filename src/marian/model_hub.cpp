#include "marian/model_hub.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "marian/checkpoint.h"
#include "marian/marian_engine.h"

namespace transnotes::marian {
namespace fs = std::filesystem;

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return (value != nullptr && *value != '\0') ? std::string(value) : fallback;
}

std::optional<std::string> read_small_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// True when config.json in `dir` declares a Marian model.
bool config_says_marian(const fs::path& dir) {
  const auto text = read_small_file(dir / "config.json");
  if (!text) return false;
  boost::system::error_code ec;
  const boost::json::value config = boost::json::parse(*text, ec);
  if (ec || !config.is_object()) return false;
  const auto* type = config.as_object().if_contains("model_type");
  return type != nullptr && type->is_string() && type->as_string() == "marian";
}

bool looks_like_marian(std::string_view name, const fs::path& dir) {
  return starts_with(name, "opus-mt-") || config_says_marian(dir);
}

std::uintmax_t folder_size(const fs::path& dir) {
  std::uintmax_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code status_ec;
    if (fs::is_regular_file(it->path(), status_ec)) {  // follows HF cache blob symlinks
      const auto size = fs::file_size(it->path(), status_ec);
      if (!status_ec) total += size;
    }
  }
  return total;
}

ModelInfo describe(std::string name, std::string repo_id, fs::path path, ModelOrigin origin,
                   std::string revision) {
  ModelInfo info;
  info.name = std::move(name);
  info.repo_id = std::move(repo_id);
  info.path = std::move(path);
  info.origin = origin;
  info.revision = std::move(revision);
  if (const auto languages = languages_from_model_name(info.name)) {
    info.source_language = languages->source;
    info.target_language = languages->target;
  }
  info.size_bytes = folder_size(info.path);
  for (const auto file : kRequiredModelFiles) {
    std::error_code ec;
    if (!fs::is_regular_file(info.path / file, ec)) info.missing_files.emplace_back(file);
  }
  info.complete = info.missing_files.empty();
  return info;
}

// A snapshot the engine can load: config.json and model.safetensors present.
bool has_weights(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "config.json", ec) && fs::exists(dir / "model.safetensors", ec);
}

// The snapshot in use, chosen like MarianEngine's discovery (marian_engine.h): refs/main when
// it names a snapshot with weights, else the newest snapshot with weights; when none has them
// (an interrupted download) the newest snapshot at all, so that it is listed as partial.
std::optional<std::string> pick_snapshot(const fs::path& repo_dir) {
  if (auto ref = read_small_file(repo_dir / "refs" / "main")) {
    const std::string revision = trim(*ref);
    if (!revision.empty() && has_weights(repo_dir / "snapshots" / revision)) return revision;
  }
  std::optional<std::string> newest;
  fs::file_time_type newest_time;
  bool newest_has_weights = false;
  std::error_code ec;
  for (fs::directory_iterator it(repo_dir / "snapshots", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code status_ec;
    if (!fs::is_directory(it->path(), status_ec)) continue;
    const auto time = fs::last_write_time(it->path(), status_ec);
    if (status_ec) continue;
    const bool weights = has_weights(it->path());
    if (!newest || (weights && !newest_has_weights) ||
        (weights == newest_has_weights && time > newest_time)) {
      newest = it->path().filename().string();
      newest_time = time;
      newest_has_weights = weights;
    }
  }
  return newest;
}

// A hub-layout repository folder models--{org}--{name}; nullopt when it is not a Marian model.
std::optional<ModelInfo> describe_hub_repo(const fs::path& repo_dir, ModelOrigin origin) {
  const std::string folder = repo_dir.filename().string();
  if (!starts_with(folder, "models--")) return std::nullopt;
  // HF replaces "/" in the repo id by "--".
  std::string repo_id = folder.substr(std::strlen("models--"));
  if (const auto sep = repo_id.find("--"); sep != std::string::npos)
    repo_id = repo_id.substr(0, sep) + "/" + repo_id.substr(sep + 2);
  const auto revision = pick_snapshot(repo_dir);
  if (!revision) return std::nullopt;
  const fs::path snapshot = repo_dir / "snapshots" / *revision;
  const std::string short_name = repo_id.substr(repo_id.rfind('/') + 1);
  if (!looks_like_marian(short_name, snapshot)) return std::nullopt;
  return describe(repo_id, repo_id, snapshot, origin, *revision);
}

bool by_name(const ModelInfo& a, const ModelInfo& b) { return a.name < b.name; }

// Plain folders, plus hub-layout repositories copied into MODELS_DIR (the engine reads both).
void scan_models_dir(const fs::path& models_dir, std::vector<ModelInfo>& found) {
  std::error_code ec;
  std::vector<ModelInfo> local;
  for (fs::directory_iterator it(models_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code status_ec;
    if (name.empty() || name[0] == '.' || !fs::is_directory(it->path(), status_ec)) continue;
    if (starts_with(name, "models--") && fs::is_directory(it->path() / "snapshots", status_ec)) {
      if (auto info = describe_hub_repo(it->path(), ModelOrigin::kModelsDir)) {
        local.push_back(std::move(*info));
      }
      continue;
    }
    if (!looks_like_marian(name, it->path())) continue;
    local.push_back(describe(name, name, it->path(), ModelOrigin::kModelsDir, ""));
  }
  std::sort(local.begin(), local.end(), by_name);
  found.insert(found.end(), local.begin(), local.end());
}

void scan_hf_cache(const fs::path& hub_cache, std::vector<ModelInfo>& found) {
  std::error_code ec;
  std::vector<ModelInfo> cached;
  for (fs::directory_iterator it(hub_cache, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code status_ec;
    if (!fs::is_directory(it->path(), status_ec)) continue;
    if (auto info = describe_hub_repo(it->path(), ModelOrigin::kHfCache)) {
      cached.push_back(std::move(*info));
    }
  }
  std::sort(cached.begin(), cached.end(), by_name);
  found.insert(found.end(), cached.begin(), cached.end());
}

}  // namespace

std::optional<LanguagePair> languages_from_model_name(std::string_view name) {
  if (const auto slash = name.rfind('/'); slash != std::string_view::npos) {
    name.remove_prefix(slash + 1);
  }
  // The engine's rule, so that the list shows a pair exactly when MarianEngine can serve it.
  const auto pair = marian_pair_from_name(std::string(name));
  if (!pair) return std::nullopt;
  return LanguagePair{pair->source, pair->target};
}

std::vector<ModelInfo> list_models(const ModelSearchDirs& dirs) {
  std::vector<ModelInfo> found;
  if (!dirs.models_dir.empty()) scan_models_dir(dirs.models_dir, found);
  if (!dirs.hub_cache.empty()) scan_hf_cache(dirs.hub_cache, found);
  return found;
}

std::vector<ModelInfo> list_models(const fs::path& models_dir, const fs::path& hf_home) {
  return list_models(ModelSearchDirs{models_dir, hf_home.empty() ? fs::path() : hf_home / "hub"});
}

ModelSearchDirs model_search_dirs(const fs::path& models_dir) {
  if (const char* hub = std::getenv("HF_HUB_CACHE"); hub != nullptr && *hub != '\0')
    return {models_dir, hub};
  return {models_dir, default_hf_home() / "hub"};
}

fs::path default_hf_home() {
  if (const char* home = std::getenv("HF_HOME"); home != nullptr && *home != '\0') return home;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return fs::path(xdg) / "huggingface";
  }
  return fs::path(env_or("HOME", ".")) / ".cache" / "huggingface";
}

fs::path default_models_dir() { return env_or("MODELS_DIR", "models"); }

}  // namespace transnotes::marian
