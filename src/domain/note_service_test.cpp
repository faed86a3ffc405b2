#include "domain/note_service.h"

#include <gtest/gtest.h>

#include "domain/model.h"

namespace transnotes {
namespace {

TEST(Validation, CreateNeedsTitleAndText) {
  auto errors = validate_note_fields({}, /*partial=*/false);
  EXPECT_EQ(errors["title"], std::vector<std::string>{"This field is required."});
  EXPECT_EQ(errors["original_text"], std::vector<std::string>{"This field is required."});
  EXPECT_EQ(errors.count("original_language"), 0u);
}

TEST(Validation, PatchAcceptsAbsentFields) {
  EXPECT_TRUE(validate_note_fields({}, /*partial=*/true).empty());
  NoteFields blank;
  blank.title = "";
  auto errors = validate_note_fields(blank, /*partial=*/true);
  EXPECT_EQ(errors["title"], std::vector<std::string>{"This field may not be blank."});
}

TEST(Validation, LengthsCountCharactersNotBytes) {
  NoteFields fields;
  fields.title = std::string();
  for (int i = 0; i < 200; ++i) fields.title->append("ñ");  // 400 bytes, 200 characters
  fields.original_text.emplace("x");
  EXPECT_TRUE(validate_note_fields(fields, false).empty());
  fields.title->append("a");
  EXPECT_EQ(validate_note_fields(fields, false)["title"],
            std::vector<std::string>{"Ensure this field has no more than 200 characters."});
  fields.title.emplace("ok");
  fields.original_language = std::string(51, 'x');
  EXPECT_EQ(validate_note_fields(fields, false)["original_language"],
            std::vector<std::string>{"Ensure this field has no more than 50 characters."});
}

TEST(Validation, NullCharactersAreRejectedLikeDrf) {
  NoteFields fields;
  fields.title = std::string("a\0b", 3);
  fields.original_text = std::string("text\0", 5);
  fields.original_language = std::string(50, 'x') + std::string(1, '\0');
  auto errors = validate_note_fields(fields, /*partial=*/false);
  EXPECT_EQ(errors["title"], std::vector<std::string>{"Null characters are not allowed."});
  EXPECT_EQ(errors["original_text"], std::vector<std::string>{"Null characters are not allowed."});
  EXPECT_EQ(errors["original_language"],
            (std::vector<std::string>{"Ensure this field has no more than 50 characters.",
                                      "Null characters are not allowed."}));
}

TEST(Languages, NormalizedToTrimmedLowerCase) {
  EXPECT_EQ(normalize_language(" EN "), "en");
  EXPECT_EQ(normalize_language("es"), "es");
  EXPECT_EQ(normalize_language("   "), "");
}

TEST(Timestamps, IsoWithMicrosecondsAndZ) {
  EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_timestamp(1'700'000'000'123'456), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(format_timestamp(951'782'400'000'001), "2000-02-29T00:00:00.000001Z");  // leap day
  EXPECT_EQ(format_timestamp(4'102'444'799'999'999), "2099-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_timestamp(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(JobStatus, RoundTripsThroughStrings) {
  for (auto s :
       {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kSucceeded, JobStatus::kFailed}) {
    EXPECT_EQ(job_status_from_string(to_string(s)), s);
  }
  EXPECT_FALSE(job_status_from_string("bogus"));
}

}  // namespace
}  // namespace transnotes
