#include "translation/registry.h"

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
#include <utility>

#include "domain/errors.h"
#include "translation/language_codes.h"
#include "translation/segmenter.h"

namespace transnotes::translation {
namespace {

bool is_blank_char(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool is_blank_text(const std::string& text) {
  return std::all_of(text.begin(), text.end(), is_blank_char);
}

}  // namespace

EngineRegistry::EngineRegistry(RegistryOptions options) : options_(std::move(options)) {}

void EngineRegistry::add(std::shared_ptr<Engine> engine) {
  if (!engine) return;
  std::unique_lock lock(mutex_);
  engines_.push_back(std::move(engine));
}

void EngineRegistry::set_priority(const std::vector<std::string>& names) {
  std::unique_lock lock(mutex_);
  auto rank = [&names](const std::shared_ptr<Engine>& engine) {
    const auto found = std::find(names.begin(), names.end(), engine->name());
    return static_cast<std::size_t>(found - names.begin());  // unnamed: names.size()
  };
  std::stable_sort(engines_.begin(), engines_.end(),
                   [&rank](const auto& a, const auto& b) { return rank(a) < rank(b); });
}

std::vector<std::string> EngineRegistry::parse_priority(std::string_view list) {
  std::vector<std::string> names;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view name = list.substr(start, end - start);
    while (!name.empty() && is_blank_char(name.front())) name.remove_prefix(1);
    while (!name.empty() && is_blank_char(name.back())) name.remove_suffix(1);
    if (!name.empty()) names.emplace_back(name);
    start = end + 1;
  }
  return names;
}

void EngineRegistry::abandon() {
  std::shared_lock lock(mutex_);
  for (const auto& engine : engines_) engine->abandon();
}

std::vector<std::string> EngineRegistry::engine_names() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> names;
  for (const auto& engine : engines_) names.push_back(engine->name());
  return names;
}

// Caller holds mutex_ (shared).
std::optional<EngineRegistry::Leg> EngineRegistry::direct_leg(const std::string& source,
                                                              const std::string& target) const {
  for (const auto& engine : engines_) {
    for (const LanguagePair& pair : engine->pairs()) {
      if (normalize_language_code(pair.source) == source &&
          normalize_language_code(pair.target) == target) {
        return Leg{engine, pair.source, pair.target};
      }
    }
  }
  return std::nullopt;
}

// Caller holds mutex_ (shared).
std::optional<EngineRegistry::Route> EngineRegistry::find_route(const std::string& source,
                                                                const std::string& target) const {
  if (source.empty() || target.empty() || source == target) return std::nullopt;
  if (auto leg = direct_leg(source, target)) {
    std::string label = leg->engine->name();
    return Route{{std::move(*leg)}, std::move(label)};
  }
  const std::string& pivot = options_.pivot_language;
  if (source == pivot || target == pivot) return std::nullopt;
  auto first = direct_leg(source, pivot);
  if (!first) return std::nullopt;
  auto second = direct_leg(pivot, target);
  if (!second) return std::nullopt;
  std::string label = "pivot:" + first->engine->name() + "+" + second->engine->name();
  return Route{{std::move(*first), std::move(*second)}, std::move(label)};
}

std::vector<SupportedPair> EngineRegistry::pairs() const {
  std::shared_lock lock(mutex_);
  std::map<std::pair<std::string, std::string>, std::string> best;  // sorted, first engine wins
  for (const auto& engine : engines_) {
    for (const LanguagePair& pair : engine->pairs()) {
      std::string source = normalize_language_code(pair.source);
      std::string target = normalize_language_code(pair.target);
      if (source.empty() || target.empty() || source == target) continue;
      best.try_emplace({std::move(source), std::move(target)}, engine->name());
    }
  }
  std::vector<std::string> languages;
  for (const auto& [key, engine] : best) {
    languages.push_back(key.first);
    languages.push_back(key.second);
  }
  std::sort(languages.begin(), languages.end());
  languages.erase(std::unique(languages.begin(), languages.end()), languages.end());
  std::map<std::pair<std::string, std::string>, std::string> all = best;
  for (const auto& source : languages) {
    for (const auto& target : languages) {
      if (source == target || best.count({source, target}) != 0) continue;
      if (auto route = find_route(source, target))
        all.emplace(std::pair{source, target}, route->label);
    }
  }
  std::vector<SupportedPair> result;
  result.reserve(all.size());
  for (auto& [key, engine] : all) result.push_back(SupportedPair{{key.first, key.second}, engine});
  return result;
}

std::optional<std::string> EngineRegistry::engine_for(const std::string& source,
                                                      const std::string& target) const {
  std::shared_lock lock(mutex_);
  auto route = find_route(normalize_language_code(source), normalize_language_code(target));
  if (!route) return std::nullopt;
  return route->label;
}

std::vector<std::string> EngineRegistry::translate_leg(
    const Leg& leg, const std::vector<std::string>& segments,
    const std::function<bool()>& cancelled) const {
  const std::size_t batch_size = std::max<std::size_t>(1, options_.batch_size);
  std::vector<std::string> translated;
  translated.reserve(segments.size());
  for (std::size_t begin = 0; begin < segments.size(); begin += batch_size) {
    // Asked before each batch rather than inside it: an engine's batch cannot be interrupted
    // without abandoning the engine, and a batch is short next to a whole note.
    if (cancelled && cancelled()) throw TranslationCancelled("the translation was cancelled");
    const std::size_t end = std::min(segments.size(), begin + batch_size);
    const std::vector<std::string> batch(segments.begin() + static_cast<std::ptrdiff_t>(begin),
                                         segments.begin() + static_cast<std::ptrdiff_t>(end));
    std::vector<std::string> result;
    try {
      result = leg.engine->translate_batch(leg.source, leg.target, batch);
    } catch (const TranslationFailed&) {
      throw;
    } catch (const std::exception& error) {
      throw TranslationFailed(error.what());
    }
    if (result.size() != batch.size()) {
      throw TranslationFailed(leg.engine->name() + " returned " + std::to_string(result.size()) +
                              " segments for " + std::to_string(batch.size()));
    }
    for (auto& segment : result) translated.push_back(std::move(segment));
  }
  return translated;
}

TranslationOutput EngineRegistry::translate(const std::string& source, const std::string& target,
                                            const std::string& text,
                                            const std::function<bool()>& cancelled) {
  const std::string from = normalize_language_code(source);
  const std::string to = normalize_language_code(target);
  if (from.empty() || to.empty()) throw BadRequest("Invalid language code.");
  if (from == to) throw BadRequest("Source and target language must differ.");
  std::optional<Route> route;
  {
    std::shared_lock lock(mutex_);
    route = find_route(from, to);
  }
  if (!route) {
    throw BadRequest("Unsupported language pair: " + from + " -> " + to + ".");
  }
  if (is_blank_text(text)) return TranslationOutput{text, route->label};

  const Segmentation segmentation = segment_text(text);
  std::vector<std::string> segments = segmentation.segments;
  for (const Leg& leg : route->legs) segments = translate_leg(leg, segments, cancelled);
  return TranslationOutput{reassemble(segmentation, segments), route->label};
}

}  // namespace transnotes::translation
