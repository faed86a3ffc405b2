// EngineRegistry: the Translator the application uses. Holds translation engines in priority
// order, picks the first engine that covers a pair (or pivots through English when no engine
// does directly), and translates whole texts sentence by sentence, keeping the layout.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "domain/ports.h"
#include "translation/engine.h"

namespace transnotes::translation {

struct RegistryOptions {
  // Segments handed to an engine per translate_batch call (at least 1).
  std::size_t batch_size = 32;
  // The language pivot pairs go through.
  std::string pivot_language = "en";
};

// Thread-safe: add()/set_priority() may run concurrently with translations (they take a
// write lock), though they are meant for start-up. Engines are shared and must be thread-safe.
class EngineRegistry : public Translator {
 public:
  explicit EngineRegistry(RegistryOptions options = {});

  // Appends an engine with the lowest priority so far. Ignores null.
  void add(std::shared_ptr<Engine> engine);
  // Reorders engines: those named in `names` first, in that order; the rest keep their order.
  void set_priority(const std::vector<std::string>& names);
  // Parses a comma-separated engine list ("marian, apertium") for set_priority: the one parser
  // of --engines / TRANSNOTES_ENGINES. Items are trimmed of whitespace; empty items are ignored.
  static std::vector<std::string> parse_priority(std::string_view list);

  // Shutdown: every engine gives up its in-flight translations (Engine::abandon), so translate()
  // calls end promptly with TranslationFailed. Irreversible.
  void abandon();

  // Names of the engines, highest priority first.
  std::vector<std::string> engine_names() const;

  // Every translatable pair, sorted by (source, target); pivot pairs have engine
  // "pivot:<first leg engine>+<second leg engine>".
  std::vector<SupportedPair> pairs() const override;
  // Codes are normalised ("EN-us" -> "en"). nullopt if unsupported or source == target.
  std::optional<std::string> engine_for(const std::string& source,
                                        const std::string& target) const override;
  // Throws BadRequest for an invalid/unsupported pair or source == target, TranslationFailed
  // when an engine fails. Whitespace-only text translates to itself. Asks `cancelled` before
  // each batch it hands an engine (on every leg of a pivot): once it answers true, throws
  // TranslationCancelled without sending the rest. An empty `cancelled` is never asked.
  using Translator::translate;
  TranslationOutput translate(const std::string& source, const std::string& target,
                              const std::string& text,
                              const std::function<bool()>& cancelled) override;

 private:
  struct Leg {
    std::shared_ptr<Engine> engine;
    std::string source;
    std::string target;
  };
  struct Route {
    std::vector<Leg> legs;
    std::string label;
  };

  std::optional<Route> find_route(const std::string& source, const std::string& target) const;
  std::optional<Leg> direct_leg(const std::string& source, const std::string& target) const;
  std::vector<std::string> translate_leg(const Leg& leg, const std::vector<std::string>& segments,
                                         const std::function<bool()>& cancelled) const;

  const RegistryOptions options_;
  mutable std::shared_mutex mutex_;
  std::vector<std::shared_ptr<Engine>> engines_;  // guarded by mutex_
};

}  // namespace transnotes::translation
