// MarianEngine's figures for transnotes_engine_model_bytes and transnotes_translated_tokens_total:
// the weights' size, and a token count that moves with every successful translation only.
#include <gtest/gtest.h>

#include <filesystem>

#include "marian/marian_engine.h"
#include "marian/tiny_fixture_test_support.h"
#include "marian/tokenizer.h"

namespace transnotes::marian {
namespace {

namespace fs = std::filesystem;

class MarianEngineFigures : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::is_regular_file(tiny_fixture::dir() / "model.safetensors"))
        << "MarianMT fixture not found at " << tiny_fixture::dir();
  }
};

TEST_F(MarianEngineFigures, ModelBytesAreTheWeightsFileSize) {
  MarianEngineOptions options;
  options.num_threads = 1;
  MarianEngine engine(std::vector<MarianModelDir>{{tiny_fixture::dir(), {"en", "es"}}}, options);
  EXPECT_EQ(engine.model_bytes(), fs::file_size(tiny_fixture::dir() / "model.safetensors"));
  EXPECT_GT(engine.model_bytes(), 0u);
}

TEST_F(MarianEngineFigures, TokensCountSourceAndOutputOfSuccessfulTranslations) {
  MarianEngineOptions options;
  options.num_threads = 1;
  options.max_length = 64;
  MarianEngine engine(std::vector<MarianModelDir>{{tiny_fixture::dir(), {"en", "es"}}}, options);
  EXPECT_EQ(engine.translated_tokens(), 0u);

  const std::vector<std::string> sources = {"Hello", "The dog is on the table.", "  "};
  const auto outputs = engine.translate_batch("en", "es", sources);
  ASSERT_FALSE(outputs[0].empty());
  ASSERT_FALSE(outputs[1].empty());
  const auto after_one = engine.translated_tokens();
  const MarianTokenizer tokenizer(tiny_fixture::dir());
  // Each source's pieces and </s>, and at least one output piece and </s> for each.
  const std::uint64_t source_tokens =
      tokenizer.pieces(sources[0]).size() + 1 + tokenizer.pieces(sources[1]).size() + 1;
  EXPECT_GE(after_one, source_tokens + 2 * 2);

  // The same work counts the same again; blank input, which nothing translates, counts nothing.
  engine.translate_batch("en", "es", sources);
  EXPECT_EQ(engine.translated_tokens(), 2 * after_one);
  engine.translate_batch("en", "es", {"", " \n"});
  EXPECT_EQ(engine.translated_tokens(), 2 * after_one);
  // A failed call counts nothing.
  EXPECT_THROW(engine.translate_batch("en", "fr", {"Hello"}), TranslationFailed);
  EXPECT_EQ(engine.translated_tokens(), 2 * after_one);
}

}  // namespace
}  // namespace transnotes::marian
