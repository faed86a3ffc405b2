// A machine-translation engine: translates batches of sentence-sized segments for the
// language pairs it reports. Implementations: ApertiumEngine (rule-based, Debian packages),
// MarianEngine (native OPUS-MT inference). The EngineRegistry turns engines into a Translator.
#pragma once

#include <string>
#include <vector>

#include "domain/model.h"

namespace transnotes::translation {

class Engine {
 public:
  virtual ~Engine() = default;
  // Short stable name shown in the API ("apertium", "marian").
  virtual std::string name() const = 0;
  virtual std::vector<LanguagePair> pairs() const = 0;
  // Translates each segment independently; result[i] is the translation of segments[i].
  // Segments carry no paragraph breaks. Thread-safe. Throws TranslationFailed.
  virtual std::vector<std::string> translate_batch(const std::string& source,
                                                   const std::string& target,
                                                   const std::vector<std::string>& segments) = 0;
  // Shutdown: in-flight and later translate_batch calls end promptly with TranslationFailed
  // instead of running to completion. Irreversible. Engines whose batches end quickly on their
  // own need not override it.
  virtual void abandon() {}
};

}  // namespace transnotes::translation
