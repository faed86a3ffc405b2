#include "domain/text.h"

#include <gtest/gtest.h>

#include <string>

namespace transnotes {
namespace {

TEST(Utf8, AcceptsEveryWellFormedLength) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xB1"));          // U+00F1, two bytes
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));      // U+20AC, three bytes
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));  // U+1F600, four bytes
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));      // U+E000, just above them
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
  EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));
}

TEST(Utf8, RefusesWhatRfc3629Forbids) {
  EXPECT_FALSE(is_valid_utf8("\x80"));              // a continuation byte alone
  EXPECT_FALSE(is_valid_utf8("\xFF\xFE"));          // never valid bytes
  EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated at the end
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated three-byte form
  EXPECT_FALSE(is_valid_utf8("\xC3(x"));            // lead followed by a non-continuation
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xE0\x9F\xBF"));      // overlong three-byte form
  EXPECT_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));  // overlong four-byte form
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // U+D800, a surrogate
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));      // U+DFFF
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000, past the last code point
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("ok\xF0\x9F\x98"));  // truncated after valid text
}

TEST(Utf8, CountsCodePoints) {
  EXPECT_EQ(count_characters(""), 0u);
  EXPECT_EQ(count_characters("abc"), 3u);
  EXPECT_EQ(count_characters("\xC3\xB1\xE2\x82\xAC\xF0\x9F\x98\x80"), 3u);
}

TEST(Utf8, ReplacesEachInvalidByteForEchoing) {
  EXPECT_EQ(replace_invalid_utf8("text/plain"), "text/plain");
  EXPECT_EQ(replace_invalid_utf8("a\xFF"
                                 "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(replace_invalid_utf8("\xC3\xB1\x80"), "\xC3\xB1\xEF\xBF\xBD");
  EXPECT_TRUE(is_valid_utf8(replace_invalid_utf8("\xED\xA0\x80\xC0")));
}

TEST(Languages, NormalizedToThePrimarySubtagInLowerCase) {
  EXPECT_EQ(normalize_language("en"), "en");
  EXPECT_EQ(normalize_language(" EN "), "en");
  EXPECT_EQ(normalize_language("en-US"), "en");
  EXPECT_EQ(normalize_language("es-ES"), "es");
  EXPECT_EQ(normalize_language("es_ES"), "es");
  EXPECT_EQ(normalize_language("zh-Hant-TW"), "zh");
  EXPECT_EQ(normalize_language("\tPT-br\n"), "pt");
  EXPECT_EQ(normalize_language("   "), "");
  EXPECT_EQ(normalize_language("-US"), "");
}

}  // namespace
}  // namespace transnotes

TEST(SourceDigest, StableAndSensitiveToTextAndLanguage) {
  // Pinned value: stores in other processes compare digests, so the function may never change.
  EXPECT_EQ(transnotes::source_digest("Hello", "en"), "80c09480e73a9f5e");
  EXPECT_EQ(transnotes::source_digest("", "").size(), 16u);
  EXPECT_NE(transnotes::source_digest("Hello", "en"), transnotes::source_digest("Hello.", "en"));
  EXPECT_NE(transnotes::source_digest("Hello", "en"), transnotes::source_digest("Hello", "es"));
  EXPECT_NE(transnotes::source_digest("bc", "a"), transnotes::source_digest("c", "ab"));
}

TEST(TrimWhitespace, DropsOnlyTheWhitespaceAround) {
  EXPECT_EQ(transnotes::trim_whitespace(" \t\r\n\v\fa b\n "), "a b");
  EXPECT_EQ(transnotes::trim_whitespace(" \t "), "");
  EXPECT_EQ(transnotes::trim_whitespace(""), "");
  EXPECT_EQ(transnotes::trim_whitespace("x"), "x");
}
