#include "domain/note_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include "cache/memory_cache.h"
#include "domain/model.h"
#include "queue/memory_bus.h"
#include "storage/storage.h"

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

TEST(Validation, InvalidUtf8IsNotAStringAndIsNotCounted) {
  NoteFields fields;
  // 5,000 stray continuation bytes: no characters at all, so no length would catch them.
  fields.title = std::string(5000, '\x80');
  fields.original_text = "ok \xFF\xFE";
  fields.original_language = "\xED\xA0\x80";  // a surrogate
  auto errors = validate_note_fields(fields, /*partial=*/false);
  EXPECT_EQ(errors["title"], std::vector<std::string>{"Not a valid string."});
  EXPECT_EQ(errors["original_text"], std::vector<std::string>{"Not a valid string."});
  EXPECT_EQ(errors["original_language"], std::vector<std::string>{"Not a valid string."});
  NoteFields patch;
  patch.original_text = "\xC0\xAF";  // overlong '/'
  EXPECT_EQ(validate_note_fields(patch, /*partial=*/true)["original_text"],
            std::vector<std::string>{"Not a valid string."});
}

TEST(Cleaning, TrimsEveryFieldBeforeValidating) {
  NoteFields fields;
  fields.title = "  Title\t\n";
  fields.original_text = "\r\n Text  ";
  fields.original_language = " en ";
  EXPECT_TRUE(clean_note_fields(fields, /*partial=*/false).empty());
  EXPECT_EQ(fields.title, "Title");
  EXPECT_EQ(fields.original_text, "Text");
  EXPECT_EQ(fields.original_language, "en");

  // 200 characters once trimmed: within the limit although 204 were sent.
  NoteFields padded;
  padded.title = "  " + std::string(200, 'a') + "  ";
  padded.original_text = "x";
  EXPECT_TRUE(clean_note_fields(padded, /*partial=*/false).empty());
  EXPECT_EQ(padded.title->size(), 200u);

  NoteFields blank;
  blank.title = " \t ";
  EXPECT_EQ(clean_note_fields(blank, /*partial=*/true)["title"],
            std::vector<std::string>{"This field may not be blank."});
}

TEST(Cleaning, StoresTheLanguageNormalized) {
  NoteFields fields;
  fields.title = "t";
  fields.original_text = "x";
  fields.original_language = "en-US";
  EXPECT_TRUE(clean_note_fields(fields, /*partial=*/false).empty());
  EXPECT_EQ(fields.original_language, "en");
  NoteFields patch;
  patch.original_language = " ES_es ";
  EXPECT_TRUE(clean_note_fields(patch, /*partial=*/true).empty());
  EXPECT_EQ(patch.original_language, "es");
  NoteFields region_only;
  region_only.original_language = "-US";
  EXPECT_EQ(clean_note_fields(region_only, /*partial=*/true)["original_language"],
            std::vector<std::string>{"Not a valid language code."});
}

TEST(Cleaning, TargetLanguagesAreCheckedAndNormalized) {
  EXPECT_EQ(clean_target_language("es-ES"), "es");
  EXPECT_EQ(clean_target_language(" EN-gb "), "en");
  const auto message_for = [](const std::string& target) {
    try {
      clean_target_language(target);
    } catch (const ValidationError& e) {
      return e.errors().at("target_language");
    }
    return std::vector<std::string>{};
  };
  EXPECT_EQ(message_for("e\xFFs"), std::vector<std::string>{"Not a valid string."});
  EXPECT_EQ(message_for("  "), std::vector<std::string>{"This field may not be blank."});
  EXPECT_EQ(message_for(std::string(51, 'x')),
            std::vector<std::string>{"Ensure this field has no more than 50 characters."});
  EXPECT_EQ(message_for("_x"), std::vector<std::string>{"Not a valid language code."});
}

TEST(Timestamps, IsoWithMicrosecondsAndZ) {
  EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_timestamp(1'700'000'000'123'456), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(format_timestamp(951'782'400'000'001), "2000-02-29T00:00:00.000001Z");  // leap day
  EXPECT_EQ(format_timestamp(4'102'444'799'999'999), "2099-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_timestamp(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(JobStatus, RoundTripsThroughStrings) {
  for (auto s : {JobStatus::kQueued, JobStatus::kRunning, JobStatus::kSucceeded, JobStatus::kFailed,
                 JobStatus::kCancelled}) {
    EXPECT_EQ(job_status_from_string(to_string(s)), s);
  }
  EXPECT_STREQ(to_string(JobStatus::kCancelled), "cancelled");
  EXPECT_FALSE(job_status_from_string("bogus"));
}

// Covers en -> es only; nothing here runs a translation.
class EnglishToSpanish final : public Translator {
 public:
  std::vector<SupportedPair> pairs() const override { return {{{"en", "es"}, "test"}}; }
  std::optional<std::string> engine_for(const std::string& source,
                                        const std::string& target) const override {
    if (source == "en" && target == "es") return "test";
    return std::nullopt;
  }
  using Translator::translate;
  TranslationOutput translate(const std::string&, const std::string&, const std::string& text,
                              const std::function<bool()>&) override {
    return {text, "test"};
  }
};

// NoteService over a real SQLite store, the in-memory cache and the in-process bus.
class NoteServiceWithStore : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("transnotes-note-service-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(directory_);
    storage::StorageConfig config;
    config.database_url = "sqlite://" + (directory_ / "notes.db").string();
    store_ = storage::open_store(config);
    store_->migrate();
    service_ = std::make_unique<NoteService>(*store_, cache_, bus_, translator_,
                                             [](const Note&) { return std::string("{}"); });
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    std::filesystem::remove_all(directory_);
  }

  std::filesystem::path directory_;
  std::unique_ptr<Store> store_;
  cache::MemoryNoteCache cache_;
  queue::MemoryJobBus bus_;
  EnglishToSpanish translator_;
  std::unique_ptr<NoteService> service_;
};

TEST_F(NoteServiceWithStore, TranslationRequestsCarryTheirRequestIdIntoTheJob) {
  NoteFields fields;
  fields.title = "t";
  fields.original_text = "Hello";
  Note note = service_->create(kOpenModeOwner, fields);
  TranslationRequest asked =
      service_->request_translation(kOpenModeOwner, note.id, "es", "req-0b7e");
  ASSERT_TRUE(asked.created);
  EXPECT_EQ(asked.job.request_id, "req-0b7e");
  EXPECT_EQ(service_->job(kOpenModeOwner, asked.job.id).request_id, "req-0b7e");
  auto notice = bus_.next(std::chrono::milliseconds(0));
  ASSERT_TRUE(notice);
  EXPECT_EQ(notice->job_id, asked.job.id);

  // Without one, after the first was cancelled: a new job with none.
  ASSERT_TRUE(store_->cancel_job(asked.job.id));
  TranslationRequest again = service_->request_translation(kOpenModeOwner, note.id, "es");
  ASSERT_TRUE(again.created);
  EXPECT_NE(again.job.id, asked.job.id);
  EXPECT_EQ(again.job.request_id, "");
}

}  // namespace
}  // namespace transnotes
