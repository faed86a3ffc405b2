#include "translation/registry.h"

#include <gtest/gtest.h>

#include <functional>
#include <mutex>
#include <stdexcept>

#include "domain/errors.h"
#include "translation/language_codes.h"

namespace transnotes::translation {
namespace {

// A deterministic engine: wraps each segment as "<name>:<target>(<segment>)" so tests can see
// which engine translated what, and records every batch it received.
class FakeEngine : public Engine {
 public:
  FakeEngine(std::string name, std::vector<LanguagePair> pairs)
      : name_(std::move(name)), pairs_(std::move(pairs)) {}

  std::string name() const override { return name_; }
  std::vector<LanguagePair> pairs() const override { return pairs_; }
  std::vector<std::string> translate_batch(const std::string& /*source*/, const std::string& target,
                                           const std::vector<std::string>& segments) override {
    std::lock_guard lock(mutex_);
    if (fail_with_) throw std::runtime_error(*fail_with_);
    batches.push_back(segments);
    std::vector<std::string> out;
    for (const auto& segment : segments) out.push_back(name_ + ":" + target + "(" + segment + ")");
    return out;
  }
  void fail_with(std::string message) { fail_with_ = std::move(message); }

  std::vector<std::vector<std::string>> batches;

 private:
  std::string name_;
  std::vector<LanguagePair> pairs_;
  std::optional<std::string> fail_with_;
  std::mutex mutex_;
};

TEST(LanguageCodes, Normalizes) {
  EXPECT_EQ(normalize_language_code("EN"), "en");
  EXPECT_EQ(normalize_language_code("en-US"), "en");
  EXPECT_EQ(normalize_language_code("es_ES"), "es");
  EXPECT_EQ(normalize_language_code(""), "");
  EXPECT_EQ(normalize_language_code("e1"), "");
  EXPECT_EQ(apertium_to_iso("eng"), "en");
  EXPECT_EQ(apertium_to_iso("SPA"), "es");
  EXPECT_EQ(apertium_to_iso("ast"), "ast");
}

TEST(EngineRegistry, FirstEngineInPriorityWins) {
  auto apertium = std::make_shared<FakeEngine>("apertium", std::vector<LanguagePair>{{"en", "es"}});
  auto marian = std::make_shared<FakeEngine>("marian", std::vector<LanguagePair>{{"en", "es"}});
  EngineRegistry registry;
  registry.add(apertium);
  registry.add(marian);
  EXPECT_EQ(registry.engine_for("en", "es"), "apertium");
  registry.set_priority(EngineRegistry::parse_priority(" marian , apertium"));
  EXPECT_EQ(registry.engine_names(), (std::vector<std::string>{"marian", "apertium"}));
  EXPECT_EQ(registry.engine_for("EN", "es-MX"), "marian");
  const TranslationOutput out = registry.translate("en", "es", "Hi.");
  EXPECT_EQ(out.text, "marian:es(Hi.)");
  EXPECT_EQ(out.engine, "marian");
  EXPECT_TRUE(apertium->batches.empty());
}

TEST(EngineRegistry, PriorityListItemsAreTrimmedAndEmptyOnesIgnored) {
  using Names = std::vector<std::string>;
  EXPECT_EQ(EngineRegistry::parse_priority("marian, apertium"), (Names{"marian", "apertium"}));
  EXPECT_EQ(EngineRegistry::parse_priority(" marian ,\tapertium,, \n"),
            (Names{"marian", "apertium"}));
  EXPECT_EQ(EngineRegistry::parse_priority("apertium"), (Names{"apertium"}));
  EXPECT_EQ(EngineRegistry::parse_priority(""), Names{});
  EXPECT_EQ(EngineRegistry::parse_priority(" , ,\t"), Names{});
}

TEST(EngineRegistry, PivotsThroughEnglishWhenNoDirectPair) {
  auto apertium = std::make_shared<FakeEngine>(
      "apertium", std::vector<LanguagePair>{{"es", "en"}, {"en", "es"}});
  auto marian =
      std::make_shared<FakeEngine>("marian", std::vector<LanguagePair>{{"en", "fr"}, {"fr", "en"}});
  EngineRegistry registry;
  registry.add(apertium);
  registry.add(marian);
  EXPECT_EQ(registry.engine_for("es", "fr"), "pivot:apertium+marian");
  EXPECT_EQ(registry.engine_for("fr", "es"), "pivot:marian+apertium");
  const TranslationOutput out = registry.translate("es", "fr", "Hola.");
  EXPECT_EQ(out.text, "marian:fr(apertium:en(Hola.))");
  EXPECT_EQ(out.engine, "pivot:apertium+marian");

  const auto pairs = registry.pairs();
  std::vector<std::string> listed;
  for (const auto& pair : pairs)
    listed.push_back(pair.source + ">" + pair.target + "=" + pair.engine);
  EXPECT_EQ(listed, (std::vector<std::string>{"en>es=apertium", "en>fr=marian", "es>en=apertium",
                                              "es>fr=pivot:apertium+marian", "fr>en=marian",
                                              "fr>es=pivot:marian+apertium"}));
}

TEST(EngineRegistry, DirectPairBeatsPivot) {
  auto a = std::make_shared<FakeEngine>(
      "a", std::vector<LanguagePair>{{"es", "en"}, {"en", "fr"}, {"es", "fr"}});
  EngineRegistry registry;
  registry.add(a);
  EXPECT_EQ(registry.engine_for("es", "fr"), "a");
}

TEST(EngineRegistry, BatchesSegmentsAndKeepsLayout) {
  auto engine = std::make_shared<FakeEngine>("e", std::vector<LanguagePair>{{"en", "es"}});
  EngineRegistry registry(RegistryOptions{.batch_size = 2});
  registry.add(engine);
  const std::string text = "One. Two. Three.\n\n  Four\r\nFive.\n";
  const TranslationOutput out = registry.translate("en", "es", text);
  EXPECT_EQ(out.text, "e:es(One.) e:es(Two.) e:es(Three.)\n\n  e:es(Four)\r\ne:es(Five.)\n");
  ASSERT_EQ(engine->batches.size(), 3u);
  EXPECT_EQ(engine->batches[0], (std::vector<std::string>{"One.", "Two."}));
  EXPECT_EQ(engine->batches[2], (std::vector<std::string>{"Five."}));
}

TEST(EngineRegistry, RejectsBadPairs) {
  auto engine = std::make_shared<FakeEngine>("e", std::vector<LanguagePair>{{"en", "es"}});
  EngineRegistry registry;
  registry.add(engine);
  EXPECT_THROW(registry.translate("en", "de", "Hi."), BadRequest);
  EXPECT_THROW(registry.translate("en", "EN-gb", "Hi."), BadRequest);
  EXPECT_THROW(registry.translate("", "es", "Hi."), BadRequest);
  EXPECT_EQ(registry.engine_for("en", "de"), std::nullopt);
  EXPECT_EQ(registry.engine_for("en", "en"), std::nullopt);
  EXPECT_EQ(registry.engine_for("es", "en"), std::nullopt);  // no pivot leg either way
}

TEST(EngineRegistry, BlankTextTranslatesToItself) {
  auto engine = std::make_shared<FakeEngine>("e", std::vector<LanguagePair>{{"en", "es"}});
  EngineRegistry registry;
  registry.add(engine);
  EXPECT_EQ(registry.translate("en", "es", "").text, "");
  EXPECT_EQ(registry.translate("en", "es", " \n\n\t").text, " \n\n\t");
  EXPECT_TRUE(engine->batches.empty());
}

TEST(EngineRegistry, EngineErrorsBecomeTranslationFailed) {
  auto engine = std::make_shared<FakeEngine>("e", std::vector<LanguagePair>{{"en", "es"}});
  engine->fail_with("model exploded");
  EngineRegistry registry;
  registry.add(engine);
  try {
    registry.translate("en", "es", "Hi.");
    FAIL() << "expected TranslationFailed";
  } catch (const TranslationFailed& error) {
    EXPECT_STREQ(error.what(), "model exploded");
  }
}

TEST(EngineRegistry, CancelledBetweenBatchesStopsBeforeTheNextOne) {
  auto engine = std::make_shared<FakeEngine>("e", std::vector<LanguagePair>{{"en", "es"}});
  EngineRegistry registry(RegistryOptions{.batch_size = 1});
  registry.add(engine);
  Translator& translator = registry;  // the port the workers call
  int asked = 0;
  // Answers true on its third question: after two batches were sent.
  const std::function<bool()> cancelled = [&asked] { return ++asked >= 3; };
  EXPECT_THROW(translator.translate("en", "es", "One. Two. Three. Four.", cancelled),
               TranslationCancelled);
  EXPECT_EQ(asked, 3);
  ASSERT_EQ(engine->batches.size(), 2u);
  EXPECT_EQ(engine->batches[1], (std::vector<std::string>{"Two."}));
}

TEST(EngineRegistry, CancelledBeforeTheFirstBatchSendsNothing) {
  auto engine = std::make_shared<FakeEngine>("e", std::vector<LanguagePair>{{"en", "es"}});
  EngineRegistry registry;
  registry.add(engine);
  EXPECT_THROW(registry.translate("en", "es", "Hi.", [] { return true; }), TranslationCancelled);
  EXPECT_TRUE(engine->batches.empty());
}

TEST(EngineRegistry, CancelledIsAskedOnTheSecondLegOfAPivotToo) {
  auto first = std::make_shared<FakeEngine>("first", std::vector<LanguagePair>{{"es", "en"}});
  auto second = std::make_shared<FakeEngine>("second", std::vector<LanguagePair>{{"en", "fr"}});
  EngineRegistry registry(RegistryOptions{.batch_size = 2});
  registry.add(first);
  registry.add(second);
  int asked = 0;
  // Two batches on the first leg, then the cancel lands before the second leg's first batch.
  EXPECT_THROW(registry.translate("es", "fr", "Uno. Dos. Tres.", [&asked] { return ++asked > 2; }),
               TranslationCancelled);
  EXPECT_EQ(first->batches.size(), 2u);
  EXPECT_TRUE(second->batches.empty());
}

TEST(EngineRegistry, NeverCancelledTranslatesAsTheThreeArgumentOverload) {
  auto engine = std::make_shared<FakeEngine>("e", std::vector<LanguagePair>{{"en", "es"}});
  EngineRegistry registry(RegistryOptions{.batch_size = 2});
  registry.add(engine);
  const std::string text = "One. Two. Three.\n\nFour.";
  int asked = 0;
  const TranslationOutput asking =
      registry.translate("en", "es", text, [&asked] { return ++asked < 0; });
  EXPECT_EQ(asked, 2);  // once per batch
  const TranslationOutput plain = registry.translate("en", "es", text);
  EXPECT_EQ(asking.text, plain.text);
  EXPECT_EQ(asking.engine, plain.engine);
  // An empty callback is never called.
  EXPECT_EQ(registry.translate("en", "es", text, std::function<bool()>{}).text, plain.text);
}

}  // namespace
}  // namespace transnotes::translation
