// Notes made in open mode (or before accounts existed: the migration gives them to the same
// open-mode owner) are handed to an account with `transnotes users adopt-open-notes`.
#include <gtest/gtest.h>

#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;

const std::string kBinary = TRANSNOTES_BINARY;

TEST(OpenNotes, AnAccountAdoptsTheNotesOfOpenModeWithTheirTranslations) {
  const std::string data_dir = e2e::make_temp_dir("transnotes-adopt");
  {
    e2e::ServiceOptions options;
    options.auth = "open";
    options.data_dir = data_dir;
    e2e::Service open_service(options);
    auto job = e2e::translate_new_note(open_service.port(), "Hello world.");
    ASSERT_EQ(e2e::wait_for_job(open_service.port(), job).at("status"), "succeeded");
    auto second = request(open_service.port(), "POST", "/api/v1/notes/",
                          R"({"title": "second", "original_text": "Good morning."})");
    ASSERT_EQ(second.status, 201) << second.body;
  }
  const std::string env = "TRANSNOTES_DATA_DIR=" + data_dir + " ";
  auto created = e2e::run_command("printf 'violet-Harbor-58-kettle\\n' | " + env + kBinary +
                                  " users create ada 2>&1");
  ASSERT_EQ(created.exit_code, 0) << created.output;
  auto adopted = e2e::run_command(env + kBinary + " users adopt-open-notes ada 2>&1");
  ASSERT_EQ(adopted.exit_code, 0) << adopted.output;
  EXPECT_NE(adopted.output.find("2 notes given to ada"), std::string::npos) << adopted.output;
  auto unknown = e2e::run_command(env + kBinary + " users adopt-open-notes nobody 2>&1");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;

  e2e::ServiceOptions options;
  options.data_dir = data_dir;
  e2e::Service service(options);
  const int port = service.port();
  // The harness's own test user owns nothing.
  EXPECT_EQ(request(port, "GET", "/api/v1/notes/").json().as_array().size(), 0u);
  auto ada = e2e::register_and_login(port, "ada", "violet-Harbor-58-kettle");
  auto notes = request(port, "GET", "/api/v1/notes/", "", "", e2e::bearer(ada.access));
  ASSERT_EQ(notes.status, 200) << notes.body;
  ASSERT_EQ(notes.json().as_array().size(), 2u) << notes.body;
  auto stats = request(port, "GET", "/api/v1/stats/", "", "", e2e::bearer(ada.access)).json();
  EXPECT_EQ(stats.at("total_notes"), 2);
  EXPECT_EQ(stats.at("total_translations"), 1);
  const auto first_id = notes.json().as_array()[1].at("id").as_int64();
  auto first = request(port, "GET", "/api/v1/notes/" + std::to_string(first_id) + "/", "", "",
                       e2e::bearer(ada.access));
  EXPECT_EQ(first.json().at("translated_text"), "Hola Mundo.") << first.body;
  auto jobs = request(port, "GET", "/api/v1/notes/" + std::to_string(first_id) + "/translations/",
                      "", "", e2e::bearer(ada.access));
  EXPECT_EQ(jobs.json().as_array().size(), 1u) << jobs.body;
}

}  // namespace
