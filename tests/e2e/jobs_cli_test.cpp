// `transnotes jobs list|retry|cancel|purge` end to end: the real binary on the data directory (or
// PostgreSQL database) a serve process uses, while it serves; what it does shows over HTTP and in
// what the serving process's workers do next.
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>

#include "e2e/harness.h"

namespace {

namespace json = boost::json;
using e2e::request;
using Clock = std::chrono::steady_clock;

const std::string kBinary = TRANSNOTES_BINARY;

// Single quotes for the shell; the tests' strings hold none.
std::string shell_quoted(const std::string& text) { return "'" + text + "'"; }

// The table row of job `id` (the line starting with the id), or "" when none.
std::string row_of(const std::string& output, std::int64_t id) {
  std::istringstream in(output);
  const std::string prefix = std::to_string(id) + " ";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

class JobsCliTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    data_dir_ = e2e::make_temp_dir("transnotes-jobs-cli");
    if (GetParam() == "postgres") {
      database_url_ = e2e::database_url_for("postgres");
      if (database_url_.empty()) GTEST_FAIL() << "TRANSNOTES_TEST_DATABASE_URL unset";
    }
  }

  // Runs `transnotes jobs ARGS` on this test's store; stdout and stderr together.
  e2e::CommandResult jobs(const std::string& args) {
    // The shared DATABASE_URL of the environment must not leak into the SQLite run.
    std::string command = database_url_.empty()
                              ? "env -u DATABASE_URL "
                              : "env DATABASE_URL=" + shell_quoted(database_url_) + " ";
    command += kBinary + " jobs " + args + " --data-dir " + shell_quoted(data_dir_) + " 2>&1";
    return e2e::run_command(command);
  }

  std::unique_ptr<e2e::Service> serve(std::vector<std::string> args) {
    e2e::ServiceOptions options;
    options.args = std::move(args);
    options.data_dir = data_dir_;
    if (!database_url_.empty()) options.env["DATABASE_URL"] = database_url_;
    return std::make_unique<e2e::Service>(options);
  }

  static json::object job(int port, std::int64_t id) {
    auto res = request(port, "GET", "/api/v1/translations/" + std::to_string(id) + "/");
    EXPECT_EQ(res.status, 200) << res.body;
    return res.status == 200 ? res.json().as_object() : json::object{};
  }

  // Polls the API until job `id` has `status` (the event) or 60 s pass (a failure).
  static json::object wait_for_status(int port, std::int64_t id, const std::string& status) {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    json::object current;
    while (Clock::now() < deadline) {
      current = job(port, id);
      if (current.contains("status") && current.at("status").as_string() == status) return current;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "job " << id << " never became " << status << ": " << json::serialize(current);
    return current;
  }

  static void set_language(int port, std::int64_t note_id, const std::string& language) {
    auto res = request(port, "PATCH", "/api/v1/notes/" + std::to_string(note_id) + "/",
                       json::serialize(json::object{{"original_language", language}}));
    ASSERT_EQ(res.status, 200) << res.body;
  }

  std::string data_dir_;
  std::string database_url_;
};

TEST_P(JobsCliTest, ListCancelRetryAndPurgeWhileTheServiceRuns) {
  std::int64_t first = 0, second = 0, first_note = 0;
  {
    auto service = serve({"--workers", "0"});  // nothing runs the jobs yet
    const int port = service->port();
    first = e2e::translate_new_note(port, "Hello world.");
    second = e2e::translate_new_note(port, "Good morning.");
    first_note = job(port, first).at("note_id").as_int64();

    auto listed = jobs("list");
    ASSERT_EQ(listed.exit_code, 0) << listed.output;
    const std::string row = row_of(listed.output, first);
    ASSERT_FALSE(row.empty()) << listed.output;
    for (const char* cell : {e2e::kTestUser, "en->es", "queued", "0/3"}) {
      EXPECT_NE(row.find(cell), std::string::npos) << cell << " not in: " << row;
    }
    EXPECT_LT(listed.output.find(row_of(listed.output, second)), listed.output.find(row))
        << "newest first:\n"
        << listed.output;

    // A queued job ends cancelled at once; cancelling it again is refused.
    auto cancelled = jobs("cancel " + std::to_string(second));
    ASSERT_EQ(cancelled.exit_code, 0) << cancelled.output;
    EXPECT_NE(cancelled.output.find("job " + std::to_string(second) + " cancelled"),
              std::string::npos)
        << cancelled.output;
    EXPECT_EQ(job(port, second).at("status").as_string(), "cancelled");
    auto again = jobs("cancel " + std::to_string(second));
    EXPECT_EQ(again.exit_code, 1) << again.output;
    EXPECT_NE(again.output.find("already ended as cancelled"), std::string::npos) << again.output;

    // The note now says it is in the target language: its job cannot succeed.
    set_language(port, first_note, "es");
  }
  {
    auto service = serve({"--workers", "1"});
    const int port = service->port();
    const auto failed = wait_for_status(port, first, "failed");
    EXPECT_EQ(failed.at("attempts").as_int64(), 1);

    auto listed = jobs("list --state failed");
    ASSERT_EQ(listed.exit_code, 0) << listed.output;
    const std::string row = row_of(listed.output, first);
    EXPECT_NE(row.find("failed"), std::string::npos) << listed.output;
    EXPECT_NE(row.find("Source and target language must differ."), std::string::npos)
        << listed.output;
    EXPECT_EQ(row_of(listed.output, second), "") << listed.output;
    // The cancelled job was never handed to the worker.
    const auto never_run = job(port, second);
    EXPECT_EQ(never_run.at("status").as_string(), "cancelled");
    EXPECT_EQ(never_run.at("attempts").as_int64(), 0);

    // Put right, retried from the command line: the serving process's worker runs it again.
    set_language(port, first_note, "en");
    auto retried = jobs("retry --all-failed");
    ASSERT_EQ(retried.exit_code, 0) << retried.output;
    EXPECT_NE(retried.output.find("1 failed job queued again"), std::string::npos)
        << retried.output;
    const auto done = wait_for_status(port, first, "succeeded");
    EXPECT_EQ(done.at("attempts").as_int64(), 1);
    EXPECT_FALSE(done.at("text").as_string().empty());

    auto refused = jobs("retry " + std::to_string(first));
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find("this one is succeeded"), std::string::npos) << refused.output;
    auto unknown = jobs("retry 987654321");
    EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
    EXPECT_NE(unknown.output.find("no job 987654321"), std::string::npos) << unknown.output;
    for (const char* mistake : {"retry", "cancel", "list --state done", "list --limit 0", "purge",
                                "purge --finished-before 7x", "retry 5 --all-failed"}) {
      EXPECT_EQ(jobs(mistake).exit_code, 2) << mistake;
    }

    // Purge keeps what has not ended long enough ago, then takes both ended jobs; the note keeps
    // its translation.
    auto kept = jobs("purge --finished-before 1d");
    EXPECT_NE(kept.output.find("purged 0 jobs"), std::string::npos) << kept.output;
    auto purged = jobs("purge --finished-before 0s");
    ASSERT_EQ(purged.exit_code, 0) << purged.output;
    EXPECT_NE(purged.output.find("purged 2 jobs"), std::string::npos) << purged.output;
    EXPECT_NE(jobs("list").output.find("no jobs"), std::string::npos);
    EXPECT_EQ(request(port, "GET", "/api/v1/translations/" + std::to_string(first) + "/").status,
              404);
    auto note = request(port, "GET", "/api/v1/notes/" + std::to_string(first_note) + "/");
    ASSERT_EQ(note.status, 200);
    EXPECT_EQ(note.json().at("translated_text"), done.at("text"));
  }
}

// A long note (thousands of sentences, seconds of Apertium) cancelled while it is being
// translated ends cancelled long before its translation would have finished, with nothing stored.
TEST_P(JobsCliTest, RunningJobCancelledFromTheCommandLineStopsEarly) {
  constexpr int kSentences = 10'000;  // about 11 s of Apertium on an idle machine
  std::string text;
  for (int i = 0; i < kSentences; ++i) {
    text += "The old cat sleeps near the window number " + std::to_string(i) + ". ";
  }
  auto service = serve({"--workers", "1", "--max-note-characters", "0"});
  const int port = service->port();
  const auto id = e2e::translate_new_note(port, text);
  const auto running = wait_for_status(port, id, "running");
  const auto note_id = running.at("note_id").as_int64();

  const auto asked = Clock::now();
  auto cancelled = jobs("cancel " + std::to_string(id));
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.output;
  EXPECT_NE(cancelled.output.find("is running; it stops at its next segment"), std::string::npos)
      << cancelled.output;
  const auto ended = wait_for_status(port, id, "cancelled");
  const auto took = Clock::now() - asked;
  EXPECT_LT(took, std::chrono::seconds(5)) << "the translation ran on after the cancel";
  EXPECT_EQ(ended.at("attempts").as_int64(), 1);
  EXPECT_TRUE(ended.at("text").is_null());
  auto note = request(port, "GET", "/api/v1/notes/" + std::to_string(note_id) + "/");
  ASSERT_EQ(note.status, 200);
  EXPECT_TRUE(note.json().at("translated_text").is_null()) << "a cancelled job stored a result";
  // Cancelled is final: retry is the way back.
  EXPECT_EQ(jobs("cancel " + std::to_string(id)).exit_code, 1);
}

// The staff right the job routes check: granted at creation or later, taken away, shown by list.
TEST_P(JobsCliTest, UsersCreateAdminAndSetAdminShowInTheList) {
  const auto users = [this](const std::string& args, const std::string& password_line = "") {
    std::string command = "printf '%s\\n' " + shell_quoted(password_line) + " | ";
    command += database_url_.empty() ? "env -u DATABASE_URL "
                                     : "env DATABASE_URL=" + shell_quoted(database_url_) + " ";
    command += kBinary + " users " + args + " --data-dir " + shell_quoted(data_dir_) + " 2>&1";
    return e2e::run_command(command);
  };
  const std::string password = "violet-Harbor-58-kettle";
  auto created = users("create ada --admin", password);
  ASSERT_EQ(created.exit_code, 0) << created.output;
  EXPECT_NE(created.output.find("created admin ada"), std::string::npos) << created.output;
  ASSERT_EQ(users("create bo", password).exit_code, 0);
  auto listed = users("list");
  EXPECT_NE(listed.output.find("\tada\t\tactive\tadmin\t"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("\tbo\t\tactive\t-\t"), std::string::npos) << listed.output;

  auto granted = users("set-admin bo");
  ASSERT_EQ(granted.exit_code, 0) << granted.output;
  EXPECT_NE(granted.output.find("bo is now an admin"), std::string::npos) << granted.output;
  auto revoked = users("set-admin ada --off");
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  EXPECT_NE(revoked.output.find("ada is no longer an admin"), std::string::npos) << revoked.output;
  listed = users("list");
  EXPECT_NE(listed.output.find("\tada\t\tactive\t-\t"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("\tbo\t\tactive\tadmin\t"), std::string::npos) << listed.output;

  auto unknown = users("set-admin nobody");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_NE(unknown.output.find("no user named nobody"), std::string::npos) << unknown.output;
}

INSTANTIATE_TEST_SUITE_P(Backends, JobsCliTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
