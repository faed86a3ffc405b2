#include "translation/segmenter.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace transnotes::translation {
namespace {

using Strings = std::vector<std::string>;

// Every segmentation must put the original text back together byte for byte.
void expect_round_trip(const std::string& text) {
  const Segmentation seg = segment_text(text);
  ASSERT_EQ(seg.separators.size(), seg.segments.size() + 1) << text;
  EXPECT_EQ(reassemble(seg, seg.segments), text);
  for (const auto& segment : seg.segments) {
    EXPECT_FALSE(segment.empty());
    EXPECT_EQ(segment.find('\n'), std::string::npos);
    EXPECT_EQ(segment.find('\r'), std::string::npos);
    EXPECT_NE(segment.front(), ' ');
    EXPECT_NE(segment.back(), ' ');
  }
}

TEST(SplitSentences, SplitsAfterTerminators) {
  EXPECT_EQ(split_sentences("Hello world. How are you? Fine! Thanks."),
            (Strings{"Hello world.", "How are you?", "Fine!", "Thanks."}));
}

TEST(SplitSentences, KeepsAbbreviationsTogether) {
  EXPECT_EQ(split_sentences("Mr. Smith met Dr. Jones. They talked."),
            (Strings{"Mr. Smith met Dr. Jones.", "They talked."}));
  EXPECT_EQ(split_sentences("Use fruit, e.g. Apples or pears. Done."),
            (Strings{"Use fruit, e.g. Apples or pears.", "Done."}));
  EXPECT_EQ(split_sentences("J. R. R. Tolkien wrote books. Many."),
            (Strings{"J. R. R. Tolkien wrote books.", "Many."}));
  EXPECT_EQ(split_sentences("The U.S. Army is big."), (Strings{"The U.S. Army is big."}));
}

TEST(SplitSentences, KeepsDecimalsAndLowerCaseContinuations) {
  EXPECT_EQ(split_sentences("It costs 3.5 euros. Cheap."),
            (Strings{"It costs 3.5 euros.", "Cheap."}));
  EXPECT_EQ(split_sentences("Wait... what? Yes."), (Strings{"Wait... what?", "Yes."}));
  EXPECT_EQ(split_sentences("Version 1.2.3 is out."), (Strings{"Version 1.2.3 is out."}));
}

TEST(SplitSentences, HandlesEllipsesQuotesAndUnicode) {
  EXPECT_EQ(split_sentences("Well\xE2\x80\xA6 Then we left."),
            (Strings{"Well\xE2\x80\xA6", "Then we left."}));
  EXPECT_EQ(split_sentences("Wait... Then go."), (Strings{"Wait...", "Then go."}));
  EXPECT_EQ(split_sentences("He said \"Stop.\" Then he left."),
            (Strings{"He said \"Stop.\"", "Then he left."}));
  EXPECT_EQ(split_sentences("\xC2\xBFQu\xC3\xA9 tal? \xC2\xA1"
                            "Bien! \xC3\x89l vino."),
            (Strings{"\xC2\xBFQu\xC3\xA9 tal?",
                     "\xC2\xA1"
                     "Bien!",
                     "\xC3\x89l vino."}));
  EXPECT_EQ(split_sentences("Really?! Yes."), (Strings{"Really?!", "Yes."}));
}

TEST(SplitSentences, EmptyAndBlank) {
  EXPECT_TRUE(split_sentences("").empty());
  EXPECT_TRUE(split_sentences("   \t ").empty());
  EXPECT_EQ(split_sentences("  no terminator  "), (Strings{"no terminator"}));
  EXPECT_EQ(split_sentences("."), (Strings{"."}));
}

TEST(SegmentText, EmptyTextHasOneEmptySeparator) {
  const Segmentation seg = segment_text("");
  EXPECT_TRUE(seg.segments.empty());
  EXPECT_EQ(seg.separators, (Strings{""}));
  expect_round_trip("");
}

TEST(SegmentText, WhitespaceOnlyIsAllSeparator) {
  const Segmentation seg = segment_text(" \n\t\r\n  \n");
  EXPECT_TRUE(seg.segments.empty());
  EXPECT_EQ(seg.separators, (Strings{" \n\t\r\n  \n"}));
}

TEST(SegmentText, ParagraphsAndLinesGoToSeparators) {
  const std::string text = "  First one. Second one.\n\nNew paragraph\nsecond line.\n";
  const Segmentation seg = segment_text(text);
  EXPECT_EQ(seg.segments, (Strings{"First one.", "Second one.", "New paragraph", "second line."}));
  EXPECT_EQ(seg.separators, (Strings{"  ", " ", "\n\n", "\n", "\n"}));
  expect_round_trip(text);
}

TEST(SegmentText, CrlfAndLoneCr) {
  const std::string text = "One.\r\n\r\nTwo.\rThree.";
  const Segmentation seg = segment_text(text);
  EXPECT_EQ(seg.segments, (Strings{"One.", "Two.", "Three."}));
  EXPECT_EQ(seg.separators, (Strings{"", "\r\n\r\n", "\r", ""}));
  expect_round_trip(text);
}

TEST(SegmentText, ReassemblesTranslations) {
  const Segmentation seg = segment_text("Hello. World!\n\nBye.");
  EXPECT_EQ(reassemble(seg, {"Hola.", "Mundo!", "Adios."}), "Hola. Mundo!\n\nAdios.");
  EXPECT_THROW(reassemble(seg, {"only one"}), std::invalid_argument);
}

TEST(SegmentText, RoundTripsAssortedTexts) {
  for (const std::string text :
       {"a", " ", "\n", "\r", "\r\n", "x\n", "\nx", "Hi.  \t Bye.   \n\n\n  Again?\t",
        "Tabs\tinside. Mixed\r\nbreaks\n\r\nend",
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x80\x82 x", "Multiple   spaces.   Between.  ",
        "...", "Trailing period. "}) {
    expect_round_trip(text);
  }
}

TEST(SegmentText, LongTextIsNotTruncated) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "Sentence number " + std::to_string(i) + ". ";
  const Segmentation seg = segment_text(text);
  EXPECT_EQ(seg.segments.size(), 5000u);
  EXPECT_EQ(reassemble(seg, seg.segments), text);
}

}  // namespace
}  // namespace transnotes::translation

namespace transnotes::translation {
namespace {

void expect_bounded_round_trip(const std::string& text, std::size_t max_bytes) {
  const Segmentation seg = segment_text(text, max_bytes);
  ASSERT_EQ(seg.separators.size(), seg.segments.size() + 1);
  EXPECT_EQ(reassemble(seg, seg.segments), text);
  for (const auto& segment : seg.segments) {
    EXPECT_FALSE(segment.empty());
    EXPECT_LE(segment.size(), max_bytes) << segment;
    EXPECT_NE(segment.front(), ' ');
    EXPECT_NE(segment.back(), ' ');
  }
}

TEST(SegmentBound, LongSentenceIsCutAtTheLastWhitespaceThatFits) {
  const Segmentation seg = segment_text("aaaa bbbb cccc dddd. Short.", 10);
  EXPECT_EQ(seg.segments, (Strings{"aaaa bbbb", "cccc dddd.", "Short."}));
  EXPECT_EQ(seg.separators, (Strings{"", " ", " ", ""}));
}

TEST(SegmentBound, WhitespaceRightAtTheBoundKeepsAFullPiece) {
  EXPECT_EQ(segment_text("abcd  efgh", 4).segments, (Strings{"abcd", "efgh"}));
  EXPECT_EQ(segment_text("abcd  efgh", 4).separators, (Strings{"", "  ", ""}));
}

TEST(SegmentBound, RunWithoutWhitespaceIsCutHardBetweenCharacters) {
  EXPECT_EQ(segment_text("abcdefghij", 4).segments, (Strings{"abcd", "efgh", "ij"}));
  // "ñ" is two bytes: a cut never splits it.
  const std::string enye = "\xC3\xB1";
  EXPECT_EQ(segment_text("ab" + enye + enye, 5).segments, (Strings{"ab" + enye, enye}));
  expect_bounded_round_trip(std::string(37, 'x') + enye + "\xE2\x80\xA6" + std::string(9, 'y'), 8);
}

TEST(SegmentBound, ShortSentencesAreUntouched) {
  EXPECT_EQ(segment_text("Hello world. How are you?", 12).segments,
            (Strings{"Hello world.", "How are you?"}));
  EXPECT_EQ(split_sentences("one two three four", 9), (Strings{"one two", "three", "four"}));
}

TEST(SegmentBound, DefaultBoundCutsAHugeNoteWithoutSentenceBreaks) {
  // The shape that kept lt-proc busy for 30 s a try: 200,000 characters, no sentence end.
  std::string note;
  while (note.size() < 200'000) note += "word ";
  note += "end";
  const Segmentation seg = segment_text(note);
  EXPECT_GE(seg.segments.size(), 200'000 / kMaxSegmentBytes);
  for (const auto& segment : seg.segments) EXPECT_LE(segment.size(), kMaxSegmentBytes);
  EXPECT_EQ(reassemble(seg, seg.segments), note);
  const Segmentation solid = segment_text(std::string(200'000, 'z'));
  EXPECT_EQ(solid.segments.size(), 200'000 / kMaxSegmentBytes);
}

TEST(SegmentBound, RoundTripsAcrossBounds) {
  const std::string text =
      "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n\n  Sed do eiusmod\ttempor "
      "incididunt ut labore et dolore magna aliqua!  Ut enim ad minim veniam… quis "
      "\xC3\xB1\xC3\xB1\xC3\xB1\xC3\xB1\xC3\xB1\xC3\xB1 nostrud.";
  for (std::size_t bound = 4; bound < 80; ++bound) expect_bounded_round_trip(text, bound);
}

}  // namespace
}  // namespace transnotes::translation
