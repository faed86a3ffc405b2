#include "marian/marian_engine.h"

#include <sentencepiece_processor.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "marian/model_hub.h"
#include "marian/parallel.h"

namespace transnotes::marian {

namespace fs = std::filesystem;

std::optional<LanguagePair> marian_pair_from_name(const std::string& folder_name) {
  std::string name = folder_name;
  if (auto p = name.rfind("--"); p != std::string::npos) name = name.substr(p + 2);
  const std::string prefix = "opus-mt-";
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  name = name.substr(prefix.size());
  for (const char* variant : {"tc-big-", "tc-base-"})
    if (name.rfind(variant, 0) == 0) name = name.substr(std::string(variant).size());
  const auto dash = name.find('-');
  if (dash == std::string::npos) return std::nullopt;
  const std::string source = name.substr(0, dash);
  const std::string target = name.substr(dash + 1);
  auto is_code = [](const std::string& code) {
    return code.size() >= 2 && code.size() <= 3 &&
           std::all_of(code.begin(), code.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  };
  if (!is_code(source) || !is_code(target)) return std::nullopt;
  return LanguagePair{source, target};
}

namespace {

bool is_model_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "config.json", ec) && fs::exists(dir / "model.safetensors", ec);
}

void add_unique(std::vector<MarianModelDir>& out, MarianModelDir m) {
  for (const auto& e : out)
    if (e.pair.source == m.pair.source && e.pair.target == m.pair.target) return;
  out.push_back(std::move(m));
}

}  // namespace

std::vector<MarianModelDir> discover_marian_models(const fs::path& models_dir) {
  std::vector<MarianModelDir> out;
  std::error_code ec;
  if (models_dir.empty() || !fs::is_directory(models_dir, ec)) return out;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(models_dir, ec))
    if (entry.is_directory(ec)) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    auto pair = marian_pair_from_name(dir.filename().string());
    if (!pair) continue;
    if (is_model_dir(dir)) {
      add_unique(out, {dir, *pair});
    } else if (fs::is_directory(dir / "snapshots", ec)) {  // a hub-style folder
      for (auto& m : discover_marian_hub_models(models_dir))
        if (m.dir.parent_path().parent_path() == dir) add_unique(out, m);
    }
  }
  return out;
}

std::vector<MarianModelDir> discover_marian_hub_models(const fs::path& hub_dir) {
  std::vector<MarianModelDir> out;
  std::error_code ec;
  if (hub_dir.empty() || !fs::is_directory(hub_dir, ec)) return out;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(hub_dir, ec))
    if (entry.is_directory(ec) && entry.path().filename().string().rfind("models--", 0) == 0)
      dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    auto pair = marian_pair_from_name(dir.filename().string());
    if (!pair) continue;
    // Prefer the snapshot named by refs/main, else the most recently modified complete one.
    fs::path chosen;
    std::ifstream ref(dir / "refs" / "main");
    std::string rev;
    if (ref && std::getline(ref, rev) && is_model_dir(dir / "snapshots" / rev))
      chosen = dir / "snapshots" / rev;
    if (chosen.empty()) {
      fs::file_time_type newest{};
      for (const auto& snap : fs::directory_iterator(dir / "snapshots", ec)) {
        if (!is_model_dir(snap.path())) continue;
        auto t = fs::last_write_time(snap.path(), ec);
        if (chosen.empty() || t > newest) {
          chosen = snap.path();
          newest = t;
        }
      }
    }
    if (!chosen.empty()) add_unique(out, {chosen, *pair});
  }
  return out;
}

std::vector<MarianModelDir> discover_marian_models_default(const fs::path& models_dir) {
  const auto dirs = marian::model_search_dirs(models_dir);
  auto out = discover_marian_models(dirs.models_dir);
  for (auto& m : discover_marian_hub_models(dirs.hub_cache)) add_unique(out, std::move(m));
  return out;
}

namespace {

std::vector<MarianModelDir> name_dirs(const std::vector<fs::path>& dirs) {
  std::vector<MarianModelDir> out;
  for (const auto& dir : dirs) {
    // A hub snapshot folder is named by its revision: take the name from models--*.
    fs::path named = dir.filename().empty() ? dir.parent_path() : dir;
    auto pair = marian_pair_from_name(named.filename().string());
    if (!pair && named.parent_path().filename() == "snapshots")
      pair = marian_pair_from_name(named.parent_path().parent_path().filename().string());
    if (!pair)
      throw marian::ModelLoadError(dir.string() +
                                   ": cannot tell the language pair from the folder name "
                                   "(expected opus-mt-<src>-<tgt>)");
    out.push_back({dir, *pair});
  }
  return out;
}

// Only for counting output tokens: a model that translates but whose target.spm cannot be read
// again (removed since) is still served, its outputs uncounted.
std::shared_ptr<const sentencepiece::SentencePieceProcessor> load_target_pieces(
    const fs::path& dir) {
  auto processor = std::make_shared<sentencepiece::SentencePieceProcessor>();
  if (!processor->Load((dir / "target.spm").string()).ok()) return nullptr;
  return processor;
}

}  // namespace

MarianEngine::MarianEngine(const std::vector<fs::path>& model_dirs,
                           const MarianEngineOptions& options)
    : MarianEngine(name_dirs(model_dirs), options) {}

MarianEngine::MarianEngine(const std::vector<MarianModelDir>& models,
                           const MarianEngineOptions& options) {
  marian::MarianTranslatorOptions t;
  t.model.num_threads = options.num_threads;
  t.model.int8 = options.int8;
  t.num_beams = options.num_beams;
  t.max_length = options.max_length;
  t.max_batch_tokens = options.max_batch_tokens;
  if (options.num_threads > 0) marian::set_inference_threads(options.num_threads);
  for (const auto& m : models) {
    auto key = std::make_pair(m.pair.source, m.pair.target);
    if (translators_.count(key)) continue;
    std::shared_ptr<const marian::MarianTranslator> translator;
    try {
      translator = std::make_shared<const marian::MarianTranslator>(m.dir, t);
    } catch (const std::exception& e) {
      // Whatever stops one model (a ModelLoadError for a bad file, or memory) stops only it.
      if (!options.skip_invalid_models) throw;
      spdlog::error("marian: {}-{} not loaded: {}", m.pair.source, m.pair.target, e.what());
      continue;
    }
    std::error_code size_error;
    const auto weight_bytes = fs::file_size(m.dir / "model.safetensors", size_error);
    if (!size_error) model_bytes_ += weight_bytes;
    translators_[key] = LoadedModel{translator, load_target_pieces(m.dir)};
    spdlog::info("marian: loaded {}-{} from {} ({})", m.pair.source, m.pair.target, m.dir.string(),
                 options.int8 ? "int8"
                 : translator->model().has_greedy_screen()
                     ? "float32, greedy argmax via int8 screen"
                     : "float32");
  }
}

std::uint64_t MarianEngine::count_tokens(const LoadedModel& model,
                                         const std::vector<std::string>& sources,
                                         const std::vector<std::string>& outputs) const {
  std::uint64_t tokens = 0;
  std::vector<std::string> pieces;
  for (std::size_t i = 0; i < sources.size() && i < outputs.size(); ++i) {
    if (sources[i].find_first_not_of(" \t\r\n\f\v") == std::string::npos) continue;  // not run
    tokens += model.translator->tokenizer().pieces(sources[i]).size() + 1;           // with </s>
    if (model.target_pieces && model.target_pieces->Encode(outputs[i], &pieces).ok())
      tokens += pieces.size() + 1;
  }
  return tokens;
}

std::vector<LanguagePair> MarianEngine::pairs() const {
  std::vector<LanguagePair> out;
  for (const auto& [key, _] : translators_) out.push_back({key.first, key.second});
  return out;
}

std::vector<std::string> MarianEngine::translate_batch(const std::string& source,
                                                       const std::string& target,
                                                       const std::vector<std::string>& segments) {
  auto it = translators_.find({source, target});
  if (it == translators_.end())
    throw TranslationFailed("marian: no model for " + source + "-" + target);
  try {
    auto outputs = it->second.translator->translate(segments);
    translated_tokens_.fetch_add(count_tokens(it->second, segments, outputs),
                                 std::memory_order_relaxed);
    return outputs;
  } catch (const TranslationFailed&) {
    throw;
  } catch (const std::exception& e) {
    throw TranslationFailed(std::string("marian: ") + e.what());
  }
}

}  // namespace transnotes::marian
